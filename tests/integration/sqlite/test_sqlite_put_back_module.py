"""Undoing a SQLite restore with lifeboat.backup.sqlite_put_back through ansible-playbook: a real set restored over a
live WAL database with sqlite_restore, then put back from what the restore returned (`restored_to`, `previous`)."""

import hashlib
import os
import sqlite3

from engine.pipeline.backup import run_backup
from engine.repositories.repository import Repository
from engine.sources.sqlite import kind as sqlite_kind


def make_db(path, rows, label):
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (v TEXT)")
    conn.execute("DELETE FROM t")
    conn.executemany("INSERT INTO t VALUES (?)", [("%s %d" % (label, i),) for i in range(rows)])
    conn.commit()
    conn.close()


def digest(path):
    with open(str(path), "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def state(directory):
    """{name: sha256} of every file in the database's directory."""
    return {name: digest(os.path.join(str(directory), name)) for name in sorted(os.listdir(str(directory)))}


def test_put_back_module_restores_the_previous_database_byte_for_byte(ansible, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    db = data / "app.db"
    make_db(db, 200, "old")
    repo = str(tmp_path / "repo")
    run_backup(sqlite_kind.source_from_options({"path": str(db)}), Repository.from_options(dest=repo), "app-db")
    make_db(db, 300, "live")
    live = state(data)
    assert list(live) == ["app.db"]

    restored = ansible.module("lifeboat.backup.sqlite_restore", {"job": "app-db", "dest": repo, "path": str(db)})
    assert not restored.get("failed"), restored
    previous = restored["previous"]
    assert previous.startswith(str(db) + ".lifeboat-prev-") and restored["restored_to"] == str(db)
    # the application wrote to the restored database, and left its -wal and -shm behind
    conn = sqlite3.connect(str(db))
    conn.execute("INSERT INTO t VALUES ('written after the restore')")
    conn.commit()
    conn.close()
    (data / "app.db-wal").write_bytes(b"stale wal of the rejected database")
    (data / "app.db-shm").write_bytes(b"stale shm")

    args = {"path": restored["restored_to"], "previous": previous}
    checked = ansible.module("lifeboat.backup.sqlite_put_back", args, check=True)
    assert not checked.get("failed") and checked["changed"], checked
    assert checked["removed"] == [str(db), str(db) + "-wal", str(db) + "-shm"]
    assert os.path.exists(previous) and (data / "app.db-wal").exists()

    done = ansible.module("lifeboat.backup.sqlite_put_back", args)
    assert not done.get("failed"), done
    assert (done["changed"], done["restored_to"], done["previous"]) == (True, str(db), previous)
    assert state(data) == live  # the database from before the restore, byte for byte, and nothing else
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    assert conn.execute("SELECT count(*), min(v) FROM t").fetchone() == (300, "live 0")
    conn.close()

    again = ansible.module("lifeboat.backup.sqlite_put_back", args)
    assert again.get("failed"), again
    assert again["msg"] == ("the kept-aside copy %s is gone (put back or removed already?); the restored data stays "
                            "at %s" % (previous, db))


def test_put_back_module_refuses_a_previous_that_is_not_the_targets(ansible, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    db = data / "app.db"
    make_db(db, 10, "live")
    other = data / "other.db"
    make_db(other, 10, "other")
    before = state(data)
    out = ansible.module("lifeboat.backup.sqlite_put_back", {"path": str(db), "previous": str(other)})
    assert out.get("failed"), out
    assert out["msg"] == ("'%s' is not the kept-aside copy of %s (<target>.lifeboat-prev-<time>); nothing was "
                          "changed" % (other, db))
    assert state(data) == before
    missing = ansible.module("lifeboat.backup.sqlite_put_back", {"path": str(db)})
    assert missing.get("failed") and "previous" in missing["msg"], missing
