"""A truncated artifact and a corrupted manifest: the damage is reported (restore and verify), the live
database is untouched, no staging file is left, another set restores, and the next run works.

Crafted sets, as whoever can write the repository could plant them: a manifest whose data points outside its set
(relative or absolute) or through a symlink is never read and leaks neither digest nor size of the target; a
damaged newest set is an alarm for latest (skip_damaged falls back and says so); job names that are paths are
refused by every entry point."""

import datetime
import hashlib
import json
import os
import shutil
import sqlite3

import pytest

from fault_helpers import count, digest, make_db, staging
from engine.core import manifest as manifest_mod
from engine.pipeline.backup import run_backup
from engine.pipeline.catalog import list_sets
from engine.core.errors import ConfigError, IntegrityError
from engine.repositories.repository import Repository
from engine.sources.sqlite.restore import restore_sqlite
from engine.sources.sqlite.snapshot import SqliteSource
from engine.pipeline.verify import verify_set

JOB = "app"
UTC = datetime.timezone.utc


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


def corrupt(manifest_path):
    with open(manifest_path, "r+b") as handle:
        handle.seek(40)
        handle.write(b"\x00garbage{{{")


def test_corrupted_newest_manifest_is_an_alarm_not_a_silent_fallback(two_sets, tmp_path):
    db, _repository, older, newer = two_sets
    local_repo = Repository.from_options(dest=str(tmp_path / "repo"))
    live = digest(db)
    manifest = os.path.join(newer["location"]["local"], "manifest.json")
    corrupt(manifest)

    sets = {s.set_id: s for s in list_sets(local_repo, JOB)}
    assert sets[newer["id"]].status == "invalid" and "corrupted" in sets[newer["id"]].error
    assert sets[older["id"]].status == "complete"

    with pytest.raises(IntegrityError) as info:
        restore_sqlite(local_repo, JOB, db, backup=newer["id"])
    assert "manifest" in info.value.msg and "corrupted" in info.value.msg, info.value.msg
    assert digest(db) == live and staging(tmp_path) == []

    # latest no longer passes over the damaged newest set: it fails, names it, and changes nothing
    # (it used to restore the older set with no word about the newer one).
    for operation in (lambda: restore_sqlite(local_repo, JOB, db), lambda: verify_set(local_repo, JOB)):
        with pytest.raises(IntegrityError) as info:
            operation()
        assert newer["id"] in info.value.msg and "damaged" in info.value.msg and "skip_damaged" in info.value.msg
        assert info.value.details["damaged"][0]["id"] == newer["id"]
    assert digest(db) == live and staging(tmp_path) == []

    # Falling back is a choice, and the result says what was skipped and why.
    allowing = Repository.from_options(dest=str(tmp_path / "repo"), skip_damaged=True)
    result = restore_sqlite(allowing, JOB, db)
    assert result["backup"]["id"] == older["id"] and count(db) == 500
    assert [s["id"] for s in result["backup"]["skipped"]] == [newer["id"]]
    assert "corrupted" in result["backup"]["skipped"][0]["error"]

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


def test_a_manifest_copied_from_another_set_is_damaged(two_sets, tmp_path):
    db, _repository, older, newer = two_sets
    local_repo = Repository.from_options(dest=str(tmp_path / "repo"))
    # the older set's manifest placed in the newer set: it parses and its data matches, but it is not this set's
    shutil.copy(os.path.join(older["location"]["local"], "manifest.json"),
                os.path.join(newer["location"]["local"], "manifest.json"))
    os.rename(os.path.join(newer["location"]["local"], newer["manifest"]["data"]),
              os.path.join(newer["location"]["local"], older["manifest"]["data"]))
    sets = {s.set_id: s for s in list_sets(local_repo, JOB)}
    assert sets[newer["id"]].status == "invalid" and "lies in set %s" % newer["id"] in sets[newer["id"]].error
    with pytest.raises(IntegrityError, match=newer["id"]):
        restore_sqlite(local_repo, JOB, db)


# --- crafted sets: what a repository writer could plant (issue #16 items 5, 8, 9) ----------------------------

def file_facts(path):
    with open(path, "rb") as handle:
        raw = handle.read()
    return len(raw), hashlib.sha256(raw).hexdigest()


def craft_set(job_dir, set_id, data, size, sha256, finished, with_file=None):
    """A set whose manifest is well formed and whose size/sha256 are those of `data`'s target, as an attacker
    who can write the repository (and knows or guesses the target) would write it."""
    directory = os.path.join(str(job_dir), set_id)
    os.makedirs(directory)
    if with_file:
        name, target = with_file
        os.symlink(target, os.path.join(directory, name))
    document = manifest_mod.build(
        set_id=set_id, job=os.path.basename(str(job_dir)), kind="sqlite", data=data, source={"path": "/x"},
        started=finished - datetime.timedelta(seconds=1), finished=finished, raw_size=size, size=size, sha256=sha256,
        compression={"algorithm": "none", "level": None})
    with open(os.path.join(directory, "manifest.json"), "wb") as handle:
        handle.write(manifest_mod.dumps(document))
    return directory


@pytest.fixture
def secret_db(tmp_path):
    """A database outside every repository that the restoring user can read and a repository writer cannot."""
    path = tmp_path / "private" / "secret.db"
    path.parent.mkdir()
    make_db(path, rows=7)
    return str(path)


@pytest.mark.parametrize("how", ["relative", "absolute"])
def test_manifest_data_outside_the_set_is_never_read(ansible, tmp_path, secret_db, how):
    repo = tmp_path / "repo"
    db = make_db(tmp_path / "app.db", rows=20)
    good = run_backup(SqliteSource(db), Repository.from_options(dest=str(repo)), JOB)
    size, sha256 = file_facts(secret_db)
    set_id = "20991231T000000Z-beef"  # newer than every real set: what latest would choose
    data = os.path.relpath(secret_db, str(repo / JOB / set_id)) if how == "relative" else secret_db
    assert data.startswith("../" if how == "relative" else "/")
    craft_set(repo / JOB, set_id, data, size, sha256, datetime.datetime(2099, 12, 31, 0, 0, 1, tzinfo=UTC))
    target = tmp_path / "restored.db"
    for selection in ({}, {"backup": set_id}, {"skip_damaged": True}):
        out = ansible.module("lifeboat.backup.sqlite_restore",
                             dict({"job": JOB, "dest": str(repo), "path": str(target)}, **selection))
        if selection.get("skip_damaged"):  # allowed to fall back: restores the real set, and says why
            assert not out.get("failed"), out["msg"]
            assert out["backup"]["id"] == good["id"] and count(target) == 20
            assert [s["id"] for s in out["skipped"]] == [set_id] and "layout" in out["skipped"][0]["error"]
            assert "skipped damaged set %s" % set_id in out["_output"]
            continue
        assert out.get("failed"), out
        assert set_id in out["msg"] and "data.<ext>" in out["msg"], out["msg"]
        for text in (out["msg"], out["_output"]):  # no oracle on the file the manifest pointed at
            assert sha256 not in text and str(size) not in text
        assert not target.exists()
    catalog = ansible.module("lifeboat.backup.backup_catalog", {"job": JOB, "dest": str(repo)})
    entry = [s for s in catalog["sets"] if s["id"] == set_id][0]
    assert entry["status"] == "invalid" and "layout" in entry["error"] and "is damaged" in catalog["_output"]
    assert catalog["latest"]["id"] == good["id"]


def test_a_symlinked_data_object_is_never_followed(tmp_path, secret_db):
    repo = tmp_path / "repo"
    size, sha256 = file_facts(secret_db)
    # dated now, the newest set: later than now + FUTURE_TOLERANCE it would be damaged before its data is opened
    moment = datetime.datetime.now(UTC).replace(microsecond=0)
    set_id = moment.strftime("%Y%m%dT%H%M%SZ") + "-cafe"
    craft_set(repo / JOB, set_id, "data.db", size, sha256, moment + datetime.timedelta(seconds=1),
              with_file=("data.db", secret_db))
    repository = Repository.from_options(dest=str(repo))
    target = tmp_path / "restored.db"
    with pytest.raises(IntegrityError) as info:
        restore_sqlite(repository, JOB, str(target))
    assert "symbolic link" in info.value.msg and sha256 not in info.value.msg and str(size) not in info.value.msg
    assert not target.exists()
    # a set without manifest lends nothing from the link's target either (the listing does not follow it)
    os.unlink(str(repo / JOB / set_id / "manifest.json"))
    listed = [s.to_dict() for s in list_sets(repository, JOB)]
    assert listed[0]["status"] == "incomplete" and listed[0]["size"] != size


def test_damaged_newest_set_on_s3_fails_the_module_and_skip_damaged_reports_it(ansible, moto, s3, tmp_path):
    db = make_db(tmp_path / "app.db", rows=30)
    repository = Repository.from_options(s3=s3)
    older = run_backup(SqliteSource(db), repository, JOB)
    add_row(db)
    newer = run_backup(SqliteSource(db), repository, JOB)
    key = "prod/%s/%s/manifest.json" % (JOB, newer["id"])
    moto.client().put_object(Bucket=s3["bucket"], Key=key, Body=b'{"format": 1, "id": "trunc')
    target = tmp_path / "restored.db"
    common = {"job": JOB, "s3": s3, "path": str(target)}
    out = ansible.module("lifeboat.backup.sqlite_restore", common)
    assert out.get("failed") and newer["id"] in out["msg"] and "skip_damaged" in out["msg"], out
    assert [d["id"] for d in out["damaged"]] == [newer["id"]] and not target.exists()
    out = ansible.module("lifeboat.backup.backup_verify", {"job": JOB, "s3": s3})
    assert out.get("failed") and newer["id"] in out["msg"]
    out = ansible.module("lifeboat.backup.sqlite_restore", dict(common, skip_damaged=True))
    assert not out.get("failed"), out["msg"]
    assert out["backup"]["id"] == older["id"] and count(target) == 30 and "skipped" not in out["backup"]
    assert [s["id"] for s in out["skipped"]] == [newer["id"]] and "corrupted" in out["skipped"][0]["error"]
    assert "skipped damaged set %s" % newer["id"] in out["_output"]
    catalog = ansible.module("lifeboat.backup.backup_catalog", {"job": JOB, "s3": s3})
    assert {s["id"]: s["status"] for s in catalog["sets"]} == {older["id"]: "complete", newer["id"]: "invalid"}
    assert "corrupted" in [s for s in catalog["sets"] if s["id"] == newer["id"]][0]["error"]


def test_retention_never_removes_the_newest_intact_set_for_a_newer_damaged_one(ansible, tmp_path):
    repo = tmp_path / "repo"
    db = make_db(tmp_path / "app.db", rows=10)
    repository = Repository.from_options(dest=str(repo))
    oldest = run_backup(SqliteSource(db), repository, JOB)
    good = run_backup(SqliteSource(db), repository, JOB)
    damaged = run_backup(SqliteSource(db), repository, JOB)
    corrupt(os.path.join(damaged["location"]["local"], "manifest.json"))
    out = ansible.module("lifeboat.backup.backup_retention", {"job": JOB, "dest": str(repo), "keep_last": 1})
    assert not out.get("failed"), out
    assert [e["id"] for e in out["removed"]] == [oldest["id"]]
    kept = {e["id"]: e for e in out["kept"]}
    assert set(kept) == {good["id"], damaged["id"]} and kept[damaged["id"]]["status"] == "invalid"
    assert "newest complete set" in kept[good["id"]]["reasons"][0]
    assert "%s of job %s is damaged" % (damaged["id"], JOB) in out["_output"]
    assert sorted(os.listdir(str(repo / JOB))) == sorted([good["id"], damaged["id"]])


@pytest.mark.parametrize("how", ["parent", "absolute", "nested"])
def test_job_names_that_are_paths_are_refused(ansible, tmp_path, how):
    db = make_db(tmp_path / "app.db", rows=5)
    dest = tmp_path / "repo"
    # a real set at the place the job name would lead to, so nothing but the name check stands in the way
    if how == "parent":
        run_backup(SqliteSource(db), Repository.from_options(dest=str(tmp_path)), "elsewhere")
        job = "../elsewhere"
    elif how == "absolute":
        run_backup(SqliteSource(db), Repository.from_options(dest=str(tmp_path)), "elsewhere")
        job = str(tmp_path / "elsewhere")
    else:
        run_backup(SqliteSource(db), Repository.from_options(dest=str(dest / "a")), "b")
        job = "a/b"
    target = tmp_path / "restored.db"
    for module, args in (("lifeboat.backup.sqlite_restore", {"path": str(target)}),
                         ("lifeboat.backup.backup_catalog", {}), ("lifeboat.backup.backup_verify", {})):
        out = ansible.module(module, dict(args, job=job, dest=str(dest)))
        assert out.get("failed") and "job name" in out["msg"] and "is not valid" in out["msg"], (module, out)
    assert not target.exists()
    with pytest.raises(ConfigError, match="job name"):
        restore_sqlite(Repository.from_options(dest=str(dest)), job, str(target))
    assert not target.exists()
