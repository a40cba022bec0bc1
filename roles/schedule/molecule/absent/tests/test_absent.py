"""schedule_state: absent removes the runner, cron entries, job files, locks, metrics and units;
backup sets (and the audit log, unless schedule_purge) stay."""

GONE = (
    "/etc/cron.d/lifeboat",
    "/usr/local/bin/lifeboat",
    "/opt/lifeboat/lib",
    "/etc/lifeboat",
    "/var/lib/lifeboat/locks",
    "/etc/logrotate.d/lifeboat",
    "/etc/systemd/system/lifeboat-app-db-timer.service",
    "/etc/systemd/system/lifeboat-app-db-timer.timer",
    "/etc/systemd/system/lifeboat_verify-app-db-timer.service",
    "/etc/systemd/system/lifeboat_verify-app-db-timer.timer",
    "/var/lib/node_exporter/textfile_collector/lifeboat_app-db.prom",
    "/var/lib/node_exporter/textfile_collector/lifeboat_app-db-timer.prom",
)


def test_nothing_left_behind(host):
    left = [path for path in GONE if host.file(path).exists]
    assert left == []


def test_no_schedule_left(host):
    assert "lifeboat" not in host.run("systemctl list-timers --all --no-pager").stdout
    assert "lifeboat" not in host.run("systemctl list-unit-files 'lifeboat-*' --no-pager").stdout
    assert host.run("command -v lifeboat").rc != 0
    crontabs = host.run("cat /etc/crontab /etc/cron.d/* 2>/dev/null").stdout
    assert "lifeboat" not in crontabs


def test_backups_and_history_kept(host):
    sets = host.run("find /var/backups/lifeboat -name manifest.json").stdout.split()
    assert len(sets) == 2, sets
    assert host.file("/var/lib/lifeboat/audit.jsonl").exists
