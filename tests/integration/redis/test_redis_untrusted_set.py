"""redis_restore against sets whose data does not match their manifest, and against restart paths that save on
shutdown (issue 16, item 4). Real redis-server with save points, restarted by SIGTERM as systemd does."""

import glob
import json
import os
import tempfile
import threading

import pytest

from engine.sources.redis import connection as redis_connection
from engine.sources.redis import kind as redis_kind
from engine.sources.redis import restore as redis_restore
from engine.pipeline.backup import run_backup
from engine.repositories.repository import Repository


def fill(server, count, value, prefix="k"):
    with server.client() as client:
        client.execute("FLUSHALL")
        for start in range(0, count, 5000):
            replies = client.pipeline([("SET", "%s%d" % (prefix, index), value)
                                       for index in range(start, min(count, start + 5000))])
            assert all(reply == "OK" for reply in replies)


def backup(server, repo):
    run_backup(redis_kind.source_from_options(server.options()), Repository.from_options(dest=str(repo)), "cache",
               compression="none")
    path = glob.glob(str(repo / "cache" / "*" / "manifest.json"))
    assert len(path) == 1
    with open(path[0]) as handle:
        return path[0], json.load(handle)


def rewrite(manifest_path, **verification):
    """What a repository writer can do: the data object (and its sha256) stay, the manifest's claims change."""
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    for key, value in verification.items():
        if value is None:
            manifest["verification"].pop(key, None)
        else:
            manifest["verification"][key] = value
    with open(manifest_path, "w") as handle:
        json.dump(manifest, handle)


def state(server):
    with server.client() as client:
        return client.execute("DBSIZE"), client.execute("GET", "live0"), client.execute("GET", "k0")


def leftovers(server):
    return sorted(name for name in os.listdir(server.dir) if name != "dump.rdb")


@pytest.mark.parametrize("set_keys, claims, expected", [
    # an empty RDB whose manifest, in the format of lifeboat 0.1.0, says 102,110 keys "moved during the backup"
    (0, dict(keys={"db0": 102110}, keys_stable=False, keys_tolerance=None), "db0 has 0 keys, the backup had 102110"),
    # the same in today's format, claiming writes that would explain anything
    (0, dict(keys={"db0": 102110}, keys_stable=False, keys_tolerance=10 ** 9),
     "the restored server holds no keys at all, the backup had 102110 without a TTL"),
    # another dataset: 40 keys where the manifest promises 5,000 with 100 writes during the backup
    (40, dict(keys={"db0": 5000}, keys_stable=False, keys_tolerance=100),
     "db0 has 40 keys, the backup had 5000 (allowed 4800 to 5100: 100 changes during the backup)"),
])
def test_set_not_holding_its_keys_fails_and_the_live_data_comes_back(ansible, redis_saving, tmp_path, set_keys, claims,
                                                                     expected):
    fill(redis_saving, set_keys, "from-the-set")
    manifest_path, _manifest = backup(redis_saving, tmp_path / "repo")
    rewrite(manifest_path, **claims)
    fill(redis_saving, 200, "live", prefix="live")

    out = ansible.module("lifeboat.backup.redis_restore", dict(
        redis_saving.options(), job="cache", dest=str(tmp_path / "repo"),
        restart_command=redis_saving.restart_by("sigterm")))
    assert out.get("failed"), out
    assert "restored Redis does not hold the keys of set" in out["msg"] and expected in out["msg"], out["msg"]
    assert "the previous RDB was put back and Redis restarted on it (db0: 200 keys)" in out["msg"], out["msg"]
    assert "Restore another set" in out["msg"] and "Traceback" not in out["msg"]
    assert state(redis_saving) == (200, b"live", None)  # the keys of the live server before the restore
    assert leftovers(redis_saving) == []


def test_operator_may_accept_a_mismatch_of_a_set_they_trust(ansible, redis_saving, tmp_path):
    fill(redis_saving, 40, "old")
    manifest_path, _manifest = backup(redis_saving, tmp_path / "repo")
    rewrite(manifest_path, keys={"db0": 45}, keys_stable=False, keys_tolerance=None)  # an older set, made under writes
    fill(redis_saving, 200, "live", prefix="live")
    out = ansible.module("lifeboat.backup.redis_restore", dict(
        redis_saving.options(), job="cache", dest=str(tmp_path / "repo"), allow_key_mismatch=True,
        restart_command=redis_saving.restart_by("sigterm")))
    assert not out.get("failed"), out
    assert out["verification"]["keys_match"] is False
    assert any("db0 has 40 keys, the backup had 45" in warning for warning in out.get("warnings", [])), out
    assert state(redis_saving) == (40, None, b"old")


def writer(server, stop, counter):
    """An application writing during the backup: new keys, deletions and overwrites."""
    with server.client() as client:
        index = 0
        while not stop.is_set():
            commands = []
            for _pair in range(50):
                commands.append(("SET", "w%d" % index, "x"))
                commands.append(("DEL", "k%d" % (index % 20000)))
                index += 1
            client.pipeline(commands)
            counter[0] = index


def test_backup_under_live_writes_restores_through_a_saving_sigterm(ansible, redis_saving, tmp_path):
    fill(redis_saving, 20000, "old")
    stop, counter = threading.Event(), [0]
    thread = threading.Thread(target=writer, args=(redis_saving, stop, counter))
    thread.start()
    try:
        while counter[0] < 2000:  # the writer is going
            stop.wait(0.01)
        out = ansible.module("lifeboat.backup.redis_backup",
                             dict(redis_saving.options(), job="cache", dest=str(tmp_path / "repo")))
    finally:
        stop.set()
        thread.join()
    assert not out.get("failed"), out
    checks = out["backup"]["manifest"]["verification"]
    # the writes Redis counted between its snapshot and the counts are recorded as the bound
    assert checks["keys_tolerance"] > 0, checks
    fill(redis_saving, 300, "live", prefix="live")

    out = ansible.module("lifeboat.backup.redis_restore", dict(
        redis_saving.options(), job="cache", dest=str(tmp_path / "repo"),
        restart_command=redis_saving.restart_by("sigterm")))
    assert not out.get("failed"), out
    assert out["verification"]["keys_match"] is True, out
    assert not [warning for warning in out.get("warnings", []) if "key counts" in warning], out
    restored, tolerance = out["verification"]["keys"]["db0"], checks["keys_tolerance"]
    assert checks["keys"]["db0"] - 2 * tolerance <= restored <= checks["keys"]["db0"] + tolerance
    size, live, _k0 = state(redis_saving)
    assert size == restored and live is None  # the set's data, not the live data the SIGTERM could have saved


def test_shutdown_on_sigterm_save_cannot_write_over_the_restored_file(ansible, make_redis, tmp_path):
    """redis.conf says shutdown-on-sigterm save (save even without save points): lifeboat turns it off for the
    restart, so the server comes back on the set, not on the live data saved over it. Same key count on purpose:
    a count check alone would not notice."""
    server = make_redis("sigterm-saves", save="3600 1", extra="shutdown-on-sigterm save\n")
    fill(server, 50, "old")
    backup(server, tmp_path / "repo")
    fill(server, 50, "live")
    out = ansible.module("lifeboat.backup.redis_restore", dict(
        server.options(), job="cache", dest=str(tmp_path / "repo"), restart_command=server.restart_by("sigterm")))
    assert not out.get("failed"), out
    assert state(server) == (50, None, b"old")
    with server.client() as client:  # the config file's setting is back after the restart
        assert client.config_get("shutdown-on-sigterm") == "save"


def test_restart_that_saves_over_the_restored_file_fails_and_puts_back(ansible, redis_saving, tmp_path):
    """A stop path lifeboat cannot switch off (SHUTDOWN SAVE in the service's stop script) writes the running data
    over the placed file before the new server loads it: noticed, the previous RDB put back, the task fails."""
    fill(redis_saving, 50, "old")
    backup(redis_saving, tmp_path / "repo")
    fill(redis_saving, 50, "live")
    out = ansible.module("lifeboat.backup.redis_restore", dict(
        redis_saving.options(), job="cache", dest=str(tmp_path / "repo"), restart_command=redis_saving.restart_by("save")))
    assert out.get("failed"), out
    assert "the restart saved the running data over the restored RDB" in out["msg"], out["msg"]
    assert "the previous RDB was put back and Redis restarted on it" in out["msg"]
    assert "SHUTDOWN NOSAVE" in out["msg"]
    assert state(redis_saving) == (50, None, b"live")
    assert leftovers(redis_saving) == []


def test_check_mode_leaves_nothing_in_the_temp_directory(redis_server, tmp_path, monkeypatch):
    fill(redis_server, 10, "old")
    backup(redis_server, tmp_path / "repo")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    result = redis_restore.restore_redis(Repository.from_options(dest=str(tmp_path / "repo")), "cache",
                                         redis_connection.connection_from_options(redis_server.options()),
                                         restart_command=redis_server.restart_command, check_mode=True)
    assert result["verification"]["sha256"] == "ok"
    assert os.listdir(str(scratch)) == [] and leftovers(redis_server) == []


LIBRARY = "#!lua name=planted\nredis.log(redis.LOG_WARNING, 'planted library ran')\n" \
          "redis.register_function('planted', function() return 1 end)"


def test_set_with_function_libraries_is_refused_unless_allowed(ansible, redis_server, tmp_path):
    """Lua in an RDB runs in the server when it loads the file: refused before anything changes, unless allowed."""
    fill(redis_server, 10, "old")
    with redis_server.client() as client:
        assert client.execute("FUNCTION", "LOAD", LIBRARY) == b"planted"
    backup(redis_server, tmp_path / "repo")
    fill(redis_server, 20, "live", prefix="live")
    with redis_server.client() as client:
        client.execute("FUNCTION", "FLUSH")
    before = open(redis_server.rdb, "rb").read() if os.path.exists(redis_server.rdb) else None
    common = dict(redis_server.options(), job="cache", dest=str(tmp_path / "repo"),
                  restart_command=redis_server.restart_command)
    out = ansible.module("lifeboat.backup.redis_restore", common)
    assert out.get("failed"), out
    assert "holds Redis Functions libraries" in out["msg"] and "Nothing was changed" in out["msg"], out["msg"]
    assert state(redis_server) == (20, b"live", None) and leftovers(redis_server) == []
    assert (open(redis_server.rdb, "rb").read() if os.path.exists(redis_server.rdb) else None) == before
    with redis_server.client() as client:
        assert client.execute("FUNCTION", "LIST") == []

    out = ansible.module("lifeboat.backup.redis_restore", dict(common, allow_functions=True))
    assert not out.get("failed"), out
    assert out["verification"]["functions"] is True and state(redis_server) == (10, None, b"old")
    with redis_server.client() as client:
        assert client.execute("FCALL", "planted", 0) == 1


def test_symlink_at_the_rdb_path_is_never_followed(ansible, redis_server, tmp_path):
    fill(redis_server, 10, "old")
    backup(redis_server, tmp_path / "repo")
    outside = tmp_path / "outside"
    outside.write_bytes(b"not redis")
    os.chmod(str(outside), 0o600)
    os.unlink(redis_server.rdb)
    os.symlink(str(outside), redis_server.rdb)
    out = ansible.module("lifeboat.backup.redis_restore", dict(
        redis_server.options(), job="cache", dest=str(tmp_path / "repo"), restart_command=redis_server.restart_command))
    assert out.get("failed") and "is a symlink" in out["msg"] and "nothing was changed" in out["msg"], out
    assert outside.read_bytes() == b"not redis" and oct(os.stat(str(outside)).st_mode & 0o777) == oct(0o600)
    assert os.readlink(redis_server.rdb) == str(outside) and leftovers(redis_server) == []
