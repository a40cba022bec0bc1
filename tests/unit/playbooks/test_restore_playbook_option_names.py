"""playbooks/restore.yml passes a job entry's options on to the restore and put-back modules through lists of option
names (playbooks/tasks/restore_job.yml, restore_put_back.yml). Those lists are YAML copies of the modules' argument
specs: this proves every name in them is an option (or alias) of the module it goes to, so a renamed option cannot be
silently dropped by the runbook, and that the put-back passes every connection option the module has."""
import os

import pytest
import yaml

from support.module_spec import KIND_MODULES as MODULES, argument_spec_of

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..")
TASKS = os.path.join(ROOT, "playbooks", "tasks")


def load(name):
    with open(os.path.join(TASKS, name)) as handle:
        return yaml.safe_load(handle)


def names_of(spec):
    found = set()
    for name, option in spec.items():
        found.add(name)
        found.update(option.get("aliases", ()))
    return found


def put_back_vars():
    block = load("restore_put_back.yml")[0]["block"]
    found = {}
    for task in block:
        found.update({k: v for k, v in (task.get("vars") or {}).items() if k.endswith("_keys")})
    return found


@pytest.mark.parametrize("kind", sorted(MODULES))
def test_restore_job_keys_are_options_of_the_restore_module(kind, monkeypatch):
    keys = load("restore_job.yml")[0]["vars"]["lifeboat_rj_kind_keys"][kind]
    unknown = set(keys) - names_of(argument_spec_of(MODULES[kind][1], monkeypatch))
    assert not unknown, "restore_job.yml passes %s to %s, which has no such option" % (sorted(unknown), MODULES[kind][1])


@pytest.mark.parametrize("module, variable", [("pg_put_back", "lifeboat_pb_pg_connection_keys"),
                                              ("redis_put_back", "lifeboat_pb_redis_keys")])
def test_put_back_keys_are_the_put_back_module_options(module, variable, monkeypatch):
    keys = set(put_back_vars()[variable])
    spec = argument_spec_of(module, monkeypatch)
    assert keys <= names_of(spec), sorted(keys - names_of(spec))
    # everything but what the put-back task sets itself (the target, the kept copy, its own switches)
    own = {"database", "previous", "terminate_connections", "keep_rejected", "rdb_path"}
    missing = {name for name in spec if name not in own} - keys
    assert not missing, "%s takes %s but restore_put_back.yml never passes it" % (module, sorted(missing))
