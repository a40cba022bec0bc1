"""The runner and damaged or crafted sets (issue #16 items 8 and 9): a damaged newest set fails `lifeboat restore`
and `lifeboat verify` naming it; --skip-damaged (or the job file's restore.skip_damaged) falls back and says what
it skipped, in a warning, the JSON result and the audit log; prune leaves the damaged set and warns; job names
that are paths are refused."""

import json
import os
import sqlite3

import pytest

JOB = "app"


def make_db(path, rows):
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [("row %d" % i,) for i in range(rows)])
    conn.commit()
    conn.close()


def count_rows(path):
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute("SELECT count(*) FROM t").fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def damaged_newest(lifeboat, moto, s3, tmp_path):
    """Two sets in dest and S3; the newer one's manifest is corrupted in both. Returns (older id, newer id)."""
    db = tmp_path / "app.db"
    make_db(db, rows=40)
    job = {"job": JOB, "kind": "sqlite", "path": str(db), "dest": str(tmp_path / "repo"), "s3": s3,
           "retention": {"keep_last": 1}, "prune_after_run": False}
    lifeboat.write_job(job)
    assert lifeboat("run", JOB).returncode == 0
    [older] = os.listdir(str(tmp_path / "repo" / JOB))
    conn = sqlite3.connect(str(db))
    conn.execute("INSERT INTO t (v) VALUES ('newer')")
    conn.commit()
    conn.close()
    assert lifeboat("run", JOB).returncode == 0
    # not sorted ids: two runs within one second share the timestamp, and their random suffixes order them by chance
    [newer] = set(os.listdir(str(tmp_path / "repo" / JOB))) - {older}
    with open(str(tmp_path / "repo" / JOB / newer / "manifest.json"), "w") as handle:
        handle.write('{"format": 1, "id": "trunc')
    moto.client().put_object(Bucket=s3["bucket"], Key="prod/%s/%s/manifest.json" % (JOB, newer),
                             Body=b'{"format": 1, "id": "trunc')
    return job, older, newer


def test_restore_and_verify_fail_on_a_damaged_newest_set(lifeboat, damaged_newest, tmp_path):
    _job, _older, newer = damaged_newest
    target = tmp_path / "restored.db"
    proc = lifeboat("restore", JOB, "--to", str(target), "--json")
    assert proc.returncode == 1, proc.stderr
    assert newer in proc.stderr and "skip_damaged" in proc.stderr and not target.exists()
    result = json.loads(proc.stdout)
    assert result["status"] == "failed" and [d["id"] for d in result["damaged"]] == [newer]
    proc = lifeboat("verify", JOB)
    assert proc.returncode == 1 and newer in proc.stderr
    outcomes = [(e["operation"], e["status"]) for e in lifeboat.audit()]
    assert outcomes[-2:] == [("restore", "failed"), ("verify", "failed")]


def test_skip_damaged_restores_the_older_set_and_says_what_it_skipped(lifeboat, damaged_newest, tmp_path):
    job, older, newer = damaged_newest
    target = tmp_path / "restored.db"
    proc = lifeboat("restore", JOB, "--to", str(target), "--skip-damaged", "--json")
    assert proc.returncode == 0, proc.stderr
    assert count_rows(target) == 40  # the older set
    assert "warning" in proc.stderr and "skipped damaged set %s" % newer in proc.stderr
    result = json.loads(proc.stdout)
    assert result["backup"]["id"] == older and [s["id"] for s in result["skipped"]] == [newer]
    entry = lifeboat.audit()[-1]
    assert (entry["operation"], entry["status"], entry["set"], entry["skipped"]) == ("restore", "ok", older, [newer])

    # the same from the job file's restore object
    lifeboat.write_job(dict(job, restore={"skip_damaged": True}))
    os.unlink(str(target))
    proc = lifeboat("restore", JOB, "--to", str(target))
    assert proc.returncode == 0 and "skipped damaged set %s" % newer in proc.stderr and count_rows(target) == 40
    lifeboat.write_job(dict(job, restore={"skip_damaged": "yes"}))
    proc = lifeboat("restore", JOB, "--to", str(target))
    assert proc.returncode == 2 and "skip_damaged must be true or false" in proc.stderr

    lifeboat.write_job(job)
    proc = lifeboat("verify", JOB, "--skip-damaged")
    assert proc.returncode == 0 and "skipped damaged set %s" % newer in proc.stderr


def test_prune_keeps_the_newest_intact_set_and_warns_about_the_damaged_one(lifeboat, damaged_newest, tmp_path):
    _job, older, newer = damaged_newest
    proc = lifeboat("prune", JOB, "--json")
    assert proc.returncode == 0, proc.stderr
    assert "set %s is damaged and was left in place" % newer in proc.stderr
    result = json.loads(proc.stdout)
    assert result["removed"] == [] and {e["id"] for e in result["kept"]} == {older, newer}
    assert sorted(os.listdir(str(tmp_path / "repo" / JOB))) == sorted([older, newer])


@pytest.mark.parametrize("job", ["../other", "/etc", "a/b"])
def test_job_names_that_are_paths_are_refused(lifeboat, job):
    for command in (["restore", job], ["verify", job], ["list", job]):
        proc = lifeboat(*command)
        assert proc.returncode == 2 and "job name" in proc.stderr and "is not valid" in proc.stderr, proc.stderr
