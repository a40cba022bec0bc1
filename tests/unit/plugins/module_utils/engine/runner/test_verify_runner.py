"""`lifeboat verify` in the runner: the job file's verify object, the verify gauges in the job's metrics file (kept by
backups, keeping theirs), the free-space check, the audit entry, and no backup lock taken either way."""

import glob
import json
import os
import sqlite3
import threading
import time

import pytest

from engine.runner import audit, jobs, metrics
from engine.sources import kinds
from engine.runner.cli import main
from engine.runner.context import EX_FAILURE, JobLock
from engine.core.errors import ConfigError


def write_job(config_dir, name, document):
    path = os.path.join(str(config_dir), "jobs", "%s.json" % name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(document, handle)
    os.chmod(path, 0o600)


def make_db(path, rows):
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [("row %d" % i,) for i in range(rows)])
    conn.commit()
    conn.close()


def gauges(path):
    return metrics.read_previous(str(path))


@pytest.fixture
def runner(tmp_path):
    config, state, prom = tmp_path / "etc", tmp_path / "state", tmp_path / "metrics"
    config.mkdir()
    prom.mkdir()
    make_db(tmp_path / "app.db", 40)
    job = {"job": "app", "kind": "sqlite", "path": str(tmp_path / "app.db"), "dest": str(tmp_path / "repo"),
           "metrics_dir": str(prom), "rpo_seconds": 90000, "rto": 3600, "verify": {"objective": "2d"}}
    write_job(config, "app", job)
    base = ["--config-dir", str(config), "--state-dir", str(state), "--quiet"]
    return {"base": base, "prom": prom / "lifeboat_app.prom", "state": str(state), "config": str(config),
            "job": job, "tmp": tmp_path}


# --- job file -----------------------------------------------------------------------------------------------

def test_the_verify_object_is_normalised_and_a_bool_verify_stays_the_backup_option():
    from engine.runner.commands import verify_options
    job = jobs.validate({"job": "a", "kind": "postgres", "dest": "/r", "login_host": "db1", "rto": 7200,
                         "verify": {"mode": "list", "objective": "8d", "postgres": {"login_port": 5433},
                                    "redis": {}, "min_free_mb": 100, "scratch_dir": "/var/tmp"}})
    assert "verify" not in job and job["rto_seconds"] == 7200
    assert job["verify_restore"] == {"mode": "list", "objective": 691200, "postgres": {"login_port": 5433},
                                     "redis": {}, "min_free_mb": 100, "scratch_dir": "/var/tmp"}
    # the scratch database goes on the job's own server, with what verify.postgres changes
    assert verify_options(job)["postgres"] == {"login_host": "db1", "login_port": 5433}
    assert verify_options(job, "decode")["mode"] == "decode"
    plain = jobs.validate({"job": "a", "kind": "sqlite", "dest": "/r", "path": "/x", "verify": False})
    assert plain["verify"] is False and plain["verify_restore"]["mode"] == "full"
    assert plain["verify_restore"]["objective"] is None
    assert jobs.parse_duration("12h", "x") == 43200 and jobs.parse_duration(60, "x") == 60


@pytest.mark.parametrize("verify, message", [
    ({"mode": "deep"}, "verify.mode must be one of"),
    ({"objective": "soon"}, "verify.objective must be a whole number of seconds or a duration"),
    ({"colour": "red"}, "unknown verify option(s) colour"),
    ({"scratch_dir": "tmp"}, "verify.scratch_dir must be an absolute path"),
    ("weekly", "verify must be an object"),
])
def test_the_verify_object_is_checked(verify, message):
    with pytest.raises(ConfigError) as info:
        jobs.validate({"job": "a", "kind": "sqlite", "dest": "/r", "path": "/x", "verify": verify})
    assert message in info.value.msg


def test_every_kind_has_a_test_restore():
    assert sorted(kinds.VERIFY_HOOKS) == kinds.names()
    for kind in kinds.names():
        assert callable(kinds.verify_hook(kind))
    with pytest.raises(ConfigError):
        kinds.verify_hook("oracle")


def test_each_kind_says_which_verify_modes_its_test_restore_takes():
    """pipeline/verify.py names no kind: what differs between the kinds' test restores is said by each."""
    assert {kind: kinds.verify_modes(kind) for kind in kinds.names()} == {
        "directory": ("full",), "mongo": ("full",), "postgres": ("full", "list"), "redis": ("full",),
        "sqlite": ("full",)}
    assert kinds.verify_modes("oracle") == ()
    # Only a test restore that writes the set into scratch has the scratch directory's free space checked first.
    assert {kind: kinds.verify_stages_to_scratch(kind) for kind in kinds.names()} == {
        "directory": True, "mongo": False, "postgres": True, "redis": True, "sqlite": True}


# --- metrics and audit --------------------------------------------------------------------------------------

def test_verify_writes_its_gauges_and_keeps_the_backup_values_and_backups_keep_them(runner):
    base, prom = runner["base"], runner["prom"]
    assert main(base + ["run", "app"]) == 0
    backup = gauges(prom)
    before = time.time()
    assert main(base + ["verify", "app"]) == 0
    values = gauges(prom)
    assert values["lifeboat_verify_last_status"] == 1
    assert before - 1 <= values["lifeboat_verify_last_success_timestamp_seconds"] <= time.time() + 1
    assert 0 < values["lifeboat_verify_restore_seconds"] < 60
    assert values["lifeboat_verify_objective_seconds"] == 172800  # "2d" in the job file
    assert values["lifeboat_backup_rto_seconds"] == 3600
    for name, value in backup.items():  # the backup's values are kept as they were
        if name != "lifeboat_backup_rto_seconds":
            assert values[name] == value, name
    verified = dict(values)
    assert main(base + ["run", "app"]) == 0  # a backup keeps the verify values
    after_run = gauges(prom)
    for name in ("lifeboat_verify_last_status", "lifeboat_verify_last_success_timestamp_seconds",
                 "lifeboat_verify_restore_seconds", "lifeboat_verify_objective_seconds"):
        assert after_run[name] == verified[name], name
    assert after_run["lifeboat_backup_last_success_timestamp_seconds"] >= verified[
        "lifeboat_backup_last_success_timestamp_seconds"]
    entry = audit.read(runner["state"])[-2]
    assert entry["operation"] == "verify" and entry["status"] == "ok"
    assert entry["mode"] == "full" and entry["test_restore"] == "ok" and entry["restore_seconds"] > 0
    assert glob.glob(str(prom.parent / ".*")) == []  # no temp or lock file beside the metrics


def test_a_failed_verify_sets_status_0_and_keeps_the_last_success(runner):
    base, prom = runner["base"], runner["prom"]
    assert main(base + ["run", "app"]) == 0
    assert main(base + ["verify", "app"]) == 0
    success = gauges(prom)
    data = glob.glob(str(runner["tmp"] / "repo" / "app" / "*" / "data.*"))[0]
    with open(data, "r+b") as handle:  # damage the stored data: sha256 mismatch
        handle.seek(10)
        handle.write(b"\0\0\0\0")
    assert main(base + ["verify", "app"]) == EX_FAILURE
    failed = gauges(prom)
    assert failed["lifeboat_verify_last_status"] == 0
    assert failed["lifeboat_verify_last_success_timestamp_seconds"] == \
        success["lifeboat_verify_last_success_timestamp_seconds"]
    assert failed["lifeboat_verify_restore_seconds"] == success["lifeboat_verify_restore_seconds"]
    entry = audit.read(runner["state"])[-1]
    assert entry["status"] == "failed" and "sha256 mismatch" in entry["error"]


def test_not_enough_free_space_fails_before_the_test_restore(runner, capsys):
    base, prom = runner["base"], runner["prom"]
    assert main(base + ["run", "app"]) == 0
    capsys.readouterr()
    assert main(base + ["verify", "app", "--min-free-mb", str(10 ** 9), "--scratch-dir",
                        str(runner["tmp"])]) == EX_FAILURE
    error = capsys.readouterr().err
    assert "not enough free space in the scratch directory %s" % runner["tmp"] in error
    assert "1000000000 MiB needed" in error and "--scratch-dir" in error
    assert gauges(prom)["lifeboat_verify_last_status"] == 0
    assert glob.glob(str(runner["tmp"] / "lifeboat-verify-*")) == []  # nothing was started


def test_the_default_free_space_need_is_the_raw_size_plus_ten_percent(runner, monkeypatch, capsys):
    from engine.pipeline import verify as verify_module
    assert main(runner["base"] + ["run", "app"]) == 0
    raw = json.loads(open(glob.glob(str(runner["tmp"] / "repo" / "app" / "*" / "manifest.json"))[0]).read())[
        "raw_size"]

    class Usage(object):
        free = int(raw * 1.05)
    monkeypatch.setattr(verify_module.shutil, "disk_usage", lambda _path: Usage())
    capsys.readouterr()
    assert main(runner["base"] + ["verify", "app"]) == EX_FAILURE
    assert "raw size %d bytes plus 10%%" % raw in capsys.readouterr().err
    Usage.free = int(raw * 1.2)
    assert main(runner["base"] + ["verify", "app"]) == 0


# --- no backup lock -----------------------------------------------------------------------------------------

def test_verify_runs_while_the_backup_lock_is_held(runner):
    """The cron entry of a backup holds flock on locks/app.lock (and lifeboat run its JobLock): a verify is not
    blocked by it and does not exit 75."""
    assert main(runner["base"] + ["run", "app"]) == 0
    with JobLock(runner["state"], "app"):
        assert main(runner["base"] + ["verify", "app"]) == 0


def test_a_backup_runs_while_a_verify_is_in_its_test_restore(runner, monkeypatch):
    base = runner["base"]
    assert main(base + ["run", "app"]) == 0
    inside, release = threading.Event(), threading.Event()
    real = kinds.verify_hook("sqlite")

    def slow_hook(*args):
        inside.set()
        assert release.wait(30)
        return real(*args)
    monkeypatch.setattr(kinds, "verify_hook", lambda kind: slow_hook)
    codes = []
    verifier = threading.Thread(target=lambda: codes.append(main(base + ["verify", "app"])))
    verifier.start()
    try:
        assert inside.wait(30)
        assert main(base + ["run", "app"]) == 0  # not 75: the verify holds no lock of the job
    finally:
        release.set()
        verifier.join(60)
    assert codes == [0]
    operations = [(e["operation"], e["status"]) for e in audit.read(runner["state"])]
    assert operations == [("run", "ok"), ("run", "ok"), ("verify", "ok")]


def test_mode_decode_only_checks_the_set_and_says_so(runner, capsys):
    assert main(runner["base"] + ["run", "app"]) == 0
    capsys.readouterr()
    assert main(runner["base"] + ["verify", "app", "--mode", "decode", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["verification"]
    assert report["mode"] == "decode" and report["test_restore"] == "skipped: mode decode"
    assert "row_counts" not in report and report["raw_size"] > 0 and report["restore_seconds"] >= 0
    assert audit.read(runner["state"])[-1]["test_restore"] == "skipped: mode decode"


def test_mode_list_on_a_kind_without_it_only_decodes_the_set(runner, capsys):
    assert main(runner["base"] + ["run", "app"]) == 0
    capsys.readouterr()
    assert main(runner["base"] + ["verify", "app", "--mode", "list", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["verification"]
    assert report["mode"] == "list" and report["test_restore"] == (
        "skipped: mode list is not one the test restore of kind sqlite takes, so the set was only decoded")
    assert "row_counts" not in report and report["raw_size"] > 0
