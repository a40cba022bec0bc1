"""A job file carries only options some schema knows: the runner refuses any other key, names it and the job file,
and suggests the closest known name, instead of ignoring it (a misspelt option would silently fall back to its
default). Kind options come from each kind's schema (kinds.schema, kinds.restore_schema), aliases are resolved and
types checked."""

import json
import os
import re

import pytest

from engine.core.errors import ConfigError
from engine.core.options import Option, find
from engine.pipeline.options import BACKUP
from engine.runner import jobs
from engine.runner.cli import main
from engine.runner.context import EX_USAGE
from engine.sources import kinds

WHERE = "/etc/lifeboat/jobs/app.json"
# One valid job of each kind (the options its source needs, and a store).
VALID = {
    "sqlite": {"path": "/srv/app.db"},
    "postgres": {"database": "app"},
    "redis": {},
    "mongo": {"mongo_uri": "mongodb://127.0.0.1:27017"},
    "directory": {"path": "/srv/uploads"},
}


def job(kind="sqlite", **options):
    document = {"job": "app", "kind": kind, "dest": "/var/backups"}
    document.update(VALID[kind])
    document.update(options)
    return document


def refused(document):
    with pytest.raises(ConfigError) as info:
        jobs.validate(document, "app", where=WHERE)
    return info.value.msg


def test_the_gap_closed_unknown_keys_are_no_longer_accepted():
    message = refused({"job": "app", "kind": "sqlite", "path": "/x", "dest": "/d", "pg_host": "x", "bogus": 1})
    assert message.startswith(WHERE + ": job app (kind sqlite): unknown options bogus, pg_host ")


def test_a_misspelt_option_is_named_with_the_closest_known_name():
    message = refused(job("postgres", pg_host="db1"))
    assert message.startswith(WHERE + ": job app (kind postgres): unknown option pg_host (did you mean login_host?)")
    assert "unknown option compress (did you mean compression?)" in refused(job(compress="zstd"))
    assert "unknown option retension (did you mean retention?)" in refused(job(retension={"keep_daily": 7}))
    assert "unknown option redis_pasword (did you mean redis_password?)" in refused(job("redis", redis_pasword="x"))


def test_an_option_of_another_kind_is_refused():
    assert "unknown option database" in refused(job("sqlite", database="app"))
    assert "unknown option exclude (a job file takes" in refused(job("sqlite", exclude=["*.tmp"]))  # directory's
    assert "unknown option mongo_uri" in refused(job("redis", mongo_uri="mongodb://h"))


def test_the_job_file_is_named_when_loaded(tmp_path):
    path = tmp_path / "jobs" / "app.json"
    path.parent.mkdir()
    path.write_text(json.dumps(job("postgres", pg_host="db1")))
    os.chmod(str(path), 0o600)
    with pytest.raises(ConfigError) as info:
        jobs.load(str(tmp_path), "app")
    assert info.value.msg.startswith("%s: job app (kind postgres): unknown option pg_host (did you mean login_host?)"
                                     % path)


def test_lifeboat_jobs_marks_the_job_invalid(tmp_path, capsys):
    path = tmp_path / "etc" / "jobs" / "app.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(job(tmp_dri="/var/tmp")))
    os.chmod(str(path), 0o600)
    assert main(["--config-dir", str(tmp_path / "etc"), "--state-dir", str(tmp_path / "state"), "jobs",
                 "--json"]) == EX_USAGE
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["valid"] is False and "unknown option tmp_dri (did you mean tmp_dir?)" in rows[0]["error"]


def test_the_restore_object_takes_the_kinds_restore_options_only():
    assert jobs.validate(job(restore={"owner": "app", "group": "app", "mode": "0640", "skip_damaged": True}),
                         "app")["restore"] == {"owner": "app", "group": "app", "mode": "0640", "skip_damaged": True}
    assert "unknown restore option onwer (did you mean owner?)" in refused(job(restore={"onwer": "app"}))
    # backup and before come from the command line; the repository from the job
    assert "unknown restore option backup" in refused(job(restore={"backup": "20260101T000000Z-abcd"}))
    assert "unknown restore options before, dest" in refused(job(restore={"before": "x", "dest": "/elsewhere"}))
    assert "unknown restore option clean" in refused(job(restore={"clean": True}))  # a PostgreSQL option
    assert jobs.validate(job("postgres", restore={"clean": True, "host": "db2"}), "app")["restore"] == {
        "clean": True, "login_host": "db2"}
    assert "restore: tables must be a list" in refused(job("postgres", restore={"tables": "t1"}))


def test_restore_options_at_the_top_level_are_known():
    """lifeboat restore merges the job over its restore options, and the test restore reads allow_functions and
    allow_javascript from the top level too: those options are the kind's, not unknown."""
    assert jobs.validate(job("redis", allow_functions=True, service_name="redis"), "app")["allow_functions"] is True
    assert jobs.validate(job("mongo", allow_javascript=True), "app")["allow_javascript"] is True
    assert jobs.validate(job("postgres", tmp_dir="/var/tmp", safe_swap=True), "app")["safe_swap"] is True
    assert jobs.validate(job("sqlite", owner="app", keep_previous=False), "app")["keep_previous"] is False


def test_a_comment_key_is_ignored():
    document = jobs.validate(job(_comment="nightly, see runbook", _owner_team="web"), "app")
    assert document["_comment"] == "nightly, see runbook"


def test_aliases_resolve_to_the_option_name():
    document = job("postgres", db="app2", host="db1", port=5433, login="backup")
    del document["database"]
    document = jobs.validate(document, "app")
    assert (document["database"], document["login_host"], document["login_port"], document["login_user"]) == (
        "app2", "db1", 5433, "backup")
    assert not {"db", "host", "port", "login"} & set(document)
    assert jobs.validate(job("postgres", db="other"), "app")["database"] == "app"  # the name wins, as for s3
    assert "login_port must be a whole number" in refused(job("postgres", port="5432"))  # checked once resolved


@pytest.mark.parametrize("kind, options, message", [
    ("redis", {"redis_port": "6379"}, "redis_port must be a whole number, not '6379'"),
    ("redis", {"redis_tls": "yes"}, "redis_tls must be true or false"),
    ("redis", {"restart_command": "systemctl restart redis"}, "restart_command must be a list"),
    ("sqlite", {"busy_timeout": "30"}, "busy_timeout must be a number"),
    ("sqlite", {"path": 5}, "path must be a path"),
    ("mongo", {"method": "fast"}, "method must be one of auto, mongodump, builtin, not 'fast'"),
    ("mongo", {"databases": "app"}, "databases must be a list"),
    ("postgres", {"ssl_mode": "verify_full"}, "ssl_mode must be one of"),
    ("postgres", {"login_port": "5432"}, "login_port must be a whole number"),
    ("directory", {"exclude": [1]}, "exclude must be a list of strs"),
])
def test_kind_options_are_type_checked(kind, options, message):
    assert message in refused(job(kind, **options))


def test_well_typed_kind_options_pass():
    assert jobs.validate(job("sqlite", busy_timeout=5, tmp_dir="/var/tmp"), "app")["busy_timeout"] == 5
    assert jobs.validate(job("mongo", method=None), "app")["method"] is None  # unset, as before: the source's default
    jobs.validate(job("redis", redis_host="127.0.0.1", redis_port=6380, rdb_path="/var/lib/redis/dump.rdb",
                      bgsave_timeout=600, mode="0640"), "app")


@pytest.mark.parametrize("kind", sorted(kinds.KINDS))
def test_every_registered_kind_has_schemas_and_a_job_may_carry_each_option(kind):
    assert sorted(kinds.OPTION_SCHEMAS) == sorted(kinds.KINDS) and kinds.OPTION_SCHEMAS[kind] == ".%s.options" % kind
    options, restore_options = kinds.schema(kind), kinds.restore_schema(kind)
    assert options and restore_options
    assert all(isinstance(option, Option) for option in options + restore_options)
    module = kinds.load(kind)
    assert module.OPTIONS is options and module.RESTORE_OPTIONS is restore_options
    # an option in both means one thing: the job's value is passed to both
    both = {option.name: option for option in options}
    for option in restore_options:
        if option.name in both:
            assert option.spec() == both[option.name].spec(), (kind, option.name)
    known, others = jobs.known_options(kind)
    for option in options + restore_options:
        assert option.name in known and set(option.aliases) <= set(known)
    # no kind option shadows a repository, backup or runner key but verify (PostgreSQL's restore takes the backup's)
    # and tmp_dir (the test restore's scratch directory, for every kind)
    assert set(known) & set(others) <= {"verify", "tmp_dir"}
    if "tmp_dir" in known:
        assert known["tmp_dir"].type == "path"
    if "verify" in known:
        assert known["verify"].spec() == find(BACKUP, "verify").spec()


def test_a_kind_without_schemas_is_an_incomplete_engine(monkeypatch):
    from engine.sources.sqlite import options  # pylint: disable=import-outside-toplevel
    monkeypatch.delattr(options, "OPTIONS")
    with pytest.raises(ConfigError) as info:
        kinds.schema("sqlite")
    assert info.value.msg.endswith("options.py lacks OPTIONS: this engine file is incomplete; update the collection")
    with pytest.raises(ConfigError) as info:
        jobs.validate(job(), "app")
    assert "lacks OPTIONS" in info.value.msg
    with pytest.raises(ConfigError) as info:
        kinds.schema("oracle")
    assert "kind 'oracle' is not known" in info.value.msg


def test_the_schemas_are_read_without_importing_the_kind(monkeypatch):
    """A job file is checked from the light options.py alone (the runner's list, prune and jobs need no kind code)."""
    def no_kind(kind):
        raise AssertionError("kinds.load(%r) called to check a job file" % kind)
    monkeypatch.setattr(kinds, "load", no_kind)
    for kind in kinds.KINDS:
        jobs.validate(job(kind), "app")


def test_runner_keys_are_what_the_runner_reads():
    """Every top-level key runner/ and pipeline/ read from a job (job.get("x"), job["x"]) is known to the check, so
    the refusal never rejects what the runner would read."""
    engine = os.path.join(os.path.dirname(jobs.__file__), "..")
    read = set()
    for folder in ("runner", "pipeline"):
        for name in os.listdir(os.path.join(engine, folder)):
            if name.endswith(".py"):
                text = open(os.path.join(engine, folder, name)).read()
                read.update(re.findall(r"\bjob(?:\.get\(|\[)\"([a-z_]+)\"", text))
    read -= {"verify_restore"}  # what _verify_settings makes of the verify object
    for kind in kinds.KINDS:
        known, others = jobs.known_options(kind)
        assert read - set(known) - set(others) == set(), kind


@pytest.mark.parametrize("name, value", [
    ("retention", {"keep_daily": 7}), ("prune_after_run", True), ("metrics_dir", "/var/lib/node_exporter"),
    ("rpo_seconds", 90000), ("rto", "4h"), ("rto_seconds", 3600), ("verify_objective", "8d"), ("tmp_dir", "/var/tmp"),
    ("notify", {"on": ["failure"]}), ("restore", {"owner": "app"}), ("verify", {"mode": "full"}), ("verify", False),
    ("s3", {"bucket": "b"}), ("compression", "gzip"), ("tags", {"env": "prod"}), ("encryption", {"age_recipients": []}),
])
def test_the_runners_own_keys_are_known(name, value):
    jobs.validate(job(**{name: value}), "app")


# --- the job files the documentation shows -------------------------------------------------------------------

REPO = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "..", "..")
DOCUMENTS = ["README.md", "roles/schedule/README.md", "roles/kubernetes_schedule/README.md"] + sorted(
    os.path.join("docs", name) for name in os.listdir(os.path.join(REPO, "docs")) if name.endswith(".md"))


def scheduled_jobs(value, where, found):
    """Walk a YAML value for job lists: *schedule_jobs entries (their options over the schedule_default_options
    beside them) and kubernetes_schedule_jobs entries (their job object)."""
    if isinstance(value, list):
        for item in value:
            scheduled_jobs(item, where, found)
    if not isinstance(value, dict):
        return
    defaults = value.get("schedule_default_options") or {}
    for key, entries in value.items():
        if not (key.endswith("schedule_jobs") and isinstance(entries, list)):
            scheduled_jobs(entries, where, found)
            continue
        for entry in entries:
            if isinstance(entry.get("job"), dict):
                found.append((where, dict(entry["job"], job=entry["name"])))
            elif entry.get("kind") in kinds.KINDS and entry.get("state", "present") == "present":
                found.append((where, dict(defaults, **dict(entry.get("options") or {}, job=entry["name"],
                                                           kind=entry["kind"]))))


def documented_jobs():
    """(where, job document) of every job the documentation shows: a JSON job file, a schedule_jobs entry or a
    kubernetes_schedule_jobs entry."""
    import yaml  # pylint: disable=import-outside-toplevel
    found = []
    for name in DOCUMENTS:
        text = open(os.path.join(REPO, name)).read()
        for block in re.finditer(r"```(json|yaml|yml)\n(.*?)```", text, re.S):
            where = "%s:%d" % (name, text[:block.start()].count("\n") + 1)
            try:
                value = json.loads(block.group(2)) if block.group(1) == "json" else yaml.safe_load(block.group(2))
            except ValueError:
                continue
            if isinstance(value, dict) and value.get("kind") in kinds.KINDS and "job" in value:
                found.append((where, value))
            scheduled_jobs(value, where, found)
    return found


def test_the_documentation_shows_jobs():
    assert len(documented_jobs()) >= 10


@pytest.mark.parametrize("where, document", documented_jobs())
def test_every_documented_job_validates(where, document):
    """The drift issue #18 cites (a documented PostgreSQL job with pg_host, an option no kind has) cannot come back."""
    document = dict(document)
    if not set(document) & {"dest", "s3", "sftp", "ftp"}:  # the store is often left to schedule_default_options
        document["dest"] = "/var/backups/lifeboat"
    jobs.validate(document, where=where)
