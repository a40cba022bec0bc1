"""pg_restore_s3 against sets written by an attacker who can write to the repository (issue 16).

Every crafted set here carries a manifest with the right sha256, so only the trust boundary stops it: no
byte of a set may reach psql's meta-command parser (the globals, and pg_restore's script of the archive in
the parallel load), and nothing of a damaged set may touch the cluster before it is verified (the globals
are cluster-wide and live)."""

import hashlib
import json
import os
import shutil
import stat
import tempfile

import pytest

from engine.pipeline.backup import run_backup
from engine.core.errors import LifeboatError
from engine.sources.postgres.connection import Connection
from engine.sources.postgres.dump import PostgresSource
from engine.sources.postgres.kind import restore_from_options
from engine.repositories.repository import Repository

from pgserver import USER

PASSWORD_OF = "SELECT rolpassword FROM pg_authid WHERE rolname = 'lb_victim'"


def admin(postgres):
    """Superuser over the socket: globals need one."""
    return dict(login_unix_socket=postgres.socket_dir, login_port=postgres.port, login_user="postgres")


def restore(dest, job, **options):
    try:
        return restore_from_options(Repository.from_options(dest=dest), dict(job=job, **options))
    except LifeboatError as exc:
        return {"failed": True, "msg": exc.msg}


@pytest.fixture(scope="module")
def tiny(postgres):
    """A small database with a role whose password the sets carry (lb_victim, password 'before')."""
    postgres.sql("DROP ROLE IF EXISTS lb_victim")
    postgres.sql("CREATE ROLE lb_victim LOGIN PASSWORD 'before'")
    if not postgres.exists("tiny"):
        postgres.sql("CREATE DATABASE tiny OWNER %s" % USER)
        postgres.sql("SET ROLE %s; CREATE TABLE t (id serial PRIMARY KEY, note text); INSERT INTO t (note) "
                     "SELECT 'row ' || g || ' ' || repeat('A', 80) FROM generate_series(1, 50) g" % USER, "tiny")
    yield "tiny"
    postgres.sql("DROP ROLE IF EXISTS lb_victim")


@pytest.fixture
def pwned_dir():
    """A short directory for the file a crafted set tries to create (short: it has to fit in a row)."""
    path = tempfile.mkdtemp(prefix="lbpw")
    os.chmod(path, stat.S_IRWXU | stat.S_IRWXG | stat.S_IRWXO)  # psql runs as root here, but be sure
    yield path
    shutil.rmtree(path, ignore_errors=True)


def make_set(postgres, tmp_path, job, include_globals=True):
    dest = str(tmp_path / ("repo-" + job))
    backup = run_backup(PostgresSource(Connection(**admin(postgres)), "tiny", include_globals=include_globals),
                        Repository.from_options(dest=dest), job, compression="none")
    return dest, os.path.join(dest, job, backup["id"])


def manifest_of(set_dir):
    with open(os.path.join(set_dir, "manifest.json")) as handle:
        return json.load(handle)


def bundle_parts(set_dir):
    """(globals, archive) of an uncompressed data.pgbundle."""
    with open(os.path.join(set_dir, manifest_of(set_dir)["data"]), "rb") as handle:
        data = handle.read()
    header_end = data.index(b"\n")
    size = int(data[:header_end].split()[2])
    return data[header_end + 1:header_end + 1 + size], data[header_end + 1 + size:]


def write_set(set_dir, globals_sql, archive, consistent=True):
    """Rewrite the set's data. consistent: the manifest is rewritten to match (a crafted set: only the trust
    boundary stops it); otherwise the manifest stays as it was (a damaged set)."""
    manifest = manifest_of(set_dir)
    data = (b"LIFEBOAT-PGBUNDLE 1 %d\n" % len(globals_sql) + globals_sql if globals_sql is not None else b"") + archive
    with open(os.path.join(set_dir, manifest["data"]), "wb") as handle:
        handle.write(data)
    if not consistent:
        return
    manifest.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data), raw_size=len(data))
    if globals_sql is not None:
        manifest["source"].update(globals_bytes=len(globals_sql),
                                  globals_sha256=hashlib.sha256(globals_sql).hexdigest())
    with open(os.path.join(set_dir, "manifest.json"), "w") as handle:
        json.dump(manifest, handle)


# ---------------------------------------------------------------- item 1: globals never reach psql's meta-commands

CRAFTED_GLOBALS = {
    "shell first": b"\\! touch {p}/a\nCREATE ROLE lb_crafted;\n",
    # pg_dumpall's own \restrict pair, then a shell command once "unrestricted"
    "own unrestrict": b"\\restrict abc123\n\\unrestrict abc123\n\\! touch {p}/b\n",
    # psql 15.18 expands backquotes in \unrestrict's argument even in restricted mode
    "backquote in unrestrict": b"CREATE ROLE lb_crafted;\n\\unrestrict `touch {p}/c`\n",
    "unrestrict anything": b"\\unrestrict anything\n\\! touch {p}/d\n",
    "after a statement": b"CREATE ROLE lb_crafted; \\! touch {p}/e\n",
    # a string psql would end earlier than a naive reader (standard_conforming_strings off)
    "string games": (b"SET standard_conforming_strings = off;\n"
                     b"COMMENT ON ROLE lb_victim IS 'x\\' ; \\! touch {p}/f ';\n"),
    "server-side program": b"COPY (SELECT 1) TO PROGRAM 'touch {p}/g';\n",
}


@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("case", sorted(CRAFTED_GLOBALS))
def test_crafted_globals_never_run_a_command(postgres, tiny, tmp_path, pwned_dir, case, jobs):
    dest, set_dir = make_set(postgres, tmp_path, "crafted")
    _globals, archive = bundle_parts(set_dir)
    write_set(set_dir, CRAFTED_GLOBALS[case].replace(b"{p}", pwned_dir.encode()), archive)
    before = postgres.databases()
    try:
        out = restore(dest, "crafted", database="crafted_db", restore_globals=True, jobs=jobs, tmp_dir=str(tmp_path),
                      **admin(postgres))
        assert os.listdir(pwned_dir) == []  # the command never ran
        assert out.get("failed"), out
        assert "the globals of set" in out["msg"] and "refused, nothing was applied" in out["msg"], out["msg"]
        assert postgres.databases() == before
        assert postgres.sql("SELECT count(*) FROM pg_roles WHERE rolname = 'lb_crafted'") == "0"
    finally:
        postgres.drop("crafted_db")
        postgres.sql("DROP ROLE IF EXISTS lb_crafted")


def test_globals_that_look_like_commands_inside_strings_are_data(postgres, tiny, tmp_path, pwned_dir):
    """What the check lets through, psql reads the same way: backslashes inside quoted names and strings are
    data, and pg_dumpall's own \\restrict lines are dropped."""
    dest, set_dir = make_set(postgres, tmp_path, "quoted")
    real_globals, archive = bundle_parts(set_dir)
    assert b"\\restrict " in real_globals  # pg_dumpall 15.14+ writes them
    extra = ('CREATE ROLE "lb\\odd";\n'
             "COMMENT ON ROLE \"lb\\odd\" IS E'a\\' \\! touch %s/i';\n"
             "COMMENT ON ROLE lb_victim IS 'x \\! touch %s/h';\n" % (pwned_dir, pwned_dir)).encode()
    write_set(set_dir, real_globals + extra, archive)
    try:
        out = restore(dest, "quoted", database="quoted_db", restore_globals=True, **admin(postgres))
        assert not out.get("failed"), out
        assert os.listdir(pwned_dir) == []
        described = "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s"
        assert postgres.sql(described % "'lb\\odd'") == "a' ! touch %s/i" % pwned_dir
        assert postgres.sql(described % "'lb_victim'") == "x \\! touch %s/h" % pwned_dir
    finally:
        postgres.drop("quoted_db")
        postgres.sql("DROP ROLE IF EXISTS \"lb\\odd\"")
        postgres.sql("COMMENT ON ROLE lb_victim IS NULL")


def test_a_psql_without_restrict_is_refused(postgres, tiny, tmp_path):
    """Set text reaches psql only in restricted mode: an older psql is refused before anything is done."""
    dest, _set_dir = make_set(postgres, tmp_path, "oldpsql")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real = shutil.which("psql")
    (bin_dir / "psql").write_text('#!/bin/sh\n[ "$1" = --version ] && { echo "psql (PostgreSQL) 15.13"; exit 0; }\n'
                                  'exec %s "$@"\n' % real)
    (bin_dir / "psql").chmod(0o755)
    for tool in ("pg_restore", "pg_dump"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    before = postgres.databases()
    try:
        for options in (dict(restore_globals=True), dict(jobs=2)):
            out = restore(dest, "oldpsql", database="old_db", pg_bin_dir=str(bin_dir), tmp_dir=str(tmp_path),
                          **dict(admin(postgres), **options))
            assert out.get("failed") and "psql (PostgreSQL) 15.13 is too old" in out["msg"], out
            assert "\\restrict" in out["msg"] and ("jobs: 1" in out["msg"]) == ("jobs" in options), out["msg"]
            assert postgres.databases() == before
    finally:
        postgres.drop("old_db")


# ---------------------------------------------------------------- item 1: the parallel load (pg_restore's script)

def craft_row(archive, payload):
    """Replace the text of one row (repeat('A', 80)) in the uncompressed archive by `payload`, same length."""
    marker = b"A" * 80
    assert len(payload) <= len(marker) and archive.count(marker) == 50
    return archive.replace(marker, payload.ljust(len(marker), b"A"), 1)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_crafted_row_never_reaches_psql_as_a_command(postgres, tiny, tmp_path, pwned_dir, jobs):
    """A row `\\.` + CR + LF (after a first row ending in CR + LF, so the server takes it as the end too) ends
    psql's COPY early; the next line would be read as a meta-command (under
    pg_restore's own \\restrict, `\\unrestrict `cmd`` still runs cmd in psql 15.18). With jobs 1 pg_restore
    sends the rows to the server itself and no psql is involved; with jobs the loader refuses the row."""
    dest, set_dir = make_set(postgres, tmp_path, "row", include_globals=False)
    with open(os.path.join(set_dir, manifest_of(set_dir)["data"]), "rb") as handle:
        archive = handle.read()
    payload = b"x\r\n\\.\r\n\\unrestrict `touch %s/r`\n" % pwned_dir.encode()
    write_set(set_dir, None, craft_row(archive, payload))
    before = postgres.databases()
    try:
        out = restore(dest, "row", database="row_db", jobs=jobs, tmp_dir=str(tmp_path), **postgres.login())
        assert os.listdir(pwned_dir) == []
        assert out.get("failed"), out
        if jobs > 1:
            assert "starts with \\. but is not the end of the rows" in out["msg"] and "jobs: 1" in out["msg"], \
                out["msg"]
        assert postgres.databases() == before
    finally:
        postgres.drop("row_db")


# ---------------------------------------------------------------- item 3: nothing before verification

def flip(data, at):
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


@pytest.fixture
def victim(postgres, tiny):
    """lb_victim's password as the sets record it ('before'); the live one is then changed to 'after'."""
    recorded = postgres.sql(PASSWORD_OF)
    yield recorded
    postgres.sql("ALTER ROLE lb_victim PASSWORD 'before'")


def damaged_globals_set(postgres, tmp_path, job, where, keep_globals_digest=True):
    """A set whose data has one flipped byte (manifest untouched): in lb_victim's password hash inside the
    globals, or in the archive after them."""
    dest, set_dir = make_set(postgres, tmp_path, job)
    globals_sql, archive = bundle_parts(set_dir)
    if not keep_globals_digest:  # a set made before the manifest recorded the globals' digest
        manifest = manifest_of(set_dir)
        del manifest["source"]["globals_sha256"]
        with open(os.path.join(set_dir, "manifest.json"), "w") as handle:
            json.dump(manifest, handle)
    if where == "globals":
        line = globals_sql.index(b"ALTER ROLE lb_victim")
        globals_sql = flip(globals_sql, globals_sql.index(b"SCRAM-SHA-256$", line) + 30)
    else:
        archive = flip(archive, archive.index(b"A" * 80) + 10)
    write_set(set_dir, globals_sql, archive, consistent=False)
    return dest


@pytest.mark.parametrize("mode", ["create", "safe_swap"])
@pytest.mark.parametrize("where,digest", [("globals", True), ("archive", False), ("globals", False)])
def test_a_damaged_set_never_touches_the_roles(postgres, tiny, victim, tmp_path, mode, where, digest):
    dest = damaged_globals_set(postgres, tmp_path, "dmg", where, keep_globals_digest=digest)
    postgres.sql("ALTER ROLE lb_victim PASSWORD 'after'")
    live = postgres.sql(PASSWORD_OF)
    assert live != victim
    database = "dmg_db"
    if mode == "safe_swap":
        postgres.copy("tiny", database)
    before = postgres.databases()
    try:
        out = restore(dest, "dmg", database=database, restore_globals=True, safe_swap=(mode == "safe_swap"),
                      **admin(postgres))
        assert out.get("failed"), out
        assert "sha256 mismatch" in out["msg"] and "nothing was changed" in out["msg"], out["msg"]
        assert postgres.sql(PASSWORD_OF) == live  # the live role's password is untouched
        assert postgres.databases() == before
    finally:
        postgres.drop(database)


@pytest.mark.parametrize("mode", ["create", "safe_swap"])
def test_damage_after_verified_globals_says_they_were_applied(postgres, tiny, victim, tmp_path, mode):
    """The globals' own sha256 (in the manifest) lets them be checked without reading the whole set first: when
    the damage is in the archive after them, the globals applied are exactly the ones recorded at backup time,
    no database is changed, and the message says both."""
    dest = damaged_globals_set(postgres, tmp_path, "dmg2", "archive")
    postgres.sql("ALTER ROLE lb_victim PASSWORD 'after'")
    database = "dmg2_db"
    if mode == "safe_swap":
        postgres.copy("tiny", database)
    before = postgres.databases()
    try:
        out = restore(dest, "dmg2", database=database, restore_globals=True, safe_swap=(mode == "safe_swap"),
                      **admin(postgres))
        assert out.get("failed"), out
        assert "sha256 mismatch" in out["msg"] and "no database was changed" in out["msg"], out["msg"]
        assert "globals (roles, tablespaces) had been applied" in out["msg"], out["msg"]
        assert postgres.sql(PASSWORD_OF) == victim  # as recorded in the set, not garbled
        assert postgres.databases() == before
    finally:
        postgres.drop(database)


def test_the_manifest_records_the_globals_digest(postgres, tiny, tmp_path):
    _dest, set_dir = make_set(postgres, tmp_path, "digest")
    globals_sql, _archive = bundle_parts(set_dir)
    source = manifest_of(set_dir)["source"]
    assert source["globals_sha256"] == hashlib.sha256(globals_sql).hexdigest()
    assert source["globals_bytes"] == len(globals_sql)


def test_parallel_load_of_names_psql_must_not_misread(postgres, tmp_path):
    """Non-ASCII names reach psql spelt in ASCII (U&"..." and hex-converted sequence names), a plain literal
    with a backslash as hex too: the rows and sequence values come back exact."""
    if not postgres.exists("odd_names"):
        postgres.sql("CREATE DATABASE odd_names OWNER %s" % USER)
        postgres.sql("SET ROLE %s; CREATE TABLE \"tëst ☃\" (id serial, \"cöl\" text); "
                     "CREATE TABLE \"back\\slash\" (id serial, v text); "
                     "INSERT INTO \"tëst ☃\" (\"cöl\") SELECT 'ü' || g FROM generate_series(1, 300) g; "
                     "INSERT INTO \"back\\slash\" (v) SELECT E'a\\\\b' || g FROM generate_series(1, 7) g" % USER,
                     "odd_names")
    fingerprint = ("SELECT (SELECT md5(string_agg(\"cöl\", ',' ORDER BY id)) FROM \"tëst ☃\") || ':' || "
                   "(SELECT last_value FROM \"tëst ☃_id_seq\") || ':' || (SELECT md5(string_agg(v, ',' ORDER BY id)) "
                   "FROM \"back\\slash\") || ':' || (SELECT last_value FROM \"back\\slash_id_seq\")")
    expected = postgres.sql(fingerprint, "odd_names")
    dest = str(tmp_path / "repo")
    run_backup(PostgresSource(Connection(**postgres.login()), "odd_names"), Repository.from_options(dest=dest), "odd")
    try:
        out = restore(dest, "odd", database="odd_back", jobs=2, tmp_dir=str(tmp_path), **postgres.login())
        assert not out.get("failed"), out
        assert postgres.sql(fingerprint, "odd_back") == expected
        assert out["verification"]["row_counts_checked"] and not out["verification"]["mismatches"]
    finally:
        postgres.drop("odd_back")
