"""Bad input and failures: each gives a clear message, writes nothing that looks complete, loses nothing."""

import hashlib
import os
import signal
import subprocess
import sys
import time

from sqlite_helpers import count, make_database

from support.ports import free_port

ENGINE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "plugins", "module_utils")


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def s3_keys(moto, bucket):
    return [o["Key"] for o in moto.client().list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_missing_path_names_it_and_writes_nothing(ansible, moto, s3, tmp_path):
    missing = str(tmp_path / "nope" / "app.db")
    out = ansible.module("lifeboat.backup.sqlite_backup",
                         {"job": "app", "path": missing, "dest": str(tmp_path / "repo"), "s3": s3})
    assert out["failed"]
    assert missing in out["msg"] and "does not exist" in out["msg"]
    assert "Traceback" not in out["_output"]
    assert not (tmp_path / "repo").exists()
    assert s3_keys(moto, s3["bucket"]) == []


def test_file_that_is_not_a_database_leaves_no_object(ansible, moto, s3, tmp_path):
    bogus = tmp_path / "app.db"
    bogus.write_bytes(b"this is a text file, not SQLite\n" * 100)
    out = ansible.module("lifeboat.backup.sqlite_backup",
                         {"job": "app", "path": str(bogus), "dest": str(tmp_path / "repo"), "s3": s3})
    assert out["failed"] and "is not a SQLite database" in out["msg"]
    assert not (tmp_path / "repo").exists()
    assert s3_keys(moto, s3["bucket"]) == []


def test_s3_unreachable_keeps_the_local_set_and_fails(ansible, tmp_path):
    db = make_database(tmp_path / "app.db", rows=1000)
    dead = {"bucket": "backups", "endpoint_url": "http://127.0.0.1:%d" % free_port(),
            "access_key": "testing", "secret_key": "testing", "region": "us-east-1"}
    repo = {"job": "app", "dest": str(tmp_path / "repo"), "s3": dead}
    out = ansible.module("lifeboat.backup.sqlite_backup", dict(repo, path=str(db)))
    assert out["failed"]
    assert "unreachable" in out["msg"] and dead["endpoint_url"] in out["msg"]
    assert "testing" not in out["msg"]  # no credential in the message
    local = out["backup"]["location"]["local"]  # the failed task still says where the good set is
    assert sorted(os.listdir(local)) == ["data.db.zst", "manifest.json"]
    restored = tmp_path / "restored.db"
    out = ansible.module("lifeboat.backup.sqlite_restore",
                         {"job": "app", "dest": str(tmp_path / "repo"), "path": str(restored)})
    assert not out.get("failed") and count(restored) == 1000


def test_missing_bucket_says_so(ansible, moto, tmp_path):
    db = make_database(tmp_path / "app.db", rows=10)
    out = ansible.module("lifeboat.backup.sqlite_backup",
                         {"job": "app", "path": str(db), "s3": moto.s3_options("no-such-bucket-here")})
    assert out["failed"] and "does not exist" in out["msg"] and "no-such-bucket-here" in out["msg"]


def test_no_repository_is_refused(ansible, tmp_path):
    db = make_database(tmp_path / "app.db", rows=10)
    out = ansible.module("lifeboat.backup.sqlite_backup", {"job": "app", "path": str(db)})
    assert out["failed"] and "dest, s3" in out["msg"]


def test_corrupted_artifact_restore_refuses_and_live_db_is_untouched(ansible, moto, s3, tmp_path):
    db = make_database(tmp_path / "app.db", rows=5000)
    out = ansible.module("lifeboat.backup.sqlite_backup", {"job": "app", "path": str(db), "s3": s3})
    key = "prod/app/%s/%s" % (out["backup"]["id"], out["backup"]["manifest"]["data"])
    client = moto.client()
    data = bytearray(client.get_object(Bucket=s3["bucket"], Key=key)["Body"].read())
    data[len(data) // 2] ^= 0xFF
    client.put_object(Bucket=s3["bucket"], Key=key, Body=bytes(data))
    conn = __import__("sqlite3").connect(str(db))
    conn.execute("DELETE FROM events WHERE id > 4000")
    conn.commit()
    conn.close()
    live = digest(db)
    out = ansible.module("lifeboat.backup.sqlite_restore", {"job": "app", "path": str(db), "s3": s3})
    assert out["failed"] and "sha256 mismatch" in out["msg"]
    assert digest(db) == live and count(db) == 4000
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith(("app.db", ".app.db"))) == ["app.db"]


def test_corrupted_manifest_is_an_alarm_for_latest_and_refused_by_id(ansible, tmp_path):
    db = make_database(tmp_path / "app.db", rows=10)
    repo = {"job": "app", "dest": str(tmp_path / "repo")}
    good = ansible.module("lifeboat.backup.sqlite_backup", dict(repo, path=str(db)))["backup"]
    bad = ansible.module("lifeboat.backup.sqlite_backup", dict(repo, path=str(db)))["backup"]
    with open(os.path.join(bad["location"]["local"], "manifest.json"), "w") as handle:
        handle.write('{"format": 1, "id": "trunc')
    catalog = ansible.module("lifeboat.backup.backup_catalog", repo)
    assert {s["id"]: s["status"] for s in catalog["sets"]} == {good["id"]: "complete", bad["id"]: "invalid"}
    target = tmp_path / "restored.db"
    out = ansible.module("lifeboat.backup.sqlite_restore", dict(repo, path=str(target)))
    assert out["failed"] and bad["id"] in out["msg"] and not target.exists()  # issue #16: never a silent fallback
    out = ansible.module("lifeboat.backup.sqlite_restore", dict(repo, path=str(target), skip_damaged=True))
    assert out["backup"]["id"] == good["id"] and [s["id"] for s in out["skipped"]] == [bad["id"]]
    out = ansible.module("lifeboat.backup.sqlite_restore", dict(repo, path=str(target), backup=bad["id"]))
    assert out["failed"] and "corrupted" in out["msg"]


def test_bad_selection_values(ansible, tmp_path):
    db = make_database(tmp_path / "app.db", rows=10)
    repo = {"job": "app", "dest": str(tmp_path / "repo"), "path": str(tmp_path / "r.db")}
    ansible.module("lifeboat.backup.sqlite_backup", dict(repo, path=str(db)))
    out = ansible.module("lifeboat.backup.sqlite_restore", dict(repo, backup="yesterday"))
    assert out["failed"] and "not a set id" in out["msg"]
    out = ansible.module("lifeboat.backup.sqlite_restore", dict(repo, before="last tuesday"))
    assert out["failed"] and "ISO 8601" in out["msg"]
    out = ansible.module("lifeboat.backup.sqlite_restore", dict(repo, before="2000-01-01"))
    assert out["failed"] and "no complete set" in out["msg"]
    out = ansible.module("lifeboat.backup.sqlite_restore", dict(repo, job="other"))
    assert out["failed"] and "run a backup first" in out["msg"]


KILLABLE_RUN = r"""
import sys
sys.path.insert(0, sys.argv[1])
from engine.pipeline.backup import run_backup
from engine.repositories.repository import Repository
from engine.sources.sqlite.snapshot import SqliteSource
s3 = dict(bucket=sys.argv[3], endpoint_url=sys.argv[4], access_key="testing", secret_key="testing",
          region="us-east-1", multipart_chunk_size=5 * 1024 * 1024, max_concurrency=1)
run_backup(SqliteSource(sys.argv[2]), Repository.from_options(dest=sys.argv[5], s3=s3), "app", compression="none")
"""


def test_run_killed_mid_upload_leaves_no_manifest_and_next_run_succeeds(moto, bucket, tmp_path, ansible):
    db = tmp_path / "big.db"
    conn = __import__("sqlite3").connect(str(db))
    conn.execute("CREATE TABLE blobs (b BLOB)")
    conn.executemany("INSERT INTO blobs VALUES (?)", ((os.urandom(4096),) for _index in range(15000)))  # ~60 MB
    conn.commit()
    conn.close()
    client = moto.client()
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE_RUN, ENGINE, str(db), bucket, moto.url,
                             str(tmp_path / "repo")])
    deadline = time.monotonic() + 60
    while not client.list_multipart_uploads(Bucket=bucket).get("Uploads"):
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its upload was seen"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not any(k.endswith("manifest.json") for k in s3_keys(moto, bucket))
    leftovers = os.listdir(tmp_path / "repo" / "app")
    assert len(leftovers) == 1 and "manifest.json" not in os.listdir(tmp_path / "repo" / "app" / leftovers[0])

    s3 = moto.s3_options(bucket)
    repo = {"job": "app", "dest": str(tmp_path / "repo"), "s3": s3}
    catalog = ansible.module("lifeboat.backup.backup_catalog", repo)
    assert [s["status"] for s in catalog["sets"]] == ["incomplete"] and catalog["latest"] is None
    out = ansible.module("lifeboat.backup.sqlite_backup", dict(repo, path=str(db)))
    assert not out.get("failed"), out
    catalog = ansible.module("lifeboat.backup.backup_catalog", repo)
    assert catalog["latest"]["id"] == out["backup"]["id"]
    assert sorted(catalog["latest"]["complete_in"]) == ["local", "s3"]
