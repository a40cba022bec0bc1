"""Argument lists, connection strings, error messages and names of the PostgreSQL kind (no server needed)."""

import pytest

from engine.core.errors import ConfigError
from engine.sources.postgres.archive import split_table
from engine.sources.postgres.connection import Connection, explain, tool_major
from engine.sources.postgres.kind import source_from_options
from engine.sources.postgres.restore import create_database_sql
from engine.sources.postgres.swap import side_name

SECRET = "pa ss'w\\rd"


def conn(**options):
    return Connection(environ={"PATH": "/usr/bin"}, **options)


def test_unset_options_are_not_passed_so_libpq_env_applies():
    connection = conn()
    assert connection.conninfo("app") == "dbname='app'"
    assert connection.conninfo() == ""
    env = connection.env()
    assert "PGPASSWORD" not in env and "PGHOST" not in env
    assert env["PGCONNECT_TIMEOUT"] == "10"
    inherited = Connection(environ={"PGHOST": "db1", "PGPASSWORD": "from-env", "PGCONNECT_TIMEOUT": "3"})
    assert inherited.env()["PGPASSWORD"] == "from-env" and inherited.env()["PGCONNECT_TIMEOUT"] == "3"
    assert inherited.target() == "db1 port 5432"


def test_options_become_a_quoted_conninfo_and_the_password_only_env():
    connection = conn(login_host="db.internal", login_port=6543, login_user="o'brien", login_password=SECRET,
                      ssl_mode="verify-full", ca_cert="/etc/ca.pem", ssl_cert="/c.pem", ssl_key="/k.pem",
                      connect_params={"application_name": "lifeboat", "connect_timeout": 5})
    info = connection.conninfo("my db")
    assert info.startswith("dbname='my db' ")
    assert "host='db.internal'" in info and "port='6543'" in info and "user='o\\'brien'" in info
    assert "sslmode='verify-full'" in info and "sslrootcert='/etc/ca.pem'" in info
    assert "sslcert='/c.pem'" in info and "sslkey='/k.pem'" in info and "application_name='lifeboat'" in info
    env = connection.env()
    assert env["PGPASSWORD"] == SECRET
    assert "PGCONNECT_TIMEOUT" not in env  # connect_timeout given as a parameter
    for argv in (connection.dump_argv("app", "00000003-1B-1"), connection.globals_argv(),
                 connection.restore_argv("app", jobs=4, clean=True, list_file="/tmp/l", input_file="/tmp/f"),
                 connection.psql_argv("app", "-c", "select 1"), connection.list_argv()):
        assert not any(SECRET in arg or "password" in arg.lower() and "--no-password" != arg for arg in argv), argv


def test_unix_socket_is_the_host_and_excludes_login_host():
    assert "host='/var/run/postgresql'" in conn(login_unix_socket="/var/run/postgresql").conninfo("x")
    with pytest.raises(ConfigError):
        conn(login_host="a", login_unix_socket="/s")
    with pytest.raises(ConfigError, match="login_password"):
        conn(connect_params={"password": "x"})
    with pytest.raises(ConfigError, match="ssl_mode"):
        conn(ssl_mode="sometimes")


def test_dump_and_globals_argv():
    connection = conn(login_host="h", pg_bin_dir="/usr/lib/postgresql/16/bin", maintenance_db="admin")
    assert connection.dump_argv("app", "snap-1") == [
        "/usr/lib/postgresql/16/bin/pg_dump", "--format=custom", "--compress=0", "--no-password", "--dbname=dbname='app' host='h'",
        "--snapshot=snap-1"]
    with_timeout = connection.dump_argv("app", "snap-1", lock_wait_timeout=60)
    assert with_timeout[-2:] == ["--snapshot=snap-1", "--lock-wait-timeout=60s"]
    assert connection.globals_argv() == [
        "/usr/lib/postgresql/16/bin/pg_dumpall", "--globals-only", "--no-password", "--dbname=host='h'",
        "--database=admin"]
    assert connection.globals_argv(role_passwords=False)[-1] == "--no-role-passwords"


def test_restore_argv():
    connection = conn()
    assert connection.restore_argv("app") == ["pg_restore", "--exit-on-error", "--no-password", "--dbname=dbname='app'",
                                              "--single-transaction"]
    argv = connection.restore_argv("app", jobs=2, input_file="/tmp/x.pgdump", no_owner=True, list_file="/tmp/l")
    assert argv == ["pg_restore", "--exit-on-error", "--no-password", "--dbname=dbname='app'", "--jobs=2",
                    "--no-owner", "--no-acl", "--use-list=/tmp/l", "/tmp/x.pgdump"]
    assert "--single-transaction" not in argv  # incompatible with --jobs
    clean = connection.restore_argv("app", clean=True)
    assert clean[-2:] == ["--clean", "--if-exists"] and "--single-transaction" in clean
    assert connection.psql_argv("db", "-c", "x") == ["psql", "-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d",
                                                     "dbname='db'", "-c", "x"]


def test_source_from_options_uses_module_names():
    source = source_from_options({"database": "app", "login_host": "h", "login_port": 5433, "login_password": SECRET,
                                  "globals": True, "verify": False})
    assert source.extension == "pgbundle" and source.include_globals and not source.verify
    described = source.describe()
    assert described == {"database": "app", "host": "h", "port": 5433, "user": None, "format": "bundle"}
    assert SECRET not in repr(described)
    assert source_from_options({"database": "app"}).extension == "pgdump"


def test_error_messages():
    target, user = "127.0.0.1 port 5999", "bob"
    msg = explain('psql: error: connection to server at "127.0.0.1", port 5999 failed: FATAL:  password '
                  'authentication failed for user "bob"', target, user, "app", "connect").msg
    assert "rejected the password" in msg and "bob" in msg
    msg = explain('psql: error: connection to server at "127.0.0.1", port 5999 failed: Connection refused\n\tIs the '
                  'server running on that host and accepting TCP/IP connections?', target, user, "app", "connect").msg
    assert msg.startswith("cannot reach PostgreSQL at 127.0.0.1 port 5999")
    msg = explain('FATAL:  database "nope" does not exist', target, user, "nope", "connect").msg
    assert msg.startswith("database nope does not exist")
    msg = explain('psql: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed: FATAL:  '
                  'role "root" does not exist', target, None, "app", "connect").msg
    assert "has no role for the login user" in msg and "become_user: postgres" in msg
    assert "login_password" in explain("fe_sendauth: no password supplied", target, user, "a", "connect").msg
    msg = explain("pg_dump: error: query failed: ERROR:  canceling statement due to statement timeout\npg_dump: "
                  "detail: Query was: LOCK TABLE public.orders IN ACCESS SHARE MODE", target, user, "app", "dump").msg
    assert "table public.orders of database app" in msg and "lock_wait_timeout" in msg, msg
    msg = explain("ERROR:  canceling statement due to lock timeout", target, user, "app", "count rows").msg
    assert "stayed locked" in msg and "pg_locks" in msg, msg
    assert "stayed locked" not in explain("ERROR:  canceling statement due to statement timeout", target, user, "app",
                                          "run a query").msg  # a slow query is not a lock wait
    for fatal in ("sorry, too many clients already",
                  "remaining connection slots are reserved for non-replication superuser connections",
                  'too many connections for database "app"'):
        msg = explain('pg_restore: error: connection to server at "127.0.0.1", port 5999 failed: FATAL:  ' + fatal,
                      target, user, "app", "connect for pg_restore").msg
        assert "no free connection slot" in msg and fatal in msg and "lower jobs" in msg, msg


def test_tool_major_and_names():
    assert tool_major("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)") == 15
    assert tool_major("pg_dump (PostgreSQL) 9.6.24") == 9
    name = side_name("x" * 80, "prev")
    assert len(name.encode()) <= 63 and "_lbprev_" in name
    assert create_database_sql('we"ird', "UTF8") == 'CREATE DATABASE "we""ird" TEMPLATE template0 ENCODING \'UTF8\''
    assert create_database_sql("a", "LATIN1", locale_c=True).endswith("LOCALE 'C'")
    assert split_table("public.orders") == ("public", "orders")
    assert split_table('"My Schema"."a.b"') == ("My Schema", "a.b")
    assert split_table("orders") == (None, "orders")
