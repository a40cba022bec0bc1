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
