"""Undoing a Redis restore: lifeboat.backup.redis_put_back, and restore.yml calling it when the application
fails its health check after the restore."""

import glob
import os

import pytest

from engine.sources.redis import connection as redis_connection
from engine.sources.redis import kind as redis_kind
from engine.sources.redis import restore as redis_restore
from engine.pipeline.backup import run_backup
from engine.core.errors import ConfigError, RestoreError
from engine.repositories.repository import Repository
from support.ports import free_port

PLAYBOOKS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))), "playbooks")


def set_keys(server, count, value):
    with server.client() as client:
        client.execute("FLUSHALL")
        replies = client.pipeline([("SET", "k%d" % index, value) for index in range(count)])
        assert all(reply == "OK" for reply in replies)


def state(server):
    with server.client() as client:
        return client.execute("DBSIZE"), client.execute("GET", "k0")


def backed_up_then_changed(server, tmp_path):
    """A set holding 50 'old' keys; the live server then holds 80 'live' keys."""
    set_keys(server, 50, "old")
    repo = str(tmp_path / "repo")
    run_backup(redis_kind.source_from_options(server.options()), Repository.from_options(dest=repo), "cache")
    set_keys(server, 80, "live")
    return repo


def leftovers(server):
    return glob.glob(os.path.join(server.dir, "*lifeboat*")) + glob.glob(os.path.join(server.dir, ".*lifeboat*"))


def test_restore_runbook_puts_the_previous_rdb_back(ansible, redis_server, tmp_path):
    repo = backed_up_then_changed(redis_server, tmp_path)
    job = {"job": "cache", "kind": "redis", "restart_command": redis_server.restart_command,
           "options": redis_server.options(),
           # nothing listens there: the health check fails after the restore
           "health_urls": ["http://127.0.0.1:%d/health" % free_port()], "health_retries": 1, "health_delay": 0}
    proc = ansible.playbook(os.path.join(PLAYBOOKS, "restore.yml"), {
        "lifeboat_repository": {"dest": repo}, "lifeboat_restore_jobs": [job]})
    assert proc.returncode != 0, proc.stdout
    assert "job cache: checking health failed" in proc.stdout
    assert "The previous data was put back at %s." % redis_server.rdb in proc.stdout, proc.stdout
    assert state(redis_server) == (80, b"live")  # Redis runs on the data from before the restore
    assert redis_server.password not in proc.stdout
    assert leftovers(redis_server) == []


def test_put_back_module_and_its_refusals(ansible, redis_server, tmp_path):
    repo = backed_up_then_changed(redis_server, tmp_path)
    restart = redis_server.restart_command
    out = ansible.module("lifeboat.backup.redis_restore",
                         dict(redis_server.options(), job="cache", dest=repo, restart_command=restart))
    assert not out.get("failed"), out
    assert state(redis_server) == (50, b"old")
    args = dict(redis_server.options(), previous=out["previous"], restart_command=redis_server.restart_command)
    checked = ansible.module("lifeboat.backup.redis_put_back", args, check=True)
    assert not checked.get("failed") and checked["restored_to"] == redis_server.rdb, checked
    assert state(redis_server) == (50, b"old") and os.path.exists(out["previous"])
    done = ansible.module("lifeboat.backup.redis_put_back", args)
    assert not done.get("failed"), done
    assert done["keys"] == {"db0": 80} and state(redis_server) == (80, b"live")
    assert leftovers(redis_server) == []
    again = ansible.module("lifeboat.backup.redis_put_back", args)
    assert again.get("failed") and "nothing to put back" in again["msg"], again
    connection = redis_connection.connection_from_options(redis_server.options())
    with pytest.raises(ConfigError, match="is not an RDB that redis_restore kept aside"):
        redis_restore.put_back_redis(connection, redis_server.rdb)
    stray = tmp_path / "other.rdb.lifeboat-prev-20261122T091500Z"
    stray.write_bytes(b"REDIS0010")
    with pytest.raises(ConfigError, match="belongs to another server or file; nothing was changed"):
        redis_restore.put_back_redis(connection, str(stray))
    assert stray.exists() and state(redis_server) == (80, b"live")
    with pytest.raises(RestoreError, match="nothing to put back"):
        redis_restore.put_back_redis(connection, redis_server.rdb + ".lifeboat-prev-20261122T091500Z")
