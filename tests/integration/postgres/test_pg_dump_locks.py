"""pg_dump_s3 beside other sessions' locks: migrations, exclusive locks, tables rewritten during the dump.

A stand-in pg_dump (a shell script in a pg_bin_dir beside the real psql) pins the moment the real one starts,
so each interleaving is reproduced every run instead of by chance."""

import glob
import os
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

from pgserver import PG_BIN, USER

ROWS = {"public.big": 2000, "public.small": 7}


@pytest.fixture
def lockdb(postgres):
    """A database of its own (the tests lock and rewrite its tables), dropped afterwards."""
    postgres.sql("CREATE DATABASE lockdb OWNER %s" % USER)
    postgres.sql("SET ROLE %s; CREATE TABLE big (id int PRIMARY KEY, v int); CREATE TABLE small (id int);"
                 "INSERT INTO big SELECT g, g FROM generate_series(1, 2000) g;"
                 "INSERT INTO small SELECT generate_series(1, 7)" % USER, "lockdb")
    yield "lockdb"
    postgres.drop("lockdb")


def pg_bin_with_pg_dump(tmp_path, script):
    """A pg_bin_dir whose pg_dump runs `script` (sh; "$REAL" is the real pg_dump), the other tools real."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("psql", "pg_dumpall", "pg_restore"):
        os.symlink(os.path.join(PG_BIN, tool), str(bin_dir / tool))
    fake = bin_dir / "pg_dump"
    fake.write_text("#!/bin/sh\nREAL=%s/pg_dump\nif [ \"$1\" = --version ]; then exec \"$REAL\" --version; fi\n%s\n"
                    % (PG_BIN, script))
    fake.chmod(0o755)
    return str(bin_dir)


def admin_psql(postgres, database, sql):
    """Shell text running `sql` as the superuser over the socket (for the stand-in pg_dump to run)."""
    return "PGHOST=%s PGPORT=%s PGUSER=postgres %s/psql -X -q -v ON_ERROR_STOP=1 -d %s -c \"%s\" >&2" % (
        postgres.socket_dir, postgres.port, PG_BIN, database, sql)


def test_a_migration_between_the_start_and_pg_dumps_locks_only_delays_the_dump(postgres, lockdb, tmp_path):
    """A migration asks for a table after the run started but before pg_dump locked it. The row counts wait for
    pg_dump's locks, so the migration gets the table, pg_dump waits for it, and the backup completes with right
    counts. (Counts started with pg_dump would have locked the table first: the migration queues behind them,
    pg_dump behind the migration, and the counts cannot end before pg_dump: a deadlock, here ended by
    lock_wait_timeout.)"""
    started = tmp_path / "pg_dump-started"
    bin_dir = pg_bin_with_pg_dump(tmp_path, "touch %s\nsleep 3\nexec \"$REAL\" \"$@\"" % started)
    outcome = {}

    def backup():
        try:
            outcome["backup"] = run_backup(
                PostgresSource(Connection(pg_bin_dir=bin_dir, **postgres.login()), lockdb, lock_wait_timeout=15),
                Repository.from_options(dest=str(tmp_path / "repo")), "locks")
        except LifeboatError as exc:
            outcome["error"] = exc.msg

    runner = threading.Thread(target=backup)
    runner.start()
    deadline = time.monotonic() + 30
    while not started.exists():
        assert time.monotonic() < deadline and runner.is_alive(), outcome
        time.sleep(0.05)
    time.sleep(0.7)  # the snapshot session is open; counts sent with pg_dump's start would have run by now
    migration = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", lockdb,
                                "-c", "BEGIN; SET lock_timeout = '5s'; LOCK TABLE small IN ACCESS EXCLUSIVE MODE; "
                                "SELECT pg_sleep(4); COMMIT;"],
                               env=postgres.admin_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               check=False)
    runner.join(timeout=60)
    assert not runner.is_alive()
    assert migration.returncode == 0, "the migration could not lock the table: %s" % migration.stderr
    assert "error" not in outcome, outcome["error"]
    assert outcome["backup"]["manifest"]["verification"]["row_counts"] == ROWS


def test_a_table_rewritten_during_the_dump_is_left_out_of_the_counts(postgres, lockdb, tmp_path):
    """ALTER TABLE ... TYPE waits for pg_dump's lock, then rewrites the table before the counts reach it: in the
    dump's snapshot the new storage looks empty. The table is named in row_counts_skipped instead of recorded with
    0 rows, the other counts stay, and a restore of the set passes its check with the dump's rows."""
    # lock_timeout: were the counts to hold the table already, the rewrite would wait for them and they for pg_dump
    rewrite = admin_psql(postgres, lockdb, "SET lock_timeout = '10s'; ALTER TABLE big ALTER COLUMN v TYPE bigint")
    archive = tmp_path / "archive"
    bin_dir = pg_bin_with_pg_dump(tmp_path, "\"$REAL\" \"$@\" > %s || exit 1\n%s || exit 1\nexec cat %s"
                                  % (archive, rewrite, archive))
    dest = str(tmp_path / "repo")
    backup = run_backup(PostgresSource(Connection(pg_bin_dir=bin_dir, **postgres.login()), lockdb),
                        Repository.from_options(dest=dest), "rewrite")
    verification = backup["manifest"]["verification"]
    assert verification["row_counts"] == {"public.small": 7}
    assert list(verification["row_counts_skipped"]) == ["public.big"]
    assert "ALTER TABLE" in verification["row_counts_skipped"]["public.big"]
    try:
        restored = restore_from_options(Repository.from_options(dest=dest),
                                        dict(postgres.login(), job="rewrite", database="lockdb_back"))
        assert restored["verification"]["mismatches"] == {}
        assert postgres.sql("SELECT count(*) || ' ' || sum(v) FROM big", "lockdb_back") == "2000 2001000"
    finally:
        postgres.drop("lockdb_back")


def test_a_table_dropped_during_the_dump_fails_the_run_with_what_to_do(postgres, lockdb, tmp_path):
    """DROP TABLE waits for pg_dump, then commits before the counts reach the table: the count cannot be taken,
    the run fails naming the table and what to do, and no set is kept."""
    drop = admin_psql(postgres, lockdb, "SET lock_timeout = '10s'; DROP TABLE small")
    archive = tmp_path / "archive"
    bin_dir = pg_bin_with_pg_dump(tmp_path, "\"$REAL\" \"$@\" > %s || exit 1\n%s || exit 1\nexec cat %s"
                                  % (archive, drop, archive))
    dest = str(tmp_path / "repo")
    with pytest.raises(LifeboatError) as info:
        run_backup(PostgresSource(Connection(pg_bin_dir=bin_dir, **postgres.login()), lockdb),
                   Repository.from_options(dest=dest), "dropped")
    assert "table public.small of database lockdb was dropped or renamed" in info.value.msg, info.value.msg
    assert "run the backup again" in info.value.msg
    assert glob.glob(os.path.join(dest, "**", "manifest.json"), recursive=True) == []


def test_pg_dump_failing_midway_leaves_nothing_complete(postgres, moto, s3, tmp_path):
    """pg_dump writes part of an archive then exits 1: no manifest anywhere, no object in S3."""
    bin_dir = pg_bin_with_pg_dump(tmp_path, "\"$REAL\" \"$@\" | head -c 300000\nexit 1")
    dest = str(tmp_path / "repo")
    with pytest.raises(LifeboatError) as info:
        run_backup(PostgresSource(Connection(pg_bin_dir=bin_dir, **postgres.login()), "bench"),
                   Repository.from_options(dest=dest, s3=s3), "half")
    assert "pg_dump" in info.value.msg and "status 1" in info.value.msg
    assert glob.glob(os.path.join(dest, "**", "manifest.json"), recursive=True) == []
    assert glob.glob(os.path.join(dest, "half", "*", "*")) == []
    assert moto.client().list_objects_v2(Bucket=s3["bucket"]).get("KeyCount", 0) == 0


def test_pg_dump_writing_nothing_is_not_a_backup(postgres, tmp_path):
    """A pg_dump that exits 0 without output (a wrapper gone wrong) fails the run and leaves no set."""
    bin_dir = pg_bin_with_pg_dump(tmp_path, "exit 0")
    dest = str(tmp_path / "repo")
    with pytest.raises(LifeboatError) as info:
        run_backup(PostgresSource(Connection(pg_bin_dir=bin_dir, **postgres.login()), "bench"),
                   Repository.from_options(dest=dest), "empty")
    assert "did not write a custom-format archive (it wrote nothing)" in info.value.msg
    assert glob.glob(os.path.join(dest, "**", "manifest.json"), recursive=True) == []


def test_lock_wait_timeout_fails_fast_instead_of_hanging(postgres, tmp_path):
    """A session holds an exclusive lock on a table (a long migration): with lock_wait_timeout the dump fails
    within seconds, names the table and what to do, and leaves no set; the database is untouched."""
    holder = subprocess.Popen([os.path.join(PG_BIN, "psql"), "-X", "-q", "-d", "bench"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, env=postgres.admin_env())
    try:
        holder.stdin.write(b"BEGIN;\nLOCK TABLE pgbench_tellers IN ACCESS EXCLUSIVE MODE;\n")
        holder.stdin.flush()
        deadline = time.monotonic() + 30
        while postgres.sql("SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND granted AND "
                           "relation = 'pgbench_tellers'::regclass", "bench") != "1":
            assert time.monotonic() < deadline, "the lock was never taken"
            time.sleep(0.1)
        dest = str(tmp_path / "repo")
        started = time.monotonic()
        with pytest.raises(LifeboatError) as info:
            run_backup(PostgresSource(Connection(**postgres.login()), "bench", lock_wait_timeout=1),
                       Repository.from_options(dest=dest), "locked")
        assert time.monotonic() - started < 20
    finally:
        holder.stdin.write(b"ROLLBACK;\n")
        holder.stdin.close()
        holder.wait(timeout=30)
    msg = info.value.msg
    assert "table public.pgbench_tellers of database bench" in msg and "stayed locked" in msg and "lock_wait_timeout" in msg, msg
    assert glob.glob(os.path.join(dest, "**", "manifest.json"), recursive=True) == []
    with pytest.raises(LifeboatError) as info:
        PostgresSource(Connection(**postgres.login()), "bench", lock_wait_timeout=0)
    assert "lock_wait_timeout must be" in info.value.msg
