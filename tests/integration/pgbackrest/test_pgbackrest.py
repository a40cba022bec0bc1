"""lifeboat.backup.pgbackrest against a real PostgreSQL 15 and an HTTPS moto S3 endpoint.

The role configures archiving (restarting the pg_ctl-run cluster through the overridable stop/start
commands), creates the stanza, takes the first full backup and writes the cron entries; the test runs the
cron line itself, writes rows at T1 and T2, measures how long a commit waits for its WAL segment to be
archived (archive_timeout 10 s), restores to T1 with tasks_from=restore and reads back exactly the T1 rows.
"""

import json
import os
import pwd
import re
import stat
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = "pgbr-Secret-Key-9x7Q"
ARCHIVE_TIMEOUT = 10


def role_vars(cluster, moto_tls, bucket, **extra):
    base = cluster.base
    options = {
        "ansible_become_method": "su",
        # Modules run as postgres under become: the pyenv interpreter in /root is not readable by it.
        "ansible_python_interpreter": "/usr/bin/python3",
        "pgbackrest_install_package": False,
        "pgbackrest_stanza": "lbtest",
        "pgbackrest_config_path": os.path.join(base, "etc", "pgbackrest.conf"),
        "pgbackrest_config_include_path": os.path.join(base, "etc", "conf.d"),
        "pgbackrest_log_path": os.path.join(base, "log"),
        "pgbackrest_lock_path": os.path.join(base, "lock"),
        "pgbackrest_spool_path": os.path.join(base, "spool"),
        "pgbackrest_pg_path": cluster.data,
        "pgbackrest_pg_port": cluster.port,
        "pgbackrest_pg_socket_path": base,
        "pgbackrest_pg_conf_file": os.path.join(cluster.conf_d, "90-pgbackrest.conf"),
        "pgbackrest_pg_stop_command": cluster.pg_ctl("stop"),
        "pgbackrest_pg_start_command": cluster.pg_ctl("start"),
        "pgbackrest_archive_timeout": ARCHIVE_TIMEOUT,
        "pgbackrest_repo_type": "s3",
        "pgbackrest_repo_path": "/lifeboat/pg",
        "pgbackrest_repo_s3_bucket": bucket,
        "pgbackrest_repo_s3_endpoint": "127.0.0.1",
        "pgbackrest_repo_s3_port": moto_tls.port,
        "pgbackrest_repo_s3_region": "us-east-1",
        "pgbackrest_repo_s3_uri_style": "path",
        "pgbackrest_repo_s3_verify_tls": False,
        "pgbackrest_repo_s3_key": "testing",
        "pgbackrest_repo_s3_key_secret": SECRET,
        "pgbackrest_cron_file": os.path.join(base, "pgbackrest-lbtest.cron"),
        "pgbackrest_cron_lock_file": os.path.join(base, "lock", "cron.lock"),
        "pgbackrest_initial_backup": False,
    }
    options.update(extra)
    return options


def play(ansible, playbook, extra_vars):
    # Pipelining: modules run as postgres (become) without temporary files to hand over.
    return ansible.playbook(os.path.join(HERE, playbook), extra_vars=extra_vars, env={"ANSIBLE_PIPELINING": "1"})


def pgbackrest(options, *args):
    argv = ["runuser", "-u", "postgres", "--", "/usr/bin/pgbackrest",
            "--config=" + options["pgbackrest_config_path"],
            "--config-include-path=" + options["pgbackrest_config_include_path"],
            "--stanza=" + options["pgbackrest_stanza"]] + list(args)
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert proc.returncode == 0, proc.stdout
    return proc.stdout


def backups(options):
    return json.loads(pgbackrest(options, "--output=json", "info"))[0].get("backup", [])


def recap_changed(output):
    match = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", output)
    assert match, output[-3000:]
    return int(match.group(1))


def test_pitr_round_trip_through_s3(ansible, cluster, moto_tls):
    bucket = moto_tls.new_bucket()
    options = role_vars(cluster, moto_tls, bucket)
    # The moto endpoint accepts any secret; the role must still keep it out of the readable config.
    proc = play(ansible, "site.yml", options)
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert SECRET not in proc.stdout

    # The server was restarted by the role (archive_mode needs it) and archives through pgBackRest.
    assert cluster.sql("SHOW archive_mode") == "on"
    assert cluster.sql("SHOW archive_timeout") == "%ds" % ARCHIVE_TIMEOUT
    assert "archive-push %p" in cluster.sql("SHOW archive_command")

    conf = options["pgbackrest_config_path"]
    conf_stat = os.stat(conf)
    assert stat.S_IMODE(conf_stat.st_mode) == 0o640 and conf_stat.st_uid == pwd.getpwnam("postgres").pw_uid
    with open(conf) as handle:
        text = handle.read()
    assert text.startswith("#") and "Ansible" in text.splitlines()[0] + text.splitlines()[1]
    assert SECRET not in text and "repo1-s3-key" not in text.replace("repo1-s3-key-type", "")
    secrets = os.path.join(options["pgbackrest_config_include_path"], "lifeboat-secrets.conf")
    assert stat.S_IMODE(os.stat(secrets).st_mode) == 0o600
    with open(secrets) as handle:
        assert "repo1-s3-key-secret=%s" % SECRET in handle.read()

    # Cron entries: full and diff as postgres under flock, no incr.
    with open(options["pgbackrest_cron_file"]) as handle:
        cron = handle.read()
    lines = [line for line in cron.splitlines() if line and not line.startswith("#") and "=" not in line.split()[0]]
    full = [line for line in lines if line.endswith("backup --type=full")]
    diff = [line for line in lines if line.endswith("backup --type=diff")]
    assert len(full) == 1 and len(diff) == 1 and len(lines) == 2, cron
    assert full[0].startswith("30 1 * * 0 postgres /usr/bin/flock -w 0 -E 75 "), full[0]
    assert diff[0].startswith("30 1 * * 1-6 postgres "), diff[0]

    # Second run: nothing to change.
    proc = play(ansible, "site.yml", options)
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert recap_changed(proc.stdout) == 0, proc.stdout[-5000:]

    # Full backup by running the cron command line exactly as cron would (sh as postgres).
    assert backups(options) == []
    command = " ".join(full[0].split()[6:])
    run = subprocess.run(["runuser", "-u", "postgres", "--", "/bin/sh", "-c", command], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, check=False)
    assert run.returncode == 0, run.stdout
    found = backups(options)
    assert [item["type"] for item in found] == ["full"]
    objects = moto_tls.client().list_objects_v2(Bucket=bucket, Prefix="lifeboat/pg/backup/lbtest/")
    assert objects.get("KeyCount", 0) > 0

    # Rows at T1, then more rows at T2.
    cluster.sql("CREATE TABLE orders (id int PRIMARY KEY, note text)")
    cluster.sql("INSERT INTO orders SELECT g, 'before T1' FROM generate_series(1, 50) g")
    time.sleep(1)
    t1 = cluster.sql("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
    time.sleep(1)
    cluster.sql("INSERT INTO orders SELECT g, 'after T1' FROM generate_series(51, 80) g")
    cluster.sql("DELETE FROM orders WHERE id <= 10")
    committed = float(cluster.sql("SELECT extract(epoch FROM clock_timestamp())"))
    assert cluster.sql("SELECT count(*) FROM orders") == "70"

    # RPO: how long until the WAL segment holding that commit is in the repository.
    deadline = time.monotonic() + ARCHIVE_TIMEOUT * 3
    archived = None
    while time.monotonic() < deadline:
        value = cluster.sql("SELECT coalesce(extract(epoch FROM last_archived_time), 0) FROM pg_stat_archiver")
        if float(value) >= committed:
            archived = float(value)
            break
        time.sleep(0.2)
    assert archived is not None, "WAL not archived within %d s:\n%s" % (ARCHIVE_TIMEOUT * 3, cluster.server_log())
    lag = archived - committed
    print("\nRPO: archive_timeout=%ds, commit -> WAL segment archived to S3 after %.2f s" % (ARCHIVE_TIMEOUT, lag))
    assert lag <= ARCHIVE_TIMEOUT + 5

    # A target before the first backup is refused before PostgreSQL is touched.
    early = role_vars(cluster, moto_tls, bucket, pgbackrest_restore_target="2001-01-01T00:00:00Z")
    proc = play(ansible, "restore.yml", early)
    assert proc.returncode != 0
    assert "PostgreSQL was not touched" in proc.stdout, proc.stdout[-3000:]
    assert cluster.sql("SELECT count(*) FROM orders") == "70"

    # Restore to T1 through the role.
    started = time.monotonic()
    target = role_vars(cluster, moto_tls, bucket, pgbackrest_restore_target=t1)
    proc = play(ansible, "restore.yml", target)
    assert proc.returncode == 0, proc.stdout[-5000:] + cluster.server_log()
    print("RTO: restore playbook (stop, pgbackrest restore --delta, start, recovery to T1) took %.1f s"
          % (time.monotonic() - started))
    assert cluster.sql("SELECT pg_is_in_recovery()") == "f"
    rows = cluster.sql("SELECT count(*), min(id), max(id), count(DISTINCT note), min(note) FROM orders")
    assert rows == "50|1|50|1|before T1", rows
    # The promoted cluster archives on its new timeline.
    assert cluster.sql("SELECT timeline_id FROM pg_control_checkpoint()") != "1"
    pgbackrest(options, "check")


def test_role_rejects_an_incomplete_s3_repository(ansible, tmp_path):
    """Bad variables fail in the first task, before anything is installed or written."""
    config = tmp_path / "pgbackrest.conf"
    proc = play(ansible, "site.yml", {"pgbackrest_repo_type": "s3", "pgbackrest_repo_s3_bucket": "",
                                      "pgbackrest_install_package": False, "pgbackrest_config_path": str(config)})
    assert proc.returncode != 0
    words = " ".join(proc.stdout.split())
    assert "an s3 repository needs pgbackrest_repo_s3_bucket" in words, proc.stdout[-3000:]
    assert "Check the role variables" in words and "Install pgBackRest" not in words
    assert not config.exists()
