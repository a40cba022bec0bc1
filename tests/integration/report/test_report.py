"""playbooks/report.yml: one fleet page. Two hosts (both local connections): one with the runner installed (its job
files, `lifeboat list`, audit log, metrics and drill history), one with inventory jobs only (backup_catalog). The JSON
holds the figures; headless Chromium renders the HTML, and the page shows the same set ids, ages and statuses."""

import html.parser
import json
import os
import re
import shutil
import subprocess
import tempfile

from report_helpers import PLAYBOOKS, make_db

REPORT = os.path.join(PLAYBOOKS, "report.yml")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def chromium(*args):
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "chromium is not installed: apt-get install -y chromium"
    profile = tempfile.mkdtemp(prefix="lifeboat-chromium-")
    try:
        return subprocess.run([binary] + CHROMIUM_FLAGS + ["--user-data-dir=" + profile] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class Rows(html.parser.HTMLParser):
    """Job rows of the rendered DOM: their data-* attributes and the text of the cells with a known class."""

    def __init__(self):
        super().__init__()
        self.rows, self._row, self._field = [], None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "tr" and "job" in classes:
            self._row = {"attrs": attrs, "text": {}}
            self.rows.append(self._row)
        elif self._row is not None:
            for name in ("status", "set-id", "age", "restore", "verify-status"):
                if name in classes:
                    self._field = name
                    self._row["text"][name] = ""

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None
        if tag in ("td", "span", "code"):
            self._field = None

    def handle_data(self, data):
        if self._row is not None and self._field:
            self._row["text"][self._field] += data


def duration(seconds):
    """The page's duration format (report.html.j2's macro)."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return "%.2f s" % seconds
    if seconds < 60:
        return "%.1f s" % seconds
    if seconds < 3600:
        return "%d min %d s" % (seconds // 60, seconds % 60)
    if seconds < 86400:
        return "%d h %d min" % (seconds // 3600, (seconds % 3600) // 60)
    return "%d d %d h" % (seconds // 86400, (seconds % 86400) // 3600)


def test_fleet_report(ansible, installed_runner, tmp_path, s3, playbooks=PLAYBOOKS):
    runner = installed_runner
    # host "localhost": the runner with two jobs, app-db (local dest, three sets that grow) and uploads (moto S3)
    db = make_db(tmp_path / "app.db", 20)
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "a.txt").write_text("a\n" * 100)
    runner.write_job({"job": "app-db", "kind": "sqlite", "path": db, "dest": str(tmp_path / "repo"),
                      "metrics_dir": runner.metrics_dir, "rpo_seconds": 3600, "rto": 600})
    runner.write_job({"job": "uploads", "kind": "directory", "path": str(tmp_path / "uploads"), "s3": s3,
                      "metrics_dir": runner.metrics_dir})
    for rows in (0, 200, 400):
        make_db(tmp_path / "app.db", rows)
        assert runner("run", "app-db").returncode == 0
    assert runner("run", "uploads").returncode == 0
    verify = runner("verify", "app-db")
    assert verify.returncode == 0, verify.stderr
    app_sets = json.loads(runner("list", "app-db", "--json").stdout)
    upload_sets = json.loads(runner("list", "uploads", "--json").stdout)
    # a drill of app-db on that host: its history line
    proc = ansible.playbook(os.path.join(playbooks, "dr_drill.yml"), {
        "lifeboat_repository": {"dest": str(tmp_path / "repo")}, "lifeboat_state_dir": runner.state_dir,
        "lifeboat_drill_jobs": [{"job": "app-db", "kind": "sqlite"}], "lifeboat_drill_hosts": "localhost"})
    assert proc.returncode == 0, proc.stdout

    # host "edge": no runner; an inventory job with a set in a local dest, and one with no set at all
    edge_db = make_db(tmp_path / "edge.db", 10)
    edge_jobs = [{"name": "edge-db", "kind": "sqlite", "options": {"path": edge_db, "dest": str(tmp_path / "edge")},
                  "rpo_seconds": 86400},
                 {"name": "edge-new", "kind": "sqlite", "options": {"path": edge_db, "dest": str(tmp_path / "edge")}}]
    proc = ansible.playbook(os.path.join(playbooks, "backup.yml"), {
        "lifeboat_backup_hosts": "localhost", "lifeboat_bin_path": str(tmp_path / "none"), "schedule_jobs": edge_jobs[:1],
        "lifeboat_state_dir": str(tmp_path / "edge-state")})
    assert proc.returncode == 0, proc.stdout
    with open(ansible.inventory, "a") as handle:
        handle.write("edge ansible_connection=local ansible_python_interpreter=%s\n"
                     % open(ansible.inventory).read().split("ansible_python_interpreter=")[1].split()[0])
    host_vars = os.path.join(os.path.dirname(ansible.inventory), "host_vars")
    os.makedirs(host_vars)
    with open(os.path.join(host_vars, "localhost.json"), "w") as handle:
        json.dump({"lifeboat_bin_path": runner.bin, "lifeboat_state_dir": runner.state_dir}, handle)
    with open(os.path.join(host_vars, "edge.json"), "w") as handle:
        json.dump({"lifeboat_bin_path": str(tmp_path / "none"), "schedule_jobs": edge_jobs,
                   "lifeboat_state_dir": str(tmp_path / "edge-state"),
                   "schedule_metrics_dir": str(tmp_path / "edge-metrics")}, handle)

    out = tmp_path / "report"
    proc = ansible.playbook(REPORT, {"lifeboat_report_dir": str(out)})
    assert proc.returncode == 0, proc.stdout
    assert "fleet report: %s/index.html" % out in proc.stdout
    report = json.loads((out / "report.json").read_text())
    hosts = {host["host"]: host for host in report["hosts"]}
    assert set(hosts) == {"localhost", "edge"} and report["unreachable"] == []
    assert hosts["localhost"]["mode"] == "runner" and hosts["edge"]["mode"] == "modules"
    jobs = {(host["host"], job["job"]): job for host in report["hosts"] for job in host["jobs"]}
    assert set(jobs) == {("localhost", "app-db"), ("localhost", "uploads"), ("edge", "edge-db"), ("edge", "edge-new")}

    app = jobs["localhost", "app-db"]
    assert app["latest"]["id"] == app_sets[0]["id"] and app["sets"]["complete"] == 3
    assert [point["id"] for point in app["size_trend"]] == [s["id"] for s in reversed(app_sets)]
    assert app["size_trend"][0]["size"] < app["size_trend"][-1]["size"]  # the database grew
    assert 0 <= app["age_seconds"] < 600 and app["rpo_seconds"] == 3600 and app["rpo_ok"]
    assert app["last_run"]["status"] == "ok" and app["last_run"]["set"] == app_sets[0]["id"]
    assert app["last_verify"]["status"] == "ok" and app["last_verified_set"] == app_sets[0]["id"]
    assert 0 <= app["verify_age_seconds"] < 600 and app["verify_objective_seconds"] == 691200
    assert app["restore_seconds"] is not None and app["restore_seconds"] >= 0
    assert app["last_drill"]["status"] == "ok" and app["last_drill"]["set"] == app_sets[0]["id"]
    assert app["status"] == "green" and app["reasons"] == [], app
    uploads = jobs["localhost", "uploads"]
    assert uploads["latest"]["id"] == upload_sets[0]["id"] and uploads["latest"]["complete_in"] == ["s3"]
    assert uploads["rpo_seconds"] == 93600 and uploads["last_verify"] is None
    assert uploads["status"] == "amber" and uploads["reasons"] == ["never test-restored"]
    edge = jobs["edge", "edge-db"]
    assert edge["latest"] and edge["rpo_seconds"] == 86400 and edge["last_run"]["via"] == "backup.yml"
    assert edge["status"] == "amber"
    new = jobs["edge", "edge-new"]
    assert new["latest"] is None and new["status"] == "red" and "no complete set" in new["reasons"]
    assert report["counts"] == {"green": 1, "amber": 2, "red": 1}
    assert [drill["status"] for drill in hosts["localhost"]["drills"]] == ["ok"] and hosts["edge"]["drills"] == []

    page = str(out / "index.html")
    text = open(page).read()
    assert "<script" not in text.lower() and "@media print" in text
    png = str(tmp_path / "report.png")
    shot = chromium("--screenshot=" + png, "--window-size=1400,1000", "file://" + page)
    assert shot.returncode == 0 and os.path.getsize(png) > 20000, shot.stderr
    with open(png, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    shutil.copy(png, os.environ.get("LIFEBOAT_REPORT_SCREENSHOT", str(tmp_path / "report-copy.png")))
    pdf = str(tmp_path / "report.pdf")  # printed: the print CSS, no JavaScript needed
    printed = chromium("--print-to-pdf=" + pdf, "--no-pdf-header-footer", "file://" + page)
    assert printed.returncode == 0 and open(pdf, "rb").read(5) == b"%PDF-" and os.path.getsize(pdf) > 10000, printed.stderr
    dom = chromium("--dump-dom", "file://" + page)
    assert dom.returncode == 0 and "</html>" in dom.stdout, dom.stderr
    parser = Rows()
    parser.feed(dom.stdout)
    assert len(parser.rows) == 4 and len(re.findall(r"<svg class=\"trend\"", dom.stdout)) == 1  # app-db's 3 sets
    for row in parser.rows:
        job = jobs[row["attrs"]["data-host"], row["attrs"]["data-job"]]
        assert row["attrs"]["data-status"] == job["status"] and row["text"]["status"].strip() == job["status"]
        assert row["attrs"]["data-set"] == (job["latest"]["id"] if job["latest"] else "")
        if job["latest"]:
            assert row["text"]["set-id"] == job["latest"]["id"]
            assert float(row["attrs"]["data-age-seconds"]) == job["age_seconds"]
        assert row["text"]["age"] == duration(job["age_seconds"])
        assert row["text"]["restore"] == duration(job["restore_seconds"])
        assert row["text"]["verify-status"] == (job["last_verify"]["status"] if job["last_verify"] else "never")
    counts = re.search(r'id="counts" data-green="(\d+)" data-amber="(\d+)" data-red="(\d+)"', dom.stdout)
    assert counts and tuple(map(int, counts.groups())) == (1, 2, 1)
