"""The kubernetes_schedule role's pods run for real with `podman kube play` (no cluster can be had here): the
backup CronJobs' pod templates back up a SQLite database (plain and encrypted with age) and a directory on a volume
and a password-protected Redis server to moto S3, the verify CronJobs' pods test-restore the sets (the encrypted one
with the age identity mounted from its Secret), and the restore Job's pod template brings the databases and the
directory back into fresh volumes. The templates come from the role in render mode (manifests.yml), run as they are
apart from hostNetwork (see kube_pods.py): non-root, read-only root filesystem, the job file from its Secret,
credentials from Secrets through envFrom (the S3 keys in one, Redis's REDISCLI_AUTH in another), metrics pushed to
a Pushgateway."""

import copy
import hashlib
import json
import os
import sqlite3
import subprocess

import pytest

from kube_pods import RUNNER_UID, pod_template, secret_data
from support.ansible import AnsibleRunner
from support.kubernetes_render import AGE_IDENTITY_FILE, render_objects, render_restore_job
from support.moto import REGION, aws_env

FILES = {"index.html": (b"<h1>app</h1>\n", 0o644), "uploads/a.bin": (os.urandom(200000), 0o600),
         "uploads/notes.txt": ("caf\u00e9 \u2603\n".encode("utf-8") * 100, 0o640), "empty": (b"", 0o644)}
REDIS_KEYS = 300
# SQLite header fields the backup API rewrites in the copy (file change counter, version-valid-for number).
SQLITE_COUNTERS = (slice(24, 28), slice(92, 96))
SQLITE_MAGIC, ZSTD_MAGIC, AGE_MAGIC = b"SQLite format 3\x00", b"\x28\xb5\x2f\xfd", b"age-encryption.org/v1\n"


def make_app_volume(path):
    """The app's PVC: app.db (rollback journal, as the app writes it) and files/, owned by the runner's uid."""
    app = os.path.join(path, "app.db")
    with sqlite3.connect(app) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, body BLOB)")
        conn.executemany("INSERT INTO items (name, body) VALUES (?, ?)",
                         [("item %d" % i, os.urandom(64)) for i in range(5000)])
    conn.close()
    for name, (data, mode) in FILES.items():
        target = os.path.join(path, "files", name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as handle:
            handle.write(data)
        os.chmod(target, mode)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), RUNNER_UID, RUNNER_UID)
    return app


def page_bytes(path):
    """The database file with the header counters the backup API rewrites zeroed."""
    data = bytearray(open(path, "rb").read())
    for field in SQLITE_COUNTERS:
        data[field] = bytes(field.stop - field.start)
    return bytes(data)


def tree(path):
    found = {}
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as handle:
                found[os.path.relpath(full, path)] = (handle.read(), os.stat(full).st_mode & 0o7777)
    return found


def age_key(directory):
    """(identity file text, public key) of a fresh age key made with age-keygen."""
    path = os.path.join(directory, "age.key")
    subprocess.run(["age-keygen", "-o", path], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    public = subprocess.run(["age-keygen", "-y", path], check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
    with open(path) as handle:
        return handle.read(), public


@pytest.fixture(scope="module")
def deployment(runner_image, kube, moto, redis_volume_with_password, pushgateway, collections, tmp_path_factory):
    """The role rendered for four jobs, the cluster objects they refer to made in podman, and the backup pods run."""
    bucket = moto.new_bucket("k8s")
    s3 = {"bucket": bucket, "prefix": "k8s", "endpoint_url": moto.url, "region": REGION}
    app_volume, app_path = kube.volume("app-data")
    app_db = make_app_volume(app_path)
    redis_name, redis = redis_volume_with_password
    identity, recipient = age_key(str(tmp_path_factory.mktemp("age")))
    for index in range(REDIS_KEYS):
        redis.cli("SET", "key:%d" % index, "value %d" % index)
    app_mount = [{"claim": "app-data", "mount_path": "/data/app", "read_only": True}]
    jobs = [
        {"name": "app-db", "schedule": "15 */6 * * *", "volumes": app_mount,
         "job": {"kind": "sqlite", "path": "/data/app/app.db", "s3": s3, "rpo_seconds": 21600}},
        {"name": "app-files", "schedule": "20 */6 * * *", "volumes": app_mount,
         "job": {"kind": "directory", "path": "/data/app/files", "s3": s3}},
        {"name": "app-redis", "schedule": "25 */6 * * *",
         "volumes": [{"claim": "redis-data", "mount_path": "/data/redis", "read_only": True}],
         "job": {"kind": "redis", "redis_host": "127.0.0.1", "redis_port": redis.port,
                 "rdb_path": "/data/redis/dump.rdb", "s3": s3}},
        {"name": "app-db-age", "schedule": "35 */6 * * *", "volumes": app_mount,
         "job": {"kind": "sqlite", "path": "/data/app/app.db", "s3": s3, "encryption": {"age_recipients": [recipient]}}},
    ]
    ansible = AnsibleRunner(str(tmp_path_factory.mktemp("ansible")), collections, extra_env=aws_env())
    settings = {"kubernetes_schedule_namespace": "app", "kubernetes_schedule_image": runner_image,
                "kubernetes_schedule_image_pull_policy": "Never", "kubernetes_schedule_jobs": jobs,
                "kubernetes_schedule_credentials_secret": "lifeboat-s3",
                "kubernetes_schedule_credentials_secrets": ["lifeboat-redis"],
                "kubernetes_schedule_age_identity_secret": "lifeboat-age",
                "kubernetes_schedule_pushgateway_url": pushgateway.url}
    objects = render_objects(ansible, str(tmp_path_factory.mktemp("render")), settings=settings)
    names = {"app-data": app_volume, "redis-data": redis_name,
             "lifeboat-s3": kube.env_secret("lifeboat-s3", {"AWS_ACCESS_KEY_ID": "testing",
                                                            "AWS_SECRET_ACCESS_KEY": "testing"}),
             "lifeboat-redis": kube.env_secret("lifeboat-redis", {"REDISCLI_AUTH": redis.password}),
             "lifeboat-age": kube.volume_secret("lifeboat-age", {"identity": identity.encode("ascii")})}
    for job in jobs:
        secret = "lifeboat-job-%s" % job["name"]
        names[secret] = kube.volume_secret(secret, secret_data(objects, secret))
    runs = {}
    for job in jobs:
        template = pod_template(objects, "CronJob", "lifeboat-%s-backup" % job["name"])
        runs[job["name"]] = kube.run(template, names, "%s-backup" % job["name"])
    return {"objects": objects, "names": names, "runs": runs, "ansible": ansible, "settings": settings,
            "bucket": bucket, "app_db": app_db, "app_path": app_path, "redis": redis, "identity": identity}


def stored_sets(moto, bucket, job):
    """set id -> {object name: bytes} of the job's objects in the bucket."""
    client = moto.client()
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="k8s/%s/" % job):
        for item in page.get("Contents", []):
            _prefix, _job, set_id, name = item["Key"].split("/", 3)
            found.setdefault(set_id, {})[name] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return found


def test_templates_run_as_rendered(deployment):
    """What the pods run is the role's template itself: non-root, read-only root, the runner's args, no host network."""
    template = pod_template(deployment["objects"], "CronJob", "lifeboat-app-db-backup")
    container = template["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert template["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["args"][-2:] == ["run", "app-db"]
    assert not template["spec"].get("hostNetwork")  # only the test's copy reaches the host's 127.0.0.1
    # the age identity: in the verify pods, never in a backup pod
    for job in ("app-db", "app-db-age"):
        backup = pod_template(deployment["objects"], "CronJob", "lifeboat-%s-backup" % job)
        verify = pod_template(deployment["objects"], "CronJob", "lifeboat-%s-verify" % job)
        assert "lifeboat-age" not in json.dumps(backup)
        assert {"name": "age-identity", "mountPath": "/etc/lifeboat/age", "readOnly": True} in \
            verify["spec"]["containers"][0]["volumeMounts"]


@pytest.mark.parametrize("job, kind", [("app-db", "sqlite"), ("app-files", "directory"), ("app-redis", "redis"),
                                       ("app-db-age", "sqlite")])
def test_backup_pod_makes_a_complete_set_in_s3(deployment, moto, pushgateway, job, kind):
    status, log = deployment["runs"][job]
    assert status == 0, log
    sets = list(stored_sets(moto, deployment["bucket"], job).items())
    assert len(sets) == 1, sets
    set_id, objects = sets[0]
    manifest = json.loads(objects.pop("manifest.json"))
    assert manifest["job"] == job and manifest["kind"] == kind and manifest["id"] == set_id
    data = objects[manifest["data"]]
    assert hashlib.sha256(data).hexdigest() == manifest["sha256"] and len(data) == manifest["size"]
    assert "metrics pushed to %s/metrics/job/%s" % (pushgateway.url, job) in log
    pushed = [body for method, path, body in pushgateway.pushes if path == "/metrics/job/%s" % job]
    assert any("lifeboat_backup_last_status 1" in body for body in pushed), pushgateway.pushes


def test_the_encrypted_set_is_age_ciphertext(deployment, moto):
    sets = stored_sets(moto, deployment["bucket"], "app-db-age")
    assert len(sets) == 1, sorted(sets)
    objects = next(iter(sets.values()))
    manifest = json.loads(objects.pop("manifest.json"))
    assert manifest["encryption"]
    data = objects[manifest["data"]]
    assert data.startswith(AGE_MAGIC)
    assert SQLITE_MAGIC not in data and ZSTD_MAGIC not in data[:4096]
    # the plain job's set of the same database is zstd, so the difference is the encryption
    plain_sets = stored_sets(moto, deployment["bucket"], "app-db")
    assert len(plain_sets) == 1, sorted(plain_sets)
    plain = next(iter(plain_sets.values()))
    assert plain[json.loads(plain["manifest.json"])["data"]].startswith(ZSTD_MAGIC)


def test_the_backup_pod_holds_no_key_to_decrypt_with(deployment, kube):
    """The backup template run as a verify: the job file names the identity, but the backup pod has no such file."""
    template = copy.deepcopy(pod_template(deployment["objects"], "CronJob", "lifeboat-app-db-age-backup"))
    container = template["spec"]["containers"][0]
    container["args"] = container["args"][:-2] + ["verify", "app-db-age"]
    status, log = kube.run(template, deployment["names"], "age-backup-pod-verify")
    assert status != 0, log
    assert "encryption.age_identity_file %s does not exist" % AGE_IDENTITY_FILE in log, log


def test_the_redis_password_comes_from_its_own_secret(deployment, kube, moto):
    """REDISCLI_AUTH from the Secret lifeboat-redis (kubernetes_schedule_credentials_secrets) let the backup in; the
    same pod without that Secret is refused by the server, and the password is in no log."""
    password = deployment["redis"].password
    assert all(password not in log for _status, log in deployment["runs"].values())
    template = copy.deepcopy(pod_template(deployment["objects"], "CronJob", "lifeboat-app-redis-backup"))
    container = template["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "lifeboat-s3"}}, {"secretRef": {"name": "lifeboat-redis"}}]
    container["envFrom"] = [{"secretRef": {"name": "lifeboat-s3"}}]
    status, log = kube.run(template, deployment["names"], "redis-no-password")
    assert status != 0, log
    assert "NOAUTH Authentication required" in log, log
    assert password not in log
    assert len(stored_sets(moto, deployment["bucket"], "app-redis")) == 1  # no second set


def test_pod_is_non_root_with_a_read_only_root(deployment, kube):
    """A probe in the backup template's pod: the runner's uid, the root filesystem and the read-only PVC refuse
    writes, and only the emptyDirs take them."""
    template = copy.deepcopy(pod_template(deployment["objects"], "CronJob", "lifeboat-app-db-backup"))
    container = template["spec"]["containers"][0]
    container["command"] = ["/bin/sh", "-c"]
    container["args"] = ["id -u; for d in /opt/lifeboat /etc/lifeboat/jobs /data/app /tmp /var/lib/lifeboat; do "
                         "touch $d/probe 2>/dev/null && echo writable $d || echo refused $d; done"]
    status, log = kube.run(template, deployment["names"], "probe")
    assert status == 0, log
    assert log.split() == ["%d" % RUNNER_UID, "refused", "/opt/lifeboat", "refused", "/etc/lifeboat/jobs",
                           "refused", "/data/app", "writable", "/tmp", "writable", "/var/lib/lifeboat"], log


def test_verify_pods_succeed(deployment, kube, pushgateway):
    for job in ("app-db", "app-files", "app-redis", "app-db-age"):
        template = pod_template(deployment["objects"], "CronJob", "lifeboat-%s-verify" % job)
        status, log = kube.run(template, deployment["names"], "%s-verify" % job)
        assert status == 0, log
        assert "verified" in log, log
        pushed = [body for method, path, body in pushgateway.pushes if path == "/metrics/job/%s" % job]
        assert any("lifeboat_verify_last_status 1" in body for body in pushed), log


def restore_template(deployment, job, render_dir):
    """The restore Job's pod template, from playbooks/kubernetes_restore.yml in render mode (restore-job.yml)."""
    restore = render_restore_job(deployment["ansible"], render_dir, job, settings=deployment["settings"])
    return pod_template([restore], "Job", "lifeboat-%s-restore" % job)


def assert_restored_database(fresh_path, original):
    """app.db in the fresh volume: the original's pages, integrity_check ok, every row, owned by the runner."""
    restored_db = os.path.join(fresh_path, "app.db")
    assert page_bytes(restored_db) == page_bytes(original)
    with sqlite3.connect(restored_db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 5000
    conn.close()
    assert os.stat(restored_db).st_uid == RUNNER_UID
    return restored_db


def test_restore_pod_brings_back_database_and_directory_into_a_fresh_volume(deployment, kube, tmp_path):
    fresh, fresh_path = kube.volume("app-data-restored")
    names = dict(deployment["names"], **{"app-data": fresh})
    for job in ("app-db", "app-files"):
        template = restore_template(deployment, job, str(tmp_path / job))
        assert template["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
        status, log = kube.run(template, names, "%s-restore" % job)
        assert status == 0, log
        assert "restored set" in log, log
    assert_restored_database(fresh_path, deployment["app_db"])
    assert tree(os.path.join(fresh_path, "files")) == tree(os.path.join(deployment["app_path"], "files"))
    assert tree(os.path.join(fresh_path, "files")) == {name: (data, mode) for name, (data, mode) in FILES.items()}
    assert sorted(os.listdir(fresh_path)) == ["app.db", "files"]  # no staging or scratch left behind


def test_restore_pod_decrypts_the_encrypted_set_into_a_fresh_volume(deployment, kube, tmp_path):
    fresh, fresh_path = kube.volume("app-data-age-restored")
    template = restore_template(deployment, "app-db-age", str(tmp_path / "restore"))
    assert {"name": "age-identity", "mountPath": "/etc/lifeboat/age", "readOnly": True} in \
        template["spec"]["containers"][0]["volumeMounts"]
    status, log = kube.run(template, dict(deployment["names"], **{"app-data": fresh}), "app-db-age-restore")
    assert status == 0, log
    assert "restored set" in log, log
    assert deployment["identity"].strip().splitlines()[-1] not in log  # the key itself is never printed
    assert_restored_database(fresh_path, deployment["app_db"])
    assert sorted(os.listdir(fresh_path)) == ["app.db"]
