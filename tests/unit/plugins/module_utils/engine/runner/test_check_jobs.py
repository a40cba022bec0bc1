"""lifeboat check-jobs: job documents (one JSON object or a list, on stdin or in a file) checked as every command
checks a job file when it loads it, touching nothing. The schedule and kubernetes_schedule roles run it on the
controller before they write a job file, so its message is the one an operator sees at play time."""

import io
import json
import os

import pytest

from engine.core.errors import ConfigError
from engine.runner import commands, jobs
from engine.runner.cli import main
from engine.runner.context import EX_OK, EX_USAGE
from engine.sources import kinds


def job(name="app", kind="sqlite", **options):
    document = {"job": name, "kind": kind, "dest": "/var/backups"}
    document.update({"sqlite": {"path": "/srv/app.db"}, "postgres": {"database": "app"}}.get(kind, {}))
    document.update(options)
    return document


@pytest.fixture
def check(tmp_path, monkeypatch, capsys):
    """check(documents, *args) -> (exit status, stdout, stderr), the documents given as JSON on stdin, with config
    and state directories that do not exist (and must still not exist after)."""
    config, state = tmp_path / "etc", tmp_path / "state"

    def run(documents, *args):
        text = documents if isinstance(documents, str) else json.dumps(documents)
        monkeypatch.setattr("sys.stdin", io.StringIO(text))
        code = main(["--config-dir", str(config), "--state-dir", str(state), "check-jobs"] + list(args))
        out, err = capsys.readouterr()
        assert not config.exists() and not state.exists()
        return code, out, err
    return run


def rows(check, documents):
    code, out, _err = check(documents, "--json")
    return code, json.loads(out)


def test_valid_documents_pass(check):
    code, found = rows(check, [job(), job("db", "postgres", login_host="db1", retention={"keep_daily": 7})])
    assert code == EX_OK
    assert found == [{"job": "app", "kind": "sqlite", "valid": True, "error": None},
                     {"job": "db", "kind": "postgres", "valid": True, "error": None}]
    code, out, _err = check(job())  # one object alone
    assert code == EX_OK and out.split() == ["app", "sqlite", "valid"]


def test_a_misspelt_option_names_the_job_the_key_and_the_closest_name(check):
    code, found = rows(check, [job(), job("db", "postgres", pg_host="db1")])
    assert code == EX_USAGE
    assert found[0]["valid"] is True
    assert found[1]["valid"] is False and found[1]["kind"] == "postgres"
    assert found[1]["error"].startswith("job db (kind postgres): unknown option pg_host (did you mean login_host?)")
    code, out, _err = check([job("db", "postgres", pg_host="db1")])
    assert code == EX_USAGE
    assert "db" in out and "INVALID: job db (kind postgres): unknown option pg_host (did you mean login_host?)" in out


@pytest.mark.parametrize("options, message", [
    ({"retention": {"keep_last": "x"}}, "job app: retention keep_last must be a whole number, not 'x'"),
    ({"retension": {"keep_daily": 7}}, "unknown option retension (did you mean retention?)"),
    ({"s3": {"bucket": "b", "regoin": "eu-west-1"}}, "job app: unknown s3 option regoin (did you mean region?)"),
    ({"sftp": {"host": "h", "user": "u", "path": "/p", "key_fil": "/k"}},
     "unknown sftp option key_fil (did you mean key_file?)"),
    ({"rpo_seconds": 0}, "job app: rpo_seconds must be more than 0"),
    ({"verify": {"mode": "fast"}}, "job app: verify.mode must be one of"),
    ({"busy_timeout": "30"}, "job app: busy_timeout must be a number"),
    ({"kind": "oracle"}, "job app: kind must be one of"),
])
def test_each_check_of_the_job_file_applies(check, options, message):
    code, found = rows(check, [job(**options)])
    assert code == EX_USAGE
    assert message in found[0]["error"]
    with pytest.raises(ConfigError) as info:  # the same check the runner makes when it loads the job file
        jobs.validate(job(**options), "app", where="job app")
    assert message in info.value.msg


def test_the_store_objects_keep_their_aliases_and_comments(check):
    document = job(s3={"bucket": "b", "aws_access_key_id": "AKIA", "_note": "prod bucket"})
    assert rows(check, [document])[0] == EX_OK
    assert jobs.validate(document)["s3"] == {"bucket": "b", "access_key": "AKIA"}


def test_documents_without_a_name_or_an_object_are_numbered(check):
    code, found = rows(check, [job(), {"kind": "sqlite", "path": "/x", "dest": "/d"}, ["not", "a", "job"]])
    assert code == EX_USAGE
    assert found[1] == {"job": None, "kind": "sqlite", "valid": False,
                        "error": "job document 2: job (the job name) is required"}
    assert found[2]["error"] == "job document 3 must be a JSON object"
    assert "job name" in rows(check, [job("bad name")])[1][0]["error"]


def test_input_that_is_not_json_is_a_usage_error(check):
    code, out, err = check("{not json")
    assert code == EX_USAGE and out == ""
    assert "stdin is not valid JSON" in err


def test_a_file_argument_is_read_instead_of_stdin(check, tmp_path):
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps([job(pg_host="x")]))
    code, out, _err = check("this stdin is not read", str(path))
    assert code == EX_USAGE and "unknown option pg_host" in out
    code, _out, err = check("", str(tmp_path / "missing.json"))
    assert code == EX_USAGE and "cannot read %s" % (tmp_path / "missing.json") in err


def test_secret_values_are_not_quoted(check):
    code, found = rows(check, [job("cache", "redis", redis_password=12345678),
                               job("app", s3={"bucket": "b", "secret_key": ["hunter2-secret"]}),
                               job("db", "postgres", login_password={"v": "hunter3"}, login_port="hunter4-port")])
    assert code == EX_USAGE
    text = json.dumps(found)
    assert "12345678" not in text and "redis_password must be a string, not <secret>" in text
    assert "hunter" not in text.replace("hunter4-port", "")


def test_nothing_but_the_documents_is_read(check, monkeypatch, tmp_path):
    """No kind code (sources, servers), no store (Repository), no job file: the check needs nothing of the host,
    so a controller without boto3 or paramiko, and without the paths the jobs name, can run it."""
    def forbidden(*_args, **_kwargs):
        raise AssertionError("check-jobs reached beyond the documents")
    monkeypatch.setattr(kinds, "load", forbidden)
    monkeypatch.setattr(commands, "_repository", forbidden)
    monkeypatch.setattr(jobs, "load", forbidden)
    monkeypatch.setattr(jobs, "check_file_safety", forbidden)
    document = job("db", "postgres", dest=str(tmp_path / "no-such-dir"), ssl_cert="/no/such/cert",
                   pg_bin_dir="/no/such/bin", ftp={"host": "h", "user": "u", "path": "/p", "password_file": "/no/such"},
                   encryption={"age_recipients": ["age1x"], "age_identity_file": "/no/such/key"})
    code, found = rows(check, [document] + [job(kind=kind, **({"path": "/no/such/path"} if kind in (
        "sqlite", "directory") else {})) for kind in sorted(kinds.KINDS)])
    assert code == EX_OK, found
    assert not os.path.exists(str(tmp_path / "no-such-dir"))


def test_what_check_jobs_accepts_the_runner_loads(check, tmp_path):
    document = job("db", "postgres", host="db1", s3={"bucket": "b", "region": "eu-west-1"}, verify={"mode": "list"})
    assert rows(check, [document])[0] == EX_OK
    path = tmp_path / "config" / "jobs" / "db.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(document))
    os.chmod(str(path), 0o600)
    assert jobs.load(str(tmp_path / "config"), "db") == jobs.validate(document, "db")


def test_no_secrets_refuses_every_credential_the_runner_knows_naming_the_path_never_the_value(check):
    """kubernetes_schedule runs check-jobs --no-secrets: its job file is a group-readable Secret in the pod."""
    for key in sorted(jobs.SECRET_KEYS) + ["pg_password", "api_token"]:
        document = job()
        document["_probe"] = {key: "hunter2-value"}  # "_" keys are comments to validate, still scanned for secrets
        code, found = rows_with(check, document, "--no-secrets")
        assert code == EX_USAGE, key
        assert "carries a credential (_probe.%s)" % key in found[0]["error"], found
        assert "hunter2-value" not in found[0]["error"]
    document = job(s3={"bucket": "b", "endpoint_url": "https://backup:hunter2-value@s3.example.com"})
    code, found = rows_with(check, document, "--no-secrets")
    assert code == EX_USAGE and "s3.endpoint_url" in found[0]["error"] and "hunter2-value" not in found[0]["error"]


def test_no_secrets_accepts_what_is_not_a_credential_and_without_it_credentials_pass(check):
    document = job(s3={"bucket": "b", "secret_key": "hunter2-value"})
    assert rows_with(check, document)[0] == EX_OK  # a 0600 job file on a host may hold them
    clean = job("db", "postgres", login_user="app", login_host="db1", ssl_key="/run/secrets/pg.key",
                encryption={"age_recipients": ["age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq"]},
                retention={"keep_last": 3})
    assert rows_with(check, clean, "--no-secrets") == (EX_OK, [{"job": "db", "kind": "postgres", "valid": True,
                                                                "error": None}])


def rows_with(check, documents, *args):
    code, out, _err = check(documents, "--json", *args)
    return code, json.loads(out)
