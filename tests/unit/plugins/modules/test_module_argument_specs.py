"""Each module's argument_spec holds the shared options exactly as the engine's schemas derive them: the
repository options, the backup or restore options and the PostgreSQL or Redis connection, as its
extends_documentation_fragment says."""

import importlib
import os

import pytest
import yaml

from support.module_spec import PREFIX, capture

MODULES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins", "modules")
NAMES = sorted(f[:-3] for f in os.listdir(MODULES) if f.endswith(".py") and not f.startswith("_"))
# Modules that share no option with another: litestream_config, and the SQLite and directory put-backs (their spec is
# the kind's PUT_BACK schema, proved in test_put_back_modules.py).
STANDALONE = ("litestream_config", "sqlite_put_back", "dir_put_back")


def redis_spec(name):
    """Redis's spec function `name`, wherever the redis package keeps it (kind.py, or the modules split off it)."""
    for module in ("connection", "restore", "kind"):
        try:
            found = getattr(importlib.import_module(PREFIX + "module_utils.engine.sources.redis." + module), name, None)
        except ImportError:
            found = None
        if found is not None:
            return found()
    raise AssertionError("no %s in engine/sources/redis" % name)


def shared_specs():
    """{doc fragment: argument_spec derived from its schema}."""
    options = importlib.import_module(PREFIX + "module_utils.engine.core.options")
    pipeline = importlib.import_module(PREFIX + "module_utils.engine.pipeline.options")
    repositories = importlib.import_module(PREFIX + "module_utils.engine.repositories.options")
    postgres = importlib.import_module(PREFIX + "module_utils.engine.sources.postgres.options")
    return {
        "lifeboat.backup.repository": options.argument_spec(repositories.REPOSITORY),
        "lifeboat.backup.backup": options.argument_spec(pipeline.BACKUP),
        "lifeboat.backup.restore": options.argument_spec(pipeline.RESTORE),
        "lifeboat.backup.postgres": options.argument_spec(postgres.CONNECTION),
        "lifeboat.backup.redis": redis_spec("connection_spec"),
        "lifeboat.backup.redis.restart": redis_spec("restart_spec"),
    }


@pytest.mark.parametrize("name", [n for n in NAMES if n not in STANDALONE])
def test_shared_options_are_the_schemas(name, monkeypatch):
    module, kwargs = capture(name, monkeypatch)
    fragments = yaml.safe_load(module.DOCUMENTATION).get("extends_documentation_fragment") or []
    derived = shared_specs()
    assert fragments and set(fragments) <= set(derived), fragments
    spec = kwargs["argument_spec"]
    for fragment in fragments:
        for option, expected in derived[fragment].items():
            assert spec.get(option) == expected, (fragment, option)
    repositories = importlib.import_module(PREFIX + "module_utils.engine.repositories.options")
    postgres = importlib.import_module(PREFIX + "module_utils.engine.sources.postgres.options")
    if "lifeboat.backup.repository" in fragments:
        assert kwargs["required_one_of"] == [list(repositories.STORES)]
    if "lifeboat.backup.postgres" in fragments:
        assert kwargs["mutually_exclusive"] == postgres.CONNECTION_MUTUALLY_EXCLUSIVE
    assert kwargs["supports_check_mode"] is True


def test_every_module_is_covered():
    assert len(NAMES) == 18 and set(STANDALONE) <= set(NAMES)
