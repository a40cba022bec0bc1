import sqlite3
import subprocess
import sys
import time

import pytest

WRITER = r"""
import os, sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=30)
conn.execute("PRAGMA busy_timeout=30000")
n = 0
while True:
    conn.execute("INSERT INTO events (payload) VALUES (?)", ("live write %d" % n,))
    conn.commit()
    n += 1
    with open(sys.argv[2] + ".tmp", "w") as f:
        f.write(str(n))
    os.replace(sys.argv[2] + ".tmp", sys.argv[2])  # readers never see a half-written count
    time.sleep(0.002)
"""


def make_database(path, rows=100000, journal_mode="wal"):
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA journal_mode=%s" % journal_mode)
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany("INSERT INTO events (payload) VALUES (?)", (("event %08d %s" % (i, "x" * 120),) for i in range(rows)))
    conn.executemany("INSERT INTO users (name) VALUES (?)", (("user %d" % i,) for i in range(500)))
    conn.execute("CREATE INDEX events_payload ON events (payload)")
    conn.commit()
    conn.close()
    return path


def count(path, table="events"):
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute("SELECT count(*) FROM %s" % table).fetchone()[0]
    finally:
        conn.close()


def integrity(path):
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


class Writer(object):
    """Another process committing rows into the database while the test backs it up."""

    def __init__(self, path, counter):
        self.counter = counter
        self.process = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(counter)])
        while self.committed() < 20:
            if self.process.poll() is not None:
                raise RuntimeError("writer died")
            time.sleep(0.01)

    def committed(self):
        try:
            return int(open(self.counter).read() or 0)
        except (OSError, ValueError):
            return 0

    def stop(self):
        self.process.kill()
        self.process.wait()


@pytest.fixture
def writer_factory(tmp_path):
    writers = []

    def start(path):
        writer = Writer(path, tmp_path / ("writer-%d.count" % len(writers)))
        writers.append(writer)
        return writer
    yield start
    for writer in writers:
        writer.stop()
