"""dir_snapshot / dir_restore through ansible-playbook: a tree with a live SQLite writer, binary files,
a symlink and excluded entries; a real ChromaDB store; bad input."""

import glob
import hashlib
import importlib.util
import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time

import pytest

from engine.sources.directory import kind as directory
from engine.pipeline.backup import run_backup
from engine.repositories.repository import Repository

HERE = os.path.dirname(os.path.abspath(__file__))


def tree_state(root):
    """{relative path: (kind, mode, sha256 or link target, mtime)} of everything below root except SQLite files."""
    state = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(folder, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                state[rel] = ("link", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                state[rel] = ("dir", stat.S_IMODE(st.st_mode), int(st.st_mtime))
            elif not name.startswith("app.db"):
                with open(full, "rb") as handle:
                    state[rel] = ("file", stat.S_IMODE(st.st_mode), hashlib.sha256(handle.read()).hexdigest(),
                                  int(st.st_mtime))
    return state


class Writer(threading.Thread):
    def __init__(self, path):
        super(Writer, self).__init__(daemon=True)
        self.path = path
        self.stop = threading.Event()
        self.rows = 0

    def run(self):
        conn = sqlite3.connect(self.path, timeout=30)
        while not self.stop.is_set():
            with conn:
                conn.executemany("INSERT INTO events (payload) VALUES (?)", [(os.urandom(64).hex(),)] * 20)
            self.rows += 20
        conn.close()


def make_tree(root):
    os.makedirs(os.path.join(root, "images", "2026"))
    os.makedirs(os.path.join(root, "cache", "thumbs"))
    os.makedirs(os.path.join(root, "db"))
    with open(os.path.join(root, "images", "2026", "photo.bin"), "wb") as handle:
        handle.write(os.urandom(3 * 1024 * 1024 + 17))
    with open(os.path.join(root, "images", "empty"), "wb"):
        pass
    with open(os.path.join(root, "secret.key"), "wb") as handle:
        handle.write(os.urandom(32))
    os.chmod(os.path.join(root, "secret.key"), 0o600)
    with open(os.path.join(root, "run.sh"), "w") as handle:
        handle.write("#!/bin/sh\necho hi\n")
    os.chmod(os.path.join(root, "run.sh"), 0o755)
    with open(os.path.join(root, "cache", "thumbs", "t1.bin"), "wb") as handle:
        handle.write(os.urandom(1000))
    with open(os.path.join(root, "upload.tmp"), "w") as handle:
        handle.write("partial")
    os.symlink("images/2026/photo.bin", os.path.join(root, "latest"))
    os.symlink("/nonexistent/target", os.path.join(root, "dangling"))
    os.utime(os.path.join(root, "images", "2026", "photo.bin"), (1600000000, 1600000000))
    conn = sqlite3.connect(os.path.join(root, "db", "app.db"))
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, payload TEXT)")
    conn.executemany("INSERT INTO events (payload) VALUES (?)", [("x" * 100,)] * 5000)
    conn.commit()
    conn.close()


def test_snapshot_and_restore_live_tree(ansible, s3, tmp_path):
    root = str(tmp_path / "uploads")
    make_tree(root)
    writer = Writer(os.path.join(root, "db", "app.db"))
    writer.start()
    time.sleep(0.3)
    common = {"job": "uploads", "s3": s3, "dest": str(tmp_path / "repo")}
    try:
        out = ansible.module("lifeboat.backup.dir_snapshot",
                             dict(common, path=root, exclude=["*.tmp", "cache/"]))
    finally:
        writer.stop.set()
        writer.join()
    assert not out.get("failed"), out
    assert writer.rows > 0
    verification = out["backup"]["manifest"]["verification"]
    assert verification["sqlite"]["db/app.db"]["integrity_check"] == "ok"
    snapshot_rows = verification["sqlite"]["db/app.db"]["row_counts"]["events"]
    assert 5000 <= snapshot_rows
    assert verification["files"] == 5 and verification["symlinks"] == 2
    assert verification["companions_skipped"] >= 1  # app.db-wal / -shm are not stored

    expected = tree_state(root)
    for excluded in ("upload.tmp", "cache", "cache/thumbs", "cache/thumbs/t1.bin", "db/app.db-wal", "db/app.db-shm"):
        expected.pop(excluded, None)
    # db/ changed after the snapshot (the writer's last close removed app.db-wal): compare its mode only
    expected["db"] = expected["db"][:2]
    # damage the live tree
    os.unlink(os.path.join(root, "secret.key"))
    with open(os.path.join(root, "run.sh"), "a") as handle:
        handle.write("rm -rf /\n")

    out = ansible.module("lifeboat.backup.dir_restore", dict(common, path=root))
    assert not out.get("failed"), out
    assert out["verification"]["sqlite"] == {"db/app.db": "ok"}
    restored = tree_state(root)
    restored["db"] = restored["db"][:2]
    assert restored == expected
    conn = sqlite3.connect(os.path.join(root, "db", "app.db"))
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == snapshot_rows
    conn.close()
    assert out["previous"].startswith(root + ".lifeboat-prev-")
    assert not os.path.exists(os.path.join(out["previous"], "secret.key"))  # the damaged tree, kept aside
    assert not glob.glob(str(tmp_path / ".uploads.lifeboat-restore-*"))

    out = ansible.module("lifeboat.backup.dir_restore", dict(common, path=root, keep_previous=False))
    assert not out.get("failed"), out
    restored = tree_state(root)
    restored["db"] = restored["db"][:2]
    assert out["previous"] is None and restored == expected
    assert len(glob.glob(root + ".lifeboat-prev-*")) == 1


def test_corrupted_set_leaves_live_tree(ansible, tmp_path):
    root = str(tmp_path / "uploads")
    make_tree(root)
    repo = tmp_path / "repo"
    run_backup(directory.source_from_options({"path": root}), Repository.from_options(dest=str(repo)), "uploads")
    data = glob.glob(str(repo / "uploads" / "*" / "data.tar.zst"))[0]
    with open(data, "r+b") as handle:
        handle.seek(os.path.getsize(data) // 2)
        chunk = handle.read(32)
        handle.seek(os.path.getsize(data) // 2)
        handle.write(bytes(b ^ 0x5A for b in chunk))
    with open(os.path.join(root, "secret.key"), "wb") as handle:
        handle.write(b"live")
    before = tree_state(root)
    out = ansible.module("lifeboat.backup.dir_restore", {"job": "uploads", "dest": str(repo), "path": root})
    assert out.get("failed")
    assert "sha256 mismatch" in out["msg"]
    assert tree_state(root) == before
    assert sorted(os.listdir(str(tmp_path))) == ["ansible", "repo", "uploads"]


def test_missing_directory_fails_clearly(ansible, tmp_path):
    missing = str(tmp_path / "no-such-dir")
    repo = tmp_path / "repo"
    out = ansible.module("lifeboat.backup.dir_snapshot", {"job": "uploads", "dest": str(repo), "path": missing})
    assert out.get("failed")
    assert "directory %s does not exist" % missing in out["msg"]
    assert not os.path.exists(str(repo / "uploads")) or not os.listdir(str(repo / "uploads"))
    out = ansible.module("lifeboat.backup.dir_restore", {"job": "uploads", "dest": str(repo), "path": missing})
    assert out.get("failed") and "Traceback" not in out["msg"]
    assert not os.path.exists(missing)


def _chroma(action, path):
    proc = subprocess.run([sys.executable, os.path.join(HERE, "chroma_helper.py"), action, path],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120, check=False,
                          env=dict(os.environ, ANONYMIZED_TELEMETRY="False"))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_chromadb_store_roundtrip(ansible, tmp_path):
    if importlib.util.find_spec("chromadb") is None:
        pytest.fail("chromadb is not installed: pip install chromadb (CI installs it)")
    store = str(tmp_path / "chroma")
    before = _chroma("add", store)
    assert before["count"] == 400
    repo = str(tmp_path / "repo")
    out = ansible.module("lifeboat.backup.dir_snapshot", {"job": "chroma", "dest": repo, "path": store})
    assert not out.get("failed"), out
    assert out["backup"]["manifest"]["verification"]["sqlite"]["chroma.sqlite3"]["integrity_check"] == "ok"
    subprocess.run(["rm", "-rf", store], check=True)
    out = ansible.module("lifeboat.backup.dir_restore", {"job": "chroma", "dest": repo, "path": store})
    assert not out.get("failed"), out
    assert _chroma("query", store) == before
