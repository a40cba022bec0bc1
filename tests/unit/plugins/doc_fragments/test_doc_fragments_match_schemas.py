"""The doc fragments are YAML for ansible-doc; the options themselves are defined once, in the engine's schemas.
These tests prove each fragment agrees with its schema name by name, type by type, default by default (and
required, choices, aliases, elements, suboptions), so neither can drift from the other."""

import copy
import importlib
import importlib.util
import os

import pytest
import yaml

from engine.core.errors import ConfigError
from engine.core.options import argument_spec
from engine.pipeline import options as pipeline_options
from engine.repositories import options as repository_options
from engine.sources.postgres import connection
from engine.sources.postgres import options as postgres_options

FRAGMENTS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins", "doc_fragments")


def redis_spec(name):
    """Redis's spec function `name`, wherever the redis package keeps it (kind.py, or the modules split off it)."""
    for module in ("connection", "restore", "kind"):
        try:
            found = getattr(importlib.import_module("engine.sources.redis." + module), name, None)
        except ImportError:
            found = None
        if found is not None:
            return found()
    raise AssertionError("no %s in engine/sources/redis" % name)


def fragment(name, attribute="DOCUMENTATION"):
    spec = importlib.util.spec_from_file_location("lifeboat_doc_fragment_" + name, os.path.join(FRAGMENTS, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return yaml.safe_load(getattr(module.ModuleDocFragment, attribute))["options"]


def disagreements(documented, spec, where=""):
    """Every difference between documented options (YAML) and an argument_spec, as readable strings."""
    found = []
    for name in sorted(set(documented) ^ set(spec)):
        found.append("%s%s: %s" % (where, name, "documented only" if name in documented else "in the schema only"))
    for name in sorted(set(documented) & set(spec)):
        doc, option = documented[name], spec[name]
        pairs = {
            "type": (doc.get("type", "str"), option.get("type", "str")),
            "default": (doc.get("default"), option.get("default")),
            "required": (doc.get("required", False), option.get("required", False)),
            "choices": (doc.get("choices"), option.get("choices")),
            "aliases": (doc.get("aliases"), option.get("aliases")),
            "elements": (doc.get("elements"), option.get("elements")),
        }
        for field, (in_doc, in_spec) in pairs.items():
            if in_doc != in_spec or type(in_doc) is not type(in_spec):
                found.append("%s%s.%s: documented %r, schema %r" % (where, name, field, in_doc, in_spec))
        if "suboptions" in doc or "options" in option:
            found.extend(disagreements(doc.get("suboptions") or {}, option.get("options") or {},
                                       "%s%s." % (where, name)))
    return found


CASES = {
    "repository": lambda: argument_spec(repository_options.REPOSITORY),
    "backup": lambda: argument_spec(pipeline_options.BACKUP),
    "restore": lambda: argument_spec(pipeline_options.RESTORE),
    "postgres": lambda: argument_spec(postgres_options.CONNECTION),
    "redis": lambda: redis_spec("connection_spec"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fragment_agrees_with_its_schema(name):
    assert disagreements(fragment(name), CASES[name]()) == []


def test_redis_restart_fragment_agrees_with_its_spec():
    assert disagreements(fragment("redis", "RESTART"), redis_spec("restart_spec")) == []


def test_every_fragment_is_checked():
    files = sorted(f[:-3] for f in os.listdir(FRAGMENTS) if f.endswith(".py") and not f.startswith("_"))
    assert files == sorted(CASES)


@pytest.mark.parametrize("change, expected", [
    (lambda doc: doc["s3"]["suboptions"]["prefix"].update(default="backups"), "s3.prefix.default"),
    (lambda doc: doc["sftp"]["suboptions"]["port"].update(type="str"), "sftp.port.type"),
    (lambda doc: doc["s3"]["suboptions"]["access_key"].pop("aliases"), "s3.access_key.aliases"),
    (lambda doc: doc["s3"]["suboptions"]["sse"].update(choices=["AES256"]), "s3.sse.choices"),
    (lambda doc: doc["ftp"]["suboptions"]["password_file"].pop("required"), "ftp.password_file.required"),
    (lambda doc: doc.update(pg_host={"type": "str"}), "pg_host: documented only"),
    (lambda doc: doc["sftp"]["suboptions"].pop("timeout"), "sftp.timeout: in the schema only"),
])
def test_a_drift_is_named(change, expected):
    """The comparison is not vacuous: each kind of drift is reported by name."""
    documented = copy.deepcopy(fragment("repository"))
    change(documented)
    found = disagreements(documented, argument_spec(repository_options.REPOSITORY))
    assert len(found) == 1 and found[0].startswith(expected), found


def test_a_default_of_another_type_is_a_drift():
    """YAML `default: 0` is not `default: false`, though Python says 0 == False."""
    spec = {"verify": {"type": "bool", "default": False}}
    assert disagreements({"verify": {"type": "bool", "default": 0}}, spec) == [
        "verify.default: documented 0, schema False"]


def test_postgres_ssl_modes_are_documented_and_accepted_as_defined_once():
    """ssl_mode's documented choices are options.SSL_MODES, and the connection accepts exactly those: it checks
    against the same tuple, not a copy."""
    assert fragment("postgres")["ssl_mode"]["choices"] == list(postgres_options.SSL_MODES)
    assert connection.SSL_MODES is postgres_options.SSL_MODES
    for mode in postgres_options.SSL_MODES:
        assert connection.Connection(ssl_mode=mode, environ={}).options["sslmode"] == mode
    with pytest.raises(ConfigError) as failure:
        connection.Connection(ssl_mode="verify_full", environ={})
    assert failure.value.msg == ("ssl_mode must be one of allow, disable, prefer, require, verify-ca, verify-full, "
                                 "not 'verify_full'")
