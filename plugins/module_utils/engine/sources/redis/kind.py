"""Redis as a kind of source: the entry point the registry (sources/kinds.py) loads. It builds a RedisSource
(backup.py) from redis_backup's option names and runs restore_redis (restore.py) with redis_restore's, so the
runner and the modules share one translation of options. The kind's test restore is verify.py."""

from . import options as schemas
from .backup import RedisSource
from .connection import connection_from_options
from .restore import DEFAULT_SERVICE, restore_redis

OPTIONS = schemas.OPTIONS  # protocol.Kind: the schemas of its options (options.py)
RESTORE_OPTIONS = schemas.RESTORE_OPTIONS


def source_from_options(options):
    """Kind contract: a Source from module option names (redis_* connection, rdb_path, bgsave_timeout)."""
    return RedisSource(connection_from_options(options), rdb_path=options.get("rdb_path"),
                       bgsave_timeout=options.get("bgsave_timeout") or 3600, verify=options.get("verify", True))


def restore_from_options(repository, options, check_mode=False):
    """Kind contract: restore with module option names; returns the module's result dict."""
    return restore_redis(repository, options["job"], connection_from_options(options),
                         backup=options.get("backup", "latest"), before=options.get("before"),
                         identity_file=(options.get("encryption") or {}).get("age_identity_file"),
                         rdb_path=options.get("rdb_path"), service_name=options.get("service_name") or DEFAULT_SERVICE,
                         restart_command=options.get("restart_command"),
                         start_timeout=options.get("start_timeout") or 300, owner=options.get("owner"),
                         group=options.get("group"), mode=options.get("mode"),
                         keep_previous=options.get("keep_previous", True),
                         allow_key_mismatch=bool(options.get("allow_key_mismatch")),
                         allow_functions=bool(options.get("allow_functions")), check_mode=check_mode)
