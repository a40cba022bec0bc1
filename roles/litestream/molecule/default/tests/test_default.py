"""The litestream role inside a systemd container: service hardened and running, files private,
and changes reach the (file) replica; a restore from it has the rows."""

import time


def test_service_running_and_enabled(host):
    service = host.service("litestream")
    assert service.is_running and service.is_enabled


def test_unit_hardening(host):
    props = host.run("systemctl show litestream -p User -p ProtectSystem -p NoNewPrivileges -p PrivateTmp "
                     "-p ReadWritePaths -p EnvironmentFiles").stdout
    assert "User=app" in props and "ProtectSystem=strict" in props
    assert "NoNewPrivileges=yes" in props and "PrivateTmp=yes" in props
    assert "/srv/app" in props and "/etc/litestream/litestream.env" in props


def test_files_private_and_no_secret_in_yaml(host):
    config = host.file("/etc/litestream.yml")
    assert config.mode == 0o640 and config.user == "root" and config.group == "app"
    assert "molecule-secret" not in config.content_string
    env = host.file("/etc/litestream/litestream.env")
    assert env.mode == 0o600 and env.user == "root"
    assert 'LITESTREAM_SECRET_ACCESS_KEY="molecule-secret"' in env.content_string


def test_changes_reach_the_replica_and_restore(host):
    write = host.run("runuser -u app -- python3 -c \"import sqlite3; db = sqlite3.connect('/srv/app/app.db'); "
                     "db.execute('INSERT INTO t (v) VALUES (\\\"after\\\")'); db.commit()\"")
    assert write.rc == 0, write.stderr
    host.run("rm -f /tmp/restored.db")
    deadline = time.time() + 30
    while True:
        restore = host.run("litestream restore -o /tmp/restored.db /srv/app/app.db")
        count = host.run("python3 -c \"import sqlite3; print(sqlite3.connect('/tmp/restored.db')"
                         ".execute('SELECT count(*) FROM t').fetchone()[0])\"")
        if restore.rc == 0 and count.stdout.strip() == "101":
            break
        assert time.time() < deadline, (restore.stdout, restore.stderr, count.stdout, count.stderr)
        host.run("rm -f /tmp/restored.db*")
        time.sleep(1)
