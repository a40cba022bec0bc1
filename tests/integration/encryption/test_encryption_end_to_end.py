"""Client-side age encryption and S3 server-side encryption, end to end through ansible-playbook.

age: the artifact is `data.db.zst.age` in S3 and in the local directory (byte-identical), starts with the
age header (not a zstd frame), restores with the right identity, and fails clearly, touching nothing, with
a wrong or missing identity. The manifest records recipient fingerprints, never a key.
SSE: moto records ServerSideEncryption (AES256, aws:kms + key id) on the data object and the manifest.
"""

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess

import pytest

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
AGE_HEADER = b"age-encryption.org/v1\n"


def age_keygen(path):
    if not shutil.which("age-keygen") or not shutil.which("age"):
        pytest.fail("age and age-keygen are required (Debian/Ubuntu: apt-get install age)")
    subprocess.run(["age-keygen", "-o", str(path)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    secret = public = None
    with open(str(path)) as handle:
        for line in handle:
            if line.startswith("# public key: "):
                public = line.split(": ", 1)[1].strip()
            elif line.startswith("AGE-SECRET-KEY-"):
                secret = line.strip()
    return public, secret


def make_db(path, rows=3000):
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [("row %06d %s" % (i, "p" * 50),) for i in range(rows)])
    conn.commit()
    conn.close()


def digest(path):
    with open(str(path), "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def count(path):
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute("SELECT count(*) FROM t").fetchone()[0]
    finally:
        conn.close()


def staging(directory):
    return [n for n in os.listdir(str(directory)) if "lifeboat-restore" in n]


def test_age_roundtrip_wrong_and_missing_identity(ansible, moto, s3, tmp_path):
    key1, secret1 = age_keygen(tmp_path / "key1.txt")
    key2, secret2 = age_keygen(tmp_path / "key2.txt")
    wrong_public, _wrong_secret = age_keygen(tmp_path / "wrong.txt")
    db = tmp_path / "app.db"
    make_db(db)
    repo = {"job": "app", "s3": s3, "dest": str(tmp_path / "repo")}

    out = ansible.module("lifeboat.backup.sqlite_backup",
                         dict(repo, path=str(db), encryption={"age_recipients": [key1, key2]}))
    assert not out.get("failed"), out
    backup = out["backup"]
    manifest = backup["manifest"]
    assert manifest["data"] == "data.db.zst.age"
    encryption = manifest["encryption"]
    assert encryption["algorithm"] == "age"
    assert len(encryption["recipients"]) == 2 and all(f.startswith("sha256:") for f in encryption["recipients"])
    assert len(set(encryption["recipients"])) == 2

    # The same stored bytes in both repositories; they are age, not zstd; sha256 matches the manifest.
    local_data = os.path.join(backup["location"]["local"], "data.db.zst.age")
    key = "prod/app/%s/data.db.zst.age" % backup["id"]
    remote = moto.client().get_object(Bucket=s3["bucket"], Key=key)["Body"].read()
    with open(local_data, "rb") as handle:
        local = handle.read()
    assert remote == local
    assert local.startswith(AGE_HEADER) and not local.startswith(ZSTD_MAGIC)
    assert hashlib.sha256(local).hexdigest() == manifest["sha256"] and len(local) == manifest["size"]
    assert b"row 000001" not in local

    # No key material anywhere in the manifest (local and S3 copies), nor the public keys themselves.
    manifest_texts = [open(os.path.join(backup["location"]["local"], "manifest.json")).read(),
                      moto.client().get_object(Bucket=s3["bucket"], Key="prod/app/%s/manifest.json" % backup["id"])
                      ["Body"].read().decode()]
    for text in manifest_texts:
        assert json.loads(text)["encryption"] == encryption
        for needle in (key1, key2, secret1, secret2, "AGE-SECRET-KEY"):
            assert needle not in text
    assert secret1 not in out["_output"] and secret2 not in out["_output"]

    conn = sqlite3.connect(str(db))
    conn.execute("INSERT INTO t (v) VALUES ('after the backup')")
    conn.commit()
    conn.close()
    live = digest(db)

    # Wrong identity: clear message, live database untouched, no staging file.
    out = ansible.module("lifeboat.backup.sqlite_restore",
                         {"job": "app", "s3": s3, "path": str(db),
                          "encryption": {"age_identity_file": str(tmp_path / "wrong.txt")}})
    assert out.get("failed")
    assert "does not match any recipient" in out["msg"], out["msg"]
    assert "zstd" not in out["msg"] and "corrupted" not in out["msg"], out["msg"]  # age's refusal, not its effect
    assert all(fingerprint in out["msg"] for fingerprint in encryption["recipients"]), out["msg"]
    assert key1 not in out["msg"] and wrong_public not in out["msg"] and "AGE-SECRET-KEY" not in out["msg"]
    assert "Traceback" not in out["msg"]
    assert digest(db) == live and count(db) == 3001
    assert staging(tmp_path) == []
    assert [n for n in os.listdir(str(tmp_path)) if "lifeboat-prev" in n] == []

    # No identity at all: says which option to set; nothing touched.
    out = ansible.module("lifeboat.backup.sqlite_restore", {"job": "app", "dest": repo["dest"], "path": str(db)})
    assert out.get("failed")
    assert "encrypted with age" in out["msg"] and "age_identity_file" in out["msg"], out["msg"]
    assert digest(db) == live and staging(tmp_path) == []

    # An identity file that does not exist: named in the message.
    out = ansible.module("lifeboat.backup.sqlite_restore",
                         {"job": "app", "dest": repo["dest"], "path": str(db),
                          "encryption": {"age_identity_file": str(tmp_path / "nope.txt")}})
    assert out.get("failed") and "nope.txt" in out["msg"] and "does not exist" in out["msg"], out["msg"]
    assert digest(db) == live

    # The right identity (the second recipient's), from S3 then from the local directory.
    for where in ({"s3": s3}, {"dest": repo["dest"]}):
        out = ansible.module("lifeboat.backup.sqlite_restore",
                             dict(where, job="app", path=str(db),
                                  encryption={"age_identity_file": str(tmp_path / "key2.txt")}))
        assert not out.get("failed"), out
        assert out["backup"]["id"] == backup["id"]
        assert out["verification"]["integrity_check"] == "ok"
        assert count(db) == 3000
        assert staging(tmp_path) == []
    assert secret2 not in out["_output"]

    # The catalog says the set is encrypted.
    out = ansible.module("lifeboat.backup.backup_catalog", {"job": "app", "dest": repo["dest"]})
    assert not out.get("failed"), out
    sets = out.get("sets") or out.get("backups")
    assert sets and sets[0]["encrypted"] is True


def test_bad_recipient_is_refused_before_anything_is_written(ansible, tmp_path):
    db = tmp_path / "app.db"
    make_db(db, rows=10)
    out = ansible.module("lifeboat.backup.sqlite_backup",
                         {"job": "app", "dest": str(tmp_path / "repo"), "path": str(db),
                          "encryption": {"age_recipients": ["not-a-key"]}})
    assert out.get("failed") and "age_recipients" in out["msg"], out
    assert not os.path.exists(str(tmp_path / "repo" / "app")) or os.listdir(str(tmp_path / "repo" / "app")) == []


def test_sse_aes256_recorded_on_every_object(ansible, moto, s3, tmp_path):
    db = tmp_path / "app.db"
    make_db(db, rows=100)
    options = dict(s3, sse="AES256")
    out = ansible.module("lifeboat.backup.sqlite_backup", {"job": "app", "s3": options, "path": str(db)})
    assert not out.get("failed"), out
    set_id = out["backup"]["id"]
    client = moto.client()
    for name in ("data.db.zst", "manifest.json"):
        head = client.head_object(Bucket=s3["bucket"], Key="prod/app/%s/%s" % (set_id, name))
        assert head["ServerSideEncryption"] == "AES256", (name, head)
    out = ansible.module("lifeboat.backup.sqlite_restore",
                         {"job": "app", "s3": options, "path": str(tmp_path / "restored.db")})
    assert not out.get("failed"), out
    assert count(tmp_path / "restored.db") == 100


def test_sse_kms_single_and_multipart_upload(moto, s3, tmp_path):
    """aws:kms with a key id on a small set (PutObject) and a large one (multipart: set on CreateMultipartUpload)."""
    from engine.pipeline.backup import run_backup
    from engine.repositories.repository import Repository
    from engine.sources.sqlite.restore import restore_sqlite
    from engine.sources.sqlite.snapshot import SqliteSource

    db = tmp_path / "big.db"
    conn = sqlite3.connect(str(db))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [(os.urandom(4096),) for _row in range(3000)])
    conn.commit()
    conn.close()
    options = dict(s3, sse="aws:kms", sse_kms_key_id="alias/lifeboat-test", multipart_chunk_size=5 * 1024 * 1024)
    backup = run_backup(SqliteSource(str(db)), Repository.from_options(s3=options), "big", compression="none")
    assert backup["size"] > 10 * 1024 * 1024
    head = moto.client().head_object(Bucket=s3["bucket"], Key="prod/big/%s/data.db" % backup["id"])
    assert head["ServerSideEncryption"] == "aws:kms" and "alias/lifeboat-test" in head.get("SSEKMSKeyId", "")
    assert head["ContentLength"] == backup["size"]
    repository = Repository.from_options(s3=options)
    small = tmp_path / "small.db"
    make_db(small, rows=50)
    backup = run_backup(SqliteSource(str(small)), repository, "small")
    for name in ("data.db.zst", "manifest.json"):
        head = moto.client().head_object(Bucket=s3["bucket"], Key="prod/small/%s/%s" % (backup["id"], name))
        assert head["ServerSideEncryption"] == "aws:kms" and "alias/lifeboat-test" in head.get("SSEKMSKeyId", "")
    restore_sqlite(repository, "small", str(tmp_path / "small-restored.db"))
    assert count(tmp_path / "small-restored.db") == 50
