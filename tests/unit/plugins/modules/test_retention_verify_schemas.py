"""Retention's rules and the test restore's settings are defined once, in engine/pipeline/options.py (RETENTION,
VERIFY, VERIFY_MODES; #18): backup_retention's and backup_verify's argument_specs, their documentation,
retention.py's rule names, the runner's checks of a job file's `retention` and `verify` objects and
`lifeboat verify --mode` all come from there."""

import pytest
import yaml

from engine.core.errors import ConfigError
from engine.core.options import argument_spec, find, names
from engine.pipeline import options as pipeline_options
from engine.pipeline import retention
from engine.pipeline import verify as pipeline_verify
from engine.runner import jobs
from engine.runner.cli import build_parser
from engine.sources.mongo import options as mongo_options
from engine.sources.redis import options as redis_options

from test_module_argument_specs import capture

RETENTION = pipeline_options.RETENTION
VERIFY = pipeline_options.VERIFY
JOB = {"job": "a", "kind": "sqlite", "path": "/srv/a.db", "dest": "/r"}

# The two modules' specs as they were written out before #18: deriving them changed nothing.
RETENTION_SPEC_BEFORE = dict(
    {rule: dict(type="int", default=0) for rule in ("keep_last", "keep_hourly", "keep_daily", "keep_weekly",
                                                    "keep_monthly", "keep_yearly")},
    max_age=dict(type="str"), incomplete_grace=dict(type="str", default="24h"))
VERIFY_SPEC_BEFORE = dict(scratch_dir=dict(type="path"), all_copies=dict(type="bool", default=True),
                          mode=dict(type="str", choices=["full", "list", "decode"], default="full"),
                          min_free_mb=dict(type="int"), redis_server_bin=dict(type="path"),
                          allow_functions=dict(type="bool", default=False),
                          allow_javascript=dict(type="bool", default=False))


def documented(module):
    return yaml.safe_load(module.DOCUMENTATION)["options"]


def test_backup_retention_takes_the_rules_of_the_schema(monkeypatch):
    module, kwargs = capture("backup_retention", monkeypatch)
    spec = kwargs["argument_spec"]
    assert {name: spec[name] for name in names(RETENTION)} == argument_spec(RETENTION) == RETENTION_SPEC_BEFORE
    docs = documented(module)
    for option in RETENTION:
        assert docs[option.name]["type"] == option.type, option.name
        assert docs[option.name].get("default") == option.default, option.name


def test_retention_reads_its_rules_from_the_schema():
    assert retention.POLICY_KEYS == names(RETENTION)
    assert retention.COUNT_KEYS == ("keep_last",) + tuple("keep_" + period for period in retention.PERIODS)
    assert retention.DURATION_KEYS == ("max_age", "incomplete_grace")
    assert set(retention.COUNT_KEYS) | set(retention.DURATION_KEYS) == set(names(RETENTION))
    assert retention.PERIODS == ("hourly", "daily", "weekly", "monthly", "yearly")
    for period in retention.PERIODS:  # every period of the schema is one select() knows
        assert retention.period_key(retention.utcnow(), period)
    policy = retention.parse_policy({"keep_daily": 7})
    assert policy == {"keep_last": 0, "keep_hourly": 0, "keep_daily": 7, "keep_weekly": 0, "keep_monthly": 0,
                      "keep_yearly": 0, "max_age": None, "incomplete_grace": 86400}
    assert policy["incomplete_grace"] == retention.parse_duration(find(RETENTION, "incomplete_grace").default)


def test_a_job_files_retention_takes_every_rule_and_nothing_else():
    every = {name: ("400d" if name == "max_age" else "12h" if name == "incomplete_grace" else 3)
             for name in names(RETENTION)}
    job = jobs.validate(dict(JOB, retention=every))
    assert job["retention"] == every and job["prune_after_run"] is True
    with pytest.raises(ConfigError) as info:
        jobs.validate(dict(JOB, retention={"keep_daily": 7, "keep_fortnightly": 2}))
    assert "unknown retention option(s) keep_fortnightly" in info.value.msg
    assert "(known: %s)" % ", ".join(names(RETENTION)) in info.value.msg


def test_backup_verify_takes_the_verify_settings_of_the_schema(monkeypatch):
    module, kwargs = capture("backup_verify", monkeypatch)
    spec = kwargs["argument_spec"]
    assert {name: spec[name] for name in names(VERIFY)} == argument_spec(VERIFY)
    assert {name: spec[name] for name in VERIFY_SPEC_BEFORE} == VERIFY_SPEC_BEFORE
    assert spec["allow_functions"] == find(redis_options.RESTORE_OPTIONS, "allow_functions").spec()
    assert spec["allow_javascript"] == find(mongo_options.RESTORE_OPTIONS, "allow_javascript").spec()
    docs = documented(module)
    for option in VERIFY:
        assert docs[option.name]["type"] == option.type, option.name
        assert docs[option.name].get("default") == option.default, option.name
        assert tuple(docs[option.name].get("choices") or ()) == (option.choices or ()), option.name


def test_the_verify_modes_are_one_tuple():
    assert pipeline_verify.MODES == pipeline_options.VERIFY_MODES == find(VERIFY, "mode").choices
    parser = build_parser()
    for mode in pipeline_verify.MODES:
        assert parser.parse_args(["verify", "app", "--mode", mode]).mode == mode
    with pytest.raises(SystemExit):
        parser.parse_args(["verify", "app", "--mode", "deep"])


def test_a_job_files_verify_object_takes_the_schemas_settings():
    assert set(names(VERIFY)) <= set(jobs.VERIFY_KEYS)
    for mode in pipeline_verify.MODES:
        settings = jobs.validate(dict(JOB, verify={"mode": mode, "scratch_dir": "/var/tmp", "min_free_mb": 10}))
        assert settings["verify_restore"]["mode"] == mode
    assert jobs.validate(dict(JOB, verify={}))["verify_restore"]["mode"] == find(VERIFY, "mode").default


@pytest.mark.parametrize("verify, message", [
    ({"mode": 5}, "verify.mode must be a string"),
    ({"scratch_dir": 5}, "verify.scratch_dir must be a path"),
    ({"min_free_mb": "lots"}, "verify.min_free_mb must be a whole number"),
    ({"min_free_mb": True}, "verify.min_free_mb must be a whole number"),
    ({"min_free_mb": -1}, "verify.min_free_mb must be 0 or more"),
    ({"postgres": "db1"}, "verify.postgres must be an object"),
    ({"objective": 0}, "verify.objective must be more than 0"),
])
def test_a_job_files_verify_settings_are_type_checked(verify, message):
    with pytest.raises(ConfigError) as info:
        jobs.validate(dict(JOB, verify=verify), where="/etc/lifeboat/jobs/a.json")
    assert message in info.value.msg and info.value.msg.startswith("/etc/lifeboat/jobs/a.json: ")


def test_a_job_files_notify_object_is_checked_against_the_schema():
    from engine.runner.notify import NOTIFY, NOTIFY_KEYS
    assert NOTIFY_KEYS == names(NOTIFY)
    assert {"webhook_url", "healthcheck_url"} <= jobs.SECRET_KEYS
    with pytest.raises(ConfigError) as info:
        jobs.validate(dict(JOB, notify={"mail_to": "a@b", "mail_from": ["x"]}))
    assert "notify.mail_from must be a string" in info.value.msg
    job = jobs.validate(dict(JOB, notify={"mail_to": "a@b", "mail_from": "lifeboat@b", "timeout": 2.5}))
    assert job["notify"]["timeout"] == 2.5
