"""engine/core/options.py: one Option description, from which the Ansible argument_spec, the store keys and the
runner's job-file checks are derived."""

import pytest

from engine.core.errors import ConfigError
from engine.core.options import Option, argument_spec, check_type, names, normalise, secret_names
from engine.pipeline import options as pipeline_options
from engine.repositories import options as repository_options
from engine.repositories import repository
from engine.runner import jobs
from engine.runner.commands import verify_options
from engine.sources.postgres import options as postgres_options

SCHEMA = (
    Option("host", required=True),
    Option("port", "int", default=22, aliases=["ssh_port"]),
    Option("password_file", "path", no_log=False),
    Option("token", no_log=True, aliases=["api_token"]),
    Option("mode", choices=("fast", "safe"), default="safe"),
    Option("labels", "list", elements="str", default=[]),
    Option("extra", "dict", suboptions=(Option("secret", no_log=True),)),
)


def test_argument_spec_says_only_what_is_set():
    spec = argument_spec(SCHEMA)
    assert list(spec) == ["host", "port", "password_file", "token", "mode", "labels", "extra"]
    assert spec["host"] == {"type": "str", "required": True}
    assert spec["port"] == {"type": "int", "default": 22, "aliases": ["ssh_port"]}
    assert spec["password_file"] == {"type": "path", "no_log": False}  # an explicit False reaches Ansible
    assert spec["token"] == {"type": "str", "no_log": True, "aliases": ["api_token"]}
    assert spec["mode"] == {"type": "str", "default": "safe", "choices": ["fast", "safe"]}
    assert spec["labels"] == {"type": "list", "elements": "str", "default": []}
    assert spec["extra"] == {"type": "dict", "options": {"secret": {"type": "str", "no_log": True}}}


def test_argument_spec_defaults_are_never_shared():
    first, second = argument_spec(SCHEMA), argument_spec(SCHEMA)
    first["labels"]["default"].append("x")
    assert second["labels"]["default"] == [] and SCHEMA[5].default == []


def test_normalise_resolves_aliases_and_the_option_name_wins():
    assert normalise(SCHEMA, {"host": "h", "ssh_port": 2222}, "job") == {"host": "h", "port": 2222}
    assert normalise(SCHEMA, {"host": "h", "ssh_port": 1, "port": 2}, "job") == {"host": "h", "port": 2}


def test_normalise_names_an_unknown_key_and_the_known_ones():
    with pytest.raises(ConfigError) as failure:
        normalise(SCHEMA, {"host": "h", "hots": "x"}, "job app: sftp")
    assert failure.value.msg == ("job app: sftp: unknown option(s) hots (known: host, port, password_file, token, "
                                 "mode, labels, extra)")
    assert normalise(SCHEMA, {"host": "h", "hots": "x"}, "job", unknown="keep") == {"host": "h", "hots": "x"}


@pytest.mark.parametrize("document, message", [
    ({"port": "22"}, "job: port must be a whole number, not '22'"),
    ({"port": True}, "job: port must be a whole number, not True"),
    ({"host": 5}, "job: host must be a string, not 5"),
    ({"mode": "slow"}, "job: mode must be one of fast, safe, not 'slow'"),
    ({"mode": None}, "job: mode must be one of fast, safe, not None"),
    ({"labels": "a"}, "job: labels must be a list, not 'a'"),
    ({"labels": ["a", 1]}, "job: labels must be a list of strs, not ['a', 1]"),
    ({"extra": []}, "job: extra must be an object, not []"),
])
def test_normalise_checks_json_types_and_choices(document, message):
    with pytest.raises(ConfigError) as failure:
        normalise(SCHEMA, document, "job")
    assert failure.value.msg == message


def test_normalise_fills_defaults_and_drops_unset_values():
    assert normalise(SCHEMA, {"host": "h", "port": None}, "job", defaults=True) == {
        "host": "h", "port": 22, "mode": "safe", "labels": []}
    assert normalise(SCHEMA, {"host": "h", "token": "", "extra": None, "other": None}, "job", unknown="keep",
                     drop_unset=True) == {"host": "h"}
    assert check_type(SCHEMA[0], None, "job") is None  # unset is allowed where there is no default


def test_secret_names_follow_no_log_through_suboptions():
    assert secret_names(SCHEMA) == {"token", "api_token", "secret"}


def test_store_keys_derive_from_the_repository_schemas():
    assert repository.S3_KEYS == names(repository_options.S3)
    assert repository.SFTP_KEYS == names(repository_options.SFTP)
    assert repository.FTP_KEYS == names(repository_options.FTP)
    with pytest.raises(ConfigError) as failure:
        repository.Repository.from_options(s3={"bucket": "b", "regoin": "x"})
    assert failure.value.msg.startswith("unknown s3 option(s): regoin (known: bucket, prefix, endpoint_url")


def test_runner_names_derive_from_the_schemas():
    assert jobs.S3_ALIASES == {"aws_access_key_id": "access_key", "aws_secret_access_key": "secret_key",
                               "aws_session_token": "session_token"}
    assert {"access_key", "aws_secret_access_key", "session_token", "webhook_url"} <= jobs.SECRET_KEYS
    assert set(postgres_options.CONNECTION_KEYS) == {
        "login_host", "login_port", "login_user", "login_password", "login_unix_socket", "ssl_mode", "ca_cert",
        "ssl_cert", "ssl_key", "connect_params", "pg_bin_dir", "maintenance_db"}
    # The runner's scratch-server login options for a PostgreSQL test restore are exactly the connection schema's.
    job = dict({key: "x" for key in postgres_options.CONNECTION_KEYS}, job="app", kind="postgres", database="d")
    assert set(verify_options(job)["postgres"]) == set(postgres_options.CONNECTION_KEYS)


def test_runner_resolves_s3_aliases_and_fills_backup_defaults():
    job = jobs.validate({"job": "app", "kind": "sqlite", "path": "/x", "s3": {
        "bucket": "b", "aws_access_key_id": "k", "region": None}, "sftp": {"host": "h", "key_file": ""}})
    assert job["s3"] == {"bucket": "b", "access_key": "k"}
    assert job["sftp"] == {"host": "h"}
    assert job["compression"] == pipeline_options.BACKUP[0].default == "zstd" and job["tags"] == {}
    assert "compression_threads" not in job  # the runner fills only what it always filled
