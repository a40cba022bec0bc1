"""SFTP repository end to end against a real OpenSSH sshd on 127.0.0.1: modules through ansible-playbook,
interrupted uploads through the engine, and refusals (unknown host key, wrong password, readable secrets)."""

import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from engine.pipeline.backup import run_backup
from engine.pipeline.catalog import COMPLETE, INCOMPLETE, list_sets, locate
from engine.core.errors import LifeboatError, NotFoundError, SinkError, SourceError
from engine.repositories.repository import Repository
from engine.pipeline.retention import apply_retention
from engine.core.streams import IterReader
from support.oversized_manifest import JOB, OVERSIZED, assert_refused_within_bound, plant_set

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MIB = 1024 * 1024


def make_database(path, rows):
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
    rows = (("event %08d %s" % (i, "x" * 100),) for i in range(rows))
    conn.executemany("INSERT INTO events (payload) VALUES (?)", rows)
    conn.commit()
    conn.close()


def add_rows(path, rows):
    conn = sqlite3.connect(str(path))
    conn.executemany("INSERT INTO events (payload) VALUES (?)", (("later %d" % i,) for i in range(rows)))
    conn.commit()
    conn.close()


def count(path):
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        conn.close()


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def tree(path):
    """Every file below path (relative names), or None when path does not exist."""
    if not os.path.exists(path):
        return None
    return sorted(os.path.relpath(os.path.join(d, f), path) for d, _dirs, files in os.walk(path) for f in files)


def test_backup_catalog_restore_retention(ansible, sshd, tmp_path):
    db = tmp_path / "app.db"
    make_database(db, 2000)
    sftp = sshd.options(path="backups")
    backups = []
    for step in range(3):
        out = ansible.module("lifeboat.backup.sqlite_backup", {"job": "app", "sftp": sftp, "path": str(db)})
        assert not out.get("failed"), out.get("msg", out)
        backups.append(out["backup"])
        add_rows(db, 10)
    rows = count(db) - 10  # the newest set holds every row but the last 10

    # The set is complete on the server: manifest present, data checksum equals the manifest's.
    latest = backups[-1]
    url = "sftp://%s@127.0.0.1:%d/~/backups/app/%s/" % (sshd.user, sshd.port, latest["id"])
    assert latest["location"] == {"sftp": url}
    set_dir = sshd.path("backups", "app", latest["id"])
    assert sorted(os.listdir(set_dir)) == sorted([latest["manifest"]["data"], "manifest.json"])
    with open(os.path.join(set_dir, "manifest.json")) as handle:
        manifest = json.load(handle)
    assert manifest == latest["manifest"]
    data = os.path.join(set_dir, manifest["data"])
    assert sha256(data) == manifest["sha256"] == latest["sha256"]
    assert os.path.getsize(data) == manifest["size"]
    assert os.stat(data).st_mode & 0o777 == 0o600
    assert os.stat(set_dir).st_mode & 0o777 == 0o700
    assert manifest["verification"]["row_counts"]["events"] == rows

    # The catalog lists the three sets, newest first, complete on the SFTP server.
    out = ansible.module("lifeboat.backup.backup_catalog", {"job": "app", "sftp": sftp})
    assert not out.get("failed"), out.get("msg", out)
    assert [s["id"] for s in out["sets"]] == [b["id"] for b in reversed(backups)]
    assert all(s["status"] == "complete" and s["complete_in"] == ["sftp"] for s in out["sets"])

    # The database is lost; restore with password authentication and a pinned host key this time.
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(str(db) + suffix):
            os.remove(str(db) + suffix)
    by_password = sshd.options(path="backups", key_file=None, known_hosts_file=None,
                               password_file=sshd.password_file, host_key_fingerprint=sshd.fingerprint)
    out = ansible.module("lifeboat.backup.sqlite_restore", {"job": "app", "sftp": by_password, "path": str(db)})
    assert not out.get("failed"), out.get("msg", out)
    assert out["backup"]["id"] == latest["id"]
    assert count(db) == rows

    # Retention keeps exactly the two newest sets.
    out = ansible.module("lifeboat.backup.backup_retention", {"job": "app", "sftp": sftp, "keep_last": 2})
    assert not out.get("failed"), out.get("msg", out)
    assert [s["id"] for s in out["removed"]] == [backups[0]["id"]]
    assert sorted(os.listdir(sshd.path("backups", "app"))) == sorted(b["id"] for b in backups[1:])


def test_with_a_local_copy_both_hold_the_same_bytes(ansible, sshd, tmp_path):
    db = tmp_path / "app.db"
    make_database(db, 500)
    out = ansible.module("lifeboat.backup.sqlite_backup", {
        "job": "both", "sftp": sshd.options(path="/" + os.path.relpath(sshd.path("abs"), "/")),
        "dest": str(tmp_path / "repo"), "path": str(db)})
    assert not out.get("failed"), out.get("msg", out)
    backup = out["backup"]
    assert backup["location"]["sftp"] == "sftp://%s@127.0.0.1:%d%s/both/%s/" % (
        sshd.user, sshd.port, sshd.path("abs"), backup["id"])
    remote = os.path.join(sshd.path("abs", "both", backup["id"]), backup["manifest"]["data"])
    local = os.path.join(backup["location"]["local"], backup["manifest"]["data"])
    assert sha256(remote) == sha256(local) == backup["sha256"]


@pytest.mark.parametrize("case", ["unknown_host_key", "pinned_key_mismatch", "wrong_password",
                                  "readable_password_file"])
def test_refusals_are_clear_and_write_nothing(ansible, sshd, tmp_path, case):
    db = tmp_path / "app.db"
    make_database(db, 100)
    options = sshd.options(path=case)
    if case == "unknown_host_key":
        empty = tmp_path / "known_hosts"
        empty.write_text("")
        options["known_hosts_file"] = str(empty)
        expected = ["host key", "is not known", "host_key_fingerprint: %s" % sshd.fingerprint]
    elif case == "pinned_key_mismatch":
        del options["known_hosts_file"]
        options["host_key_fingerprint"] = "SHA256:" + "A" * 43
        expected = ["HOST KEY MISMATCH", sshd.fingerprint]
    elif case == "wrong_password":
        del options["key_file"]
        wrong = tmp_path / "wrong-password"
        wrong.write_text("not the password\n")
        wrong.chmod(0o600)
        options["password_file"] = str(wrong)
        expected = ["refused the login of %s" % sshd.user, "password"]
    else:
        readable = tmp_path / "password"
        readable.write_text(sshd.password + "\n")
        readable.chmod(0o644)
        options["password_file"] = str(readable)
        expected = ["sftp.password_file", "mode 0644", "chmod 0600"]
    out = ansible.module("lifeboat.backup.sqlite_backup", {"job": "app", "sftp": options, "path": str(db)})
    assert out.get("failed"), out
    for text in expected:
        assert text in out["msg"], out["msg"]
    assert "Traceback" not in out["msg"]
    assert sshd.password not in out["_output"]
    assert tree(sshd.path(case)) is None  # nothing written, not even the directory


class ChunkSource(object):
    """A source of `chunks` MiB of incompressible data; `during(n)` runs before chunk n is produced."""

    kind = "test"
    extension = "bin"

    def __init__(self, chunks, during=None):
        self.chunks = chunks
        self.during = during

    def check(self):
        pass

    def describe(self):
        return {"test": True}

    def tools(self):
        return {}

    def verification(self):
        return {}

    @contextlib.contextmanager
    def open(self):
        def produce():
            for number in range(self.chunks):
                if self.during:
                    self.during(number)
                yield os.urandom(MIB)
        yield IterReader(produce())


def _repository(sshd, path):
    return Repository.from_options(sftp=sshd.options(path=path))


def test_source_failing_midway_leaves_no_set(sshd):
    def fail(number):
        if number == 3:
            raise SourceError("the source broke after 3 MiB")
    with pytest.raises(SourceError):
        run_backup(ChunkSource(8, fail), _repository(sshd, "source-fails"), "app", compression="none")
    assert tree(sshd.path("source-fails", "app")) == []  # the partial set directory was removed


def test_connection_cut_midway_leaves_no_manifest(sshd):
    def cut(number):
        if number == 4:
            sshd.kill_sessions()
            time.sleep(0.2)
    repository = _repository(sshd, "cut")
    with pytest.raises(SinkError) as caught:
        run_backup(ChunkSource(64, cut), repository, "app", compression="none")
    assert "SSH connection to 127.0.0.1:%d was lost" % sshd.port in caught.value.msg, caught.value.msg
    assert tree(sshd.path("cut", "app")) == []  # abort reconnected and removed the partial set
    assert [s for s in list_sets(_repository(sshd, "cut"), "app") if s.status == COMPLETE] == []


KILLED_RUN = r"""
import contextlib, json, os, sys, time
sys.path.insert(0, sys.argv[1])
from engine.pipeline.backup import run_backup
from engine.repositories.repository import Repository
from engine.core.streams import IterReader

class Source(object):
    kind = "test"
    extension = "bin"
    def check(self): pass
    def describe(self): return {}
    def tools(self): return {}
    def verification(self): return {}
    @contextlib.contextmanager
    def open(self):
        def produce():
            for number in range(1000):
                if number == 4:
                    open(sys.argv[3], "w").close()
                    time.sleep(3600)  # killed here, mid-upload
                yield os.urandom(1024 * 1024)
        yield IterReader(produce())

run_backup(Source(), Repository.from_options(sftp=json.loads(sys.argv[2])), "app", compression="none")
"""


def test_run_killed_mid_upload_leaves_an_incomplete_set_that_retention_removes(sshd, tmp_path):
    repository = _repository(sshd, "killed")
    done = ChunkSource(1)
    good = run_backup(done, repository, "app", compression="none")
    marker = tmp_path / "uploading"
    process = subprocess.Popen([sys.executable, "-c", KILLED_RUN, os.path.join(ROOT, "plugins", "module_utils"),
                                json.dumps(sshd.options(path="killed")), str(marker)])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert process.poll() is None, "the backup process died before uploading"
            assert time.monotonic() < deadline, "the backup process never started uploading"
            time.sleep(0.05)
        partial = [d for d in os.listdir(sshd.path("killed", "app")) if d != good["id"]]
        assert len(partial) == 1
        data = sshd.path("killed", "app", partial[0], "data.bin")
        while os.path.getsize(data) < MIB and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.path.getsize(data) >= MIB  # the upload was under way
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert os.listdir(sshd.path("killed", "app", partial[0])) == ["data.bin"]  # no manifest

    sets = {s.set_id: s for s in list_sets(repository, "app")}
    assert sets[partial[0]].status == INCOMPLETE
    assert locate(repository, "app").set_id == good["id"]  # restores ignore the partial set
    with pytest.raises(NotFoundError):
        locate(repository, "app", backup=partial[0])

    result = apply_retention(repository, "app", {"keep_last": 1, "incomplete_grace": "0s"})
    assert [e["id"] for e in result["removed"]] == [partial[0]]
    assert os.listdir(sshd.path("killed", "app")) == [good["id"]]


def test_engine_reads_what_it_wrote_with_many_windows(sshd):
    """A data object larger than one read window streams back intact (pipelined, windowed reads)."""
    repository = _repository(sshd, "windows")
    backup = run_backup(ChunkSource(9), repository, "app", compression="none")
    store = repository.stores[0]
    reader = store.open_data("app", backup["id"], backup["manifest"]["data"])
    digest = hashlib.sha256()
    try:
        for block in iter(lambda: reader.read(MIB), b""):
            digest.update(block)
    finally:
        reader.close()
    assert digest.hexdigest() == backup["sha256"]
    with pytest.raises(LifeboatError):
        store.open_data("app", backup["id"], "data.missing")


def test_oversized_manifest_is_read_up_to_the_bound(sshd):
    repository = _repository(sshd, "oversized")
    set_id = plant_set(repository)
    with open(os.path.join(sshd.path("oversized", JOB, set_id), "manifest.json"), "wb") as handle:
        handle.write(OVERSIZED)
    assert_refused_within_bound(repository, set_id)
