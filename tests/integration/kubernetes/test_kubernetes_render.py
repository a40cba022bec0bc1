"""The kubernetes_schedule role without a cluster: what it renders (kubernetes_schedule_apply: false) is valid for
the Kubernetes API (offline OpenAPI schemas), follows docs/kubernetes.md (hardened pods, Forbid, the job file in a
Secret, credentials only by reference, the age identity in the verify pods only), is the same in check mode, and
state absent deletes exactly those objects. The `runner` and `rendered` fixtures are in conftest.py."""

import base64
import copy
import filecmp
import json
import os

import pytest
from kubernetes_validate.utils import ValidationError

from support.kubernetes_render import (AGE_IDENTITY_FILE, CREDENTIALS_SECRET, PUSHGATEWAY, SETTINGS, documents,
                                       encrypted_settings, render_objects, render_schedule, validate)
from engine.runner import jobs as runner_jobs

JOB_NAMES = [job["name"] for job in SETTINGS["kubernetes_schedule_jobs"]]


def refs(objects):
    return [(o["apiVersion"], o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects]


def cronjobs(objects):
    return [o for o in objects if o["kind"] == "CronJob"]


def test_present_renders_a_secret_and_two_cronjobs_per_job_in_apply_order(rendered):
    objects = rendered[1]
    expected = []
    for name in JOB_NAMES:
        expected += [("v1", "Secret", "app", "lifeboat-job-%s" % name),
                     ("batch/v1", "CronJob", "app", "lifeboat-%s-backup" % name),
                     ("batch/v1", "CronJob", "app", "lifeboat-%s-verify" % name)]
    assert refs(objects) == expected


def test_every_rendered_object_passes_the_kubernetes_schemas(rendered):
    objects = rendered[1]
    for obj in objects:
        validate(obj)


@pytest.mark.parametrize("breakage", ["unknown field", "wrong type", "missing required field"])
def test_the_schema_validation_refuses_a_broken_manifest(rendered, breakage):
    """The validator bites: the same CronJob, broken once, fails."""
    broken = copy.deepcopy(cronjobs(rendered[1])[0])
    container = broken["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    if breakage == "unknown field":
        broken["spec"]["concurrency_policy"] = broken["spec"].pop("concurrencyPolicy")
    elif breakage == "wrong type":
        container["securityContext"]["runAsUser"] = "lifeboat"
    else:
        del container["name"]
    with pytest.raises(ValidationError):
        validate(broken)


def test_cronjobs_forbid_overlaps_and_carry_limits_deadlines_and_resources(rendered):
    objects = rendered[1]
    by_name = {o["metadata"]["name"]: o for o in cronjobs(objects)}
    assert by_name["lifeboat-app-db-backup"]["spec"]["schedule"] == "15 */6 * * *"
    assert by_name["lifeboat-app-db-verify"]["spec"]["schedule"] == "45 4 * * 0"  # the role's default
    assert by_name["lifeboat-chroma-backup"]["spec"]["schedule"] == "@daily"
    assert by_name["lifeboat-chroma-verify"]["spec"]["schedule"] == "30 5 * * 1"
    for name, cronjob in by_name.items():
        spec = cronjob["spec"]
        assert spec["concurrencyPolicy"] == "Forbid"
        assert spec["startingDeadlineSeconds"] == 600
        assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 3)
        job_spec = spec["jobTemplate"]["spec"]
        chroma = name.startswith("lifeboat-chroma-")
        assert job_spec["activeDeadlineSeconds"] == (3600 if chroma else 21600)
        assert job_spec["backoffLimit"] == 0
        resources = job_spec["template"]["spec"]["containers"][0]["resources"]
        assert resources == ({"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}} if chroma
                             else {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}})


def test_pods_are_hardened(rendered):
    objects = rendered[1]
    for cronjob in cronjobs(objects):
        pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["securityContext"] == {
            "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
            "fsGroupChangePolicy": "OnRootMismatch", "seccompProfile": {"type": "RuntimeDefault"}}
        assert "hostNetwork" not in pod and "hostPID" not in pod
        assert pod["restartPolicy"] == "Never"
        assert pod["automountServiceAccountToken"] is False  # no service account asked for: no token
        (container,) = pod["containers"]
        assert container["name"] == "lifeboat"
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False and security["privileged"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}


def test_pods_run_the_runner_on_the_job_file_secret_and_the_apps_volumes(rendered):
    objects = rendered[1]
    for job in SETTINGS["kubernetes_schedule_jobs"]:
        name = job["name"]
        for component, command in (("backup", "run"), ("verify", "verify")):
            (cronjob,) = [o for o in objects if o["metadata"]["name"] == "lifeboat-%s-%s" % (name, component)]
            pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            (container,) = pod["containers"]
            assert container["args"] == ["--config-dir", "/etc/lifeboat", "--state-dir", "/var/lib/lifeboat",
                                         command, name]
            assert container["image"] == SETTINGS["kubernetes_schedule_image"]
            volumes = {v["name"]: v for v in pod["volumes"]}
            mounts = {m["name"]: m for m in container["volumeMounts"]}
            assert volumes["job"]["secret"]["secretName"] == "lifeboat-job-%s" % name
            assert mounts["job"] == {"name": "job", "mountPath": "/etc/lifeboat/jobs", "readOnly": True}
            assert "emptyDir" in volumes["state"] and mounts["state"]["mountPath"] == "/var/lib/lifeboat"
            assert "emptyDir" in volumes["tmp"] and mounts["tmp"]["mountPath"] == "/tmp"
            (claim,) = job["volumes"]
            read_only = claim.get("read_only", False)
            assert volumes["data-0"]["persistentVolumeClaim"] == {"claimName": claim["claim"], "readOnly": read_only}
            assert mounts["data-0"] == {"name": "data-0", "mountPath": claim["mount_path"], "readOnly": read_only}
            assert {"name": "LIFEBOAT_PUSHGATEWAY_URL", "value": PUSHGATEWAY} in container["env"]
            assert ("affinity" in pod) == (name == "app-db")


def test_credentials_come_only_by_reference_and_the_job_file_is_what_the_runner_loads(rendered, tmp_path):
    out, objects = rendered
    for cronjob in cronjobs(objects):
        (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        assert container["envFrom"] == [{"secretRef": {"name": CREDENTIALS_SECRET}}]
        names = {item["name"] for item in container["env"]}
        assert names == {"HOME", "TMPDIR", "AWS_REGION", "LIFEBOAT_PUSHGATEWAY_URL"}
        assert all(set(item) == {"name", "value"} for item in container["env"])
    text = open(os.path.join(out, "manifests.yml")).read()
    for word in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "secret_key", "access_key", "password"):
        assert word not in text
    # The Secret holds the job file the runner reads, mounted group-readable as the kubelet does with fsGroup.
    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir()
    for job in SETTINGS["kubernetes_schedule_jobs"]:
        (secret,) = [o for o in objects if o["metadata"]["name"] == "lifeboat-job-%s" % job["name"]]
        assert list(secret["data"]) == ["%s.json" % job["name"]]
        document = json.loads(base64.b64decode(secret["data"]["%s.json" % job["name"]]))
        assert document == dict(job["job"], job=job["name"])
        assert runner_jobs.secret_paths(document) == []
        path = jobs_dir / ("%s.json" % job["name"])
        path.write_text(json.dumps(document))
        os.chmod(str(path), 0o440)
        loaded = runner_jobs.load(str(tmp_path), job["name"])
        assert loaded["kind"] == job["job"]["kind"] and loaded["path"] == job["job"]["path"]


def pod_spec(objects, name):
    (cronjob,) = [o for o in objects if o["metadata"]["name"] == name]
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def job_document(objects, name):
    (secret,) = [o for o in objects if o["metadata"]["name"] == "lifeboat-job-%s" % name]
    return json.loads(base64.b64decode(secret["data"]["%s.json" % name]))


def test_the_age_identity_is_mounted_in_the_verify_pods_only_and_named_by_the_job_files(runner, tmp_path):
    settings = encrypted_settings()
    objects = render_objects(runner, str(tmp_path / "age"), settings=settings)
    for obj in objects:
        validate(obj)
    identity_volume = {"name": "age-identity", "secret": {"secretName": "lifeboat-age", "defaultMode": 256,
                                                          "items": [{"key": "identity", "path": "identity"}]}}
    identity_mount = {"name": "age-identity", "mountPath": "/etc/lifeboat/age", "readOnly": True}
    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir()
    for job in settings["kubernetes_schedule_jobs"]:
        name = job["name"]
        verify = pod_spec(objects, "lifeboat-%s-verify" % name)
        assert identity_volume in verify["volumes"]
        assert identity_mount in verify["containers"][0]["volumeMounts"]
        # the scheduled backup encrypts to the public recipients: no private key in its pod, in no form
        backup = pod_spec(objects, "lifeboat-%s-backup" % name)
        assert [v["name"] for v in backup["volumes"]] == [v["name"] for v in verify["volumes"]
                                                          if v["name"] != "age-identity"]
        assert "lifeboat-age" not in json.dumps(backup)
        assert not [m for m in backup["containers"][0]["volumeMounts"] if m["mountPath"].startswith("/etc/lifeboat/age")]
        # one job file for both: it names where the verify and restore pods find the identity (a path, no secret)
        document = job_document(objects, name)
        expected_encryption = dict(job["job"].get("encryption") or {}, age_identity_file=AGE_IDENTITY_FILE)
        assert document == dict(job["job"], job=name, encryption=expected_encryption)
        assert runner_jobs.secret_paths(document) == []
        path = jobs_dir / ("%s.json" % name)
        path.write_text(json.dumps(document))
        os.chmod(str(path), 0o440)  # as the kubelet mounts it with fsGroup
        loaded = runner_jobs.load(str(tmp_path), name)
        assert loaded["encryption"]["age_identity_file"] == AGE_IDENTITY_FILE
        # several credentials Secrets, in order, each once (the single-name variable first)
        expected_env_from = [{"secretRef": {"name": secret}}
                             for secret in (CREDENTIALS_SECRET, "lifeboat-db", "lifeboat-redis")]
        for spec in (verify, backup):
            assert spec["containers"][0]["envFrom"] == expected_env_from
    assert "AGE-SECRET-KEY" not in json.dumps(objects)


def test_an_encrypted_job_may_name_an_identity_file_of_its_own_without_the_secret(runner, tmp_path):
    settings = encrypted_settings(kubernetes_schedule_age_identity_secret="")
    job = settings["kubernetes_schedule_jobs"][0]
    job["job"]["encryption"]["age_identity_file"] = "/data/keys/age.key"
    objects = render_objects(runner, str(tmp_path / "own"), settings=settings)
    assert job_document(objects, job["name"])["encryption"] == job["job"]["encryption"]
    assert "age-identity" not in json.dumps(objects)


def test_absent_renders_the_delete_list_of_exactly_the_present_objects(runner, rendered, tmp_path):
    objects = rendered[1]
    out = str(tmp_path / "absent")
    # absent needs no image: it only names the objects
    settings = dict(SETTINGS, kubernetes_schedule_image="")
    proc = render_schedule(runner, out, settings=settings, kubernetes_schedule_state="absent")
    assert proc.returncode == 0, proc.stdout
    assert sorted(os.listdir(out)) == ["delete.yml"]
    deleted = documents(os.path.join(out, "delete.yml"))
    assert refs(deleted) == list(reversed(refs(objects)))  # dependents first, the job file Secrets last
    for ref in deleted:
        assert set(ref) == {"apiVersion", "kind", "metadata"}
        assert set(ref["metadata"]) == {"namespace", "name"}


def test_check_mode_renders_the_same_objects(runner, rendered, tmp_path):
    out = str(tmp_path / "check")
    proc = render_schedule(runner, out, check=True)
    assert proc.returncode == 0, proc.stdout
    assert filecmp.cmp(os.path.join(out, "manifests.yml"), os.path.join(rendered[0], "manifests.yml"), shallow=False)


def _job(**changes):
    job = copy.deepcopy(SETTINGS["kubernetes_schedule_jobs"][0])
    job.update(changes)
    return job


@pytest.mark.parametrize("settings, message", [
    ({"kubernetes_schedule_jobs": [_job(name="App_DB")]}, "kubernetes_schedule_jobs entry App_DB is invalid"),
    ({"kubernetes_schedule_jobs": [_job(name="a" * 37)]}, "is invalid: name 1 to 36"),
    ({"kubernetes_schedule_jobs": [_job(schedule="every 6 hours")]}, "cron expressions of five fields"),
    ({"kubernetes_schedule_jobs": [_job(schedule="0 3 * *")]}, "cron expressions of five fields"),
    ({"kubernetes_schedule_jobs": [_job(job={"kind": "sqlite", "path": "/data/app.db",
                                             "s3": {"bucket": "b", "secret_key": "hunter2"}})]},
     "carries a credential"),
    ({"kubernetes_schedule_jobs": [_job(job={"kind": "sqlite", "path": "/data/app.db", "s3": {"bucket": "b"},
                                             "notify": {"webhook_url": "https://hooks.example.com/x"}})]},
     "carries a credential"),
    ({"kubernetes_schedule_env": {"AWS_SECRET_ACCESS_KEY": "hunter2"}}, "never in a manifest"),
    ({"kubernetes_schedule_pushgateway_url": "https://metrics:hunter2@pushgateway.example.com"},
     "without user:password@"),
    ({"kubernetes_schedule_jobs": [_job(volumes=[{"claim": "data", "mount_path": "/var/lib/lifeboat"}])]},
     "the pod's own mounts"),
    ({"kubernetes_schedule_jobs": [_job(), _job()]}, "the same name"),
    ({"kubernetes_schedule_image": ""}, "image the runner image reference"),
    ({"kubernetes_schedule_age_identity_secret": "Lifeboat_Age"}, "age_identity_secret and service_account object names"),
    ({"kubernetes_schedule_credentials_secrets": ["lifeboat-db", "Lifeboat_DB"]}, "credentials_secrets a list of such names"),
    ({"kubernetes_schedule_credentials_secrets": "lifeboat-db"}, "credentials_secrets a list of such names"),
    ({"kubernetes_schedule_jobs": [_job(volumes=[{"claim": "data", "mount_path": "/etc/lifeboat/age/"}])]},
     "the pod's own mounts"),
    (encrypted_settings(kubernetes_schedule_age_identity_secret=""),
     "it encrypts (encryption.age_recipients), but kubernetes_schedule_age_identity_secret is empty"),
    (encrypted_settings(kubernetes_schedule_jobs=[_job(job={
        "kind": "sqlite", "path": "/data/app.db", "s3": {"bucket": "b"},
        "encryption": {"age_identity_file": "/data/age.key"}})]),
     "which the role sets itself"),
])
def test_invalid_settings_are_refused_with_a_message_and_nothing_is_rendered(runner, tmp_path, settings, message):
    out = str(tmp_path / "refused")
    proc = render_schedule(runner, out, settings=dict(SETTINGS, **settings))
    assert proc.returncode != 0
    assert message in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stdout
    assert not os.path.exists(out)
    assert "hunter2" not in proc.stdout  # a refused credential is not echoed either
