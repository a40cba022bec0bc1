"""Fixtures for the fault-injection suite: the S3 fault proxy, a small tmpfs, the runner as installed on
hosts (`python3 <lib>/lifeboat.pyz`), and SQLite helpers."""

import hashlib
import json
import os
import sqlite3
import subprocess
import sys

import pytest

from fault_proxy import FaultProxy
from support.runner import install_runner
from support.moto import aws_env

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MIB = 1024 * 1024


def make_db(path, rows=200, blob=0, journal_mode="wal"):
    """`rows` small rows; with `blob` bytes of random data per row the database is incompressible."""
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA journal_mode=%s" % journal_mode)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB)")
    conn.executemany("INSERT INTO t (v, b) VALUES (?, ?)",
                     [("row %d" % i, os.urandom(blob) if blob else None) for i in range(rows)])
    conn.commit()
    conn.close()
    return str(path)


def count(path):
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute("SELECT count(*) FROM t").fetchone()[0]
    finally:
        conn.close()


def digest(path):
    """sha256 of a database file and its companions: 'live data intact' means this is unchanged."""
    value = hashlib.sha256()
    for suffix in ("", "-wal", "-journal"):
        if os.path.exists(str(path) + suffix):
            with open(str(path) + suffix, "rb") as handle:
                value.update(handle.read())
    return value.hexdigest()


def staging(directory):
    return sorted(n for n in os.listdir(str(directory)) if ".lifeboat-restore-" in n)


@pytest.fixture
def proxy(moto):
    server = FaultProxy(moto.url)
    yield server
    server.stop()


@pytest.fixture
def small_fs(tmp_path):
    """An 8 MiB tmpfs (root only); `small_fs.grow()` makes it 64 MiB, as an operator freeing space would."""
    if os.geteuid() != 0:
        pytest.fail("the disk-full tests mount a tmpfs and must run as root")
    path = tmp_path / "small"
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(path)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail("cannot mount a tmpfs at %s: %s" % (path, proc.stdout))

    class Small(object):
        root = path

        @staticmethod
        def grow():
            subprocess.run(["mount", "-o", "remount,size=64m", str(path)], check=True)
    try:
        yield Small()
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture(scope="session")
def runner_lib(tmp_path_factory):
    """The runner zipapp, as the schedule role installs it."""
    lib = tmp_path_factory.mktemp("faults-opt-lifeboat") / "lib"
    install_runner(lib)
    return str(lib)


class Runner(object):
    """`lifeboat` (python3 <lib>/lifeboat.pyz) with its own config and state directories."""

    def __init__(self, lib, base):
        self.config_dir = os.path.join(base, "etc")
        self.state_dir = os.path.join(base, "state")
        os.makedirs(os.path.join(self.config_dir, "jobs"))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LIFEBOAT_")}
        self.env.update(aws_env())
        self.runner = os.path.join(lib, "lifeboat.pyz")

    def write_job(self, document):
        path = os.path.join(self.config_dir, "jobs", "%s.json" % document["job"])
        with open(path, "w") as handle:
            json.dump(document, handle)
        os.chmod(path, 0o600)
        return path

    def argv(self, *args):
        return [sys.executable, self.runner, "--config-dir", self.config_dir,
                "--state-dir", self.state_dir] + list(args)

    def start(self, *args):
        return subprocess.Popen(self.argv(*args), env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd="/")

    def __call__(self, *args, **kwargs):
        return subprocess.run(self.argv(*args), env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=kwargs.get("timeout", 120), cwd="/", check=False)

    def audit(self):
        path = os.path.join(self.state_dir, "audit.jsonl")
        if not os.path.exists(path):
            return []
        with open(path) as handle:
            return [json.loads(line) for line in handle]


@pytest.fixture
def runner(runner_lib, tmp_path):
    return Runner(runner_lib, str(tmp_path / "host"))
