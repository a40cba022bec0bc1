"""Each kind's options are defined once, in sources/<kind>/options.py: the backup and restore modules' argument_specs
are exactly the shared options plus the kind's schema (kinds.schema, kinds.restore_schema), option by option, so
what a module takes and what the runner accepts in a job file cannot drift apart."""

import importlib

import pytest

from support.module_spec import KIND_MODULES, PREFIX, argument_spec_of

ENGINE = PREFIX + "module_utils.engine."

MODULES = KIND_MODULES


def engine(name):
    return importlib.import_module(ENGINE + name)


def test_every_kind_has_its_modules():
    assert sorted(MODULES) == engine("sources.kinds").names()


@pytest.mark.parametrize("kind", sorted(MODULES))
@pytest.mark.parametrize("side", ["backup", "restore"])
def test_the_modules_spec_is_the_shared_options_and_the_kinds_schema(kind, side, monkeypatch):
    kinds, options = engine("sources.kinds"), engine("core.options")
    shared = engine("repositories.options").REPOSITORY + getattr(engine("pipeline.options"), side.upper())
    schema = kinds.schema(kind) if side == "backup" else kinds.restore_schema(kind)
    spec = argument_spec_of(MODULES[kind][0 if side == "backup" else 1], monkeypatch)
    # every option of the kind's schema, as its Option says
    for option in schema:
        assert spec.get(option.name) == option.spec(), (kind, side, option.name)
    # and nothing else: an option of the module outside the schemas would be one the runner refuses
    assert sorted(spec) == sorted(set(options.names(shared)) | set(options.names(schema))), (kind, side)


def test_redis_put_back_is_the_connection_restart_and_previous(monkeypatch):
    redis, options = engine("sources.redis.options"), engine("core.options")
    spec = argument_spec_of("redis_put_back", monkeypatch)
    assert spec == options.argument_spec(redis.CONNECTION + redis.RESTART + redis.PUT_BACK)
    assert spec["previous"] == {"type": "path", "required": True}


def test_redis_spec_functions_come_from_the_schema():
    redis, options = engine("sources.redis.options"), engine("core.options")
    assert engine("sources.redis.connection").connection_spec() == options.argument_spec(redis.CONNECTION)
    assert engine("sources.redis.restore").restart_spec() == options.argument_spec(redis.RESTART)
    assert engine("sources.redis.restore").DEFAULT_SERVICE == redis.DEFAULT_SERVICE == "redis-server"


def test_mongo_schema_constants_are_the_engines():
    """options.py stays light (no pymongo) and so repeats two constants of the MongoDB code: they must agree."""
    mongo = engine("sources.mongo.options")
    assert mongo.METHODS == engine("sources.mongo.dump").METHODS
    assert mongo.DEFAULT_TIMEOUT_MS == engine("sources.mongo.clients").DEFAULT_TIMEOUT_MS


@pytest.mark.parametrize("kind", sorted(MODULES))
def test_the_source_classes_name_the_source_protocol(kind):
    protocol = engine("sources.protocol")
    source = {"sqlite": "sources.sqlite.snapshot.SqliteSource", "postgres": "sources.postgres.dump.PostgresSource",
              "redis": "sources.redis.backup.RedisSource", "mongo": "sources.mongo.dump.MongoSource",
              "directory": "sources.directory.snapshot.DirectorySource"}[kind]
    module, name = source.rsplit(".", 1)
    cls = getattr(engine(module), name)
    assert issubclass(cls, protocol.Source)
    for method in ("check", "open", "describe", "tools", "verification"):
        assert getattr(cls, method) is not getattr(protocol.Source, method), (name, method)
