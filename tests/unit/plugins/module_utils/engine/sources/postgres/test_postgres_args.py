"""Argument lists, connection strings, TOC selection and framing of the PostgreSQL kind (no server needed)."""

import io

import pytest

from engine.core.errors import ConfigError, IntegrityError
from engine.sources.postgres.kind import (ArchiveReader, Connection, bundle_header, create_database_sql, explain, list_file_text,
                             parse_toc, select_entries, side_name, split_table, source_from_options, tool_major)

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


TOC = """;
; Archive created at 2026-11-23 06:46:59 UTC
;
3378; 1262 5 DATABASE - app app
6; 2615 16430 SCHEMA - s2 app
217; 1259 16390 TABLE public accounts app
218; 1259 16393 TABLE public branches app
220; 1259 16432 TABLE s2 t app
;\tdepends on: 6
219; 1259 16431 SEQUENCE s2 t_id_seq app
;\tdepends on: 220 6
3380; 0 0 SEQUENCE OWNED BY s2 t_id_seq app
;\tdepends on: 219
3214; 2604 16435 DEFAULT s2 t id app
;\tdepends on: 220 219 220
3369; 0 16390 TABLE DATA public accounts app
;\tdepends on: 217
3370; 0 16393 TABLE DATA public branches app
;\tdepends on: 218
3372; 0 16432 TABLE DATA s2 t app
;\tdepends on: 220
3219; 2606 16405 CONSTRAINT public accounts accounts_pkey app
;\tdepends on: 217
3221; 2606 16401 CONSTRAINT public branches branches_pkey app
;\tdepends on: 218
3217; 1259 16429 INDEX public ix_abal app
;\tdepends on: 217
3224; 2606 16438 FK CONSTRAINT s2 t t_v_fkey app
;\tdepends on: 220 218 3221
"""


def test_toc_selection_takes_dependents_and_skips_dangling_foreign_keys():
    entries = parse_toc(TOC)
    assert [(e.dump_id, e.desc, e.schema, e.tag) for e in entries[:3]] == [
        (3378, "DATABASE", "-", "app"), (6, "SCHEMA", "-", "s2"), (217, "TABLE", "public", "accounts")]
    ids, tables = select_entries(entries, tables=["accounts"])
    assert ids == [217, 3369, 3219, 3217] and tables == ["public.accounts"]
    ids, tables = select_entries(entries, tables=["s2.t"])
    assert ids == [6, 220, 219, 3380, 3214, 3372]  # schema (new database), sequence, default; no FK to branches
    ids = select_entries(entries, tables=["s2.t"], include_parents=False)[0]
    assert 6 not in ids
    ids, tables = select_entries(entries, tables=["t", "branches"])
    assert 3224 in ids and tables == ["public.branches", "s2.t"]
    ids, tables = select_entries(entries, schemas=["s2"])
    assert tables == ["s2.t"] and 3224 not in ids
    assert list_file_text(entries, [217, 3369]) == "217; 1259 16390 TABLE public accounts app\n" \
                                                   "3369; 0 16390 TABLE DATA public accounts app\n"
    with pytest.raises(ConfigError, match="not in this backup: nope, s9.x"):
        select_entries(entries, tables=["nope", "s9.x"])


def test_bundle_framing():
    archive = b"PGDMP" + b"\x01" * 5000
    plain = ArchiveReader(io.BytesIO(archive))
    assert plain.globals_sql is None and plain.read(1 << 20) + plain.read(1 << 20) == archive
    globals_sql = b"CREATE ROLE app;\n"
    bundle = ArchiveReader(io.BytesIO(bundle_header(globals_sql) + globals_sql + archive))
    assert bundle.globals_sql == globals_sql
    assert b"".join(iter(lambda: bundle.read(100), b"")) == archive
    with pytest.raises(IntegrityError, match="not a pg_dump custom archive"):
        ArchiveReader(io.BytesIO(b"garbage" * 10))
    with pytest.raises(IntegrityError, match="truncated"):
        ArchiveReader(io.BytesIO(bundle_header(globals_sql) + globals_sql[:5]))


def test_restore_option_combinations_are_refused_before_any_work():
    from engine.sources.postgres.kind import PostgresRestore
    with pytest.raises(ConfigError, match="not both"):
        PostgresRestore(None, conn(), "j", "db", clean=True, safe_swap=True)
    with pytest.raises(ConfigError, match="safe_swap replaces the whole database"):
        PostgresRestore(None, conn(), "j", "db", safe_swap=True, tables=["t"])
    with pytest.raises(ConfigError, match="jobs must be 1 or more"):
        PostgresRestore(None, conn(), "j", "db", jobs=0)
    with pytest.raises(ConfigError, match="database is required"):
        PostgresRestore(None, conn(), "j", "")


class RecordingConnection(object):
    """Stands in for Connection.query: records the SQL, or fails like an unreachable server."""

    def __init__(self, failure=None):
        self.sent = []
        self.failure = failure

    def query(self, sql, database=None, doing=None):
        self.sent.append((database, sql))
        if self.failure:
            raise self.failure
        return ""


def test_analyze_covers_what_was_restored_and_a_failure_is_only_a_warning():
    from engine.sources.postgres.kind import ANALYZE_USER_TABLES_SQL, PostgresError, PostgresRestore
    restore = PostgresRestore(None, conn(), "j", "db")
    restore.connection = RecordingConnection()
    result = {}
    assert restore._analyze("db_new", None, result) is True
    assert restore._analyze("db_new", ["public.orders", 'sales.Order "lines"', "public.my.table"], result) is True
    assert restore._analyze("db_new", [], result) is False  # a selection without tables: nothing to analyze
    assert restore.connection.sent == [
        ("db_new", ANALYZE_USER_TABLES_SQL),
        ("db_new", 'ANALYZE "public"."orders", "sales"."Order ""lines""", "public"."my.table"')]
    assert "warnings" not in result
    restore.connection = RecordingConnection(PostgresError("could not connect to PostgreSQL"))
    assert restore._analyze("db_new", None, result) is False
    assert len(result["warnings"]) == 1
    assert "could not connect" in result["warnings"][0] and "run ANALYZE" in result["warnings"][0]


class ScriptedConnection(object):
    """Both databases exist, no other sessions; statements starting with `fail_on` fail."""

    def __init__(self, fail_on=None):
        self.sent = []
        self.fail_on = fail_on

    def query(self, sql, database=None, doing=None):
        from engine.sources.postgres.kind import PostgresError
        self.sent.append(sql)
        if self.fail_on and sql.startswith(self.fail_on):
            raise PostgresError("permission denied to drop database")
        return "0" if sql.startswith("SELECT count(*)") else ""

    def query_json(self, sql, database=None, doing=None):
        return {"live": True, "previous": True}


def test_put_back_swaps_in_one_transaction_and_a_failed_drop_is_only_a_warning():
    from engine.sources.postgres.kind import MAX_IDENTIFIER, put_back, side_name
    connection = ScriptedConnection()
    assert put_back(connection, "app", "app_lbprev_0a0b0c", check_mode=True)["rejected"].startswith("app_lbfailed_")
    assert not any(sql.startswith(("BEGIN", "ALTER", "DROP")) for sql in connection.sent)  # check mode
    connection = ScriptedConnection(fail_on="DROP DATABASE")
    result = put_back(connection, "app", "app_lbprev_0a0b0c")
    swap = [sql for sql in connection.sent if sql.startswith("BEGIN")]
    assert swap == ['BEGIN; ALTER DATABASE "app" RENAME TO "%s"; ALTER DATABASE "app_lbprev_0a0b0c" RENAME TO '
                    '"app"; COMMIT;' % result["rejected"]]
    assert not result["rejected_dropped"] and "drop it by hand" in result["warnings"][0]
    # a name side_name shortened (the database's own name is long) is still recognised
    long_name = "x" * MAX_IDENTIFIER
    assert put_back(ScriptedConnection(), long_name, side_name(long_name, "prev"))["rejected_dropped"]


# ---------------------------------------------------------------- set text and psql (postgres_script)

from engine.core.errors import RestoreError  # noqa: E402
from engine.sources.postgres.kind import quote_literal  # noqa: E402
from engine.sources.postgres.script import DataScript, check_globals, globals_input, restrict_supported  # noqa: E402

# What pg_dumpall 15.18 --globals-only writes (roles with odd names, comments, settings, memberships, grants on
# parameters and tablespaces, its own \restrict pair).
PG_DUMPALL_GLOBALS = br"""--
-- PostgreSQL database cluster dump
--

\restrict DBp1F5UuaTZtD4lJSMEaSm7p5huxRB3hhMIfNU7eBs9dT0YkdRxPQaptefbgukT

SET default_transaction_read_only = off;

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

CREATE ROLE "DOM\user";
ALTER ROLE "DOM\user" WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:xpkTgpSW4+wOpzXiLSdCng==$91psxJn4=:Puje4svR=';
COMMENT ON ROLE "DOM\user" IS E'c:\\path it''s';
CREATE ROLE r2;
ALTER ROLE r2 WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
ALTER ROLE r2 SET search_path TO 'a', 'b';
GRANT r2 TO "DOM\user" WITH ADMIN OPTION GRANTED BY postgres;
GRANT ALTER SYSTEM ON PARAMETER log_min_messages TO r2;
GRANT SET ON PARAMETER work_mem TO r2;
CREATE TABLESPACE tsx OWNER postgres LOCATION '/srv/ts';
ALTER TABLESPACE tsx SET (random_page_cost=2);
GRANT ALL ON TABLESPACE tsx TO r2;
COMMENT ON TABLESPACE tsx IS 'ts';

\unrestrict DBp1F5UuaTZtD4lJSMEaSm7p5huxRB3hhMIfNU7eBs9dT0YkdRxPQaptefbgukT

--
-- PostgreSQL database cluster dump complete
--
"""


def test_psql_versions_that_know_restrict():
    for text, known in (("psql (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", True), ("psql (PostgreSQL) 15.13", False),
                        ("psql (PostgreSQL) 15.14", True), ("psql (PostgreSQL) 16.9", False),
                        ("psql (PostgreSQL) 16.10", True), ("psql (PostgreSQL) 17.6", True),
                        ("psql (PostgreSQL) 13.22", True), ("psql (PostgreSQL) 14.18", False),
                        ("psql (PostgreSQL) 12.22", False), ("psql (PostgreSQL) 18.1", True),
                        ("psql (PostgreSQL) 19devel", True), ("", False)):
        assert restrict_supported(text) is known, text


def test_globals_as_pg_dumpall_writes_them_pass_without_its_restrict_lines():
    text = check_globals(PG_DUMPALL_GLOBALS, "set X")
    assert b"\\restrict" not in text and b"\\unrestrict" not in text
    assert text == PG_DUMPALL_GLOBALS.replace(
        b"\\restrict DBp1F5UuaTZtD4lJSMEaSm7p5huxRB3hhMIfNU7eBs9dT0YkdRxPQaptefbgukT\n", b"").replace(
        b"\\unrestrict DBp1F5UuaTZtD4lJSMEaSm7p5huxRB3hhMIfNU7eBs9dT0YkdRxPQaptefbgukT\n", b"")
    sent = globals_input(text, "k3y")
    assert sent.startswith(b"\\restrict k3y\nSET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n")


@pytest.mark.parametrize("globals_sql,what", [
    (b"\\! touch pwned\n", "psql meta-command (\\! touch pwned)"),
    (b"CREATE ROLE a; \\unrestrict `id`\n", "psql meta-command"),
    (b"\\restrict abc\n\\unrestrict abc\n\\! id\n", "psql meta-command (\\! id)"),
    (b"  \\unrestrict abc\n", "psql meta-command"),  # not at a line start: not pg_dumpall's
    (b"CREATE ROLE :evil;\n", "psql variable reference"),
    (b"CREATE ROLE a IN ROLE :'x';\n", "psql variable reference"),
    (b"COMMENT ON ROLE a IS 1.E'\\' \\! id';\n", "E'...' string right after a dot"),
    (b"COMMENT ON ROLE a IS 1E'\\' \\! id';\n", "number ending in E"),
    (b"COMMENT ON ROLE a IS 'x\\' \\! id';\n", "psql meta-command"),
    (b"SET standard_conforming_strings = off;\nCOMMENT ON ROLE a IS 'x\\';\n", "after standard_conforming_strings"),
    (b"CREATE ROLE a (; COPY x TO PROGRAM 'id';)\n", "';' inside parentheses"),
    (b"ALTER ROLE a SET x = $q$ \\! $q$;\n", "dollar quoting"),
    (b"COMMENT ON ROLE a IS U&'\\0041';\n", "U& literal"),
    (b"CREATE ROLE a\x00;\n", "NUL byte"),
    (b"CREATE ROLE a /* \\! id\n", "comment that is never closed"),
    (b"COMMENT ON ROLE a IS 'x;\n", "quote that is never closed"),
    (b"SET client_encoding = 'SJIS';\n", "does not write (SET CLIENT_ENCODING"),
    (b"SET search_path = public;\n", "does not write (SET SEARCH_PATH"),
    (b"COPY (SELECT 1) TO PROGRAM 'id';\n", "does not write (COPY"),
    (b"CREATE ROLE a;\nSELECT pg_reload_conf();\n", "does not write (SELECT PG_RELOAD_CONF"),
    (b"GRANT ALL ON DATABASE postgres TO a;\n", "does not write (GRANT ALL ON"),
    (b"ALTER SYSTEM SET archive_command = 'id';\n", "does not write (ALTER SYSTEM SET"),
    (b"DO 'BEGIN END';\n", "does not write (DO"),
    (b"CREATE ROLE a; DROP DATABASE x\n", "does not write (DROP DATABASE"),  # last statement without ';'
])
def test_globals_with_anything_else_are_refused_naming_the_line(globals_sql, what):
    with pytest.raises(RestoreError) as raised:
        check_globals(b"SET client_encoding = 'UTF8';\n" + globals_sql, "set X of job j")
    assert what in raised.value.msg and "line " in raised.value.msg, raised.value.msg
    assert "the globals of set X of job j" in raised.value.msg and "nothing was applied" in raised.value.msg


def test_backslashes_inside_quotes_and_comments_are_data():
    for text in (b"COMMENT ON ROLE a IS 'x\\' ;\n", b"COMMENT ON ROLE \"a\\b\" IS E'c\\'\\\\ \\! x';\n",
                 b"CREATE ROLE a; /* \\! x /* nested */ \\! */ -- \\! x\n", b"ALTER ROLE a SET x TO 'a::b';\n",
                 b"CREATE ROLE \"a;b\"; COMMENT ON ROLE \"a;b\" IS ';';"):
        assert check_globals(text, "set X") == text


def test_literals_survive_any_standard_conforming_strings():
    assert quote_literal("public.t") == "'public.t'"
    assert quote_literal("it's") == "'it''s'"
    assert quote_literal("a\\'b") == "E'a\\\\''b'"


def test_data_script_lines_pass_only_in_the_shapes_pg_restore_writes():
    script = DataScript("set X")
    assert script.classify(b"-- Data for Name: t\xc3\xabst; Type: TABLE DATA\n") == ("skip", None)
    assert script.classify(b"\\restrict LlWRNUnIKRgo\n") == ("skip", None)
    assert script.classify(b"SET client_encoding = 'UTF8';\n") == ("setting", b"SET client_encoding = 'UTF8';\n")
    assert script.classify(b"SELECT pg_catalog.set_config('search_path', '', false);\n")[0] == "setting"
    # a plain literal with a backslash reads differently when the server says standard_conforming_strings is off
    assert script.classify(b"SELECT pg_catalog.setval('public.\"a\\b\"', 3, true);\n") == ("statement", (
        b"SELECT pg_catalog.setval(pg_catalog.convert_from(pg_catalog.decode('%s', 'hex'), 'UTF8'), 3, true);\n"
        % b'public."a\\b"'.hex().encode()))
    for line in (b"SELECT pg_catalog.setval(E'public.\"a\\\\b''\"', -3, false);\n", b"BEGIN;\n", b"COMMIT;\n",
                 b"SELECT pg_catalog.lo_open('16402', 131072);\n", b"SELECT pg_catalog.lowrite(0, '\\x0102');\n",
                 b"SELECT pg_catalog.lo_close(0);\n"):
        assert script.classify(line) == ("statement", line), line
    copy = b'COPY public."Odd ""n""" (id, "a\\b") FROM stdin;\n'
    assert script.classify(copy) == ("copy", copy)
    for line in (b"SET role = 'postgres';\n", b"SELECT 1;\n", b"\\! id\n", b"\\unrestrict `id`\n",
                 b"SELECT pg_catalog.setval('x', 1, true); \\! id\n", b"COPY t (a) FROM stdin;\n",
                 b"COPY public.t (a) FROM stdin; \\! id\n", b"COPY public.t (a) FROM stdin WITH CSV;\n",
                 b"SELECT pg_catalog.lowrite(0, '\\x01' || pg_sleep(1));\n", b"SET client_encoding = 'SJIS';\n",
                 b"SELECT pg_catalog.setval('a\\' \\! id', 1, true);\n"):
        with pytest.raises(RestoreError) as raised:
            script.classify(line)
        assert "jobs: 1" in raised.value.msg and "set X" in raised.value.msg, line
