"""Options of the PostgreSQL modules, each defined once: the connection (doc fragment lifeboat.backup.postgres),
pg_dump_s3's dump options and pg_restore_s3's restore options. The modules' argument_spec, the runner's and
backup_verify's scratch-server login keys (CONNECTION_KEYS) derive from these schemas. No Ansible imports, and
nothing heavier than core.options, so the runner's verify can read CONNECTION_KEYS cheaply."""

from ...core.options import Option, argument_spec, names

# libpq's sslmode values: ssl_mode's choices, and what connection.Connection accepts.
SSL_MODES = ("allow", "disable", "prefer", "require", "verify-ca", "verify-full")

# All unset by default so libpq's PG* environment applies.
CONNECTION = (
    Option("login_user", aliases=["login"]),
    Option("login_password", no_log=True),
    Option("login_host", aliases=["host"]),
    Option("login_unix_socket", aliases=["unix_socket"]),
    Option("login_port", "int", aliases=["port"]),
    Option("ssl_mode", choices=SSL_MODES),
    Option("ca_cert", aliases=["ssl_rootcert"]),
    Option("ssl_cert", "path"),
    Option("ssl_key", "path"),
    Option("connect_params", "dict", default={}),
    Option("maintenance_db", default="postgres"),
    Option("pg_bin_dir", "path"),
)
CONNECTION_KEYS = names(CONNECTION)
CONNECTION_MUTUALLY_EXCLUSIVE = [["login_host", "login_unix_socket"]]

DATABASE = Option("database", required=True, aliases=["db"])

DUMP = (
    DATABASE,
    Option("globals", "bool", default=False),
    Option("globals_role_passwords", "bool", default=True),
    Option("lock_wait_timeout", "int"),
)

RESTORE = (
    DATABASE,
    Option("clean", "bool", default=False),
    Option("safe_swap", "bool", default=False),
    Option("tables", "list", elements="str", default=[]),
    Option("schemas", "list", elements="str", default=[]),
    Option("jobs", "int", default=1),
    Option("tmp_dir", "path"),
    Option("keep_previous", "bool", default=True),
    Option("terminate_connections", "bool", default=False),
    Option("no_owner", "bool", default=False),
    Option("restore_globals", "bool", default=False),
    Option("verify", "bool", default=True),
    Option("analyze", "bool", default=True),
)


def connection_spec():
    """argument_spec entries of the connection options."""
    return argument_spec(CONNECTION)


def dump_spec():
    return argument_spec(DUMP)


def restore_spec():
    return argument_spec(RESTORE)


# The schemas protocol.Kind names (kind.py re-exports them; kinds.schema and kinds.restore_schema read them here,
# without importing the kind's code): what a job file of the kind may carry, and its `restore` object.
OPTIONS = CONNECTION + DUMP
RESTORE_OPTIONS = CONNECTION + RESTORE
