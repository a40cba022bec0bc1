"""playbooks/dr_drill.yml: restore the latest sets into scratch, measure RTO/RPO against the tier objectives,
write JSON + HTML reports and an audit line, fail when an objective is missed; the report renders in Chromium."""

import json
import os
import shutil
import struct
import subprocess
import tempfile
import zlib

from runbook_helpers import make_app_db, make_backup


def make_sets(tmp_path):
    live = tmp_path / "live"
    (live / "uploads" / "db").mkdir(parents=True)
    db = make_app_db(live / "app.db", rows=321)
    make_app_db(live / "uploads" / "db" / "inner.db", rows=12)  # a SQLite file inside the directory
    (live / "uploads" / "report.txt").write_text("quarterly\n")
    repo = tmp_path / "repo"
    sets = {"app-db": make_backup("sqlite", "app-db", repo, db),
            "uploads": make_backup("directory", "uploads", repo, live / "uploads")}
    return repo, sets


def run_drill(ansible, playbooks, tmp_path, repo, **extra):
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    extra_vars = {
        "lifeboat_repository": {"dest": str(repo)},
        "lifeboat_state_dir": str(tmp_path / "state"),
        "lifeboat_drill_scratch_dir": str(scratch),
        "lifeboat_drill_jobs": [{"job": "app-db", "kind": "sqlite", "tier": "critical"},
                                {"job": "uploads", "kind": "directory"}],
    }
    extra_vars.update(extra)
    proc = ansible.playbook(os.path.join(playbooks, "dr_drill.yml"), extra_vars)
    reports = sorted((tmp_path / "state" / "drills").glob("drill-*.json")) if (tmp_path / "state" / "drills").exists() else []
    assert len(reports) == 1, proc.stdout
    report = json.loads(reports[0].read_text())
    html = str(reports[0])[:-len(".json")] + ".html"
    assert os.listdir(str(scratch)) == [], "scratch data left behind"
    audit = [json.loads(line) for line in (tmp_path / "state" / "audit.jsonl").read_text().splitlines()]
    return proc, report, html, audit


def test_drill_passes_with_fresh_sets(ansible, tmp_path, playbooks):
    repo, sets = make_sets(tmp_path)
    proc, report, html, audit = run_drill(ansible, playbooks, tmp_path, repo)
    assert proc.returncode == 0, proc.stdout
    assert report["status"] == "ok" and report["problems"] == []
    jobs = {job["job"]: job for job in report["jobs"]}
    db = jobs["app-db"]
    assert db["set"] == sets["app-db"]["id"] and db["tier"] == "critical" and db["status"] == "ok"
    assert db["verification"]["integrity_check"] == "ok"
    assert db["verification"]["row_counts"] == {"meta": 1, "items": 321}
    assert db["rto_objective_seconds"] == 3600 and db["rpo_objective_seconds"] == 900
    assert 0 < db["rto_seconds"] < 3600 and 0 < db["rpo_seconds"] < 900 and db["rto_ok"] and db["rpo_ok"]
    up = jobs["uploads"]
    assert up["set"] == sets["uploads"]["id"] and up["tier"] == "normal" and up["status"] == "ok"
    assert up["verification"]["sqlite"] == {"db/inner.db": "ok"}
    assert up["rto_objective_seconds"] == 86400 and up["rpo_objective_seconds"] == 86400
    assert audit[-1]["operation"] == "drill" and audit[-1]["status"] == "ok"
    assert {j["job"]: j["set"] for j in audit[-1]["jobs"]} == {"app-db": sets["app-db"]["id"], "uploads": sets["uploads"]["id"]}
    page = open(html).read()
    assert "PASSED" in page and "FAILED" not in page and sets["app-db"]["id"] in page


def test_drill_fails_when_rpo_is_missed_and_report_renders(ansible, tmp_path, playbooks):
    repo, sets = make_sets(tmp_path)
    # A zero RPO for the critical tier: the fresh set is already "too old".
    proc, report, html, audit = run_drill(ansible, playbooks, tmp_path, repo,
                                          lifeboat_drill_objectives={"critical": {"rpo": "0s"}})
    assert proc.returncode != 0, proc.stdout
    assert "DR drill failed" in proc.stdout and "app-db: RPO" in proc.stdout
    assert "exceeds the critical objective of 0.0 s" in proc.stdout
    assert report["status"] == "failed"
    jobs = {job["job"]: job for job in report["jobs"]}
    assert jobs["app-db"]["status"] == "missed" and not jobs["app-db"]["rpo_ok"] and jobs["app-db"]["rto_ok"]
    assert jobs["app-db"]["rto_objective_seconds"] == 3600  # the rest of the tier keeps its default
    assert jobs["uploads"]["status"] == "ok"
    assert audit[-1]["operation"] == "drill" and audit[-1]["status"] == "failed" and "app-db: RPO" in audit[-1]["error"]
    page = open(html).read()
    assert "OBJECTIVE MISSED" in page and "PASS" in page

    png = str(tmp_path / "report.png")
    screenshot(html, png)
    assert os.path.getsize(png) > 10000
    width, height, pixels = read_png(png)
    assert (width, height) == (1200, 800)
    red = sum(1 for p in pixels if p == (0xff, 0xeb, 0xe9))   # td.bad / failed banner background
    green = sum(1 for p in pixels if p == (0xda, 0xfb, 0xe1))  # td.ok background
    assert red > 2000 and green > 2000, (red, green)
    shutil.copy(png, os.environ.get("LIFEBOAT_DRILL_SCREENSHOT", str(tmp_path / "report-copy.png")))


def test_drill_reports_a_jobs_own_objective_as_its_own(ansible, tmp_path, playbooks):
    repo, sets = make_sets(tmp_path)
    # app-db (critical tier: RPO 15 min) sets its own RPO of 0 s: the fresh set misses it, and the report
    # names that objective, not the tier's.
    proc, report, html, audit = run_drill(ansible, playbooks, tmp_path, repo, lifeboat_drill_jobs=[
        {"job": "app-db", "kind": "sqlite", "tier": "critical", "rpo": "0s"}, {"job": "uploads", "kind": "directory"}])
    assert proc.returncode != 0, proc.stdout
    db = {job["job"]: job for job in report["jobs"]}["app-db"]
    assert db["status"] == "missed" and not db["rpo_ok"] and db["rto_ok"]
    assert db["rpo_objective_seconds"] == 0 and db["rpo_objective_source"] == "job"
    assert db["rto_objective_seconds"] == 3600 and db["rto_objective_source"] == "tier"
    assert len(db["problems"]) == 1 and "exceeds the job's own objective of 0.0 s" in db["problems"][0], db["problems"]
    assert "critical objective" not in proc.stdout
    page = open(html).read()
    assert "(job&#39;s own)" in page or "(job's own)" in page


HISTORY_KEYS = {"format", "host", "started", "finished", "duration_seconds", "status", "problems", "report", "jobs"}
HISTORY_JOB_KEYS = {"job", "kind", "tier", "status", "set", "set_finished", "size", "rto_seconds",
                    "rto_objective_seconds", "rto_ok", "rpo_seconds", "rpo_objective_seconds", "rpo_ok"}


def test_two_drills_leave_two_history_lines(ansible, tmp_path, playbooks):
    repo, sets = make_sets(tmp_path)
    history = tmp_path / "state" / "drills" / "history.jsonl"
    proc, first, _html, _audit = run_drill(ansible, playbooks, tmp_path, repo)
    assert proc.returncode == 0, proc.stdout
    # the second drill misses app-db's RPO and writes its report elsewhere; the history stays where it was
    proc = ansible.playbook(os.path.join(playbooks, "dr_drill.yml"), {
        "lifeboat_repository": {"dest": str(repo)}, "lifeboat_state_dir": str(tmp_path / "state"),
        "lifeboat_drill_report_dir": str(tmp_path / "second"), "lifeboat_drill_history_file": str(history),
        "lifeboat_drill_jobs": [{"job": "app-db", "kind": "sqlite", "tier": "critical", "rpo": "0s"},
                                {"job": "uploads", "kind": "directory"}]})
    assert proc.returncode != 0, proc.stdout
    (second_report,) = (tmp_path / "second").glob("drill-*.json")
    lines = [json.loads(line) for line in history.read_text().splitlines()]
    assert len(lines) == 2
    for line in lines:
        assert set(line) == HISTORY_KEYS and line["format"] == 1 and line["host"] == "localhost"
        assert [job["job"] for job in line["jobs"]] == ["app-db", "uploads"]
        assert all(set(job) == HISTORY_JOB_KEYS for job in line["jobs"]), line["jobs"]
    assert lines[0]["status"] == "ok" and lines[0]["problems"] == [] and lines[0]["finished"] == first["finished"]
    assert lines[0]["report"].endswith(".json") and json.load(open(lines[0]["report"])) == first
    assert lines[1]["status"] == "failed" and lines[1]["report"] == str(second_report)
    db = lines[1]["jobs"][0]
    assert db["status"] == "missed" and db["rpo_ok"] is False and db["rto_ok"] is True
    assert db["set"] == sets["app-db"]["id"] and db["rpo_objective_seconds"] == 0 and db["rpo_seconds"] > 0
    assert lines[0]["finished"] < lines[1]["started"]
    assert oct(history.stat().st_mode & 0o777) == "0o640"


def test_drill_refuses_a_job_objective_it_cannot_read(ansible, tmp_path, playbooks):
    repo, _sets = make_sets(tmp_path)
    proc = ansible.playbook(os.path.join(playbooks, "dr_drill.yml"), {
        "lifeboat_repository": {"dest": str(repo)}, "lifeboat_state_dir": str(tmp_path / "state"),
        "lifeboat_drill_jobs": [{"job": "app-db", "kind": "sqlite", "rpo": "5 minutes"}]})
    assert proc.returncode != 0 and "objectives are seconds or a number with s, m, h or d" in proc.stdout, proc.stdout
    assert not (tmp_path / "state" / "drills").exists()


def screenshot(html, png):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is not installed: apt-get install -y chromium"
    profile = tempfile.mkdtemp(prefix="lifeboat-chromium-")
    try:
        proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                               "--disable-background-networking", "--disable-component-update", "--disable-sync",
                               "--hide-scrollbars", "--user-data-dir=" + profile, "--screenshot=" + png,
                               "--window-size=1200,800", "file://" + html],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0 and os.path.exists(png), proc.stdout


def read_png(path):
    """(width, height, [(r, g, b), ...]) of an 8-bit RGB/RGBA PNG, decoded with zlib only."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    bpp = 3 if color == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xff
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xff
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xff
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xff
        rows.append(line)
        prev = line
    pixels = [tuple(row[x * bpp:x * bpp + 3]) for row in rows for x in range(width)]
    return width, height, pixels
