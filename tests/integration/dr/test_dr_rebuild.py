"""playbooks/dr_rebuild_ec2.yml end to end: the sample app (a SQLite database, an uploads directory and a
PostgreSQL database with its roles) is backed up to moto S3; the runbook creates a VPC/subnet/security group/key
pair, looks up the AMI, launches the instance in moto EC2 with an instance profile, then bootstraps a fresh podman
container standing in for it (apt installs python3-boto3, zstd, sqlite3 and PostgreSQL inside), restores the three
jobs from S3 (PostgreSQL as the postgres OS user, as a fresh cluster requires), starts the health service under
systemd, polls it, and reports RTO and RPO."""

import hashlib
import json
import os
import sqlite3
import time
import urllib.request

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from support.ports import free_port
from support.suites import load_suite_module

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
PLAYBOOK = os.path.join(REPO, "playbooks", "dr_rebuild_ec2.yml")
ROWS = 2500


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


@pytest.fixture
def old_postgres():
    """The app's PostgreSQL on the 'old' host (a server of the tests' own, see ../postgres/pgserver.py): role shop
    owns database shop with ROWS orders."""
    server = load_suite_module("lifeboat_dr_pgserver", "postgres/pgserver.py").Postgres()
    try:
        server.sql("CREATE ROLE shop LOGIN PASSWORD 'shop-pw'")
        server.sql("CREATE DATABASE shop OWNER shop")
        server.sql("SET ROLE shop; CREATE TABLE orders (id serial PRIMARY KEY, total_cents int NOT NULL);"
                   "INSERT INTO orders (total_cents) SELECT g * 7 %% 100000 FROM generate_series(1, %d) g" % ROWS,
                   "shop")
        yield server
    finally:
        server.remove()


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


def test_dr_rebuild_restores_app_and_reports_rto_rpo(
        ansible, moto, s3, tmp_path, dr_container, container_exec, containers_conf, old_postgres):
    test_started = time.monotonic()
    db, uploads = make_app(str(tmp_path))
    expected_sums = checksums(uploads)

    backups = {}
    for job, module, path in (("app-db", "lifeboat.backup.sqlite_backup", db),
                              ("uploads", "lifeboat.backup.dir_snapshot", uploads)):
        result = ansible.module(module, {"job": job, "path": path, "s3": s3})
        assert not result.get("failed"), result.get("msg") or result["_output"]
        backups[job] = result["backup"]["id"]
    pg_expected = old_postgres.sql(PG_FINGERPRINT, "shop")
    result = ansible.module("lifeboat.backup.pg_dump_s3", {
        "job": "shop-pg", "database": "shop", "globals": True, "s3": s3,
        "login_unix_socket": old_postgres.socket_dir, "login_port": old_postgres.port, "login_user": "postgres"})
    assert not result.get("failed"), result.get("msg") or result["_output"]
    backups["shop-pg"] = result["backup"]["id"]
    old_postgres.stop()  # the old host is gone
    # The container shares the host's network: its new cluster listens on its socket only, so that it cannot
    # take a TCP port the host uses (a real instance has its own network and would listen as usual).
    container_exec("sh", "-c", "mkdir -p /etc/postgresql-common/createcluster.d && "
                   "echo \"listen_addresses = ''\" > /etc/postgresql-common/createcluster.d/socket-only.conf")

    ami = register_ami(moto)
    profile = "lifeboat-dr-restore-%s" % dr_container[-8:]
    instance_profile(moto, profile)
    port = free_port()
    report_file = str(tmp_path / "dr-report.json")
    with open(os.path.join(HERE, "health_app.py")) as handle:
        health_app = handle.read()

    extra_vars = {
        "dr_ec2_endpoint_url": moto.url,
        "dr_aws_region": "us-east-1",
        "dr_instance_name": dr_container,
        "dr_instance_type": "t3.micro",
        "dr_ami_filters": {"name": "debian-12-amd64-*", "state": "available"},
        "dr_create_network": True,
        "dr_ssh_cidrs": ["192.0.2.0/24"],
        "dr_app_ports": [port],
        "dr_key_public": public_key(),
        "dr_instance_profile": profile,
        "dr_instance_tags": {"app": "sample", "env": "dr-test"},
        # The "instance" is the podman container: override its connection after add_host.
        "dr_instance_connection": {"ansible_connection": "containers.podman.podman", "ansible_host": dr_container,
                                   "ansible_user": "root", "ansible_python_interpreter": "/usr/bin/python3"},
        "dr_become": False,
        "dr_connect_timeout": 60,
        "dr_app_dirs": [{"path": "/srv/app/data", "mode": "0750"}],
        "dr_files": [{"dest": "/srv/app/health_app.py", "content": health_app, "mode": "0644"}],
        "dr_s3": s3,
        "dr_restore_jobs": [
            {"job": "app-db", "kind": "sqlite",
             "options": {"path": "/srv/app/data/app.db", "owner": "app", "group": "app", "mode": "0640"}},
            {"job": "uploads", "kind": "directory", "options": {"path": "/srv/app/uploads"}},
            # peer login over the socket, the only way into a fresh cluster (no sudo in the image: su)
            {"job": "shop-pg", "kind": "postgres", "become_user": "postgres", "become_method": "su",
             "options": {"database": "shop", "restore_globals": True}},
        ],
        "dr_extra_packages": ["postgresql"],
        "dr_services": [{"name": "sample-app", "command": [
            "/usr/bin/python3", "/srv/app/health_app.py", "/srv/app/data/app.db", str(ROWS), str(port)]}],
        "dr_health_checks": [{"url": "http://127.0.0.1:%d/health" % port, "body_contains": "ok %d" % ROWS},
                             {"url": "http://127.0.0.1:%d/health" % port, "from": "controller"}],
        "dr_health_retries": 20,
        "dr_health_delay": 1,
        "dr_report_file": report_file,
    }
    proc = ansible.playbook(PLAYBOOK, extra_vars, env={"CONTAINERS_CONF": containers_conf,
                                                       "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"})
    assert proc.returncode == 0, proc.stdout[-8000:]
    print(proc.stdout[proc.stdout.rfind("PLAY RECAP"):])  # task timings (profile_tasks), shown with pytest -rP
    test_duration = time.monotonic() - test_started

    # The instance was launched in the created network with the instance profile and tags.
    ec2 = moto.client("ec2")
    reservations = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [dr_container]}])["Reservations"]
    instances = [i for r in reservations for i in r["Instances"]]
    assert len(instances) == 1
    instance = instances[0]
    assert instance["State"]["Name"] == "running"
    assert instance["ImageId"] == ami
    assert instance["KeyName"] == dr_container
    assert instance["IamInstanceProfile"]["Arn"].endswith("/" + profile)
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags["app"] == "sample" and tags["lifeboat:role"] == "dr-rebuild"
    vpc = ec2.describe_vpcs(VpcIds=[instance["VpcId"]])["Vpcs"][0]
    assert vpc["CidrBlock"] == "10.80.0.0/16"
    groups = ec2.describe_security_groups(GroupIds=[g["GroupId"] for g in instance["SecurityGroups"]])
    ports = {p.get("FromPort") for g in groups["SecurityGroups"] for p in g["IpPermissions"]}
    assert {22, port} <= ports

    # Bootstrap installed the packages and the app user on the fresh container.
    container_exec("dpkg-query", "-W", "python3-boto3", "zstd", "sqlite3")
    assert container_exec("stat", "-c", "%U:%G %a", "/srv/app/data/app.db").strip() == "app:app 640"

    # The database and the uploads are restored exactly.
    counted = container_exec("sqlite3", "/srv/app/data/app.db",
                             "SELECT count(*) || ' ' || sum(total_cents) FROM orders").strip()
    conn = sqlite3.connect(db)
    expected = "%d %d" % conn.execute("SELECT count(*), sum(total_cents) FROM orders").fetchone()
    conn.close()
    assert counted == expected
    # The PostgreSQL database comes back with its rows, its owner and the owner's login (from the globals).
    in_container = ("runuser", "-u", "postgres", "--", "psql", "-X", "-A", "-t", "-d", "shop", "-c")
    assert container_exec(*(in_container + (PG_FINGERPRINT,))).strip() == pg_expected
    assert container_exec(*(in_container + ("SELECT rolcanlogin AND rolpassword LIKE 'SCRAM-SHA-256$%' "
                                            "FROM pg_authid WHERE rolname = 'shop'",))).strip() == "t"
    listing = container_exec("sh", "-c", "cd /srv/app/uploads && find . -type f -exec sha256sum {} +")
    restored_sums = {line.split(None, 1)[1]: line.split(None, 1)[0] for line in listing.splitlines() if line}
    assert restored_sums == expected_sums

    # The service runs under systemd and is healthy.
    assert container_exec("systemctl", "is-active", "sample-app").strip() == "active"
    with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=5) as response:
        assert response.status == 200
        assert response.read().decode().strip() == "ok %d" % ROWS

    # RTO and RPO are reported and plausible.
    with open(report_file) as handle:
        report = json.load(handle)
    assert report["instance"]["id"] == instance["InstanceId"]
    assert 0 < float(report["rto_seconds"]) < test_duration
    jobs = {job["job"]: job for job in report["jobs"]}
    assert set(jobs) == {"app-db", "uploads", "shop-pg"}
    assert jobs["shop-pg"]["restored_to"] == "shop"
    assert jobs["shop-pg"]["verification"]["row_counts_checked"] is True
    assert jobs["shop-pg"]["verification"]["mismatches"] == {}
    for name, job in jobs.items():
        assert job["id"] == backups[name]
        assert 0 <= float(job["rpo_seconds"]) < 3600
    assert float(report["rpo_seconds"]) == max(float(j["rpo_seconds"]) for j in jobs.values())
    assert "RTO %s s" % report["rto_seconds"] in proc.stdout
    assert "RPO %s s" % report["rpo_seconds"] in proc.stdout


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
