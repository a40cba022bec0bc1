"""Render the kubernetes_schedule role and the kubernetes_restore playbook without a cluster
(kubernetes_schedule_apply: false, lifeboat_k8s_render_dir), and validate objects offline against the Kubernetes
OpenAPI schemas shipped by kubernetes-validate (strict: unknown fields fail too)."""

import copy
import os

import kubernetes_validate
import yaml

from support.ansible import REPO

# The oldest Kubernetes the role supports (batch/v1 CronJob) and the newest the validator ships.
K8S_VERSIONS = ("1.25", kubernetes_validate.latest_version())
CREDENTIALS_SECRET = "lifeboat-s3"
PUSHGATEWAY = "http://pushgateway.monitoring.svc:9091"

# Two jobs as an app with SQLite on one PVC and a ChromaDB directory on another would have them.
SETTINGS = {
    "kubernetes_schedule_namespace": "app",
    "kubernetes_schedule_image": "registry.example.com/lifeboat-runner:1.0.0",
    "kubernetes_schedule_credentials_secret": CREDENTIALS_SECRET,
    "kubernetes_schedule_pushgateway_url": PUSHGATEWAY,
    "kubernetes_schedule_env": {"AWS_REGION": "eu-west-1"},
    "kubernetes_schedule_jobs": [
        {"name": "app-db", "schedule": "15 */6 * * *",
         "job": {"kind": "sqlite", "path": "/data/app.db",
                 "s3": {"bucket": "acme-backups", "prefix": "prod", "region": "eu-west-1"},
                 "retention": {"keep_last": 8, "keep_daily": 14}},
         "volumes": [{"claim": "data-app-0", "mount_path": "/data"}],
         "affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
             {"labelSelector": {"matchLabels": {"app": "app"}}, "topologyKey": "kubernetes.io/hostname"}]}}},
        {"name": "chroma", "schedule": "@daily", "verify_schedule": "30 5 * * 1",
         "job": {"kind": "directory", "path": "/chroma", "s3": {"bucket": "acme-backups", "prefix": "prod"}},
         "volumes": [{"claim": "chroma-data", "mount_path": "/chroma", "read_only": True}],
         "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
         "deadline_seconds": 3600},
    ],
}

# Where the verify and restore pods mount the key identity of kubernetes_schedule_age_identity_secret.
AGE_IDENTITY_FILE = "/etc/lifeboat/age/identity"
# A public key for job files (age's own example recipient); the render tests never decrypt.
AGE_RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"

SCHEDULE_PLAY = """\
- name: Render the kubernetes_schedule role
  hosts: localhost
  gather_facts: false
  roles:
    - role: lifeboat.backup.kubernetes_schedule
"""

RESTORE_PLAYBOOK = os.path.join(REPO, "playbooks", "kubernetes_restore.yml")


def encrypted_settings(**overrides):
    """SETTINGS with the SQLite job encrypting to AGE_RECIPIENT, the age identity Secret lifeboat-age and one
    credentials Secret per concern (the S3 one named twice: the role lists it once)."""
    settings = copy.deepcopy(SETTINGS)
    settings["kubernetes_schedule_jobs"][0]["job"]["encryption"] = {"age_recipients": [AGE_RECIPIENT]}
    settings.update(kubernetes_schedule_age_identity_secret="lifeboat-age",
                    kubernetes_schedule_credentials_secrets=["lifeboat-db", CREDENTIALS_SECRET, "lifeboat-redis"])
    settings.update(overrides)
    return settings


def documents(path):
    with open(path) as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def validate(obj):
    """Raise kubernetes_validate's ValidationError unless `obj` is valid for every version of K8S_VERSIONS."""
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


def render_schedule(runner, render_dir, settings=None, check=False, **overrides):
    """Run the role with apply false; returns the finished ansible-playbook process."""
    play = os.path.join(runner.workdir, "schedule.yml")
    with open(play, "w") as handle:
        handle.write(SCHEDULE_PLAY)
    variables = dict(settings if settings is not None else SETTINGS, kubernetes_schedule_apply=False,
                     kubernetes_schedule_render_dir=render_dir)
    variables.update(overrides)
    return runner.playbook(play, extra_vars=variables, check=check)


def render_restore(runner, render_dir, job, settings=None, **overrides):
    variables = dict(settings if settings is not None else SETTINGS, lifeboat_k8s_job=job,
                     lifeboat_k8s_render_dir=render_dir)
    variables.update(overrides)
    return runner.playbook(RESTORE_PLAYBOOK, extra_vars=variables)


def render_objects(runner, render_dir, settings=None, **overrides):
    """render_schedule, which must succeed; returns the objects of manifests.yml in order."""
    proc = render_schedule(runner, render_dir, settings=settings, **overrides)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return documents(os.path.join(render_dir, "manifests.yml"))


def render_restore_job(runner, render_dir, job, settings=None, **overrides):
    """render_restore, which must succeed and write only restore-job.yml; returns its one object, the Job."""
    proc = render_restore(runner, render_dir, job, settings=settings, **overrides)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert os.listdir(render_dir) == ["restore-job.yml"]
    (restore,) = documents(os.path.join(render_dir, "restore-job.yml"))
    return restore
