"""Redis as a kind of source: the entry point the registry (sources/kinds.py) loads. It builds a RedisSource
(backup.py) from redis_backup's option names and runs restore_redis (restore.py) with redis_restore's, so the
runner and the modules share one translation of options. The kind's test restore is verify.py."""

import os
import stat

from ...core.errors import ConfigError, LifeboatError, RestoreError
from ...core.files import check_kept_aside
from . import options as schemas
from .backup import RedisSource
from .connection import connection_from_options, locate_rdb
from .resp import ProtocolError, RedisClient, RespError
from .restore import DEFAULT_SERVICE, put_back_redis, restore_redis

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


def _live_rdb(connection):
    """The RDB file the running server loads (CONFIG GET dir + dbfilename); ConfigError when it cannot be asked."""
    try:
        with RedisClient(**connection) as client:
            return locate_rdb(client)
    except (LifeboatError, ProtocolError, RespError) as exc:
        raise ConfigError("which RDB file to put back is unknown: Redis cannot be asked (%s); set rdb_path in the job "
                          "file or pass --to <rdb>; nothing was changed" % getattr(exc, "msg", exc))


def put_back_from_options(options, previous, target=None, check_mode=False):
    """Kind contract: put the RDB a restore kept aside (`previous`, <rdb>.lifeboat-prev-<time>[-<hex>]) back at
    `target` (default: the job's rdb_path, else the RDB the running server loads) and restart Redis on it
    (put_back_redis: service_name or restart_command). `previous` is untrusted: checked against the target, and
    never a symlink. Returns the runner's result."""
    connection = connection_from_options(options)
    if target is None:
        rdb_path = options.get("rdb_path")
        target = os.path.abspath(os.path.expanduser(rdb_path)) if rdb_path else _live_rdb(connection)
    check_kept_aside(target, previous)
    try:
        if not stat.S_ISREG(os.lstat(previous).st_mode):
            raise ConfigError("%s is not a regular file (a symlink is never followed); nothing was changed" % previous)
    except FileNotFoundError:
        raise RestoreError("the kept-aside copy %s is gone (put back or removed already?); Redis was not touched"
                           % previous)
    done = put_back_redis(connection, previous, service_name=options.get("service_name") or DEFAULT_SERVICE,
                          restart_command=options.get("restart_command"),
                          start_timeout=options.get("start_timeout") or 300, check_mode=check_mode)
    return dict(done, status="ok", removed=[done["restored_to"]])
