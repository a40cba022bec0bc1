"""pg_dump_s3 / pg_restore_s3 against a real PostgreSQL 15, through ansible-playbook for the main flows."""

import glob
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from engine.pipeline.backup import run_backup
from engine.core.errors import LifeboatError
from engine.sources.postgres.connection import Connection
from engine.sources.postgres.dump import PostgresSource
from engine.sources.postgres.kind import restore_from_options
from engine.repositories.repository import Repository

from pgserver import PASSWORD, PG_BIN, USER

DUMP = "lifeboat.backup.pg_dump_s3"
RESTORE = "lifeboat.backup.pg_restore_s3"


@pytest.fixture(scope="module")
def bench_set(postgres, tmp_path_factory):
    """One set of the pgbench database in a local repository (made through the engine, to save time)."""
    dest = str(tmp_path_factory.mktemp("pgrepo"))
    connection = Connection(**postgres.login())
    backup = run_backup(PostgresSource(connection, "bench"), Repository.from_options(dest=dest), "bench")
    return {"dest": dest, "backup": backup, "fingerprint": postgres.fingerprint("bench")}


def engine_restore(dest, **options):
    """Engine-level restore (for the extra cases); returns the result, or {'failed': True, 'msg': ...}."""
    try:
        return restore_from_options(Repository.from_options(dest=dest), options)
    except LifeboatError as exc:
        return {"failed": True, "msg": exc.msg}


def repo_copy(bench_set, tmp_path):
    dest = str(tmp_path / "repo")
    shutil.copytree(bench_set["dest"], dest)
    set_dir = os.path.join(dest, "bench", bench_set["backup"]["id"])
    return dest, set_dir


class CmdlineWatcher(threading.Thread):
    """Polls /proc/*/cmdline while a run is going on: records whether the secret ever shows up and which
    PostgreSQL tools were seen."""

    def __init__(self, secret):
        super(CmdlineWatcher, self).__init__(daemon=True)
        self.secret = secret.encode()
        self.leaks = []
        self.seen = set()
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for path in glob.glob("/proc/[0-9]*/cmdline"):
                try:
                    with open(path, "rb") as handle:
                        cmdline = handle.read()
                except OSError:
                    continue
                if self.secret in cmdline:
                    self.leaks.append(cmdline.replace(b"\0", b" ").decode("utf-8", "replace"))
                argv0 = os.path.basename(cmdline.split(b"\0")[0]).decode("utf-8", "replace")
                if argv0 in ("pg_dump", "psql", "pg_restore", "pg_dumpall"):
                    self.seen.add(argv0)


def test_dump_drop_restore_with_password_never_in_argv(ansible, postgres, s3, tmp_path):
    postgres.copy("bench", "rt")
    before = postgres.fingerprint("rt")
    dest = str(tmp_path / "repo")
    watcher = CmdlineWatcher(PASSWORD)
    watcher.start()
    try:
        out = ansible.module(DUMP, dict(postgres.login(), job="rt", database="rt", s3=s3, dest=dest))
    finally:
        watcher.stop.set()
        watcher.join()
    assert not out.get("failed"), out
    assert watcher.leaks == [], watcher.leaks
    assert {"pg_dump", "psql"} <= watcher.seen, watcher.seen  # the poll really watched the run
    manifest = out["backup"]["manifest"]
    assert manifest["data"] == "data.pgdump.zst"
    assert manifest["tools"]["pg_dump"].startswith("pg_dump (PostgreSQL) 15")
    assert manifest["tools"]["postgresql_server"].startswith("15")
    assert manifest["verification"]["row_counts"] == {"public.pgbench_accounts": 200000, "public.pgbench_branches": 2,
                                                      "public.pgbench_history": 500, "public.pgbench_tellers": 20}
    assert manifest["source"]["encoding"] == "UTF8"
    assert set(out["backup"]["location"]) == {"local", "s3"}
    # the password is nowhere in what was stored or returned
    stored = b"".join(open(p, "rb").read() for p in glob.glob(os.path.join(dest, "rt", "*", "*")))
    assert PASSWORD.encode() not in stored
    assert PASSWORD not in json.dumps(out)

    postgres.drop("rt")
    out = ansible.module(RESTORE, dict(postgres.login(), job="rt", database="rt", s3=s3))  # from S3 only
    assert not out.get("failed"), out
    assert out["mode"] == "create"
    assert out["verification"]["row_counts_checked"] and out["verification"]["mismatches"] == {}
    assert postgres.fingerprint("rt") == before
    assert postgres.sql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'rt'") == USER
    postgres.drop("rt")


def test_check_mode_writes_nothing(ansible, postgres, bench_set, s3, tmp_path):
    dest = str(tmp_path / "repo")
    out = ansible.module(DUMP, dict(postgres.login(), job="chk", database="bench", dest=dest, s3=s3), check=True)
    assert not out.get("failed"), out
    assert out["plan"]["data"] == "data.pgdump.zst"
    assert not os.path.exists(dest)
    assert postgres_objects(s3) == []
    out = ansible.module(RESTORE, dict(postgres.login(), job="bench", database="chk_new", dest=bench_set["dest"]),
                         check=True)
    assert not out.get("failed"), out
    assert out["mode"] == "create" and out["verification"] == {"sha256": "ok"}
    assert not postgres.exists("chk_new")


def postgres_objects(s3):
    import boto3
    client = boto3.client("s3", endpoint_url=s3["endpoint_url"], region_name=s3["region"],
                          aws_access_key_id=s3["access_key"], aws_secret_access_key=s3["secret_key"])
    return [o["Key"] for o in client.list_objects_v2(Bucket=s3["bucket"]).get("Contents", [])]


def test_parallel_restore(ansible, postgres, bench_set, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with open(postgres.log, "rb") as log:
        log.seek(0, os.SEEK_END)
        out = ansible.module(RESTORE, dict(postgres.login(), job="bench", database="par", dest=bench_set["dest"],
                                           jobs=2, tmp_dir=str(scratch)))
        server_log = log.read().decode("utf-8", "replace")
    assert not out.get("failed"), out
    assert postgres.fingerprint("par") == bench_set["fingerprint"]
    assert out["verification"]["row_counts_checked"] and not out["verification"]["mismatches"]
    # the post-data step (run with 2 sessions from the staged archive) built every primary key
    indexes = postgres.sql("SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE "
                           "schemaname = 'public'", "par")
    assert indexes == "pgbench_accounts_pkey,pgbench_branches_pkey,pgbench_tellers_pkey"
    assert list(scratch.iterdir()) == []  # the staged archive is gone
    # ANALYZE ran once the indexes were built: the planner has statistics for every table with rows
    assert out["analyzed"] is True
    assert postgres.sql(STATS_TABLES, "par") == "pgbench_accounts,pgbench_branches,pgbench_history,pgbench_tellers"
    # only the restored tables: a bare ANALYZE by a non-superuser logs a WARNING per shared catalog it skips
    assert "only superuser can analyze" not in server_log
    postgres.drop("par")


STATS_TABLES = ("SELECT coalesce(string_agg(DISTINCT tablename, ','), '') FROM pg_stats WHERE schemaname = "
                "'public'")

AWKWARD_SQL = r"""
CREATE TABLE awkward (id serial PRIMARY KEY, note text, raw bytea, doc jsonb, nothing text);
INSERT INTO awkward (note, raw, doc, nothing)
SELECT CASE g % 5 WHEN 0 THEN E'line one\n\\.\nline three' WHEN 1 THEN E'tab\there \\ back\\slash'
                  WHEN 2 THEN E'\\.' WHEN 3 THEN 'üñí ☃ ' || repeat('x', g % 300) ELSE '' END,
       decode(md5(g::text), 'hex'), jsonb_build_object('g', g, 's', E'a\nb'), NULL
FROM generate_series(1, 40000) g;
SELECT setval('awkward_id_seq', 123456);
SELECT lo_from_bytea(0, convert_to(repeat('large object ', 5000), 'UTF8'));
CREATE TABLE measures (at date NOT NULL, v int) PARTITION BY RANGE (at);
CREATE TABLE measures_2025 PARTITION OF measures FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE measures_2026 PARTITION OF measures FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO measures SELECT date '2025-06-01' + (g % 400), g FROM generate_series(1, 3000) g;
CREATE TABLE animals (id int, name text);
CREATE TABLE dogs (breed text) INHERITS (animals);
INSERT INTO animals VALUES (1, 'cat'), (2, 'cow');
INSERT INTO dogs VALUES (3, 'rex', 'lab');
CREATE TABLE "Empty ""one"" table" (id int);
"""
AWKWARD_FINGERPRINT = ("SELECT md5(string_agg(a::text, '|' ORDER BY id)) || ':' || count(*) || ':' || "
                       "(SELECT last_value FROM awkward_id_seq) || ':' || "
                       "(SELECT md5(string_agg(md5(lo_get(oid)), ',' ORDER BY oid)) FROM pg_largeobject_metadata) "
                       "FROM awkward a")


@pytest.mark.parametrize("jobs", [1, 3])
def test_awkward_values_survive_the_parallel_load(postgres, tmp_path, jobs):
    """Rows are cut at line ends and dealt to `jobs` sessions: values with newlines, backslashes, a lone
    backslash-dot, tabs, UTF-8, bytea, json and NULLs, a sequence value and a large object come back exact.
    With jobs, the row counts come from the server's COPY tags, except for partitioned and inheritance
    parents (their count(*) includes the children): they all match the manifest."""
    if not postgres.exists("awkward"):
        postgres.sql("CREATE DATABASE awkward OWNER %s" % USER)
        postgres.sql("SET ROLE %s; %s" % (USER, AWKWARD_SQL), "awkward")
    expected = postgres.sql(AWKWARD_FINGERPRINT, "awkward")
    dest = str(tmp_path / "repo")
    run_backup(PostgresSource(Connection(**postgres.login()), "awkward"), Repository.from_options(dest=dest), "awk")
    out = engine_restore(dest, **dict(postgres.login(), job="awk", database="awkward_back", jobs=jobs,
                                      tmp_dir=str(tmp_path), analyze=(jobs > 1)))
    assert not out.get("failed"), out
    # analyze: false leaves the planner without statistics, as pg_restore does; the default gathers them
    assert out.get("analyzed") is (True if jobs > 1 else None)
    assert postgres.sql(STATS_TABLES, "awkward_back") == (
        "animals,awkward,dogs,measures,measures_2025,measures_2026" if jobs > 1 else "")
    verification = out["verification"]
    assert verification["row_counts"] == {"public.awkward": 40000, "public.measures": 3000,
                                          "public.measures_2025": 1698, "public.measures_2026": 1302,
                                          "public.animals": 3, "public.dogs": 1, 'public.Empty "one" table': 0}
    assert verification["row_counts_checked"] and not verification["mismatches"]
    assert verification["row_counts_method"].startswith("rows reported by each COPY" if jobs > 1 else "count(*)")
    assert postgres.sql(AWKWARD_FINGERPRINT, "awkward_back") == expected
    assert postgres.sql("SELECT count(*) FROM pg_indexes WHERE tablename = 'awkward'", "awkward_back") == "1"
    postgres.drop("awkward_back")


@pytest.mark.parametrize("jobs", [1, 2])
def test_selected_tables(ansible, postgres, bench_set, jobs):
    """With jobs, schema and data stream in one transaction and the indexes come from the parallel post-data
    step: both honour the selection."""
    out = ansible.module(RESTORE, dict(postgres.login(), job="bench", database="sel", dest=bench_set["dest"],
                                       tables=["pgbench_branches", "public.pgbench_tellers"], jobs=jobs))
    assert not out.get("failed"), out
    assert out["tables"] == ["public.pgbench_branches", "public.pgbench_tellers"]
    tables = postgres.sql("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = "
                          "'public'", "sel")
    assert tables == "pgbench_branches,pgbench_tellers"
    assert postgres.sql("SELECT count(*) || ':' || sum(bbalance) FROM pgbench_branches", "sel") == "2:3000"
    assert postgres.sql("SELECT count(*) FROM pgbench_tellers", "sel") == "20"
    indexes = postgres.sql("SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE "
                           "schemaname = 'public'", "sel")
    assert indexes == "pgbench_branches_pkey,pgbench_tellers_pkey"
    postgres.drop("sel")


def test_existing_database_needs_clean(ansible, postgres, bench_set):
    postgres.copy("bench", "live1")
    postgres.sql("UPDATE pgbench_branches SET bbalance = -1; DELETE FROM pgbench_history", "live1")
    changed = postgres.fingerprint("live1")
    args = dict(postgres.login(), job="bench", database="live1", dest=bench_set["dest"])
    out = ansible.module(RESTORE, args)
    assert out.get("failed")
    assert "already exists" in out["msg"] and "clean: true" in out["msg"] and "safe_swap" in out["msg"]
    assert postgres.fingerprint("live1") == changed
    out = ansible.module(RESTORE, dict(args, clean=True))
    assert not out.get("failed"), out
    assert out["mode"] == "clean"
    assert postgres.fingerprint("live1") == bench_set["fingerprint"]
    postgres.drop("live1")


def test_safe_swap_replaces_only_after_verification(ansible, postgres, bench_set):
    postgres.copy("bench", "live2")
    postgres.sql("UPDATE pgbench_branches SET bbalance = -1", "live2")
    out = ansible.module(RESTORE, dict(postgres.login(), job="bench", database="live2", dest=bench_set["dest"],
                                       safe_swap=True, jobs=2))
    assert not out.get("failed"), out
    assert out["mode"] == "safe_swap"
    assert postgres.fingerprint("live2") == bench_set["fingerprint"]
    previous = out["previous"]
    assert previous.startswith("live2_lbprev_")
    assert postgres.sql("SELECT sum(bbalance) FROM pgbench_branches", previous) == "-2"
    postgres.drop("live2")
    postgres.drop(previous)


def test_safe_swap_forced_failures_leave_live_intact(ansible, postgres, bench_set, tmp_path):
    postgres.copy("bench", "live3")
    postgres.sql("UPDATE pgbench_branches SET bbalance = -1", "live3")
    changed = postgres.fingerprint("live3")
    before = postgres.databases()
    # 1. a session holds the live database open: the swap cannot rename it
    holder = subprocess.Popen([os.path.join(PG_BIN, "psql"), "-X", "-q", "-d", "live3"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, env=postgres.admin_env())
    try:
        holder.stdin.write(b"SELECT 1;\n")
        holder.stdin.flush()
        time.sleep(0.3)
        out = ansible.module(RESTORE, dict(postgres.login(), job="bench", database="live3", dest=bench_set["dest"],
                                           safe_swap=True))
    finally:
        holder.stdin.close()
        holder.wait()
    assert out.get("failed")
    assert "other session" in out["msg"] and "terminate_connections" in out["msg"], out["msg"]
    assert postgres.fingerprint("live3") == changed
    assert postgres.databases() == before  # the side copy was dropped
    # 2. the restored copy does not match the manifest's row counts
    dest, set_dir = repo_copy(bench_set, tmp_path)
    manifest_path = os.path.join(set_dir, "manifest.json")
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    manifest["verification"]["row_counts"]["public.pgbench_accounts"] += 1
    with open(manifest_path, "w") as handle:
        json.dump(manifest, handle)
    out = engine_restore(dest, job="bench", database="live3", safe_swap=True, **postgres.login())
    assert out.get("failed")
    assert "row counts" in out["msg"] and "not touched" in out["msg"], out["msg"]
    assert postgres.fingerprint("live3") == changed
    assert postgres.databases() == before
    postgres.drop("live3")


def test_corrupted_set(ansible, postgres, bench_set, tmp_path):
    dest, set_dir = repo_copy(bench_set, tmp_path)
    data = os.path.join(set_dir, bench_set["backup"]["manifest"]["data"])
    with open(data, "r+b") as handle:
        handle.seek(os.path.getsize(data) // 2)
        chunk = handle.read(16)
        handle.seek(-len(chunk), os.SEEK_CUR)
        handle.write(bytes(b ^ 0xFF for b in chunk))
    before = postgres.databases()
    out = ansible.module(RESTORE, dict(postgres.login(), job="bench", database="corrupt", dest=dest))
    assert out.get("failed")
    assert "sha256 mismatch" in out["msg"], out["msg"]
    assert postgres.databases() == before  # the new database was dropped again
    # into an existing database with clean: nothing is touched
    postgres.copy("bench", "live4")
    postgres.sql("UPDATE pgbench_branches SET bbalance = -1", "live4")
    changed = postgres.fingerprint("live4")
    out = engine_restore(dest, job="bench", database="live4", clean=True, **postgres.login())
    assert out.get("failed") and "sha256 mismatch" in out["msg"], out
    assert postgres.fingerprint("live4") == changed
    postgres.drop("live4")


def test_wrong_password(ansible, postgres, tmp_path):
    dest = str(tmp_path / "repo")
    out = ansible.module(DUMP, dict(postgres.login(login_password="wrong"), job="x", database="bench", dest=dest))
    assert out.get("failed")
    assert "rejected the password" in out["msg"] and USER in out["msg"], out["msg"]
    assert "wrong" not in out["msg"]
    assert not os.path.exists(os.path.join(dest, "x"))


def test_server_down(ansible, postgres, bench_set, tmp_path):
    from support.ports import free_port
    login = postgres.login(login_port=free_port())
    out = ansible.module(DUMP, dict(login, job="x", database="bench", dest=str(tmp_path / "repo")))
    assert out.get("failed")
    assert "cannot reach PostgreSQL at 127.0.0.1 port" in out["msg"], out["msg"]
    assert "Traceback" not in out["msg"]
    out = engine_restore(bench_set["dest"], job="bench", database="x", **login)
    assert out.get("failed") and "cannot reach PostgreSQL" in out["msg"], out["msg"]


def test_jobs_beyond_the_connection_limit(postgres, bench_set, tmp_path):
    """A role allowed 2 sessions restores with jobs 3: the third session is turned away. The message says why
    and what to change, and the half-loaded new database is dropped again."""
    postgres.sql("DROP ROLE IF EXISTS lblimited")
    postgres.sql("CREATE ROLE lblimited LOGIN CREATEDB CONNECTION LIMIT 2 PASSWORD '%s'" % PASSWORD)
    try:
        out = engine_restore(bench_set["dest"], **dict(postgres.login(login_user="lblimited"), job="bench",
                                                       database="limited", jobs=3, no_owner=True,
                                                       tmp_dir=str(tmp_path)))
    finally:
        postgres.drop("limited")
        postgres.sql("DROP ROLE lblimited")
    assert out.get("failed"), out
    assert "has no free connection slot" in out["msg"] and "too many connections for role" in out["msg"], out["msg"]
    assert "lower jobs" in out["msg"] and "was dropped again" in out["msg"], out["msg"]
    assert PASSWORD not in out["msg"]


def test_missing_database_and_missing_set(ansible, postgres, tmp_path):
    dest = str(tmp_path / "repo")
    out = ansible.module(DUMP, dict(postgres.login(), job="x", database="no_such_db", dest=dest))
    assert out.get("failed")
    assert "database no_such_db does not exist" in out["msg"], out["msg"]
    assert not os.path.exists(os.path.join(dest, "x"))
    out = engine_restore(dest, job="x", database="y", **postgres.login())
    assert out.get("failed") and "no complete backup set for job x" in out["msg"], out["msg"]
    assert not postgres.exists("y")


def test_globals_bundle(ansible, postgres, tmp_path):
    """Superuser over the local socket: roles travel in the same data object and come back."""
    postgres.sql("CREATE ROLE lb_reader LOGIN PASSWORD 'reader-pw'; GRANT SELECT ON pgbench_branches TO lb_reader",
                 "bench")
    dest = str(tmp_path / "repo")
    admin = dict(login_unix_socket=postgres.socket_dir, login_port=postgres.port, login_user="postgres")
    out = ansible.module(DUMP, dict(admin, job="glob", database="bench", dest=dest, globals=True))
    assert not out.get("failed"), out
    manifest = out["backup"]["manifest"]
    assert manifest["data"] == "data.pgbundle.zst" and manifest["source"]["globals_bytes"] > 0
    assert "reader-pw" not in json.dumps(manifest) and "SCRAM" not in json.dumps(manifest)
    postgres.sql("REVOKE ALL ON pgbench_branches FROM lb_reader", "bench")
    postgres.sql("DROP ROLE lb_reader")
    out = ansible.module(RESTORE, dict(admin, job="glob", database="glob_new", dest=dest, restore_globals=True))
    assert not out.get("failed"), out
    assert out["globals"]["applied"]
    assert postgres.sql("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'lb_reader'") == "t"
    assert postgres.sql("SELECT has_table_privilege('lb_reader', 'pgbench_branches', 'SELECT')", "glob_new") == "t"
    postgres.drop("glob_new")
    postgres.sql("REVOKE ALL ON pgbench_branches FROM lb_reader", "bench")
    postgres.sql("DROP ROLE lb_reader")


def test_inspect_set_for_backup_verify(bench_set, tmp_path):
    from engine.pipeline.catalog import locate
    from engine.sources.postgres.archive import inspect_set
    repository = Repository.from_options(dest=bench_set["dest"])
    report = inspect_set(repository, "bench", locate(repository, "bench"))
    assert report == {"archive": "ok", "toc_entries": report["toc_entries"], "tables": 4, "globals_bytes": None}
    dest, set_dir = repo_copy(bench_set, tmp_path)
    data = os.path.join(set_dir, bench_set["backup"]["manifest"]["data"])
    with open(data, "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00" * 8)
    repository = Repository.from_options(dest=dest)
    with pytest.raises(LifeboatError, match="sha256 mismatch"):
        inspect_set(repository, "bench", locate(repository, "bench"))


def test_backup_verify_reads_the_archive_toc(ansible, bench_set, tmp_path):
    out = ansible.module("lifeboat.backup.backup_verify", {"job": "bench", "dest": bench_set["dest"], "mode": "list"})
    assert not out.get("failed"), out
    assert out["verification"]["archive"] == "ok" and out["verification"]["tables"] == 4
    dest, set_dir = repo_copy(bench_set, tmp_path)
    data = os.path.join(set_dir, bench_set["backup"]["manifest"]["data"])
    with open(data, "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00" * 8)
    out = ansible.module("lifeboat.backup.backup_verify", {"job": "bench", "dest": dest, "mode": "list"})
    assert out["failed"] and "sha256 mismatch" in out["msg"]
