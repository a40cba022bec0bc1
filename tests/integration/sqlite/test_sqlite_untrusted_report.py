"""Names from a set reach the operator's browser through the drill's HTML report (a SQLite table name from the set
is a row_counts key, a set id, an error message): every value the report renders is HTML-escaped, so a repository
writer cannot put markup or script into the report (playbooks/templates/drill_report.html.j2)."""

import os

import jinja2

TEMPLATES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "playbooks", "templates")
EVIL = "<script>alert(1)</script>"


def test_every_value_of_the_drill_report_is_escaped():
    job = {"job": EVIL, "kind": EVIL, "tier": EVIL, "set": EVIL, "set_finished": EVIL, "rto_ok": True,
           "rto_seconds": 1.0, "rto_objective_seconds": 60, "rpo_ok": False, "rpo_seconds": 2.0,
           "rpo_objective_seconds": 60, "verified": True, "status": EVIL, "error": EVIL,
           "verification": {"integrity_check": EVIL, "row_counts": {EVIL: EVIL}, "files": EVIL, "directories": EVIL,
                            "total_bytes": EVIL, "status": EVIL, "copies": {EVIL: EVIL}}}
    failed = dict(job, verified=False)
    report = {"host": EVIL, "started": EVIL, "finished": EVIL, "duration_seconds": 3.0, "status": "failed",
              "problems": [EVIL], "jobs": [job, failed], "objectives": {EVIL: {"rto": 1, "rpo": 2}}}
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES))
    html = env.get_template("drill_report.html.j2").render(lifeboat_drill_report=report)
    assert "<script" not in html
    assert html.count("&lt;script&gt;") >= 20


def test_every_value_of_the_fleet_report_is_escaped():
    """playbooks/templates/report.html.j2: set ids (the size trend's tooltip), statuses and times from audit logs and
    drill histories, job and host names: nothing rendered from a host or a set can open markup in the page."""
    run = {"status": EVIL, "ts": EVIL, "duration_seconds": 1.0, "via": EVIL, "mode": EVIL}
    drill = {"status": EVIL, "finished": EVIL, "rto_seconds": 1.0, "jobs": [{"rto_seconds": 2.0}]}
    job = {"job": EVIL, "kind": EVIL, "repository": EVIL, "status": EVIL, "reasons": [EVIL],
           "latest": {"id": EVIL, "finished": EVIL, "size": 10}, "sets": {"complete": 2, "invalid": 1},
           "age_seconds": 5, "rpo_seconds": 60, "rpo_ok": False, "restore_seconds": 1.0, "rto_seconds": 2.0,
           "verify_age_seconds": None, "verify_objective_seconds": 60,
           "size_trend": [{"id": EVIL, "size": 10}, {"id": EVIL, "size": 20}],
           "last_run": run, "last_verify": run, "last_drill": drill}
    report = {"generated": EVIL, "counts": {"red": 1, "amber": 0, "green": 0}, "unreachable": [EVIL],
              "hosts": [{"host": EVIL, "mode": "runner", "jobs": [job], "drills": [drill]}]}
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES))
    env.filters["flatten"] = lambda lists: [item for items in lists for item in items]  # Ansible's, one level deep
    html = env.get_template("report.html.j2").render(lifeboat_report=report)
    assert "<script" not in html
    assert html.count("&lt;script&gt;") >= 20
