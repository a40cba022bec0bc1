"""Set text and psql (script.py): globals as pg_dumpall writes them, the shapes of pg_restore's data script, and
literals that mean the same whatever standard_conforming_strings is (no server needed)."""

import pytest

from engine.core.errors import RestoreError
from engine.sources.postgres.connection import quote_literal
from engine.sources.postgres.script import DataScript, check_globals, globals_input, restrict_supported

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
