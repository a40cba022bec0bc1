"""MongoDB as a kind of source: the entry point the registry (sources/kinds.py) loads. It builds a MongoSource
(dump.py) from mongo_dump's option names and runs restore_mongo (restore.py) with mongo_restore's, so the runner
and the modules share one translation of options. The kind's test restore is verify.py."""

import os

from ...core.errors import ConfigError
from . import options as schemas
from .clients import DEFAULT_TIMEOUT_MS
from .dump import MongoSource
from .format import with_env_password
from .restore import restore_mongo

RESTORE_TARGET = "mongo_uri"  # what `lifeboat restore --to` sets (kinds.py)
OPTIONS = schemas.OPTIONS  # protocol.Kind: the schemas of its options (options.py)
RESTORE_OPTIONS = schemas.RESTORE_OPTIONS


def source_from_options(options):
    """Kind contract used by the runner: a Source from mongo_dump's option names."""
    return MongoSource(with_env_password(options.get("mongo_uri"), os.environ), databases=options.get("databases"),
                       exclude_databases=options.get("exclude_databases"), collections=options.get("collections"),
                       exclude_collections=options.get("exclude_collections"), method=options.get("method") or "auto",
                       oplog=options.get("oplog", False),
                       server_selection_timeout_ms=options.get("server_selection_timeout_ms") or DEFAULT_TIMEOUT_MS,
                       tmp_dir=options.get("tmp_dir"), verify=options.get("verify", True))


def restore_from_options(repository, options, check_mode=False):
    """Kind contract used by the runner: restore with mongo_restore's option names; returns its result dict."""
    uri = with_env_password(options.get("mongo_uri"), os.environ)
    return restore_mongo(repository, options["job"], uri, backup=options.get("backup", "latest"),
                         before=options.get("before"),
                         identity_file=(options.get("encryption") or {}).get("age_identity_file"),
                         databases=options.get("databases"), collections=options.get("collections"),
                         drop=options.get("drop", False), rename=options.get("rename"),
                         oplog_replay=options.get("oplog_replay"),
                         server_selection_timeout_ms=options.get("server_selection_timeout_ms") or DEFAULT_TIMEOUT_MS,
                         tmp_dir=options.get("tmp_dir"), allow_javascript=bool(options.get("allow_javascript")),
                         check_mode=check_mode)


def put_back_from_options(options, previous, target=None, check_mode=False):
    """Kind contract: a MongoDB restore keeps nothing aside (mongorestore writes into the live databases), so there is
    nothing to put back: ConfigError."""
    raise ConfigError("kind mongo has no put-back: a MongoDB restore keeps no previous data aside; restore an older "
                      "set instead")
