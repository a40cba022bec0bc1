"""A Redis restore the way a cluster does it, with `podman kube play`: Redis runs as its own workload (a pod with
restartPolicy Always, password-protected from a Secret, its PVC mounted at its `dir` /data), the restore pod is the
restore Job's pod template of playbooks/kubernetes_restore.yml (the runner image, the same PVC at the same path),
and the job file's restore.restart_command is `redis-cli ... shutdown nosave`: the server exits without saving and
its supervisor (here podman's restart policy, on a cluster the kubelet) starts it again on the placed RDB. The
engine asks the live server where its RDB is (no rdb_path in the job file), keeps the previous RDB aside on the
volume, and when the restarted server's key counts do not match the set's manifest it puts the previous RDB back
and restarts Redis on it the same way."""

import json
import os
import shutil
import subprocess
import time

import pytest
import yaml

from kube_pods import RUNNER_UID, pod_template, podman, secret_data
from support.ansible import AnsibleRunner
from support.kubernetes_render import render_objects, render_restore_job
from support.moto import REGION, aws_env
from support.ports import free_port

KEYS = 200
JOB = "cache"
DEFAULT_SAVE = "3600 1 300 100 60 10000"  # Redis 7's save points without a config line (the restore switches them off)


class RedisPod(object):
    """redis-server from the runner image in the pod <prefix>-redis (restartPolicy Always, hostNetwork on
    127.0.0.1:<port>), its password (requirepass) from a Secret through envFrom, its data in the PVC `volume` at /data with
    Redis's default save points."""

    def __init__(self, kube, image, volume, password):
        self.port = free_port()
        self.password = password
        self.pod = kube.name("redis")
        self.container = "%s-redis" % self.pod
        auth = kube.env_secret("redis-auth", {"REDIS_PASSWORD": password})
        # requirepass from the Secret through stdin (a here-document): never in an argv; redis-server is PID 1
        script = ('exec redis-server - --bind 127.0.0.1 --port %d --dir /data --appendonly no <<EOF\n'
                  'requirepass $REDIS_PASSWORD\nEOF\n' % self.port)
        manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": self.pod, "labels": {"app": "redis"}},
                    "spec": {"hostNetwork": True, "restartPolicy": "Always",
                             "securityContext": {"runAsUser": RUNNER_UID, "runAsGroup": RUNNER_UID},
                             "containers": [{"name": "redis", "image": image, "command": ["/bin/sh", "-c", script],
                                             "envFrom": [{"secretRef": {"name": auth}}],
                                             "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                             "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": volume}}]}}
        path = os.path.join(kube.workdir, "%s.yml" % self.pod)
        with open(path, "w") as handle:
            yaml.safe_dump(manifest, handle)
        kube.pods.append(self.pod)
        podman("kube", "play", path)
        self.wait_ready()

    def cli(self, *args, check=True):
        proc = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port)] + list(args), check=False,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=dict(os.environ, REDISCLI_AUTH=self.password))
        if check:
            assert proc.returncode == 0 and not proc.stdout.startswith("ERR"), proc.stdout
        return proc.stdout.strip()

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.cli("PING", check=False) == "PONG":
                return
            time.sleep(0.1)
        raise AssertionError("Redis in pod %s does not answer:\n%s" % (self.pod, podman("logs", self.container).stdout))

    def restarts(self):
        return int(podman("inspect", "--format", "{{.RestartCount}}", self.container).stdout.strip())

    def info(self, field):
        for line in self.cli("INFO").splitlines():
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
        return None

    def fill(self, prefix, count):
        """FLUSHALL, `count` keys <prefix>:<n> = 'value <n>', SAVE (what the app's data on the PVC is now)."""
        self.cli("FLUSHALL")
        for start in range(0, count, 100):
            pairs = []
            for index in range(start, min(count, start + 100)):
                pairs += ["%s:%d" % (prefix, index), "value %d" % index]
            self.cli("MSET", *pairs)
        self.cli("SAVE")


def runner_json(log):
    """The JSON document `lifeboat ... --json` printed (its stdout, among the console lines of the pod's log)."""
    lines = log.splitlines(keepends=True)
    assert "{\n" in lines, log
    document, _end = json.JSONDecoder().raw_decode("".join(lines[lines.index("{\n"):]))
    return document


@pytest.fixture(scope="module")
def deployment(runner_image, kube, moto, collections, tmp_path_factory):
    """The Redis workload with KEYS keys, the role rendered for the job `cache` (the PVC at Redis's dir, the restart
    through redis-cli shutdown nosave), and its backup pod run once into moto S3."""
    if shutil.which("redis-cli") is None:
        pytest.fail("redis-cli is not installed: apt-get install -y redis-server")
    volume, data_path = kube.volume("redis-data")
    redis = RedisPod(kube, runner_image, volume, "lb-%s" % os.urandom(12).hex())
    redis.fill("key", KEYS)
    bucket = moto.new_bucket("k8s-redis")
    restart = ["redis-cli", "-h", "127.0.0.1", "-p", str(redis.port), "shutdown", "nosave"]
    jobs = [{"name": JOB, "schedule": "25 */6 * * *",
             "volumes": [{"claim": "redis-data", "mount_path": "/data", "read_only": True}],
             "job": {"kind": "redis", "redis_host": "127.0.0.1", "redis_port": redis.port,
                     "s3": {"bucket": bucket, "prefix": "k8s", "endpoint_url": moto.url, "region": REGION},
                     "restore": {"restart_command": restart, "start_timeout": 30}}}]
    ansible = AnsibleRunner(str(tmp_path_factory.mktemp("ansible")), collections, extra_env=aws_env())
    settings = {"kubernetes_schedule_namespace": "app", "kubernetes_schedule_image": runner_image,
                "kubernetes_schedule_image_pull_policy": "Never", "kubernetes_schedule_jobs": jobs,
                "kubernetes_schedule_credentials_secret": "lifeboat-s3",
                "kubernetes_schedule_credentials_secrets": ["lifeboat-redis"]}
    objects = render_objects(ansible, str(tmp_path_factory.mktemp("render")), settings=settings)
    secret = "lifeboat-job-%s" % JOB
    job_files = secret_data(objects, secret)
    names = {"redis-data": volume,
             "lifeboat-s3": kube.env_secret("lifeboat-s3", {"AWS_ACCESS_KEY_ID": "testing",
                                                            "AWS_SECRET_ACCESS_KEY": "testing"}),
             "lifeboat-redis": kube.env_secret("lifeboat-redis", {"REDISCLI_AUTH": redis.password}),
             secret: kube.volume_secret(secret, job_files)}
    status, log = kube.run(pod_template(objects, "CronJob", "lifeboat-%s-backup" % JOB), names, "cache-backup")
    assert status == 0, log
    template = pod_template([render_restore_job(ansible, str(tmp_path_factory.mktemp("restore")), JOB,
                                                settings=settings)], "Job", "lifeboat-%s-restore" % JOB)
    return {"redis": redis, "data_path": data_path, "names": names, "template": template, "bucket": bucket,
            "job_files": job_files}


def kept_aside(data_path):
    return sorted(name for name in os.listdir(data_path) if name.startswith("dump.rdb.lifeboat-prev-"))


def test_restore_pod_restarts_the_redis_workload_on_the_set(deployment, kube):
    redis, data_path = deployment["redis"], deployment["data_path"]
    mounts = deployment["template"]["spec"]["containers"][0]["volumeMounts"]  # the PVC read-write, at Redis's dir
    assert [mount for mount in mounts if mount["mountPath"] == "/data" and not mount.get("readOnly")], mounts
    (job_file,) = [json.loads(data) for data in deployment["job_files"].values()]
    assert "rdb_path" not in job_file and "rdb_path" not in job_file["restore"]  # the server says where its RDB is
    redis.fill("other", 50)  # the data changed since the backup, and saved
    run_id, restarts = redis.info("run_id"), redis.restarts()
    status, log = kube.run(deployment["template"], deployment["names"], "cache-restore")
    assert status == 0, log
    result = runner_json(log)
    assert result["status"] == "ok", result
    assert result["restored_to"] == "/data/dump.rdb"  # asked of the server: its dir is /data
    assert result["verification"]["keys"] == {"db0": KEYS} and result["verification"]["keys_match"] is True
    assert redis.password not in log
    # the supervisor restarted the same container once, and the new server serves exactly the backed-up keys
    redis.wait_ready()
    assert redis.restarts() == restarts + 1
    assert redis.info("run_id") != run_id
    assert redis.cli("DBSIZE") == str(KEYS)
    assert redis.cli("MGET", "key:0", "key:57", "key:%d" % (KEYS - 1)).splitlines() == [
        "value 0", "value 57", "value %d" % (KEYS - 1)]
    assert redis.cli("EXISTS", "other:0") == "0"
    assert redis.cli("CONFIG", "GET", "save").splitlines()[1] == DEFAULT_SAVE  # its own save points are back
    # the previous RDB (the changed data, saved just before) is kept aside on the volume
    (previous,) = kept_aside(data_path)
    assert result["previous"] == "/data/" + previous
    with open(os.path.join(data_path, previous), "rb") as handle:
        data = handle.read()
    assert b"other:49" in data and b"key:0" not in data
    assert sorted(name for name in os.listdir(data_path) if not name.startswith("dump.rdb.lifeboat-prev-")) == [
        "dump.rdb"]  # no staging file left


def test_a_restart_command_that_restarts_nothing_leaves_the_previous_data(deployment, kube):
    """redis-cli exits 0 on an error reply: without REDISCLI_AUTH its SHUTDOWN is refused (NOAUTH) and nothing
    restarts. The engine sees the same run_id for start_timeout, puts the previous RDB back without a second
    restart and brings the save points back: the server never stopped serving the data of before."""
    redis, data_path = deployment["redis"], deployment["data_path"]
    secret = "lifeboat-job-%s" % JOB
    files = deployment["job_files"]
    assert len(files) == 1, sorted(files)
    name = next(iter(files))
    document = json.loads(files[name])
    document["restore"].update(start_timeout=3, restart_command=["env", "-u", "REDISCLI_AUTH"]
                               + document["restore"]["restart_command"])
    names = dict(deployment["names"], **{secret: kube.volume_secret(
        "job-noauth", {name: json.dumps(document).encode("utf-8")})})
    redis.fill("before", 30)
    run_id, restarts, kept = redis.info("run_id"), redis.restarts(), kept_aside(data_path)
    status, log = kube.run(deployment["template"], names, "cache-restore-noauth")
    assert status != 0, log
    result = runner_json(log)
    assert result["status"] == "failed", result
    assert "restart_command did not restart it" in result["error"], result
    assert "the previous RDB was put back and Redis, never restarted, still serves the data of before" in \
        result["error"], result
    assert redis.restarts() == restarts and redis.info("run_id") == run_id
    assert redis.cli("DBSIZE") == "30" and redis.cli("GET", "before:29") == "value 29"
    assert redis.cli("CONFIG", "GET", "save").splitlines()[1] == DEFAULT_SAVE  # the engine put them back
    with open(os.path.join(data_path, "dump.rdb"), "rb") as handle:
        assert b"before:29" in handle.read()  # the file on the volume is the data of before again
    assert kept_aside(data_path) == kept


def test_a_set_whose_key_counts_do_not_match_puts_the_previous_data_back(deployment, kube, moto):
    """The set's manifest promises more keys than its RDB holds: the restarted server is judged wrong, the
    previous RDB goes back and the supervisor restarts Redis on it, so the data of before is served again."""
    redis, data_path = deployment["redis"], deployment["data_path"]
    client = moto.client()
    (key,) = [item["Key"] for item in client.list_objects_v2(Bucket=deployment["bucket"])["Contents"]
              if item["Key"].endswith("/manifest.json")]
    manifest = json.loads(client.get_object(Bucket=deployment["bucket"], Key=key)["Body"].read())
    manifest["verification"].update(keys={"db0": KEYS + 1000}, keys_tolerance=0)
    client.put_object(Bucket=deployment["bucket"], Key=key, Body=json.dumps(manifest).encode())
    redis.fill("before", 70)
    restarts, kept = redis.restarts(), kept_aside(data_path)
    status, log = kube.run(deployment["template"], deployment["names"], "cache-restore-mismatch")
    assert status != 0, log
    result = runner_json(log)
    assert result["status"] == "failed", result
    assert "does not hold the keys" in result["error"], result
    assert "the previous RDB was put back and Redis restarted on it (db0: 70 keys)" in result["error"], result
    redis.wait_ready()
    assert redis.restarts() == restarts + 2  # on the set, then on the previous RDB
    assert redis.cli("DBSIZE") == "70"
    assert redis.cli("GET", "before:69") == "value 69" and redis.cli("EXISTS", "key:0") == "0"
    assert kept_aside(data_path) == kept  # the file kept aside went back into place
