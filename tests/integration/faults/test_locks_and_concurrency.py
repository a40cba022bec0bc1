"""A database locked by a writer longer than busy_timeout, and two runs of the same job at once."""

import subprocess
import sys
import threading
import time

import pytest

from fault_helpers import MIB, count, digest, make_db
from engine.pipeline.backup import run_backup
from engine.pipeline.catalog import list_sets
from engine.core.errors import SourceError
from engine.repositories.repository import Repository
from engine.sources.sqlite.snapshot import SqliteSource

JOB = "app"

HOLDER = r"""
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
conn.execute("INSERT INTO t (v) VALUES ('uncommitted')")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


class Holder(object):
    """Another process holding BEGIN EXCLUSIVE until released."""

    def __init__(self, path):
        self.process = subprocess.Popen([sys.executable, "-c", HOLDER, path], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "locked"

    def release(self):
        if self.process.poll() is None:
            self.process.stdin.write("\n")
            self.process.stdin.flush()
            self.process.wait(timeout=30)


@pytest.fixture
def holder():
    holders = []

    def start(path):
        holders.append(Holder(path))
        return holders[-1]
    yield start
    for item in holders:
        item.process.kill()
        item.process.wait()


def test_exclusive_lock_longer_than_busy_timeout(holder, tmp_path):
    db = make_db(tmp_path / "app.db", rows=100, journal_mode="delete")
    dest = str(tmp_path / "repo")
    lock = holder(db)
    started = time.monotonic()
    with pytest.raises(SourceError) as info:
        run_backup(SqliteSource(db, busy_timeout=1.0), Repository.from_options(dest=dest), JOB)
    assert time.monotonic() - started < 20
    message = info.value.msg
    assert "database is locked" in message and "busy_timeout" in message and db in message, message
    assert list_sets(Repository.from_options(dest=dest), JOB) == []  # nothing written
    lock.release()
    assert count(db) == 100

    backup = run_backup(SqliteSource(db, busy_timeout=1.0), Repository.from_options(dest=dest), JOB)
    assert backup["manifest"]["verification"]["row_counts"] == {"t": 100}


def test_wal_database_is_backed_up_while_a_writer_holds_its_lock(holder, tmp_path):
    """In WAL mode readers are not blocked by a writer: the backup succeeds without the uncommitted row."""
    db = make_db(tmp_path / "app.db", rows=100, journal_mode="wal")
    lock = holder(db)
    backup = run_backup(SqliteSource(db, busy_timeout=1.0), Repository.from_options(dest=str(tmp_path / "repo")),
                        JOB)
    lock.release()
    assert backup["manifest"]["verification"]["row_counts"] == {"t": 100}


def test_two_engine_runs_at_once_make_two_sets(moto, s3, tmp_path):
    db = make_db(tmp_path / "app.db", rows=2000, blob=2048)
    live = digest(db)
    repository = Repository.from_options(dest=str(tmp_path / "repo"), s3=dict(s3, multipart_chunk_size=5 * MIB))
    results, errors = [], []

    def one():
        try:
            results.append(run_backup(SqliteSource(db), repository, JOB, compression="none"))
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(exc)
    threads = [threading.Thread(target=one) for _run in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [] and len(results) == 2
    assert results[0]["id"] != results[1]["id"]
    sets = list_sets(repository, JOB)
    assert sorted(s.set_id for s in sets) == sorted(r["id"] for r in results)
    assert all(sorted(s.complete_in()) == ["local", "s3"] for s in sets)
    assert results[0]["sha256"] == results[1]["sha256"]  # the same data, twice
    assert digest(db) == live


def test_runner_lock_makes_the_second_run_exit_75(runner, proxy, s3, tmp_path):
    db = make_db(tmp_path / "app.db", rows=200)
    dest = str(tmp_path / "repo")
    runner.write_job({"job": JOB, "kind": "sqlite", "path": db, "dest": dest,
                      "s3": dict(s3, endpoint_url=proxy.url)})
    proxy.add("PutObject", "delay", times=1, seconds=60)  # the first run hangs in its upload
    first = runner.start("run", JOB)
    deadline = time.monotonic() + 60
    while not proxy.rules[0].hits and time.monotonic() < deadline:
        assert first.poll() is None, first.stderr.read()
        time.sleep(0.05)
    assert proxy.rules[0].hits == 1

    second = runner("run", JOB)
    assert second.returncode == 75, second.stderr
    assert "another run of job app holds" in second.stderr and "pid %d" % first.pid in second.stderr

    proxy.clear()  # the upload goes on
    assert first.wait(timeout=120) == 0, first.stderr.read()
    sets = list_sets(Repository.from_options(dest=dest, s3=s3), JOB)
    assert len(sets) == 1 and sorted(sets[0].complete_in()) == ["local", "s3"]
    entries = runner.audit()
    assert [(e["operation"], e["status"]) for e in entries] == [("run", "ok")]  # the refused run did nothing

    third = runner("run", JOB)  # the lock was released
    assert third.returncode == 0, third.stderr
    assert len(list_sets(Repository.from_options(dest=dest), JOB)) == 2
