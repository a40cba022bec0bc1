"""Fixtures for the runbook tests: a tiny HTTP "application" serving /health from a SQLite database,
started and stopped by the commands restore.yml runs (no systemd needed)."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from support.ports import free_port  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
APP_SERVER = os.path.join(HERE, "app_server.py")
PLAYBOOKS = os.path.join(REPO, "playbooks")


def make_backup(kind, job, dest, path):
    """A backup set made with the engine directly (faster than a playbook run); returns the `backup` dict."""
    from engine.sources.directory import kind as directory_kind
    from engine.sources.sqlite import kind as sqlite_kind
    from engine.pipeline.backup import run_backup
    from engine.repositories.repository import Repository
    module = {"sqlite": sqlite_kind, "directory": directory_kind}[kind]
    return run_backup(module.source_from_options({"path": str(path)}), Repository.from_options(dest=str(dest)), job)


def make_app_db(path, rows=100, health="ok"):
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO meta VALUES ('health', ?)", (health,))
    conn.executemany("INSERT INTO items (name) VALUES (?)", (("item %d" % i,) for i in range(rows)))
    conn.commit()
    conn.close()
    return str(path)


def change_db(path, add_rows=0, health=None):
    conn = sqlite3.connect(str(path))
    if add_rows:
        conn.executemany("INSERT INTO items (name) VALUES (?)", (("later %d" % i,) for i in range(add_rows)))
    if health is not None:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'health'", (health,))
    conn.commit()
    conn.close()


def rows(path):
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute("SELECT count(*) FROM items").fetchone()[0]
    finally:
        conn.close()


class App(object):
    """The "service": python3 app_server.py start/stop with a pidfile, as start_command/stop_command argv lists."""

    def __init__(self, workdir, db):
        self.db = str(db)
        self.port = free_port()
        self.pidfile = os.path.join(str(workdir), "app-%d.pid" % self.port)
        self.log = os.path.join(str(workdir), "app-%d.log" % self.port)
        self.start_command = [sys.executable, APP_SERVER, "start", "--db", self.db, "--port", str(self.port),
                              "--pidfile", self.pidfile, "--log", self.log]
        self.stop_command = [sys.executable, APP_SERVER, "stop", "--pidfile", self.pidfile]
        self.health_url = "http://127.0.0.1:%d/health" % self.port

    def start(self):
        subprocess.run(self.start_command, check=True, timeout=30)

    def pid(self):
        try:
            return int(open(self.pidfile).read().strip())
        except (OSError, ValueError):
            return None

    def running(self):
        pid = self.pid()
        if not pid:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"

    def get(self, path):
        """(status, body) of GET path; the server must answer."""
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path), timeout=5) as response:
                return response.status, response.read().decode().strip()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode().strip()

    def kill(self):
        pid = self.pid()
        if pid and self.running():
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while self.running() and time.monotonic() < deadline:
                time.sleep(0.05)


@pytest.fixture
def app_factory(tmp_path):
    apps = []

    def make(db):
        app = App(tmp_path, db)
        apps.append(app)
        return app
    yield make
    for app in apps:
        app.kill()


@pytest.fixture
def playbooks():
    return PLAYBOOKS
