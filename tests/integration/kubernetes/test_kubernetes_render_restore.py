"""playbooks/kubernetes_restore.yml without a cluster: the restore Job it renders (lifeboat_k8s_render_dir) is
valid for the Kubernetes API and runs the backup CronJob's pod template with args restore; the put-back Job it runs
after a failed health check is valid too and runs the same pod with args `put-back <job> --previous ... --json` (what
the runner's put-back does is tested in tests/unit/plugins/module_utils/engine/sources/{sqlite,directory} and
runner/); the Job result is read from the runner's --json output. The `runner` and `rendered` fixtures are in
conftest.py."""

import copy
import json
import os

import pytest

from kube_pods import pod_template
from support.ansible import REPO
from support.kubernetes_render import SETTINGS, encrypted_settings, render_restore_job, validate

ROLE_TASKS_PLAY = """\
- name: Run a task file of the kubernetes_schedule role
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Include it
      ansible.builtin.include_role:
        name: lifeboat.backup.kubernetes_schedule
        tasks_from: %(tasks)s
    - name: Save the fact
      ansible.builtin.copy:
        content: "{{ %(fact)s | to_json }}"
        dest: "%(dest)s"
        mode: "0600"
"""


@pytest.fixture(scope="module")
def schedule_objects(rendered):
    return rendered[1]


def role_task_fact(runner, tmp_path, tasks, fact, variables):
    """Run roles/kubernetes_schedule/tasks/<tasks> with `variables` and return the fact it set."""
    play, dest = str(tmp_path / "play.yml"), str(tmp_path / "fact.json")
    with open(play, "w") as handle:
        handle.write(ROLE_TASKS_PLAY % {"tasks": tasks, "fact": fact, "dest": dest})
    proc = runner.playbook(play, extra_vars=variables)
    assert proc.returncode == 0, proc.stdout
    with open(dest) as handle:
        return json.load(handle)


def backup_pod_template(objects, job):
    return pod_template(objects, "CronJob", "lifeboat-%s-backup" % job)


@pytest.mark.parametrize("job, before", [("app-db", ""), ("chroma", "2026-11-22T02:00:00Z")])
def test_the_restore_job_is_valid_and_runs_the_backup_pod_template_with_args_restore(
        runner, schedule_objects, tmp_path, job, before):
    restore = render_restore_job(runner, str(tmp_path / "out"), job, lifeboat_k8s_before=before,
                                 lifeboat_k8s_backup="latest")
    validate(restore)
    assert (restore["kind"], restore["metadata"]["name"], restore["metadata"]["namespace"]) == (
        "Job", "lifeboat-%s-restore" % job, "app")
    assert restore["spec"]["backoffLimit"] == 0  # a failed restore is looked at, not retried on the live data
    template = restore["spec"]["template"]
    (container,) = template["spec"]["containers"]
    assert container["args"] == (["--config-dir", "/etc/lifeboat", "--state-dir", "/var/lib/lifeboat",
                                  "restore", job, "--json", "--backup", "latest"]
                                 + (["--before", before] if before else []))
    # The same pod as the scheduled backup, but for its args, its labels and volumes that must be writable.
    expected = copy.deepcopy(backup_pod_template(schedule_objects, job))
    expected["metadata"]["labels"]["app.kubernetes.io/component"] = "restore"
    expected["spec"]["containers"][0]["args"] = container["args"]
    for volume in expected["spec"]["volumes"]:
        if "persistentVolumeClaim" in volume:
            volume["persistentVolumeClaim"]["readOnly"] = False
    for mount in expected["spec"]["containers"][0]["volumeMounts"]:
        if mount["name"].startswith("data-"):
            mount["readOnly"] = False
    assert template == expected


def test_the_put_back_job_is_valid_and_runs_the_runners_put_back_on_the_same_volumes(
        runner, schedule_objects, tmp_path):
    previous = "/chroma.lifeboat-prev-20261122T020000Z-0123abcd"
    job = role_task_fact(runner, tmp_path, "restore_job.yml", "_kubernetes_schedule_restore_object", dict(
        SETTINGS, _kubernetes_schedule_restore_name="chroma",
        _kubernetes_schedule_put_back={"kind": "directory", "target": "/chroma", "previous": previous}))
    validate(job)
    assert job["metadata"]["name"] == "lifeboat-chroma-put-back"
    assert job["spec"]["backoffLimit"] == 0
    (container,) = job["spec"]["template"]["spec"]["containers"]
    # the image's entrypoint (the runner), the job's own target from its job file: only `previous` comes from the log
    assert "command" not in container
    assert container["args"] == ["--config-dir", "/etc/lifeboat", "--state-dir", "/var/lib/lifeboat",
                                 "put-back", "chroma", "--previous", previous, "--json"]
    backup = backup_pod_template(schedule_objects, "chroma")["spec"]
    assert container["image"] == backup["containers"][0]["image"]
    assert container["envFrom"] == backup["containers"][0]["envFrom"]  # the job's credentials (PostgreSQL login)
    assert job["spec"]["template"]["spec"]["securityContext"] == backup["securityContext"]
    assert container["securityContext"] == backup["containers"][0]["securityContext"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["data-0"] == {"name": "data-0", "mountPath": "/chroma", "readOnly": False}


def test_the_restore_job_mounts_the_age_identity_and_the_put_back_job_does_not(runner, tmp_path):
    """The restore decrypts: its pod is the verify CronJob's (identity included); the put-back only renames."""
    settings = encrypted_settings()
    restore = render_restore_job(runner, str(tmp_path / "out"), "app-db", settings=settings)
    validate(restore)
    spec = restore["spec"]["template"]["spec"]
    assert {"name": "age-identity", "secret": {"secretName": "lifeboat-age", "defaultMode": 256,
                                               "items": [{"key": "identity", "path": "identity"}]}} in spec["volumes"]
    assert {"name": "age-identity", "mountPath": "/etc/lifeboat/age", "readOnly": True} in \
        spec["containers"][0]["volumeMounts"]
    put_back_job = role_task_fact(runner, tmp_path, "restore_job.yml", "_kubernetes_schedule_restore_object", dict(
        settings, _kubernetes_schedule_restore_name="app-db",
        _kubernetes_schedule_put_back={"kind": "sqlite", "target": "/data/app.db",
                                       "previous": "/data/app.db.lifeboat-prev-20261122T020000Z"}))
    validate(put_back_job)
    assert "age-identity" not in json.dumps(put_back_job)


@pytest.mark.parametrize("log, expected", [
    # the runner's --json result (indented, on stdout) after its console lines (stderr) in the pod's log
    ('restore of job app-db (sqlite, backup latest)\nrestored set 1 of job app-db to /data/app.db\n'
     + json.dumps({"status": "ok", "restored_to": "/data/app.db", "previous": "/data/app.db.lifeboat-prev-x",
                   "backup": {"id": "1"}}, indent=2, sort_keys=True) + "\n",
     {"status": "ok", "restored_to": "/data/app.db", "previous": "/data/app.db.lifeboat-prev-x", "backup": {"id": "1"}}),
    ('error: restore of job app-db failed: no set\n{"error": "no set", "status": "failed"}\n',
     {"status": "failed", "error": "no set"}),
    ("exec /usr/bin/python3: no such file or directory\n", {}),
])
def test_the_job_result_is_the_last_json_document_of_its_log(runner, tmp_path, log, expected):
    # run_job.yml itself needs a cluster: the template it reads the log with is checked alone
    play, dest = str(tmp_path / "play.yml"), str(tmp_path / "out.json")
    with open(play, "w") as handle:
        handle.write("""\
- name: Parse a Job log
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Save the result
      ansible.builtin.copy:
        content: "{{ lookup('ansible.builtin.template', role_template) | from_json | to_json }}"
        dest: "%s"
        mode: "0600"
""" % dest)
    proc = runner.playbook(play, extra_vars={
        "_kubernetes_schedule_job_log_text": log,
        "role_template": os.path.join(REPO, "roles", "kubernetes_schedule", "templates", "job_result.j2")})
    assert proc.returncode == 0, proc.stdout
    with open(dest) as handle:
        assert json.load(handle) == expected


@pytest.mark.parametrize("variables, message", [
    ({"lifeboat_k8s_job": "app-db"}, "lifeboat_k8s_workload_name (the app to stop during the restore)"),
    ({"lifeboat_k8s_job": "nope", "lifeboat_k8s_render_dir": "/nonexistent/out"}, "there is no job nope"),
])
def test_the_restore_playbook_refuses_an_incomplete_request_before_touching_anything(runner, variables, message):
    proc = runner.playbook(os.path.join(REPO, "playbooks", "kubernetes_restore.yml"),
                           extra_vars=dict(SETTINGS, **variables))
    assert proc.returncode != 0
    assert message in proc.stdout, proc.stdout
    assert not os.path.exists("/nonexistent/out")
