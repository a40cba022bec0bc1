"""playbooks/backup.yml ("back up now"): every job of the host or the ones picked with -e jobs=..., through the
installed runner where there is one and through the modules otherwise, one summary table, a failed job failing the
play after the table, and the runner's audit entry in both modes (report.yml reads it)."""

import json
import os

from report_helpers import PLAYBOOKS, make_db

BACKUP = os.path.join(PLAYBOOKS, "backup.yml")


def complete_sets(dest, job):
    root = os.path.join(str(dest), job)
    if not os.path.isdir(root):
        return []
    return sorted(name for name in os.listdir(root) if os.path.exists(os.path.join(root, name, "manifest.json")))


def summary_rows(stdout):
    """(job, set, status) of the summary table lines in the play output."""
    rows = []
    for line in stdout.splitlines():
        if not line.strip().startswith('"localhost '):  # the lines of the msg list, not the recap
            continue
        fields = line.strip().strip('",').split()
        if len(fields) >= 7:
            rows.append((fields[1], fields[2], fields[5]))
    return rows


def test_runner_mode_runs_every_job_or_the_picked_ones(ansible, installed_runner, tmp_path, s3, moto):
    runner = installed_runner
    db = make_db(tmp_path / "app.db", 50)
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "a.txt").write_text("a\n")
    runner.write_job({"job": "app-db", "kind": "sqlite", "path": db, "dest": str(tmp_path / "repo"),
                      "metrics_dir": runner.metrics_dir})
    runner.write_job({"job": "uploads", "kind": "directory", "path": str(tmp_path / "uploads"), "s3": s3})
    proc = ansible.playbook(BACKUP, {"lifeboat_bin_path": runner.bin})
    assert proc.returncode == 0, proc.stdout
    app_sets = complete_sets(tmp_path / "repo", "app-db")
    assert len(app_sets) == 1
    listed = json.loads(runner("list", "uploads", "--json").stdout)
    assert len(listed) == 1 and listed[0]["complete_in"] == ["s3"]
    rows = summary_rows(proc.stdout)
    assert rows == [("app-db", app_sets[0], "ok"), ("uploads", listed[0]["id"], "ok")], proc.stdout
    assert "runner" in proc.stdout
    runs = [(e["job"], e["set"], e["status"]) for e in runner.audit() if e["operation"] == "run"]
    assert runs == [("app-db", app_sets[0], "ok"), ("uploads", listed[0]["id"], "ok")]

    # only the picked job runs
    proc = ansible.playbook(BACKUP, {"lifeboat_bin_path": runner.bin, "jobs": "app-db"})
    assert proc.returncode == 0, proc.stdout
    assert len(complete_sets(tmp_path / "repo", "app-db")) == 2
    assert len(json.loads(runner("list", "uploads", "--json").stdout)) == 1
    assert [row[0] for row in summary_rows(proc.stdout)] == ["app-db"]

    # a job that fails (its database is gone) fails the play after the summary, the others still run
    os.unlink(db)
    proc = ansible.playbook(BACKUP, {"lifeboat_bin_path": runner.bin})
    assert proc.returncode != 0
    rows = summary_rows(proc.stdout)
    assert [(job, status) for job, _set, status in rows] == [("app-db", "failed"), ("uploads", "ok")], proc.stdout
    assert "does not exist" in proc.stdout and "backup failed on localhost: app-db" in proc.stdout

    # a name no host has
    proc = ansible.playbook(BACKUP, {"lifeboat_bin_path": runner.bin, "jobs": "uploads,nope"})
    assert proc.returncode != 0 and "no targeted host has the job(s) nope" in proc.stdout, proc.stdout


def test_module_mode_uses_the_inventory_jobs(ansible, tmp_path, s3):
    db = make_db(tmp_path / "app.db", 30)
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "a.txt").write_text("a\n")
    state = tmp_path / "state"
    jobs = [{"name": "app-db", "kind": "sqlite", "options": {"path": db, "dest": str(tmp_path / "repo")}},
            {"name": "uploads", "kind": "directory", "options": {"path": str(tmp_path / "uploads")}},
            {"name": "retired", "kind": "sqlite", "state": "absent"}]
    variables = {"lifeboat_bin_path": str(tmp_path / "no-runner"), "schedule_jobs": jobs,
                 "schedule_default_options": {"s3": s3}, "lifeboat_state_dir": str(state)}
    proc = ansible.playbook(BACKUP, variables)
    assert proc.returncode == 0, proc.stdout
    sets = complete_sets(tmp_path / "repo", "app-db")
    assert len(sets) == 1
    rows = summary_rows(proc.stdout)
    assert [(job, status) for job, _set, status in rows] == [("app-db", "ok"), ("uploads", "ok")], proc.stdout
    assert rows[0][1] == sets[0] and "module" in proc.stdout
    audit = [json.loads(line) for line in (state / "audit.jsonl").read_text().splitlines()]
    assert [(e["operation"], e["job"], e["set"], e["status"], e["via"]) for e in audit] == [
        ("run", "app-db", sets[0], "ok", "backup.yml"), ("run", "uploads", rows[1][1], "ok", "backup.yml")]
    assert audit[0]["bytes"] > 0 and audit[0]["duration_seconds"] >= 0

    proc = ansible.playbook(BACKUP, dict(variables, jobs=["uploads"]))
    assert proc.returncode == 0, proc.stdout
    assert [row[0] for row in summary_rows(proc.stdout)] == ["uploads"]
    assert len(complete_sets(tmp_path / "repo", "app-db")) == 1
