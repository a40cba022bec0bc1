"""The lifeboat runner as installed on hosts: `python3 <lib>/lifeboat.pyz` against moto S3 and a local
directory, its audit log, metrics, notifications and lock; retention and verify through Ansible."""

import datetime
import fcntl
import json
import os
import sqlite3
import time

from engine.core import manifest as manifest_mod
from engine.core.naming import UTC

JOB = "app"


def make_db(path, rows=200):
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA journal_mode=wal")
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


def s3_keys(moto, s3):
    response = moto.client().list_objects_v2(Bucket=s3["bucket"], Prefix=s3["prefix"] + "/")
    return sorted(item["Key"] for item in response.get("Contents", []))


def test_run_writes_a_set_to_s3_and_local_with_audit_and_metrics(lifeboat, moto, s3, tmp_path):
    db = tmp_path / "app.db"
    make_db(db)
    lifeboat.write_job({"job": JOB, "kind": "sqlite", "path": str(db), "dest": str(tmp_path / "repo"), "s3": s3,
                        "metrics_dir": lifeboat.metrics_dir, "rpo_seconds": 90000, "tags": {"env": "test"}})
    before = time.time()
    proc = lifeboat("run", JOB)
    assert proc.returncode == 0, proc.stderr
    assert "stage stream" in proc.stderr and "lifeboat[" in proc.stderr  # plain timestamped lines off a terminal

    proc = lifeboat("list", JOB, "--json")
    assert proc.returncode == 0, proc.stderr
    sets = json.loads(proc.stdout)
    assert len(sets) == 1 and sets[0]["complete_in"] == ["local", "s3"]
    set_id = sets[0]["id"]
    assert s3_keys(moto, s3) == ["prod/app/%s/data.db.zst" % set_id, "prod/app/%s/manifest.json" % set_id]
    assert sorted(os.listdir(str(tmp_path / "repo" / JOB / set_id))) == ["data.db.zst", "manifest.json"]

    entries = lifeboat.audit()
    assert len(entries) == 1
    entry = entries[0]
    assert (entry["operation"], entry["job"], entry["set"], entry["status"], entry["error"]) == \
        ("run", JOB, set_id, "ok", None)
    assert entry["bytes"] == sets[0]["size"] and entry["duration_seconds"] >= 0

    values = lifeboat.metrics(JOB)
    assert values["lifeboat_backup_last_status"] == 1
    assert before <= values["lifeboat_backup_last_success_timestamp_seconds"] <= time.time()
    assert values["lifeboat_backup_last_run_timestamp_seconds"] == values["lifeboat_backup_last_success_timestamp_seconds"]
    assert values["lifeboat_backup_last_size_bytes"] == sets[0]["size"]
    assert values["lifeboat_backup_rpo_seconds"] == 90000
    assert os.listdir(lifeboat.metrics_dir) == ["lifeboat_app.prom"]

    proc = lifeboat("verify", JOB, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)["verification"]
    assert report["copies"] == {"local": "ok", "s3": "ok"} and report["row_counts"] == {"t": 200}

    target = tmp_path / "elsewhere" / "copy.db"
    proc = lifeboat("restore", JOB, "--backup", set_id, "--to", str(target))
    assert proc.returncode == 0, proc.stderr
    assert count_rows(target) == 200 and count_rows(db) == 200
    expected = [("run", "ok"), ("verify", "ok"), ("restore", "ok")]
    assert [(e["operation"], e["status"]) for e in lifeboat.audit()] == expected


def test_failing_job_fires_the_webhook_and_sets_status_0(lifeboat, listener, tmp_path):
    db = tmp_path / "app.db"
    make_db(db, rows=10)
    lifeboat.write_job({"job": JOB, "kind": "sqlite", "path": str(db), "dest": str(tmp_path / "repo"),
                        "metrics_dir": lifeboat.metrics_dir,
                        "notify": {"webhook_url": listener.url + "/hooks/T000/B000/SECRET",
                                   "healthcheck_url": listener.url + "/ping/uuid", "on": ["failure"]}})
    proc = lifeboat("run", JOB)
    assert proc.returncode == 0, proc.stderr
    assert [(r["method"], r["path"]) for r in listener.requests] == [("GET", "/ping/uuid")]
    success = lifeboat.metrics(JOB)["lifeboat_backup_last_success_timestamp_seconds"]

    db.unlink()
    proc = lifeboat("run", JOB)
    assert proc.returncode == 1
    assert "does not exist" in proc.stderr and "SECRET" not in proc.stderr
    posts = [r for r in listener.requests if r["method"] == "POST"]
    assert len(posts) == 1 and len(listener.requests) == 2  # no healthcheck ping for a failed run
    assert posts[0]["path"] == "/hooks/T000/B000/SECRET" and posts[0]["content_type"] == "application/json"
    body = json.loads(posts[0]["body"])
    assert body["text"].startswith("lifeboat run of job app on ") and "FAILED" in body["text"]
    assert str(db) in body["text"] and str(db) in body["error"]
    assert (body["job"], body["status"], body["operation"]) == (JOB, "failed", "run")

    values = lifeboat.metrics(JOB)
    assert values["lifeboat_backup_last_status"] == 0
    assert values["lifeboat_backup_last_success_timestamp_seconds"] == success
    assert values["lifeboat_backup_last_run_timestamp_seconds"] > success
    assert [(e["operation"], e["status"]) for e in lifeboat.audit()] == [("run", "ok"), ("run", "failed")]


def test_a_broken_webhook_never_masks_the_backup_result(lifeboat, tmp_path):
    db = tmp_path / "app.db"
    make_db(db, rows=5)
    lifeboat.write_job({"job": JOB, "kind": "sqlite", "path": str(db), "dest": str(tmp_path / "repo"),
                        "notify": {"webhook_url": "http://127.0.0.1:9/unreachable", "on": ["failure", "success"],
                                   "timeout": 2}})
    proc = lifeboat("run", JOB)
    assert proc.returncode == 0
    assert "webhook http://127.0.0.1:9/... notification failed" in proc.stderr
    assert len(os.listdir(str(tmp_path / "repo" / JOB))) == 1


def test_second_overlapping_run_exits_75_without_work(lifeboat, tmp_path):
    db = tmp_path / "app.db"
    make_db(db, rows=5)
    repo = tmp_path / "repo"
    lifeboat.write_job({"job": JOB, "kind": "sqlite", "path": str(db), "dest": str(repo),
                        "metrics_dir": lifeboat.metrics_dir})
    lock_path = os.path.join(lifeboat.state_dir, "locks", JOB + ".lock")
    os.makedirs(os.path.dirname(lock_path))
    with open(lock_path, "w") as held:  # the first run, still going
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242\n")
        held.flush()
        proc = lifeboat("run", JOB)
        assert proc.returncode == 75
        assert "another run of job app holds" in proc.stderr and "pid 4242" in proc.stderr
        assert lifeboat("--quiet", "run", JOB).stderr == ""  # cron stays silent about a skipped run
    assert not repo.exists()
    assert os.listdir(lifeboat.metrics_dir) == []
    assert lifeboat.audit() == []
    proc = lifeboat("run", JOB)
    assert proc.returncode == 0, proc.stderr
    assert len(os.listdir(str(repo / JOB))) == 1


def put_set(moto, s3, finished, complete=True, suffix="0001"):
    """A set with a controlled finished time, written the way the engine lays sets out."""
    set_id = finished.strftime("%Y%m%dT%H%M%SZ") + "-" + suffix
    base = "%s/%s/%s/" % (s3["prefix"], JOB, set_id)
    client = moto.client()
    client.put_object(Bucket=s3["bucket"], Key=base + "data.db", Body=b"x")
    if complete:
        document = manifest_mod.build(set_id=set_id, job=JOB, kind="sqlite", data="data.db", source={"path": "/x"},
                                      started=finished - datetime.timedelta(seconds=3), finished=finished,
                                      raw_size=1, size=1, sha256="2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
                                      compression={"algorithm": "none", "level": None})
        client.put_object(Bucket=s3["bucket"], Key=base + "manifest.json", Body=manifest_mod.dumps(document))
    return set_id


def test_retention_on_s3_through_the_module_removes_exactly_the_expected_sets(ansible, moto, s3, lifeboat):
    # sets at 12:00 UTC (same_day at 11:00), so no set falls on another calendar day whatever the time now
    yesterday = datetime.datetime.now(UTC) - datetime.timedelta(days=1)
    now = yesterday.replace(hour=12, minute=0, second=0, microsecond=0)
    day = datetime.timedelta(days=1)
    ago = {n: put_set(moto, s3, now - n * day, suffix="%04x" % n) for n in (1, 2, 3, 10, 40, 100, 500)}
    # two sets on the same day as ago[2] but earlier: not the newest of their day
    same_day = put_set(moto, s3, now - 2 * day - datetime.timedelta(hours=1), suffix="beef")
    leftover = put_set(moto, s3, now - 3 * day, complete=False, suffix="dead")
    args = dict(job=JOB, s3=s3, keep_daily=3, keep_monthly=3, max_age="400d")
    # daily: ago 1, 2, 3. monthly (UTC calendar months): the newest set of each of the 3 most recent months with
    # sets, computed the same way as the engine does below; 500 days is beyond max_age.
    months = {}
    for n in sorted(ago):
        months.setdefault((now - n * day).strftime("%Y-%m"), ago[n])
    monthly = [months[m] for m in sorted(months, reverse=True)[:3]]
    expected_kept = {ago[1], ago[2], ago[3]} | set(monthly)
    expected_kept.discard(ago[500])
    expected_removed = (set(ago.values()) | {same_day}) - expected_kept

    plan = ansible.module("lifeboat.backup.backup_retention", args, check=True)
    assert not plan.get("failed"), plan
    assert {e["id"] for e in plan["removed"]} == expected_removed  # young leftover kept by the default 24h grace
    assert leftover in {e["id"] for e in plan["kept"]}
    assert len(s3_keys(moto, s3)) == 2 * 8 + 1  # check mode removed nothing

    time.sleep(1.1)
    out = ansible.module("lifeboat.backup.backup_retention", dict(args, incomplete_grace="1s"))
    assert not out.get("failed"), out
    assert out["changed"] is True
    assert {e["id"] for e in out["removed"]} == expected_removed | {leftover}
    assert {e["id"] for e in out["kept"]} == expected_kept
    removed_500 = next(e for e in out["removed"] if e["id"] == ago[500])
    assert removed_500["reasons"][0].startswith("older than max_age")
    remaining = {key.split("/")[2] for key in s3_keys(moto, s3)}
    assert remaining == expected_kept
    assert len(s3_keys(moto, s3)) == 2 * len(expected_kept)

    # the runner's prune applies the same engine: nothing more to remove
    lifeboat.write_job({"job": JOB, "kind": "sqlite", "path": "/nonexistent.db", "s3": s3,
                        "retention": {"keep_daily": 3, "keep_monthly": 3, "max_age": "400d"}})
    proc = lifeboat("prune", JOB, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["removed"] == []
    assert lifeboat.audit()[-1]["operation"] == "prune" and lifeboat.audit()[-1]["status"] == "ok"


def test_verify_module_checks_every_copy_and_names_a_corrupted_one(ansible, moto, s3, lifeboat, tmp_path):
    db = tmp_path / "app.db"
    make_db(db, rows=120)
    repo = str(tmp_path / "repo")
    lifeboat.write_job({"job": JOB, "kind": "sqlite", "path": str(db), "dest": repo, "s3": s3})
    assert lifeboat("--quiet", "run", JOB).returncode == 0

    common = dict(job=JOB, dest=repo, s3=s3)
    out = ansible.module("lifeboat.backup.backup_verify", common)
    assert not out.get("failed"), out
    assert out["changed"] is False
    report = out["verification"]
    assert report["copies"] == {"local": "ok", "s3": "ok"}
    assert report["integrity_check"] == "ok" and report["row_counts"] == {"t": 120} and report["row_counts_match"]

    set_id = out["backup"]["id"]
    key = "%s/%s/%s/data.db.zst" % (s3["prefix"], JOB, set_id)
    moto.client().put_object(Bucket=s3["bucket"], Key=key, Body=b"not the data")
    out = ansible.module("lifeboat.backup.backup_verify", common)
    assert out.get("failed")
    assert "sha256 mismatch" in out["msg"] and "s3:" in out["msg"] and "local:" not in out["msg"]
    assert out["verification"]["copies"]["local"] == "ok"
    proc = lifeboat("verify", JOB)
    assert proc.returncode == 1 and "sha256 mismatch" in proc.stderr
    assert lifeboat.audit()[-1]["status"] == "failed"
