"""Options of the Redis kind, each defined once: the connection (doc fragment lifeboat.backup.redis), the restart
(doc fragment lifeboat.backup.redis.restart, for redis_restore and redis_put_back), what a backup reads
(redis_backup, and a job file of kind redis) and what a restore reads (redis_restore, and a job file's `restore`
object). The modules' argument_spec (connection.connection_spec, restore.restart_spec) and the runner's job checks
(runner/jobs.py, through kinds.options) derive from these schemas. Only core.options here."""

from ...core.options import Option

DEFAULT_SERVICE = "redis-server"

CONNECTION = (
    Option("redis_host", default="127.0.0.1"),
    Option("redis_port", "int", default=6379),
    Option("redis_socket", "path"),
    Option("redis_user"),
    Option("redis_password", no_log=True),
    Option("redis_tls", "bool", default=False),
    Option("redis_tls_ca_file", "path"),
)

RESTART = (
    Option("service_name", default=DEFAULT_SERVICE),
    Option("restart_command", "list", elements="str"),
    Option("start_timeout", "int", default=300),
)

RDB_PATH = Option("rdb_path", "path")

# redis_backup's own options (besides the connection).
DUMP = (
    RDB_PATH,
    Option("bgsave_timeout", "int", default=3600),
)

# redis_restore's own options (besides the connection and the restart).
PLACE = (
    RDB_PATH,
    Option("owner"),
    Option("group"),
    Option("mode", "raw"),
    Option("keep_previous", "bool", default=True),
    Option("allow_key_mismatch", "bool", default=False),
    Option("allow_functions", "bool", default=False),
)

# redis_put_back's own option (besides the connection and the restart): the file a restore kept aside.
PUT_BACK = (
    Option("previous", "path", required=True),
)

BACKUP = CONNECTION + DUMP
RESTORE = CONNECTION + RESTART + PLACE

# The schemas protocol.Kind names (kind.py re-exports them; kinds.schema and kinds.restore_schema read them here,
# without importing the kind's code): what a job file of the kind may carry, and its `restore` object.
OPTIONS = BACKUP
RESTORE_OPTIONS = RESTORE
