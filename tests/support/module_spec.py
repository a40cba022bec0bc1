"""What a module's main() hands AnsibleModule, read without running the module: the unit tests that compare
argument specs with the engine's schemas and with the runbooks use it."""
import importlib

import pytest

PREFIX = "ansible_collections.lifeboat.backup.plugins."
# kind: (backup module, restore module)
KIND_MODULES = {
    "sqlite": ("sqlite_backup", "sqlite_restore"),
    "postgres": ("pg_dump_s3", "pg_restore_s3"),
    "redis": ("redis_backup", "redis_restore"),
    "mongo": ("mongo_dump", "mongo_restore"),
    "directory": ("dir_snapshot", "dir_restore"),
}


class Captured(Exception):
    def __init__(self, kwargs):
        super(Captured, self).__init__("AnsibleModule called")
        self.kwargs = kwargs


def capture(name, monkeypatch):
    """(module, the keyword arguments main() gives AnsibleModule); main() raises before anything runs."""
    module = importlib.import_module(PREFIX + "modules." + name)

    def fake_module(**kwargs):
        raise Captured(kwargs)

    monkeypatch.setattr(module, "AnsibleModule", fake_module)
    with pytest.raises(Captured) as captured:
        module.main()
    return module, captured.value.kwargs


def argument_spec_of(name, monkeypatch):
    """The argument_spec of module `name`."""
    return capture(name, monkeypatch)[1]["argument_spec"]
