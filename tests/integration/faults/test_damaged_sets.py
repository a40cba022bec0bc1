"""A truncated artifact and a corrupted manifest: the damage is reported (restore and verify), the live
database is untouched, no staging file is left, another set restores, and the next run works."""

import json
import os
import sqlite3

import pytest

from fault_helpers import count, digest, make_db, staging
from engine.backup import run_backup
from engine.catalog import list_sets
from engine.errors import IntegrityError
from engine.repository import Repository
from engine.sqlite import SqliteSource, restore_sqlite
from engine.verify import verify_set

JOB = "app"


def add_row(path):
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO t (v) VALUES ('more')")
    conn.commit()
    conn.close()


@pytest.fixture
def two_sets(moto, s3, tmp_path):
    db = make_db(tmp_path / "app.db", rows=500, blob=512)
    repository = Repository.from_options(dest=str(tmp_path / "repo"), s3=s3)
    older = run_backup(SqliteSource(db), repository, JOB)
    add_row(db)
    newer = run_backup(SqliteSource(db), repository, JOB)
    add_row(db)
    return db, repository, older, newer


def test_truncated_artifact(two_sets, moto, s3, tmp_path):
    db, repository, older, newer = two_sets
    live = digest(db)
    name = newer["manifest"]["data"]
    local = os.path.join(newer["location"]["local"], name)
    with open(local, "r+b") as handle:
        handle.truncate(newer["size"] // 2)
    key = "prod/app/%s/%s" % (newer["id"], name)
    client = moto.client()
    body = client.get_object(Bucket=s3["bucket"], Key=key)["Body"].read()
    client.put_object(Bucket=s3["bucket"], Key=key, Body=body[:len(body) - 1000])

    for where in (Repository.from_options(dest=str(tmp_path / "repo")), Repository.from_options(s3=s3)):
        with pytest.raises(IntegrityError) as info:
            restore_sqlite(where, JOB, db)
        assert "sha256 mismatch" in info.value.msg and "restore another set" in info.value.msg, info.value.msg
        assert digest(db) == live and staging(tmp_path) == []

    with pytest.raises(IntegrityError) as info:
        verify_set(repository, JOB)
    assert "sha256 mismatch" in info.value.msg

    result = restore_sqlite(repository, JOB, db, backup=older["id"])  # another set still restores
    assert result["backup"]["id"] == older["id"] and count(db) == 500
    assert staging(tmp_path) == []

    add_row(db)
    fresh = run_backup(SqliteSource(db), repository, JOB)  # the next run works, and is the new latest
    assert verify_set(repository, JOB)["backup"]["id"] == fresh["id"]
    result = restore_sqlite(repository, JOB, db)
    assert result["backup"]["id"] == fresh["id"] and count(db) == 501


def test_corrupted_manifest(two_sets, tmp_path):
    db, _repository, older, newer = two_sets
    local_repo = Repository.from_options(dest=str(tmp_path / "repo"))
    live = digest(db)
    manifest = os.path.join(newer["location"]["local"], "manifest.json")
    with open(manifest, "r+b") as handle:
        handle.seek(40)
        handle.write(b"\x00garbage{{{")

    sets = {s.set_id: s for s in list_sets(local_repo, JOB)}
    assert sets[newer["id"]].status == "invalid" and "corrupted" in sets[newer["id"]].error
    assert sets[older["id"]].status == "complete"

    with pytest.raises(IntegrityError) as info:
        restore_sqlite(local_repo, JOB, db, backup=newer["id"])
    assert "manifest" in info.value.msg and "corrupted" in info.value.msg, info.value.msg
    assert digest(db) == live and staging(tmp_path) == []

    # latest skips a set whose manifest cannot be read: the result names the set actually restored.
    result = restore_sqlite(local_repo, JOB, db)
    assert result["backup"]["id"] == older["id"] and count(db) == 500

    # A manifest that parses but lies about the data (edited sha256) is caught before touching live data.
    with open(manifest, "w") as handle:
        document = dict(newer["manifest"], sha256="0" * 64)
        json.dump(document, handle)
    live = digest(db)
    with pytest.raises(IntegrityError) as info:
        restore_sqlite(local_repo, JOB, db)
    assert "sha256 mismatch" in info.value.msg and digest(db) == live

    fresh = run_backup(SqliteSource(db), local_repo, JOB)
    assert restore_sqlite(local_repo, JOB, db)["backup"]["id"] == fresh["id"]
