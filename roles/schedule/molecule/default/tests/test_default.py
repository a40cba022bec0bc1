"""The schedule role in a Debian 12 container: the cron line really backs up the SQLite database,
the systemd timer job runs under its sandbox, a retired job leaves nothing behind, and flock keeps
overlapping runs apart. Each job's verify schedule (a cron entry or a timer) runs a test restore under
its own lock, never the backup's; a job's verify with state absent and the retired jobs' verifies are gone."""

import hashlib
import json
import shlex

CRON_FILE = "/etc/cron.d/lifeboat"
CRON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOSTNAME = "lifeboat-schedule-default"  # the molecule inventory name, used for the fixed delay
METRICS_DIR = "/var/lib/node_exporter/textfile_collector"
BIN = "/opt/lifeboat/bin/lifeboat"  # schedule_bin_path in converge.yml: a directory the image does not have


def cron_entry(host, job, prefix="lifeboat-"):
    """(five time fields, user, command) of the job's entry in the cron file (its verify entry with
    prefix="lifeboat_verify-")."""
    lines = host.file(CRON_FILE).content_string.splitlines()
    marker = "#Ansible: %s%s" % (prefix, job)
    assert marker in lines, "no cron entry for %s in %s" % (job, CRON_FILE)
    fields = lines[lines.index(marker) + 1].split(None, 6)
    return fields[:5], fields[5], fields[6]


def run_like_cron(host, command, before=""):
    """Run a cron command line the way cron does: /bin/sh -c, a bare environment, the file's PATH."""
    script = "%s env -i PATH=%s /bin/sh -c %s; echo \"exit=$?\"" % (before, CRON_PATH, shlex.quote(command))
    result = host.run("/bin/sh -c %s" % shlex.quote(script))
    assert "exit=" in result.stdout, result.stderr
    return int(result.stdout.rsplit("exit=", 1)[1].split()[0]), result


def complete_sets(host, dest, job):
    result = host.run("find %s -mindepth 2 -maxdepth 2 -name manifest.json" % shlex.quote("%s/%s" % (dest, job)))
    return sorted(line.split("/")[-2] for line in result.stdout.split())


def audit_entries(host, job, operation="run"):
    audit = host.file("/var/lib/lifeboat/audit.jsonl")
    if not audit.exists:
        return []
    entries = [json.loads(line) for line in audit.content_string.splitlines()]
    return [entry for entry in entries if entry.get("job") == job and entry.get("operation") == operation]


def test_runner_installed(host):
    runner = host.file(BIN)
    assert runner.mode == 0o755 and runner.user == "root"
    bin_dir = host.file(BIN.rsplit("/", 1)[0])
    assert bin_dir.is_directory and bin_dir.mode == 0o755 and bin_dir.user == "root"
    assert "/opt/lifeboat/lib/lifeboat.pyz" in runner.content_string
    zipapp = host.file("/opt/lifeboat/lib/lifeboat.pyz")
    assert zipapp.exists and zipapp.mode == 0o644
    assert not host.file("/opt/lifeboat/lib/lifeboat_engine").exists
    assert host.run(BIN + " --help").rc == 0
    for package in ("cron", "python3-boto3", "zstd", "sqlite3", "age"):
        assert host.package(package).is_installed, package


def test_job_file(host):
    job_file = host.file("/etc/lifeboat/jobs/app-db.json")
    assert job_file.mode == 0o600 and job_file.user == "root" and job_file.group == "root"
    assert host.file("/etc/lifeboat/jobs").mode == 0o700
    document = json.loads(job_file.content_string)
    assert document == {
        "job": "app-db", "kind": "sqlite", "path": "/srv/app/app.db", "dest": "/var/backups/lifeboat",
        "tags": {"app": "notes"}, "retention": {"keep_last": 3}, "prune_after_run": True,
        "metrics_dir": METRICS_DIR, "rpo_seconds": 93600}


def test_cron_entries(host):
    cron_file = host.file(CRON_FILE)
    assert cron_file.mode == 0o644 and cron_file.user == "root"
    times, user, command = cron_entry(host, "app-db")
    assert times == ["30", "2", "*", "*", "*"] and user == "root"
    assert command == ("/usr/bin/flock -n -E 75 /var/lib/lifeboat/locks/app-db.cron.lock /usr/bin/nice -n 10 "
                       "/usr/bin/ionice -c 2 -n 7 " + BIN + " run app-db >> /var/log/lifeboat/app-db.log 2>&1")
    assert 'PATH="%s"' % CRON_PATH in cron_file.content_string.splitlines()
    # the hourly job starts after a delay fixed by host and job name: md5 modulo random_delay_seconds
    times, user, command = cron_entry(host, "app-db-hourly")
    delay = int(hashlib.md5(("%s/app-db-hourly" % HOSTNAME).encode()).hexdigest()[:8], 16) % 300
    assert times == ["20", "*", "*", "*", "*"]
    assert command.startswith("sleep %d; /usr/bin/flock -n -E 75 /var/lib/lifeboat/locks/app-db-hourly.cron.lock "
                              % delay)
    # the systemd job has no cron entry
    assert "lifeboat-app-db.nightly" not in cron_file.content_string
    assert host.service("cron").is_running


def test_cron_line_backs_up(host):
    command = cron_entry(host, "app-db")[2]
    before = complete_sets(host, "/var/backups/lifeboat", "app-db")
    audits_before = len(audit_entries(host, "app-db"))
    code, result = run_like_cron(host, command)
    log = host.file("/var/log/lifeboat/app-db.log").content_string
    assert code == 0, log
    after = complete_sets(host, "/var/backups/lifeboat", "app-db")
    new = sorted(set(after) - set(before))
    assert len(new) == 1, (before, after, log)
    manifest = json.loads(host.file("/var/backups/lifeboat/app-db/%s/manifest.json" % new[0]).content_string)
    assert manifest["job"] == "app-db" and manifest["kind"] == "sqlite"
    assert manifest["verification"]["row_counts"] == {"notes": 250}
    assert manifest["tags"] == {"app": "notes"}
    # audit log: one more run entry, for this set, successful (the prune after the run has its own)
    entries = audit_entries(host, "app-db")
    assert len(entries) == audits_before + 1
    assert entries[-1]["operation"] == "run" and entries[-1]["status"] == "ok" and entries[-1]["set"] == new[0]
    # metrics for node_exporter's textfile collector
    metrics = host.file("%s/lifeboat_app-db.prom" % METRICS_DIR)
    assert metrics.mode == 0o644
    assert 'lifeboat_backup_last_status{job="app-db"} 1' in metrics.content_string
    assert 'lifeboat_backup_rpo_seconds{job="app-db"} 93600' in metrics.content_string
    # the runner finds the set
    listing = host.run(BIN + " list app-db")
    assert listing.rc == 0 and new[0] in listing.stdout


def test_overlapping_runs_do_nothing(host):
    command = cron_entry(host, "app-db")[2]
    before = complete_sets(host, "/var/backups/lifeboat", "app-db")
    # another run holds the cron lock: the cron line exits 75 at once, without a new set
    code, _output = run_like_cron(host, command,
                                  before="flock /var/lib/lifeboat/locks/app-db.cron.lock sleep 4 & sleep 1;")
    host.run("sleep 3")
    assert code == 75
    assert complete_sets(host, "/var/backups/lifeboat", "app-db") == before
    # a manual run holding the runner's own lock: the runner exits 75 as well
    held = host.run("flock /var/lib/lifeboat/locks/app-db.lock " + BIN + " run app-db")
    assert held.rc == 75, held.stdout + held.stderr
    assert complete_sets(host, "/var/backups/lifeboat", "app-db") == before


def test_monthly_job_on_a_day_some_months_lack(host):
    times, user, _command = cron_entry(host, "app-db-monthly")
    assert times == ["10", "4", "31", "*", "*"] and user == "root"
    document = json.loads(host.file("/etc/lifeboat/jobs/app-db-monthly.json").content_string)
    assert document["rpo_seconds"] == 62 * 86400  # Mar 31 -> May 31 is 61 days, plus a day


def test_systemd_timer_job(host):
    timer = host.service("lifeboat-app-db.nightly.timer")
    assert timer.is_enabled and timer.is_running
    unit = host.file("/etc/systemd/system/lifeboat-app-db.nightly.service").content_string
    for line in ("Type=oneshot", "ProtectSystem=strict", "PrivateTmp=true", "NoNewPrivileges=true",
                 "ReadWritePaths=-/var/backups/lifeboat-nightly", "ReadWritePaths=-/var/lib/lifeboat",
                 "ReadWritePaths=-/srv/app"):
        assert line in unit.splitlines(), line
    timer_unit = host.file("/etc/systemd/system/lifeboat-app-db.nightly.timer").content_string.splitlines()
    assert "OnCalendar=Mon,Tue,Wed,Thu,Fri *-*-* 1:15:00" in timer_unit
    assert "RandomizedDelaySec=900" in timer_unit and "Persistent=true" in timer_unit
    before = complete_sets(host, "/var/backups/lifeboat-nightly", "app-db.nightly")
    started = host.run("systemctl start lifeboat-app-db.nightly.service")
    journal = host.run("journalctl -u lifeboat-app-db.nightly.service --no-pager -n 20").stdout
    assert started.rc == 0, journal
    after = complete_sets(host, "/var/backups/lifeboat-nightly", "app-db.nightly")
    assert len(set(after) - set(before)) == 1, journal
    assert host.file(METRICS_DIR + "/lifeboat_app-db.nightly.prom").exists


def test_verify_cron_entry(host):
    times, user, command = cron_entry(host, "app-db", prefix="lifeboat_verify-")
    # weekly (schedule_verify_schedule) on Sunday at 04:45, under its own lock in locks/verify/
    assert times == ["45", "4", "*", "*", "0"] and user == "root"
    assert command == ("/usr/bin/flock -n -E 75 /var/lib/lifeboat/locks/verify/app-db.lock /usr/bin/nice -n 10 "
                       "/usr/bin/ionice -c 2 -n 7 " + BIN + " verify app-db --scratch-dir /var/tmp/lifeboat-verify"
                       " --min-free-mb 1 >> /var/log/lifeboat/app-db.log 2>&1")
    scratch = host.file("/var/tmp/lifeboat-verify")
    assert scratch.is_directory and scratch.mode == 0o700 and scratch.user == "root"
    # the other cron jobs get one too, except the one whose verify is absent
    content = host.file(CRON_FILE).content_string
    assert "#Ansible: lifeboat_verify-app-db-monthly" in content.splitlines()
    assert "lifeboat_verify-app-db-hourly" not in content
    assert "verify app-db-hourly" not in content


def test_verify_cron_line_restores_while_a_backup_holds_its_locks(host):
    command = cron_entry(host, "app-db", prefix="lifeboat_verify-")[2]
    latest = complete_sets(host, "/var/backups/lifeboat", "app-db")[-1]
    before = len(audit_entries(host, "app-db", "verify"))
    # a backup of the job is running (both of its locks held): the verify still runs, and verifies the set
    code, _output = run_like_cron(host, command, before=(
        "flock /var/lib/lifeboat/locks/app-db.cron.lock flock /var/lib/lifeboat/locks/app-db.lock sleep 6 "
        ">/dev/null 2>&1 & sleep 1;"))
    log = host.file("/var/log/lifeboat/app-db.log").content_string
    assert code == 0, log
    entries = audit_entries(host, "app-db", "verify")
    assert len(entries) == before + 1
    assert entries[-1]["status"] == "ok" and entries[-1]["set"] == latest, entries[-1]
    assert host.run("ls -A /var/tmp/lifeboat-verify").stdout.strip() == ""  # no scratch data left
    host.run("sleep 5")


def test_overlapping_verifies_do_nothing(host):
    command = cron_entry(host, "app-db", prefix="lifeboat_verify-")[2]
    before = len(audit_entries(host, "app-db", "verify"))
    code, _output = run_like_cron(host, command,
                                  before="flock /var/lib/lifeboat/locks/verify/app-db.lock sleep 4 & sleep 1;")
    host.run("sleep 3")
    assert code == 75
    assert len(audit_entries(host, "app-db", "verify")) == before


def test_verify_timer(host):
    timer = host.service("lifeboat_verify-app-db.nightly.timer")
    assert timer.is_enabled and timer.is_running
    unit = host.file("/etc/systemd/system/lifeboat_verify-app-db.nightly.service").content_string.splitlines()
    assert ("ExecStart=/usr/bin/flock -n -E 75 /var/lib/lifeboat/locks/verify/app-db.nightly.lock " + BIN
            + " verify app-db.nightly") in unit
    for line in ("Type=oneshot", "SuccessExitStatus=75", "Nice=10", "IOSchedulingPriority=7", "ProtectSystem=strict",
                 "ReadWritePaths=-/var/lib/lifeboat", "ReadWritePaths=-" + METRICS_DIR):
        assert line in unit, line
    timer_unit = host.file("/etc/systemd/system/lifeboat_verify-app-db.nightly.timer").content_string.splitlines()
    assert "OnCalendar=Sun *-*-* 04:45:00" in timer_unit and "Unit=lifeboat_verify-app-db.nightly.service" in timer_unit
    # the job's own random delay spreads the verifies too
    assert "RandomizedDelaySec=900" in timer_unit
    latest = complete_sets(host, "/var/backups/lifeboat-nightly", "app-db.nightly")[-1]
    before = len(audit_entries(host, "app-db.nightly", "verify"))
    started = host.run("systemctl start lifeboat_verify-app-db.nightly.service")
    journal = host.run("journalctl -u lifeboat_verify-app-db.nightly.service --no-pager -n 20").stdout
    assert started.rc == 0, journal
    entries = audit_entries(host, "app-db.nightly", "verify")
    assert len(entries) == before + 1 and entries[-1]["status"] == "ok" and entries[-1]["set"] == latest, journal


def test_retired_jobs_leave_nothing(host):
    assert "retired" not in host.file(CRON_FILE).content_string
    for path in ("/etc/lifeboat/jobs/retired.json", "/etc/lifeboat/jobs/retired-timer.json",
                 "/var/lib/lifeboat/locks/retired.cron.lock", "/var/lib/lifeboat/locks/retired.lock",
                 "/var/lib/lifeboat/locks/verify/retired.lock",
                 METRICS_DIR + "/lifeboat_retired.prom",
                 "/etc/systemd/system/lifeboat-retired-timer.service",
                 "/etc/systemd/system/lifeboat-retired-timer.timer",
                 "/etc/systemd/system/lifeboat_verify-retired-timer.service",
                 "/etc/systemd/system/lifeboat_verify-retired-timer.timer"):
        assert not host.file(path).exists, path
    assert "retired" not in host.run("systemctl list-timers --all --no-pager").stdout
    assert "retired" not in host.run("systemctl list-unit-files 'lifeboat-*' --no-pager").stdout
    # backup sets are never removed by the role
    assert complete_sets(host, "/var/backups/lifeboat-retired", "retired")


def test_runner_is_the_zipapp_built_from_this_engine(host, tmp_path):
    """The host's runner has the sha256 of a fresh build: the build is reproducible and the copy whole."""
    import importlib.util
    import os
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", ".."))
    spec = importlib.util.spec_from_file_location("build_runner", os.path.join(root, "roles", "schedule", "files",
                                                                               "build_runner.py"))
    build_runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_runner)
    built = build_runner.build(os.path.join(root, "plugins", "module_utils", "engine"), str(tmp_path / "lifeboat.pyz"))
    assert host.file("/opt/lifeboat/lib/lifeboat.pyz").sha256sum == built["sha256"]
