import sqlite3


def make_db(path, rows=1000):
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [("row %d" % i,) for i in range(rows)])
    conn.commit()
    conn.close()


def test_backup_then_restore_through_ansible(ansible, s3, tmp_path):
    db = tmp_path / "app.db"
    make_db(db)
    common = {"job": "app", "s3": s3, "dest": str(tmp_path / "repo")}
    out = ansible.module("lifeboat.backup.sqlite_backup", dict(common, path=str(db)))
    assert not out.get("failed"), out
    assert out["backup"]["manifest"]["verification"]["row_counts"] == {"t": 1000}
    db.unlink()
    out = ansible.module("lifeboat.backup.sqlite_restore", dict(common, path=str(db)))
    assert not out.get("failed"), out
    assert sqlite3.connect(str(db)).execute("select count(*) from t").fetchone()[0] == 1000
