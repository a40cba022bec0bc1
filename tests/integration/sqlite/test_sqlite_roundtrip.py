"""SQLite backup and restore end to end through ansible-playbook, against real sqlite3 and moto S3."""

import os
import sqlite3

import pytest

from sqlite_helpers import count, integrity, make_database


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_backup_under_live_writer_then_restore_after_loss(ansible, moto, s3, tmp_path, writer_factory, journal_mode):
    db = make_database(tmp_path / "app.db", rows=100000, journal_mode=journal_mode)
    base_rows = count(db)
    writer = writer_factory(db)
    before = base_rows + writer.committed()
    repo = {"job": "app", "s3": s3, "dest": str(tmp_path / "repo")}

    out = ansible.module("lifeboat.backup.sqlite_backup", dict(repo, path=str(db), tags={"case": journal_mode}))
    after = base_rows + writer.committed() + 1  # a commit may land between the snapshot and the counter file
    writer.stop()
    assert not out.get("failed"), out["msg"] if "msg" in out else out
    backup = out["backup"]
    recorded = backup["manifest"]["verification"]
    assert recorded["integrity_check"] == "ok"
    assert before <= recorded["row_counts"]["events"] <= after
    assert recorded["row_counts"]["users"] == 500
    assert backup["manifest"]["source"]["journal_mode"] == journal_mode
    assert backup["manifest"]["tags"] == {"case": journal_mode}

    # Both repositories hold the same bytes: one pass, written twice.
    local_data = os.path.join(backup["location"]["local"], backup["manifest"]["data"])
    key = "prod/app/%s/%s" % (backup["id"], backup["manifest"]["data"])
    remote = moto.client().get_object(Bucket=s3["bucket"], Key=key)["Body"].read()
    assert remote == open(local_data, "rb").read()
    assert backup["location"]["s3"] == "s3://%s/prod/app/%s/" % (s3["bucket"], backup["id"])

    # The server is lost: database and its WAL gone. Restore from S3 only.
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(str(db) + suffix):
            os.remove(str(db) + suffix)
    out = ansible.module("lifeboat.backup.sqlite_restore", {"job": "app", "s3": s3, "path": str(db), "mode": "0640"})
    assert not out.get("failed"), out
    assert out["backup"]["id"] == backup["id"]
    assert out["verification"]["integrity_check"] == "ok"
    assert integrity(db) == "ok"
    assert count(db) == recorded["row_counts"]["events"]
    assert oct(os.stat(db).st_mode & 0o777) == "0o640"
    assert [n for n in os.listdir(tmp_path) if "lifeboat-restore" in n] == []


def test_restore_over_live_file_keeps_previous_and_drops_stale_wal(ansible, tmp_path):
    db = make_database(tmp_path / "app.db", rows=1000)
    repo = {"job": "app", "dest": str(tmp_path / "repo")}
    assert not ansible.module("lifeboat.backup.sqlite_backup", dict(repo, path=str(db))).get("failed")
    # Newer rows live only in the WAL (a connection still open, no checkpoint).
    conn = sqlite3.connect(str(db))
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.executemany("INSERT INTO events (payload) VALUES (?)", [("after backup",)] * 50)
    conn.commit()
    assert os.path.getsize(str(db) + "-wal") > 0
    out = ansible.module("lifeboat.backup.sqlite_restore", dict(repo, path=str(db)))
    conn.close()
    assert not out.get("failed"), out
    assert count(db) == 1000  # the stale WAL was not replayed onto the restored file
    previous = out["previous"]
    assert previous and os.path.exists(previous) and os.path.exists(previous + "-wal")
    assert count(previous) == 1050  # the previous database, WAL included, is intact aside


def test_select_by_id_and_before(ansible, tmp_path):
    db = make_database(tmp_path / "app.db", rows=10)
    repo = {"job": "app", "dest": str(tmp_path / "repo")}
    first = ansible.module("lifeboat.backup.sqlite_backup", dict(repo, path=str(db)))["backup"]
    conn = sqlite3.connect(str(db))
    conn.execute("INSERT INTO events (payload) VALUES ('second')")
    conn.commit()
    conn.close()
    second = ansible.module("lifeboat.backup.sqlite_backup", dict(repo, path=str(db)))["backup"]
    target = tmp_path / "restored.db"
    out = ansible.module("lifeboat.backup.sqlite_restore", dict(repo, path=str(target), backup=first["id"]))
    assert out["backup"]["id"] == first["id"] and count(target) == 10
    out = ansible.module("lifeboat.backup.sqlite_restore",
                         dict(repo, path=str(target), before=first["manifest"]["finished"], keep_previous=False))
    assert out["backup"]["id"] == first["id"] and out["previous"] is None
    assert [n for n in os.listdir(tmp_path) if "lifeboat-prev" in n] == []
    out = ansible.module("lifeboat.backup.sqlite_restore", dict(repo, path=str(target)))
    assert out["backup"]["id"] == second["id"] and count(target) == 11

    catalog = ansible.module("lifeboat.backup.backup_catalog", repo)
    assert [s["id"] for s in catalog["sets"]] == [second["id"], first["id"]]
    assert catalog["latest"]["id"] == second["id"]
    assert catalog["sets"][0]["verification"]["row_counts"]["events"] == 11
    assert catalog["changed"] is False


def test_check_mode_writes_nothing_and_verifies_only(ansible, s3, moto, tmp_path):
    db = make_database(tmp_path / "app.db", rows=100)
    repo = {"job": "app", "dest": str(tmp_path / "repo"), "s3": s3}
    out = ansible.module("lifeboat.backup.sqlite_backup", dict(repo, path=str(db)), check=True)
    assert out["changed"] and out["plan"]["data"] == "data.db.zst"
    assert not (tmp_path / "repo").exists()
    assert moto.client().list_objects_v2(Bucket=s3["bucket"]).get("KeyCount") == 0

    ansible.module("lifeboat.backup.sqlite_backup", dict(repo, path=str(db)))
    target = tmp_path / "other.db"
    out = ansible.module("lifeboat.backup.sqlite_restore", dict(repo, path=str(target)), check=True)
    assert not out.get("failed"), out
    assert out["verification"]["integrity_check"] == "ok"
    assert not target.exists()
    assert sorted(os.listdir(tmp_path)) == ["ansible", "app.db", "repo"]


def test_gzip_and_uncompressed_sets_restore(ansible, tmp_path):
    db = make_database(tmp_path / "app.db", rows=500)
    for compression in ("gzip", "none"):
        repo = {"job": "app-" + compression, "dest": str(tmp_path / "repo")}
        out = ansible.module("lifeboat.backup.sqlite_backup", dict(repo, path=str(db), compression=compression))
        assert out["backup"]["manifest"]["data"] == {"gzip": "data.db.gz", "none": "data.db"}[compression]
        target = tmp_path / ("restored-%s.db" % compression)
        assert not ansible.module("lifeboat.backup.sqlite_restore", dict(repo, path=str(target))).get("failed")
        assert count(target) == 500
