"""The schedule role writes the runner's job files: what its argument_specs and its template
(templates/normalised_jobs.json.j2) say of a job file's keys is a YAML/Jinja copy of the engine's schemas, so it
is checked here against them name by name, type by type and default by default (#18)."""

import os
import re

import yaml

from engine.core.options import names
from engine.pipeline.options import RETENTION, VERIFY_MODES
from engine.runner import jobs
from engine.runner.notify import NOTIFY
from engine.sources import kinds

from support.ansible import REPO

ROLE = os.path.join(REPO, "roles", "schedule")
# A job file is JSON: a path is a string there (the role writes it as given; Ansible's path type would expand it on
# the controller, not on the host that runs the job).
SAME_IN_JSON = {"path": "str"}


def job_spec():
    with open(os.path.join(ROLE, "meta", "argument_specs.yml")) as handle:
        specs = yaml.safe_load(handle)
    return specs["argument_specs"]["main"]["options"]["schedule_jobs"]["options"]


def template():
    with open(os.path.join(ROLE, "templates", "normalised_jobs.json.j2")) as handle:
        return handle.read()


def test_the_roles_kinds_are_the_engines():
    assert sorted(job_spec()["kind"]["choices"]) == kinds.names()


def test_the_roles_verify_settings_are_the_job_files():
    role = job_spec()["verify"]["options"]
    text = template()
    # what the template writes into the job file's verify object, and what it passes on the command line instead
    written = re.search(r"set verify_document = v \| dict2items \| selectattr\('key', 'in', \[([^\]]*)\]\)", text)
    assert written, "the template no longer says which verify keys go to the job file"
    in_document = [key.strip().strip("'\"") for key in written.group(1).split(",")]
    assert "v.scratch_dir" in text and "v.min_free_mb" in text  # --scratch-dir, --min-free-mb
    assert sorted(in_document + ["scratch_dir", "min_free_mb"]) == sorted(jobs.VERIFY_KEYS)
    for option in jobs.VERIFY_SETTINGS:
        assert option.name in role, option.name
        assert role[option.name]["type"] == SAME_IN_JSON.get(option.type, option.type), option.name
        # the role leaves a setting unset (the runner's default applies) or has the schema's default
        assert role[option.name].get("default") in (None, option.default), option.name
        assert role[option.name].get("choices") in (None, list(option.choices or ())), option.name
    for mode in VERIFY_MODES:
        assert "C(%s)" % mode in " ".join(role["mode"]["description"]), mode


def test_the_keys_the_role_writes_are_keys_the_runner_takes():
    text = template()
    start = text.index("{%- set document = options | combine(")
    end = text.index("{%- set writable =")
    written = set(re.findall(r"'(\w+)':", text[start:end]))
    assert written == {"job", "kind", "retention", "notify", "metrics_dir", "prune_after_run", "rpo_seconds", "rto"}
    assert written <= set(("job", "kind") + jobs.RUNNER_KEYS)
    role = job_spec()
    for name in ("retention", "notify", "rpo_seconds", "prune_after_run", "metrics_dir", "rto_seconds"):
        assert name in role, name


def test_retention_and_notify_pass_through_or_match_the_schemas():
    """The role takes retention and notify as objects it hands to the runner unchanged; should it ever list their
    keys, they must be the schemas'."""
    role = job_spec()
    for name, schema in (("retention", RETENTION), ("notify", NOTIFY)):
        assert role[name]["type"] == "dict"
        if "options" in role[name]:
            assert sorted(role[name]["options"]) == sorted(names(schema)), name
            for option in schema:
                assert role[name]["options"][option.name]["type"] == SAME_IN_JSON.get(option.type, option.type)
                assert role[name]["options"][option.name].get("default") == option.default
