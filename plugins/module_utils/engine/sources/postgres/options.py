"""Option names of the PostgreSQL modules (doc fragment lifeboat.backup.postgres), as plain data so the
modules, the runner and the kind contract share one list. No Ansible imports."""

from .kind import SSL_MODES


def connection_spec():
    """Connection options, all unset by default so libpq's PG* environment applies."""
    return dict(
        login_user=dict(type="str", aliases=["login"]),
        login_password=dict(type="str", no_log=True),
        login_host=dict(type="str", aliases=["host"]),
        login_unix_socket=dict(type="str", aliases=["unix_socket"]),
        login_port=dict(type="int", aliases=["port"]),
        ssl_mode=dict(type="str", choices=list(SSL_MODES)),
        ca_cert=dict(type="str", aliases=["ssl_rootcert"]),
        ssl_cert=dict(type="path"),
        ssl_key=dict(type="path"),
        connect_params=dict(type="dict", default={}),
        maintenance_db=dict(type="str", default="postgres"),
        pg_bin_dir=dict(type="path"),
    )


CONNECTION_MUTUALLY_EXCLUSIVE = [["login_host", "login_unix_socket"]]


def dump_spec():
    return dict(
        database=dict(type="str", required=True, aliases=["db"]),
        globals=dict(type="bool", default=False),
        globals_role_passwords=dict(type="bool", default=True),
        lock_wait_timeout=dict(type="int"),
    )


def restore_spec():
    return dict(
        database=dict(type="str", required=True, aliases=["db"]),
        clean=dict(type="bool", default=False),
        safe_swap=dict(type="bool", default=False),
        tables=dict(type="list", elements="str", default=[]),
        schemas=dict(type="list", elements="str", default=[]),
        jobs=dict(type="int", default=1),
        tmp_dir=dict(type="path"),
        keep_previous=dict(type="bool", default=True),
        terminate_connections=dict(type="bool", default=False),
        no_owner=dict(type="bool", default=False),
        restore_globals=dict(type="bool", default=False),
        verify=dict(type="bool", default=True),
        analyze=dict(type="bool", default=True),
    )
