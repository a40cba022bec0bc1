"""The monitoring role's Prometheus rules and Grafana dashboard: rendered through ansible-playbook
(as the role would on a host), then parsed and checked in Python (structure, metric names, label
selectors, thresholds), checked by `promtool check rules` and run through the unit tests of
tests/promtool/ (`promtool test rules`: input series in, expected alerts with labels and annotations out)."""

import glob
import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from support.ansible import REPO, AnsibleRunner, collections_root

ROLE = os.path.join(REPO, "roles", "monitoring")
METRICS = {"lifeboat_backup_last_status", "lifeboat_backup_last_success_timestamp_seconds",
           "lifeboat_backup_rpo_seconds", "lifeboat_backup_last_run_timestamp_seconds",
           "lifeboat_backup_last_duration_seconds", "lifeboat_backup_last_size_bytes",
           "lifeboat_verify_last_success_timestamp_seconds", "lifeboat_verify_last_status",
           "lifeboat_verify_restore_seconds", "lifeboat_verify_objective_seconds", "lifeboat_backup_rto_seconds"}
DURATION = re.compile(r"^[0-9]+[smhdw]$")
PROMQL_FUNCTIONS = {"time", "absent", "on"}
PROMTOOL_TESTS = os.path.join(REPO, "tests", "promtool")
ALERTS = {"LifeboatBackupFailed", "LifeboatBackupTooOld", "LifeboatBackupMetricsMissing", "BackupVerifyFailed",
          "BackupUntested", "RestoreSlowerThanObjective"}


def render(tmp_path, **variables):
    runner = AnsibleRunner(str(tmp_path / "ansible"), collections_root(str(tmp_path)))
    play = tmp_path / "play.yml"
    play.write_text("- hosts: localhost\n  gather_facts: false\n  roles:\n    - lifeboat.backup.monitoring\n")
    variables.setdefault("monitoring_textfile_dir", str(tmp_path / "textfile"))
    variables.setdefault("monitoring_rules_dir", str(tmp_path / "rules"))
    result = runner.playbook(str(play), extra_vars=variables)
    assert result.returncode == 0, result.stdout
    text = (tmp_path / "rules" / "lifeboat.rules.yml").read_text()
    return text, yaml.safe_load(text), result


def check_expression(expr):
    """Balanced brackets, known metrics and functions only, well-formed label matchers."""
    depth = {"(": 0, "{": 0}
    pairs = {")": "(", "}": "{"}
    in_string = False
    previous = ""
    for char in expr:
        if char == '"' and previous != "\\":
            in_string = not in_string
        elif not in_string and char in depth:
            depth[char] += 1
        elif not in_string and char in pairs:
            depth[pairs[char]] -= 1
            assert depth[pairs[char]] >= 0, expr
        previous = char
    assert not in_string and depth == {"(": 0, "{": 0}, expr
    words = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*[({]", expr)) | set(re.findall(r"\blifeboat_[a-z_]+", expr))
    assert words <= METRICS | PROMQL_FUNCTIONS, words - METRICS - PROMQL_FUNCTIONS
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        for matcher in re.findall(r'[a-z_]+\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"', matchers):
            assert matcher
        matcher = r'\s*[a-z_]+\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*'
        assert re.fullmatch(r"%s(?:,%s)*" % (matcher, matcher), matchers), matchers


def rules_by_name(document):
    assert list(document) == ["groups"]
    (group,) = document["groups"]
    assert group["name"] == "lifeboat-backups"
    named = {}
    for rule in group["rules"]:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
        assert DURATION.match(rule["for"]), rule["for"]
        assert rule["alert"] in ALERTS, rule["alert"]
        assert rule["labels"]["severity"] == "critical"
        assert all(isinstance(value, str) for value in rule["labels"].values()), rule["labels"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        check_expression(rule["expr"])
        named.setdefault(rule["alert"], []).append(rule)
    return named


def test_rules_per_job(tmp_path):
    text, document, _result = render(tmp_path, monitoring_jobs=[
        {"name": "app-db", "rpo_seconds": 7200, "labels": {"team": "web"}, "verify_objective_seconds": 86400,
         "rto_seconds": 600},
        {"name": "app-db.nightly"}])
    assert text.startswith("#")  # ansible_managed comment
    assert "&id0" not in text and "*id0" not in text  # no YAML aliases
    named = rules_by_name(document)
    assert set(named) == ALERTS
    assert [rule["expr"] for rule in named["LifeboatBackupFailed"]] == ["lifeboat_backup_last_status == 0"]
    too_old = {rule["expr"]: rule for rule in named["LifeboatBackupTooOld"]}
    app = too_old['time() - lifeboat_backup_last_success_timestamp_seconds{exported_job="app-db"} > 7200']
    assert app["labels"] == {"severity": "critical", "team": "web", "rpo_seconds": "7200", "exported_job": "app-db"}
    # the listed job's own verify objective and RTO; the generic rules leave it out
    untested = {rule["expr"]: rule for rule in named["BackupUntested"]}
    own = untested['time() - lifeboat_verify_last_success_timestamp_seconds{exported_job="app-db"} > 86400']
    assert own["labels"] == {"severity": "critical", "team": "web", "verify_objective_seconds": "86400",
                             "exported_job": "app-db"}
    assert ('time() - lifeboat_verify_last_success_timestamp_seconds{exported_job!~"app\\\\-db"} '
            '> lifeboat_verify_objective_seconds' in untested)
    slower = {rule["expr"]: rule for rule in named["RestoreSlowerThanObjective"]}
    assert set(slower) == {'lifeboat_verify_restore_seconds{exported_job="app-db"} > 600',
                           'lifeboat_verify_restore_seconds{exported_job!~"app\\\\-db"} > lifeboat_backup_rto_seconds'}
    promtool_check(tmp_path / "rules" / "lifeboat.rules.yml")
    assert 'time() - lifeboat_backup_last_success_timestamp_seconds{exported_job="app-db.nightly"} > 93600' in too_old
    # jobs that are not listed: their own RPO metric, else the default threshold; the listed ones are excluded
    others = '{exported_job!~"app\\\\-db|app\\\\-db\\\\.nightly"}'
    assert ("time() - lifeboat_backup_last_success_timestamp_seconds%s > lifeboat_backup_rpo_seconds" % others
            in too_old)
    assert ("(time() - lifeboat_backup_last_success_timestamp_seconds%s > 93600) unless lifeboat_backup_rpo_seconds"
            % others in too_old)
    missing = {rule["expr"]: rule for rule in named["LifeboatBackupMetricsMissing"]}
    assert missing['absent(lifeboat_backup_last_status{exported_job="app-db"})']["labels"]["exported_job"] == "app-db"
    assert 'absent(lifeboat_backup_last_status{exported_job="app-db.nightly"})' in missing
    # annotations keep Prometheus templating for the alert, not Ansible's
    assert "{{ $labels.exported_job }}" in named["LifeboatBackupFailed"][0]["annotations"]["summary"]
    # a second run changes nothing
    _text, again, result = render(tmp_path, monitoring_jobs=[
        {"name": "app-db", "rpo_seconds": 7200, "labels": {"team": "web"}, "verify_objective_seconds": 86400,
         "rto_seconds": 600},
        {"name": "app-db.nightly"}])
    assert again == document and "changed=0" in result.stdout


def test_rules_without_jobs_and_other_label(tmp_path):
    _text, document, _result = render(tmp_path, monitoring_job_label="job", monitoring_default_rpo_seconds=3600,
                                      monitoring_alert_labels={"team": "ops"}, monitoring_too_old_for="15m")
    named = rules_by_name(document)
    exprs = sorted(rule["expr"] for rules in named.values() for rule in rules)
    assert exprs == sorted([
        "lifeboat_backup_last_status == 0",
        "time() - lifeboat_backup_last_success_timestamp_seconds > lifeboat_backup_rpo_seconds",
        "(time() - lifeboat_backup_last_success_timestamp_seconds > 3600) unless lifeboat_backup_rpo_seconds",
        "time() - lifeboat_backup_last_run_timestamp_seconds > 2 * lifeboat_backup_rpo_seconds",
        "lifeboat_verify_last_status == 0",
        "time() - lifeboat_verify_last_success_timestamp_seconds > lifeboat_verify_objective_seconds",
        "(time() - lifeboat_verify_last_success_timestamp_seconds > 691200) unless lifeboat_verify_objective_seconds",
        "lifeboat_backup_last_success_timestamp_seconds unless on(instance, job) "
        "lifeboat_verify_last_success_timestamp_seconds",
        "lifeboat_verify_restore_seconds > lifeboat_backup_rto_seconds"])
    assert all(rule["labels"]["team"] == "ops" for rules in named.values() for rule in rules)
    assert {rule["for"] for rule in named["LifeboatBackupTooOld"]} == {"15m"}
    assert "{{ $labels.job }}" in named["LifeboatBackupFailed"][0]["annotations"]["summary"]
    assert (tmp_path / "textfile").is_dir()


def promtool_check(path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: apt-get install -y prometheus (.ci/install does)"
    proc = subprocess.run([promtool, "check", "rules", str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout
    return promtool


@pytest.mark.parametrize("test_file", sorted(os.path.basename(path)
                                             for path in glob.glob(os.path.join(PROMTOOL_TESTS, "*.test.yml"))))
def test_alerts_fire_on_the_metrics_with_promtool(tmp_path, test_file):
    """The rules as the role renders them with its defaults, fed with series in tests/promtool/: each alert fires
    (and only then) with the expected labels and annotations."""
    render(tmp_path)
    rules_dir = tmp_path / "rules"
    promtool = promtool_check(rules_dir / "lifeboat.rules.yml")
    shutil.copy(os.path.join(PROMTOOL_TESTS, test_file), str(rules_dir / test_file))
    proc = subprocess.run([promtool, "test", "rules", test_file], cwd=str(rules_dir), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300, check=False)
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout


def test_the_promtool_tests_cover_every_alert():
    covered = set()
    for path in glob.glob(os.path.join(PROMTOOL_TESTS, "*.test.yml")):
        with open(path) as handle:
            document = yaml.safe_load(handle)
        for test in document["tests"]:
            covered.update(case["alertname"] for case in test["alert_rule_test"] if case["exp_alerts"])
    assert covered == ALERTS, ALERTS - covered


def test_bad_job_name_is_refused(tmp_path):
    runner = AnsibleRunner(str(tmp_path / "ansible"), collections_root(str(tmp_path)))
    play = tmp_path / "play.yml"
    play.write_text("- hosts: localhost\n  gather_facts: false\n  roles:\n    - lifeboat.backup.monitoring\n")
    result = runner.playbook(str(play), extra_vars={
        "monitoring_rules_dir": str(tmp_path / "rules"), "monitoring_textfile_dir": str(tmp_path / "textfile"),
        "monitoring_jobs": [{"name": 'x"} or vector(1) #'}]})
    assert result.returncode != 0
    assert "must be a lifeboat job name" in result.stdout
    assert not (tmp_path / "rules" / "lifeboat.rules.yml").exists()


def test_dashboard_is_valid():
    with open(os.path.join(ROLE, "files", "lifeboat-dashboard.json")) as handle:
        dashboard = json.load(handle)
    assert dashboard["uid"] == "lifeboat-backups"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    exprs = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel["targets"])
    for metric in ("lifeboat_backup_last_status", "lifeboat_backup_last_success_timestamp_seconds",
                   "lifeboat_backup_last_duration_seconds", "lifeboat_backup_last_size_bytes"):
        assert metric in exprs, metric
    titles = [panel["title"] for panel in dashboard["panels"]]
    assert "Last run status" in titles and "Age of the last good backup" in titles
    # scheduled verification: status, age against the verify objective, restore seconds against the RTO
    assert {"Last test restore (verify) status", "Age of the last verified restore versus its objective",
            "Restore seconds versus RTO", "Test restore seconds and RTO"} <= set(titles)
    for metric in ("lifeboat_verify_last_status", "lifeboat_verify_last_success_timestamp_seconds",
                   "lifeboat_verify_objective_seconds", "lifeboat_verify_restore_seconds", "lifeboat_backup_rto_seconds"):
        assert metric in exprs, metric
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            check_expression(target["expr"].replace("$backup_job", "x").replace("$instance", "y"))
    assert {variable["name"] for variable in dashboard["templating"]["list"]} == {"datasource", "backup_job", "instance"}


@pytest.mark.parametrize("role", ["schedule", "monitoring"])
def test_argument_specs_match_defaults(role):
    with open(os.path.join(REPO, "roles", role, "defaults", "main.yml")) as handle:
        defaults = yaml.safe_load(handle)
    with open(os.path.join(REPO, "roles", role, "meta", "argument_specs.yml")) as handle:
        options = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options)
    for name, value in defaults.items():
        assert options[name].get("default") == value, name
