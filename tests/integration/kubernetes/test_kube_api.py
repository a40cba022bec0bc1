"""The kubernetes_schedule role's apply and delete tasks and the kubernetes_restore playbook run for real against a
fake Kubernetes API server (tests/support/fake_kube/: no API server can be had on this machine), through the
same kubernetes.core modules and Python client a cluster would be reached with. The fake's Jobs run: their Pod is
run with `podman kube play` (kube_pods.Kube.run), the PVCs being podman volumes and the Secrets those the role put
in the fake's store. Proven here: the role creates exactly the rendered objects, a second run changes nothing,
state absent leaves none of them (and the CronJobs' Jobs and Pods go with them); the restore playbook scales the
StatefulSet to 0, runs the restore Job, scales back and the database is the backed-up one; when the health check
fails, the put-back Job brings the previous data back and the StatefulSet is scaled back; a failed restore Job
leaves the data and scales a Deployment back; run_job.yml reads the Job's result whatever order the pod's stdout and
stderr lines come in; without a result the runbook says the outcome is unknown; --check changes nothing (the
role's writes are server-side dry runs, the runbook reports its plan). What a fake cannot prove: RBAC, admission,
scheduling on real nodes (see the fake's docstring)."""

import base64
import http.server
import json
import os
import re
import shutil
import sqlite3
import threading
import time

import pytest

from kube_pods import REPO, RUNNER_UID, Kube
from support.ansible import AnsibleRunner
from support.fake_kube import FakeKubeApi, defaulted
from support.kubernetes_render import documents, render_schedule
from support.moto import REGION, aws_env

RESTORE_PLAYBOOK = os.path.join(REPO, "playbooks", "kubernetes_restore.yml")
ROLE_PLAY = """\
- name: Schedule the lifeboat jobs
  hosts: localhost
  gather_facts: false
  roles:
    - role: lifeboat.backup.kubernetes_schedule
"""
NAMESPACE = "app"
ROWS = 2000
# SQLite header fields the backup API rewrites in the copy (file change counter, version-valid-for number).
SQLITE_COUNTERS = (slice(24, 28), slice(92, 96))
SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "generation")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


class PodmanJobs(object):
    """The fake API's job runner: the Job's Pod run to its end with podman kube play. PVCs are the podman volumes
    of `claims`; the Secrets the pod mounts or reads through envFrom come from the fake's store (one missing fails
    the pod, where a kubelet would hold it in CreateContainerConfigError until the Job's deadline)."""

    def __init__(self, workdir, claims):
        self.workdir = workdir
        self.claims = claims

    @staticmethod
    def secret(api, namespace, name):
        found = api.get("v1", "Secret", namespace, name)
        if found is None:
            return None
        return {key: base64.b64decode(value) for key, value in (found.get("data") or {}).items()}

    def __call__(self, api, job, pod):
        namespace, spec = pod["metadata"]["namespace"], pod["spec"]
        run = Kube(self.workdir)  # the Secrets of this pod only, removed with it
        try:
            names = {}
            for volume in spec.get("volumes") or []:
                claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
                if claim:
                    if claim not in self.claims:
                        return 1, 'Job %s: persistentvolumeclaim "%s" not found\n' % (job["metadata"]["name"], claim)
                    names[claim] = self.claims[claim]
                if volume.get("secret"):
                    name = volume["secret"]["secretName"]
                    data = self.secret(api, namespace, name)
                    if data is None and not volume["secret"].get("optional"):
                        return 1, 'Job %s: secret "%s" not found\n' % (job["metadata"]["name"], name)
                    names[name] = run.volume_secret(name, data or {})
            for container in spec["containers"]:
                for source in container.get("envFrom") or []:
                    name = (source.get("secretRef") or {}).get("name")
                    if name:
                        data = self.secret(api, namespace, name)
                        if data is None:
                            return 1, 'Job %s: secret "%s" not found\n' % (job["metadata"]["name"], name)
                        names[name] = run.env_secret(name, {key: value.decode("utf-8") for key, value in data.items()})
            template = {"metadata": {"labels": pod["metadata"].get("labels") or {}},
                        "spec": {key: value for key, value in spec.items() if key != "nodeName"}}
            return run.run(template, names, pod["metadata"]["name"][-30:].strip("-"))
        finally:
            run.close()


class HealthCheck(object):
    """An HTTP health URL on 127.0.0.1 answering every GET with `status`; counts the requests."""

    def __init__(self, status):
        self.hits = []
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                body = b"unhealthy\n" if status >= 400 else b"ok\n"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/healthz" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def page_bytes(data):
    """The database bytes with the header counters the backup API rewrites zeroed."""
    data = bytearray(data)
    for field in SQLITE_COUNTERS:
        data[field] = bytes(field.stop - field.start)
    return bytes(data)


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def query(path, sql):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def change_database(path, marker):
    """What the app wrote since the backup: rows gone, a marker row added (as root; the file keeps its owner)."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DELETE FROM items WHERE id % 3 = 0")
        conn.execute("INSERT INTO items (name, body) VALUES (?, ?)", (marker, b""))
    conn.close()
    return read(path)


def recap(output):
    """(ok, changed, failed) of localhost in the PLAY RECAP."""
    found = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", output)
    assert found, output[-3000:]
    return tuple(int(value) for value in found.groups())


def stripped(obj):
    """A stored object without what the server sets (uid, resourceVersion, ..., status, the apply annotation)."""
    obj = json.loads(json.dumps(obj))
    for field in SERVER_FIELDS:
        obj["metadata"].pop(field, None)
    annotations = obj["metadata"].get("annotations") or {}
    annotations.pop(LAST_APPLIED, None)
    if not annotations:
        obj["metadata"].pop("annotations", None)
    obj.pop("status", None)
    return obj


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.fixture(scope="module")
def image(request):
    """The runner image, or a skip when podman kube play cannot run here (what test_kube_play.py needs)."""
    missing = [tool for tool in ("podman", "runc", "catatonit", "debootstrap") if shutil.which(tool) is None]
    if missing:
        pytest.skip("podman kube play needs %s (apt-get install -y podman runc catatonit debootstrap)"
                    % " ".join(missing))
    return request.getfixturevalue("runner_image")


@pytest.fixture(scope="module")
def cluster(image, kube, moto, collections, tmp_path_factory):
    """The fake API with namespace app, the S3 credentials Secret, the StatefulSet app (2 replicas) whose PVC
    app-data holds app.db and the Deployment web (3 replicas); the role applied (state present) and the backup
    CronJob run once (a set in moto S3)."""
    workdir = str(tmp_path_factory.mktemp("fake-kube"))
    app_volume, app_path = kube.volume("app-data")
    app_db = os.path.join(app_path, "app.db")
    conn = sqlite3.connect(app_db)
    with conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, body BLOB)")
        conn.executemany("INSERT INTO items (name, body) VALUES (?, ?)",
                         [("item %d" % i, os.urandom(48)) for i in range(ROWS)])
    conn.close()
    os.chown(app_db, RUNNER_UID, RUNNER_UID)
    api = FakeKubeApi(workdir, job_runner=PodmanJobs(workdir, {"app-data": app_volume}))
    try:
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "lifeboat-s3", "namespace": NAMESPACE},
                    "stringData": {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}})
        labels = {"app": "app"}
        api.create({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "app", "namespace": NAMESPACE},
                    "spec": {"replicas": 2, "serviceName": "app", "selector": {"matchLabels": labels},
                             "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                                 {"name": "app", "image": "registry.example.com/app:1",
                                  "volumeMounts": [{"name": "data", "mountPath": "/data/app"}]}],
                                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "app-data"}}]}}}})
        web = {"app": "web"}
        api.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NAMESPACE},
                    "spec": {"replicas": 3, "selector": {"matchLabels": web}, "template": {
                        "metadata": {"labels": web}, "spec": {"containers": [
                            {"name": "web", "image": "registry.example.com/web:1"}]}}}})
        bucket = moto.new_bucket("k8sapi")
        jobs = [{"name": "app-db", "schedule": "15 */6 * * *",
                 "volumes": [{"claim": "app-data", "mount_path": "/data/app", "read_only": True}],
                 "job": {"kind": "sqlite", "path": "/data/app/app.db",
                         "s3": {"bucket": bucket, "prefix": "k8s", "endpoint_url": moto.url, "region": REGION}}}]
        settings = {"kubernetes_schedule_namespace": NAMESPACE, "kubernetes_schedule_image": image,
                    "kubernetes_schedule_image_pull_policy": "Never", "kubernetes_schedule_jobs": jobs,
                    "kubernetes_schedule_credentials_secret": "lifeboat-s3",
                    "kubernetes_schedule_kubeconfig": api.kubeconfig}
        ansible = AnsibleRunner(str(tmp_path_factory.mktemp("ansible")), collections, extra_env=aws_env())
        play = os.path.join(ansible.workdir, "schedule.yml")
        with open(play, "w") as handle:
            handle.write(ROLE_PLAY)
        first = ansible.playbook(play, extra_vars=settings)
        assert first.returncode == 0, first.stdout[-4000:]
        backed_up = read(app_db)
        job = api.trigger_cronjob(NAMESPACE, "lifeboat-app-db-backup")
        done = api.wait_job(NAMESPACE, job, timeout=240)
        assert (done.get("status") or {}).get("succeeded") == 1, api.job_log(NAMESPACE, job)
        keys = [item["Key"] for item in moto.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert len([key for key in keys if key.startswith("k8s/app-db/") and key.endswith("/manifest.json")]) == 1, keys
        yield {"api": api, "ansible": ansible, "play": play, "settings": settings, "first": first,
               "app_db": app_db, "app_path": app_path, "backed_up": backed_up, "bucket": bucket}
    finally:
        api.close()


def rendered_objects(cluster, tmp_path, **overrides):
    proc = render_schedule(cluster["ansible"], str(tmp_path / "render"), settings=cluster["settings"], **overrides)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return documents(str(tmp_path / "render" / "manifests.yml"))


def stored(api, obj):
    return api.get(obj["apiVersion"], obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])


def test_role_creates_the_rendered_objects_and_a_second_run_changes_nothing(cluster, tmp_path):
    api = cluster["api"]
    objects = rendered_objects(cluster, tmp_path)
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("Secret", "lifeboat-job-app-db"), ("CronJob", "lifeboat-app-db-backup"), ("CronJob", "lifeboat-app-db-verify")]
    assert recap(cluster["first"].stdout)[1] >= 1
    before = {}
    for obj in objects:
        found = stored(api, obj)
        assert found is not None, obj["metadata"]["name"]
        # what the server holds is the manifest (plus the fields a server fills in), applied by client-side apply
        assert stripped(found) == defaulted(obj)
        assert json.loads(found["metadata"]["annotations"][LAST_APPLIED]) == obj
        before[obj["metadata"]["name"]] = found["metadata"]["resourceVersion"]
    mark = len(api.requests)
    again = cluster["ansible"].playbook(cluster["play"], extra_vars=cluster["settings"])
    assert again.returncode == 0, again.stdout[-4000:]
    assert recap(again.stdout)[1] == 0, again.stdout[-4000:]
    # Nothing created, replaced or deleted. kubernetes.core 6.2's client-side apply still sends the CronJobs a
    # merge patch each run (its strategic-merge keys spell the kind "Cronjob", so the containers list the server
    # filled in with defaults looks changed): the server takes it as a no-op, the resourceVersions stay.
    writes = [req for req in api.requests[mark:] if req[0] not in ("GET", "PATCH")]
    assert writes == [], writes
    for obj in objects:
        assert stored(api, obj)["metadata"]["resourceVersion"] == before[obj["metadata"]["name"]]


def test_state_absent_leaves_no_object(cluster, tmp_path):
    """In a namespace of its own: present, a Job from the backup CronJob (its pod fails: no credentials Secret
    there), then absent: none of the objects is left, nor the CronJob's Job and Pod."""
    api = cluster["api"]
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gone"}})
    settings = dict(cluster["settings"], kubernetes_schedule_namespace="gone")
    objects = rendered_objects(cluster, tmp_path, kubernetes_schedule_namespace="gone")
    present = cluster["ansible"].playbook(cluster["play"], extra_vars=settings)
    assert present.returncode == 0, present.stdout[-4000:]
    assert all(stored(api, obj) is not None for obj in objects)
    job = api.trigger_cronjob("gone", "lifeboat-app-db-backup")
    api.wait_job("gone", job, timeout=60)
    assert [p["metadata"]["labels"]["job-name"] for p in api.list("v1", "Pod", "gone")] == [job]
    mark = len(api.requests)
    absent = cluster["ansible"].playbook(cluster["play"], extra_vars=dict(settings, kubernetes_schedule_state="absent"))
    assert absent.returncode == 0, absent.stdout[-4000:]
    assert recap(absent.stdout)[1] == 1, absent.stdout[-4000:]
    assert [obj for obj in objects if stored(api, obj) is not None] == []
    deletes = [req for req in api.requests[mark:] if req[0] == "DELETE"]
    assert len(deletes) == len(objects), deletes
    assert [option[1] for option in api.delete_options[-len(objects):]] == ["Background"] * len(objects)
    assert wait_for(lambda: not api.list("batch/v1", None, "gone") and not api.list("v1", "Pod", "gone"), 5), (
        api.list(None, None, "gone"))
    assert api.list(None, None, "gone") == []
    again = cluster["ansible"].playbook(cluster["play"], extra_vars=dict(settings, kubernetes_schedule_state="absent"))
    assert again.returncode == 0 and recap(again.stdout)[1] == 0, again.stdout[-4000:]


def restore_variables(cluster, **extra):
    variables = dict(cluster["settings"], lifeboat_k8s_job="app-db", lifeboat_k8s_workload_name="app",
                     lifeboat_k8s_health_retries=10, lifeboat_k8s_health_delay=1, lifeboat_k8s_timeout=120)
    variables.update(extra)
    return variables


def workload(api, kind="StatefulSet", name="app"):
    found = api.get("apps/v1", kind, NAMESPACE, name)
    return found["spec"]["replicas"], (found.get("status") or {}).get("readyReplicas", 0)


def replicas_at(api, job, kind="StatefulSet", name="app"):
    """(spec.replicas, status.replicas) of the workload when each Job `job` was created."""
    return [entry["workloads"][(kind, NAMESPACE, name)] for entry in api.jobs_created
            if entry["name"] == job and entry["namespace"] == NAMESPACE]


def kept_aside(path):
    return sorted(name for name in os.listdir(path) if name.startswith("app.db.lifeboat-prev-"))


def test_restore_playbook_restores_the_set_with_the_workload_stopped(cluster):
    api = cluster["api"]
    assert wait_for(lambda: workload(api) == (2, 2))
    previous = change_database(cluster["app_db"], "written after the backup")
    aside_before = kept_aside(cluster["app_path"])
    created = len(replicas_at(api, "lifeboat-app-db-restore"))
    # a backoffLimit for the CronJobs is not one for the restore: one pod, whose result is read
    proc = cluster["ansible"].playbook(RESTORE_PLAYBOOK, extra_vars=restore_variables(
        cluster, kubernetes_schedule_backoff_limit=2))
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert api.get("batch/v1", "Job", NAMESPACE, "lifeboat-app-db-restore")["spec"]["backoffLimit"] == 0
    # the Job ran with the StatefulSet at 0 (asked and reached), which is back at 2 and ready
    assert replicas_at(api, "lifeboat-app-db-restore")[created:] == [(0, 0)]
    assert workload(api) == (2, 2)
    spec_history = [entry[4] for entry in api.history if entry[3] == "app"]
    assert spec_history[-2:] == [0, 2], spec_history
    job = api.get("batch/v1", "Job", NAMESPACE, "lifeboat-app-db-restore")
    assert job["status"]["succeeded"] == 1
    assert "restored set" in api.job_log(NAMESPACE, "lifeboat-app-db-restore")
    # the database is the backed-up one, and the data it replaced is kept aside
    restored = read(cluster["app_db"])
    assert page_bytes(restored) == page_bytes(cluster["backed_up"])
    assert query(cluster["app_db"], "PRAGMA integrity_check") == [("ok",)]
    assert query(cluster["app_db"], "SELECT count(*) FROM items") == [(ROWS,)]
    assert query(cluster["app_db"], "SELECT count(*) FROM items WHERE name = 'written after the backup'") == [(0,)]
    new_aside = [name for name in kept_aside(cluster["app_path"]) if name not in aside_before]
    assert len(new_aside) == 1, new_aside
    assert read(os.path.join(cluster["app_path"], new_aside[0])) == previous
    assert "restored to /data/app/app.db and healthy" in proc.stdout
    assert new_aside[0] in proc.stdout


def test_failed_health_check_puts_the_previous_data_back(cluster):
    api = cluster["api"]
    assert wait_for(lambda: workload(api) == (2, 2))
    previous = change_database(cluster["app_db"], "written before the failed restore")
    aside_before = kept_aside(cluster["app_path"])
    restores = len(replicas_at(api, "lifeboat-app-db-restore"))
    put_backs = len(replicas_at(api, "lifeboat-app-db-put-back"))
    health = HealthCheck(500)
    try:
        proc = cluster["ansible"].playbook(RESTORE_PLAYBOOK, extra_vars=restore_variables(
            cluster, lifeboat_k8s_health_url=health.url, lifeboat_k8s_health_retries=2))
    finally:
        health.close()
    assert proc.returncode != 0, proc.stdout[-5000:]
    assert "The previous data was put back and the workload runs on it." in proc.stdout, (
        proc.stdout[-3000:] + "\n----\n" + api.job_log(NAMESPACE, "lifeboat-app-db-restore")[-3000:] + "\n----\n"
        + (api.job_log(NAMESPACE, "lifeboat-app-db-put-back") or "")[-3000:])
    assert "The workload was scaled back to 2." in proc.stdout
    assert len(health.hits) >= 2, health.hits
    # the restore Job and the put-back Job each ran with the StatefulSet at 0; it is back at 2
    assert replicas_at(api, "lifeboat-app-db-restore")[restores:] == [(0, 0)]
    assert replicas_at(api, "lifeboat-app-db-put-back")[put_backs:] == [(0, 0)]
    assert api.get("batch/v1", "Job", NAMESPACE, "lifeboat-app-db-put-back")["status"]["succeeded"] == 1
    assert wait_for(lambda: workload(api) == (2, 2))
    # the volume holds the data from before the restore again, byte for byte, and nothing else was left
    assert read(cluster["app_db"]) == previous
    assert query(cluster["app_db"], "SELECT count(*) FROM items WHERE name = 'written before the failed restore'") == [
        (1,)]
    assert kept_aside(cluster["app_path"]) == aside_before
    assert not [name for name in os.listdir(cluster["app_path"]) if name.startswith("app.db-")]
    assert os.stat(cluster["app_db"]).st_uid == RUNNER_UID
    # the runner's `put-back --json` result: the last JSON document of the log (its stderr lines may follow it)
    lines = api.job_log(NAMESPACE, "lifeboat-app-db-put-back").strip().splitlines()
    start = max(index for index, line in enumerate(lines) if line.startswith("{"))
    result = json.JSONDecoder().raw_decode("\n".join(lines[start:]))[0]
    assert (result["status"], result["restored_to"]) == ("ok", "/data/app/app.db")
    assert result["previous"].startswith("/data/app/app.db.lifeboat-prev-") and result["removed"][0] == "/data/app/app.db"


def test_failed_restore_job_leaves_the_live_data_and_scales_back(cluster):
    """With the Deployment web as the workload (its own readiness rules in k8s_scale's wait) and a set that does
    not exist: the restore Job fails, nothing is replaced, the Deployment is back at its 3 replicas."""
    api = cluster["api"]
    assert wait_for(lambda: workload(api, "Deployment", "web") == (3, 3))
    current = read(cluster["app_db"])
    aside_before = kept_aside(cluster["app_path"])
    restores = len(replicas_at(api, "lifeboat-app-db-restore"))
    proc = cluster["ansible"].playbook(RESTORE_PLAYBOOK, extra_vars=restore_variables(
        cluster, lifeboat_k8s_backup="20200101T000000Z-000000", lifeboat_k8s_workload_kind="Deployment",
        lifeboat_k8s_workload_name="web"))
    assert proc.returncode != 0, proc.stdout[-5000:]
    assert "the restore Job lifeboat-app-db-restore failed: " in proc.stdout, proc.stdout[-5000:]
    assert "The live data was not replaced." in proc.stdout and "The workload was scaled back to 3." in proc.stdout
    job = api.get("batch/v1", "Job", NAMESPACE, "lifeboat-app-db-restore")
    assert job["status"].get("failed") == 1 and not job["status"].get("succeeded")
    # a Deployment's status leaves out zero counts, as a real one does
    assert replicas_at(api, "lifeboat-app-db-restore", "Deployment", "web")[restores:] == [(0, None)]
    assert wait_for(lambda: workload(api, "Deployment", "web") == (3, 3))
    assert workload(api) == (2, 2)  # the StatefulSet was not touched
    assert read(cluster["app_db"]) == current
    assert kept_aside(cluster["app_path"]) == aside_before


RUN_JOB_PLAY = """\
- name: Run one Job with the role's run_job.yml
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/kubernetes.core.k8s:
      kubeconfig: "{{ kubeconfig }}"
  tasks:
    - name: Run the Job
      ansible.builtin.include_role:
        name: lifeboat.backup.kubernetes_schedule
        tasks_from: run_job.yml
      vars:
        _kubernetes_schedule_job_object: "{{ job }}"
    - name: Save its result
      ansible.builtin.copy:
        content: "{{ _kubernetes_schedule_job_result | to_json }}"
        dest: "{{ result_file }}"
        mode: "0600"
"""
RESULT = {"status": "ok", "restored_to": "/data/app.db", "previous": "/data/app.db.lifeboat-prev-20261122T020000Z-0a1b2c3d",
          "backup": {"id": "20261122T020000Z-abcdef"}}


@pytest.mark.parametrize("code, log, expected", [
    # a container's stdout and stderr are two pipes: the runner's console lines can follow its --json result
    (0, "2026-12-05T07:35:59Z lifeboat[1] info job=app-db restore of job app-db (sqlite, backup latest)\n"
        + json.dumps(RESULT, indent=2, sort_keys=True) + "\n"
        "2026-12-05T07:35:59Z lifeboat[1] info job=app-db restored set 20261122T020000Z-abcdef of job app-db\n"
        "2026-12-05T07:35:59Z lifeboat[1] warning job=app-db ANALYZE failed\n", dict(RESULT, job_succeeded=True)),
    (1, '{"error": "no set", "status": "failed"}\nlifeboat: error: restore of job app-db failed: no set\n',
     {"status": "failed", "error": "no set", "job_succeeded": False}),
])
def test_run_job_reads_the_result_whatever_order_the_log_has(tmp_path, collections, code, log, expected):
    """run_job.yml against the fake API with a scripted pod (no podman): create, poll, the log by the Job's
    selector, the result document."""
    api = FakeKubeApi(str(tmp_path), job_runner=lambda *args: (code, log))
    try:
        ansible = AnsibleRunner(str(tmp_path / "ansible"), collections)
        play = os.path.join(ansible.workdir, "run-job.yml")
        with open(play, "w") as handle:
            handle.write(RUN_JOB_PLAY)
        job = {"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": "lifeboat-app-db-restore", "namespace": "default"},
               "spec": {"backoffLimit": 0, "activeDeadlineSeconds": 60, "template": {
                   "metadata": {"labels": {"app.kubernetes.io/name": "lifeboat"}},
                   "spec": {"restartPolicy": "Never", "containers": [{"name": "lifeboat", "image": "runner"}]}}}}
        result_file = str(tmp_path / "result.json")
        proc = ansible.playbook(play, extra_vars={"kubeconfig": api.kubeconfig, "job": job,
                                                  "result_file": result_file})
        assert proc.returncode == 0, proc.stdout[-4000:]
        assert "FutureWarning" not in proc.stdout, proc.stdout[-4000:]
        with open(result_file) as handle:
            assert json.load(handle) == expected
        pods = api.list("v1", "Pod", "default")
        assert [pod["metadata"]["labels"]["job-name"] for pod in pods] == ["lifeboat-app-db-restore"]
    finally:
        api.close()


def scripted_restore(tmp_path, collections, job_runner, check=False):
    """The restore playbook against a fake API whose Jobs run `job_runner` (no podman), with a StatefulSet app of
    2 replicas in namespace default. Returns (the finished ansible-playbook, the fake, stopped)."""
    api = FakeKubeApi(str(tmp_path), job_runner=job_runner)
    api.create({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "app", "namespace": "default"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "app"}}, "template": {
                    "metadata": {"labels": {"app": "app"}}, "spec": {"containers": [{"name": "app", "image": "app"}]}}}})
    try:
        assert wait_for(lambda: (api.get("apps/v1", "StatefulSet", "default", "app").get("status") or {}).get(
            "readyReplicas") == 2)
        ansible = AnsibleRunner(str(tmp_path / "ansible"), collections)
        variables = {"kubernetes_schedule_kubeconfig": api.kubeconfig, "kubernetes_schedule_image": "runner",
                     "kubernetes_schedule_jobs": [{"name": "app-db", "schedule": "@daily", "job": {
                         "kind": "sqlite", "path": "/data/app.db", "s3": {"bucket": "backups"}},
                         "volumes": [{"claim": "data-app-0", "mount_path": "/data"}]}],
                     "lifeboat_k8s_job": "app-db", "lifeboat_k8s_workload_name": "app",
                     "lifeboat_k8s_health_retries": 3, "lifeboat_k8s_health_delay": 1, "lifeboat_k8s_timeout": 60}
        return ansible.playbook(RESTORE_PLAYBOOK, extra_vars=variables, check=check), api
    finally:
        api.close()


def job_deleted_while_running(api, job, pod):
    api.delete(("batch/v1", "Job", pod["metadata"]["namespace"], job["metadata"]["name"]), "Background")
    return 137, ""


@pytest.mark.parametrize("job_runner", [lambda *args: (137, "Killed\n"), job_deleted_while_running],
                         ids=["no result in the log", "Job deleted while it ran"])
def test_restore_without_a_result_says_the_outcome_is_unknown(tmp_path, collections, job_runner):
    """A restore pod killed past the swap prints no result: the runbook must not claim the data is untouched."""
    proc, api = scripted_restore(tmp_path, collections, job_runner)
    assert proc.returncode != 0, proc.stdout[-4000:]
    assert "Whether the live data was replaced is unknown (the restore Job left no result)" in proc.stdout, (
        proc.stdout[-4000:])
    assert "The live data was not replaced" not in proc.stdout
    assert "The workload was scaled back to 2." in proc.stdout
    assert [entry[4] for entry in api.history][-2:] == [0, 2]
    assert recap(proc.stdout)[2] == 1


def test_check_mode_changes_nothing(cluster, tmp_path, collections):
    """--check: the role's objects go to the server as dry runs only; the restore runbook reports its plan and
    stops (a dry-run Job does not exist to be waited for), without scaling."""
    api = cluster["api"]
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dry"}})
    settings = dict(cluster["settings"], kubernetes_schedule_namespace="dry")
    dry_runs = len(api.dry_runs)
    proc = cluster["ansible"].playbook(cluster["play"], extra_vars=settings, check=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert recap(proc.stdout)[1] == 1  # the apply task, changed as it would be
    assert api.list(None, None, "dry") == []
    assert [method for method, _path in api.dry_runs[dry_runs:]] == ["POST"] * 3
    restores = len(api.jobs_created)
    history = len(api.history)
    proc = cluster["ansible"].playbook(RESTORE_PLAYBOOK, extra_vars=restore_variables(cluster), check=True,
                                       timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert ("check mode, nothing was changed: the restore would scale StatefulSet app from 2 to 0, run the Job "
            "lifeboat-app-db-restore (job app-db, backup latest), scale back to 2") in proc.stdout, proc.stdout[-4000:]
    assert len(api.jobs_created) == restores and len(api.history) == history
    assert recap(proc.stdout)[1] == 0
