"""The kubernetes_schedule role refuses a job file that carries a credential (tasks/validate.yml, with the pattern
_kubernetes_schedule_secret_key of vars/main.yml), because the job file Secret is group-readable in the pod and the
runner would refuse it there. The pattern is a YAML copy of the runner's SECRET_KEYS: this proves they agree."""
import json
import os
import re

import yaml

from ansible_collections.lifeboat.backup.plugins.module_utils.engine.runner import jobs

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..")
VARS = os.path.join(ROOT, "roles", "kubernetes_schedule", "vars", "main.yml")


def role_pattern():
    with open(VARS) as handle:
        return re.compile(yaml.safe_load(handle)["_kubernetes_schedule_secret_key"].strip())


def test_role_refuses_every_secret_key_of_the_runner():
    pattern = role_pattern()
    for key in sorted(jobs.SECRET_KEYS) + ["pg_password", "api_token"]:
        document = json.dumps({"kind": "sqlite", "nested": {key: "value"}}, indent=2)
        assert pattern.search(document), "the role accepts a job file with %s, which the runner treats as a secret" % key
        assert jobs.secret_paths({"nested": {key: "value"}}) == ["nested.%s" % key]


def test_role_accepts_what_the_runner_does_not_treat_as_secret():
    pattern = role_pattern()
    for key in ("path", "login_user", "bucket", "mongo_uri", "redis_host"):
        document = json.dumps({key: "value"}, indent=2)
        assert not pattern.search(document), key
        assert jobs.secret_paths({key: "value"}) == []
