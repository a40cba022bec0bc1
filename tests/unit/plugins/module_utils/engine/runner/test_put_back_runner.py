"""`lifeboat put-back <job> --previous NAME [--to TARGET] [--json] [--dry-run]`: the kind's put-back with the job's
options, the runner's exit codes, JSON result and audit entry; the untrusted NAME is refused before anything
changes (PostgreSQL and Redis too: their name checks run before any server is reached)."""

import json
import os

import pytest

from engine.core.errors import ConfigError
from engine.runner.cli import build_parser, main
from engine.runner.context import EX_FAILURE, EX_OK, EX_USAGE
from engine.sources import kinds
from engine.sources.postgres.kind import put_back_from_options as postgres_put_back
from engine.sources.redis.kind import put_back_from_options as redis_put_back
from support.sqlite_one_value import make_db, read_db

PREVIOUS = ".lifeboat-prev-20261122T020000Z-0123abcd"


def write_job(config_dir, document):
    path = os.path.join(config_dir, "jobs", "%s.json" % document["job"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(document, handle)
    os.chmod(path, 0o600)


@pytest.fixture
def sqlite_job(tmp_path):
    config, state = str(tmp_path / "etc"), str(tmp_path / "state")
    target = str(tmp_path / "data" / "app.db")
    os.makedirs(os.path.dirname(target))
    make_db(target, "restored")
    make_db(target + PREVIOUS, "previous")
    write_job(config, {"job": "app", "kind": "sqlite", "path": target, "dest": str(tmp_path / "repo")})
    return {"argv": ["--config-dir", config, "--state-dir", state], "state": state, "target": target}


def audit(state):
    with open(os.path.join(state, "audit.jsonl")) as handle:
        return [json.loads(line) for line in handle]


def test_put_back_options():
    args = build_parser().parse_args(["put-back", "app", "--previous", "/d/a.db" + PREVIOUS, "--to", "/d/a.db",
                                      "--json", "--dry-run"])
    assert (args.job, args.previous, args.to, args.json, args.dry_run) == (
        "app", "/d/a.db" + PREVIOUS, "/d/a.db", True, True)
    assert main(["put-back", "app"]) == EX_USAGE  # --previous is required


def test_put_back_of_the_jobs_target_prints_the_json_result_and_audits(sqlite_job, capsys):
    target = sqlite_job["target"]
    code = main(sqlite_job["argv"] + ["put-back", "app", "--previous", target + PREVIOUS, "--dry-run", "--json"])
    assert code == EX_OK
    assert json.loads(capsys.readouterr().out)["dry_run"] is True
    assert read_db(target) == "restored" and read_db(target + PREVIOUS) == "previous"
    code = main(sqlite_job["argv"] + ["put-back", "app", "--previous", target + PREVIOUS, "--json"])
    assert code == EX_OK
    result = json.loads(capsys.readouterr().out)
    assert (result["status"], result["restored_to"], result["previous"], result["removed"]) == (
        "ok", target, target + PREVIOUS, [target])
    assert read_db(target) == "previous" and not os.path.exists(target + PREVIOUS)
    entries = audit(sqlite_job["state"])
    assert [(e["operation"], e["status"], e["dry_run"]) for e in entries] == [
        ("put-back", "ok", True), ("put-back", "ok", False)]
    assert entries[-1]["restored_to"] == target


@pytest.mark.parametrize("previous", ["/etc/passwd", "{target}.bak", "{target}" + PREVIOUS + "/../../x"])
def test_put_back_refuses_a_foreign_name_with_exit_2(sqlite_job, capsys, previous):
    target = sqlite_job["target"]
    code = main(sqlite_job["argv"] + ["put-back", "app", "--previous", previous.format(target=target), "--json"])
    assert code == EX_USAGE
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "failed" and "is not the kept-aside copy" in result["error"]
    assert read_db(target) == "restored" and read_db(target + PREVIOUS) == "previous"
    assert audit(sqlite_job["state"])[-1]["status"] == "failed"


def test_put_back_to_another_target_checks_the_name_against_it(sqlite_job, tmp_path, capsys):
    target = sqlite_job["target"]
    other = str(tmp_path / "data" / "other.db")
    make_db(other, "other restored")
    code = main(sqlite_job["argv"] + ["put-back", "app", "--previous", target + PREVIOUS, "--to", other, "--json"])
    assert code == EX_USAGE
    assert read_db(other) == "other restored" and read_db(target + PREVIOUS) == "previous"
    make_db(other + PREVIOUS, "other previous")
    assert main(sqlite_job["argv"] + ["put-back", "app", "--previous", other + PREVIOUS, "--to", other]) == EX_OK
    assert read_db(other) == "other previous" and read_db(target) == "restored"
    capsys.readouterr()


def test_a_gone_kept_copy_exits_1(sqlite_job, capsys):
    target = sqlite_job["target"]
    os.unlink(target + PREVIOUS)
    assert main(sqlite_job["argv"] + ["put-back", "app", "--previous", target + PREVIOUS, "--json"]) == EX_FAILURE
    assert "is gone" in json.loads(capsys.readouterr().out)["error"]
    assert read_db(target) == "restored"


def test_a_kind_without_put_back_says_so():
    class Module(object):
        pass
    with pytest.raises(ConfigError, match="kind mongo has no put-back"):
        kinds.put_back_hook("mongo", Module())
    for kind in ("sqlite", "directory", "postgres", "redis"):
        assert callable(kinds.put_back_hook(kind, kinds.load(kind)))


def test_mongo_keeps_nothing_aside_so_its_put_back_exits_2(tmp_path, capsys):
    config = str(tmp_path / "etc")
    write_job(config, {"job": "docs", "kind": "mongo", "mongo_uri": "mongodb://127.0.0.1:1", "dest": str(tmp_path)})
    code = main(["--config-dir", config, "--state-dir", str(tmp_path / "state"), "put-back", "docs", "--previous",
                 "x", "--json"])
    assert code == EX_USAGE
    assert "keeps no previous data aside" in json.loads(capsys.readouterr().out)["error"]


@pytest.mark.parametrize("previous", ["app_lbprev_0123ab\n", "other_lbprev_0123ab", "app_lbfailed_0123ab",
                                      "app_lbprev_0123abc", "app_lbprev_0123AB", "app\"; DROP DATABASE x; --_lbprev_0123ab",
                                      "app_lbprev_"])
def test_postgres_refuses_any_name_but_the_one_its_swap_makes_before_connecting(previous):
    # the port is closed: a name that passed would fail on connecting, not with this message
    with pytest.raises(ConfigError, match="is not a database that a safe_swap restore of app kept"):
        postgres_put_back({"database": "app", "login_host": "127.0.0.1", "login_port": 1}, previous)


def test_postgres_accepts_the_shortened_name_of_a_long_database():
    database = "d" * 63
    previous = "d" * 49 + "_lbprev_0123ab"
    with pytest.raises(Exception) as raised:
        postgres_put_back({"database": database, "login_host": "127.0.0.1", "login_port": 1}, previous)
    assert "is not a database that a safe_swap restore" not in str(raised.value)
    with pytest.raises(ConfigError, match="is not a database that a safe_swap restore"):
        postgres_put_back({"database": database, "login_host": "127.0.0.1", "login_port": 1}, "d" * 10 + "_lbprev_0123ab")


def test_redis_checks_the_name_against_rdb_path_and_never_follows_a_symlink(tmp_path):
    rdb = str(tmp_path / "dump.rdb")
    (tmp_path / "dump.rdb").write_bytes(b"restored")
    options = {"rdb_path": rdb, "redis_port": 1}
    with pytest.raises(ConfigError, match="is not the kept-aside copy"):
        redis_put_back(options, str(tmp_path / "other.rdb") + PREVIOUS)
    (tmp_path / "elsewhere").write_bytes(b"not ours")
    os.symlink(str(tmp_path / "elsewhere"), rdb + PREVIOUS)
    with pytest.raises(ConfigError, match="not a regular file"):
        redis_put_back(options, rdb + PREVIOUS)
    assert (tmp_path / "dump.rdb").read_bytes() == b"restored" and os.path.islink(rdb + PREVIOUS)


def test_redis_without_a_target_asks_the_server_and_refuses_when_it_cannot(tmp_path):
    rdb = str(tmp_path / "dump.rdb")
    (tmp_path / "dump.rdb").write_bytes(b"restored")
    (tmp_path / ("dump.rdb" + PREVIOUS)).write_bytes(b"previous")
    with pytest.raises(ConfigError, match="set rdb_path in the job file or pass --to"):
        redis_put_back({"redis_host": "127.0.0.1", "redis_port": 1}, rdb + PREVIOUS)
    assert (tmp_path / "dump.rdb").read_bytes() == b"restored"
