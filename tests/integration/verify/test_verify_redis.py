"""Redis test restore: the RDB loaded by a scratch redis-server on a unix socket in a private directory, key counts
per database against the manifest; an RDB of a newer format, a truncated RDB, forged key counts and an RDB with
Functions libraries fail; nothing is left in scratch."""

import os
import struct
import time

import pytest

from engine.sources.redis import kind as redis_kind
from engine.core.errors import IntegrityError
from engine.pipeline.verify import verify_set

from conftest import decoded, forged, store

JOB = "cache"


@pytest.fixture
def redis_set(redis_module, tmp_path):
    server = redis_module.RedisServer(str(tmp_path / "redis"))
    try:
        with server.client() as client:
            for index in range(120):
                client.execute("SET", "key:%d" % index, "value-%d" % index)
            client.execute("SELECT", "3")
            for index in range(7):
                client.execute("SET", "other:%d" % index, "x")
            client.execute("SET", "ttl", "1", "EX", "3600")
        repository, backup = store(tmp_path / "repo", JOB, redis_kind.source_from_options(server.options()))
    finally:
        server.stop()
    return repository, backup


def scratch_left(tmp_path):
    return [name for name in os.listdir(str(tmp_path)) if name.startswith("lifeboat-verify")]


def test_a_good_rdb_loads_in_a_scratch_server_with_the_recorded_key_counts(redis_set, tmp_path):
    repository, backup = redis_set
    assert backup["manifest"]["verification"]["keys"] == {"db0": 120, "db3": 8}
    report = verify_set(repository, JOB, scratch_dir=str(tmp_path))["verification"]
    assert report["status"] == "ok" and report["test_restore"] == "ok" and report["keys_match"] is True
    assert report["keys"] == {"db0": 120, "db3": 8}
    assert report["checked"]["keys"]["expected"] == {"db0": 120, "db3": 8}
    assert report["functions"] is False and report["restore_seconds"] > 0
    assert scratch_left(tmp_path) == []


def test_an_rdb_of_a_newer_format_is_refused_by_the_scratch_server(redis_set, tmp_path):
    repository, _backup = redis_set
    data, manifest = decoded(repository, JOB)
    assert data[:5] == b"REDIS"
    newer = b"REDIS0099" + data[9:]  # stored with its own (right) sha256
    forged_repository = forged(tmp_path / "forged", JOB, manifest, newer)[0]
    with pytest.raises(IntegrityError) as info:
        verify_set(forged_repository, JOB, scratch_dir=str(tmp_path))
    assert "redis-server refused to load the RDB" in info.value.msg and "99" in info.value.msg
    assert scratch_left(tmp_path) == []


def test_a_truncated_rdb_is_refused(redis_set, tmp_path):
    repository, _backup = redis_set
    data, manifest = decoded(repository, JOB)
    forged_repository = forged(tmp_path / "forged", JOB, manifest, data[:len(data) // 2])[0]
    with pytest.raises(IntegrityError) as info:
        verify_set(forged_repository, JOB, scratch_dir=str(tmp_path))
    assert "redis-server refused to load the RDB" in info.value.msg
    assert scratch_left(tmp_path) == []


def test_key_counts_that_disagree_with_the_manifest_fail(redis_set, tmp_path):
    repository, _backup = redis_set
    data, manifest = decoded(repository, JOB)
    forged_repository = forged(tmp_path / "forged", JOB, manifest, data, verification={
        "keys": {"db0": 500, "db3": 8}, "expires": {"db3": 1}, "keys_tolerance": 0})[0]
    with pytest.raises(IntegrityError) as info:
        verify_set(forged_repository, JOB, scratch_dir=str(tmp_path))
    assert "key counts do not match" in info.value.msg and "db0 has 120 keys, the backup had 500" in info.value.msg
    assert info.value.details["verification"]["keys_match"] is False


def with_function_library(data):
    """The RDB with a Functions library record (opcode 0xF5 and a string) right after the header."""
    code = b"#!lua name=evil\nredis.register_function('f', function() return 1 end)"
    return data[:9] + b"\xf5" + bytes([0x80]) + struct.pack(">I", len(code)) + code + data[9:]


def test_an_rdb_with_functions_is_not_loaded_unless_allowed(redis_set, tmp_path):
    repository, _backup = redis_set
    data, manifest = decoded(repository, JOB)
    forged_repository = forged(tmp_path / "forged", JOB, manifest, with_function_library(data))[0]
    with pytest.raises(IntegrityError) as info:
        verify_set(forged_repository, JOB, scratch_dir=str(tmp_path))
    assert "Functions libraries" in info.value.msg and "allow_functions" in info.value.msg
    assert info.value.details["verification"]["functions"] is True
    assert scratch_left(tmp_path) == []


CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from engine.sources.redis.verify import ScratchRedis
server = ScratchRedis("redis-server", sys.argv[2], sys.argv[2], 30)
server.wait_loaded("test")
print(server.process.pid, flush=True)
time.sleep(600)
"""


def test_the_scratch_server_dies_with_a_killed_verify(redis_set, tmp_path):
    """A verify killed with SIGKILL (no cleanup runs) leaves no redis-server holding the set's data."""
    import signal
    import subprocess
    import sys
    repository, _backup = redis_set
    data, _manifest = decoded(repository, JOB)
    work = tmp_path / "work"
    work.mkdir(mode=0o700)
    (work / "dump.rdb").write_bytes(data)
    engine_path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                               "..", "plugins", "module_utils")
    child = subprocess.Popen([sys.executable, "-c", CHILD, engine_path, str(work)], stdout=subprocess.PIPE)
    pid = int(child.stdout.readline())
    os.kill(pid, 0)  # the scratch server runs
    child.send_signal(signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        with open("/proc/%d/stat" % pid) as handle:
            if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                break  # a zombie waiting for init to reap it: not running
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        raise AssertionError("the scratch redis-server outlived the killed verify")


def test_the_module_test_restores_a_redis_set(ansible, redis_set, tmp_path):
    out = ansible.module("lifeboat.backup.backup_verify", {"job": JOB, "dest": str(tmp_path / "repo"),
                                                           "scratch_dir": str(tmp_path)})
    assert not out.get("failed"), out.get("msg")
    assert out["verification"]["keys"] == {"db0": 120, "db3": 8} and out["verification"]["keys_match"] is True
    assert scratch_left(tmp_path) == []
