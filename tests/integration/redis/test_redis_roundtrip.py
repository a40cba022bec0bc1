"""redis_backup / redis_restore through ansible-playbook against a real redis-server on 127.0.0.1."""

import glob
import hashlib
import json
import os

from engine.sources.redis import kind as redis_kind
from engine.pipeline.backup import run_backup
from engine.repositories.repository import Repository
from support.ports import free_port

KEYS = 100000
SAMPLE = ["k%d" % i for i in range(0, KEYS, 997)]


def load(server):
    with server.client() as client:
        for start in range(0, KEYS, 10000):
            replies = client.pipeline([("SET", "k%d" % i, "value-%d-%s" % (i, "x" * (i % 50)))
                                       for i in range(start, start + 10000)])
            assert all(reply == "OK" for reply in replies)
        client.execute("HSET", "h", "a", "1", "b", "2")
        client.execute("RPUSH", "l", "x", "y", "z")
        client.execute("ZADD", "z", "1.5", "m1", "2", "m2")
        client.execute("SELECT", "1")
        client.execute("SET", "other-db", "yes")
        client.execute("SET", "with-ttl", "v", "EX", "100000")


def fingerprint(server):
    """DBSIZE per db plus a digest of DUMP of a sample of keys (type, value and encoding)."""
    with server.client() as client:
        sizes = {}
        for db in (0, 1):
            client.execute("SELECT", db)
            sizes[db] = client.execute("DBSIZE")
        client.execute("SELECT", 0)
        digest = hashlib.sha256()
        for key in SAMPLE + ["h", "l", "z"]:
            value = client.execute("DUMP", key)
            assert value is not None, key
            digest.update(key.encode() + b"\0" + value)
        values = [client.execute("GET", key) for key in SAMPLE[:5]]
        digest_values = client.execute("DEBUG", "DIGEST-VALUE", *SAMPLE[:50])
    return sizes, digest.hexdigest(), values, digest_values


def engine_backup(server, repo, compression="zstd"):
    """Setup step of the failure tests: a set made by the engine directly (the module is tested above)."""
    return run_backup(redis_kind.source_from_options(server.options()), Repository.from_options(dest=str(repo)),
                      "cache", compression=compression)


def dbsize(server):
    with server.client() as client:
        return client.execute("DBSIZE")


def test_backup_flushall_restore(ansible, redis_server, s3, tmp_path):
    load(redis_server)
    before = fingerprint(redis_server)
    assert before[0] == {0: KEYS + 3, 1: 2}
    common = dict(redis_server.options(), job="cache", s3=s3, dest=str(tmp_path / "repo"))

    out = ansible.module("lifeboat.backup.redis_backup", common)
    assert not out.get("failed"), out
    manifest = out["backup"]["manifest"]
    assert manifest["kind"] == "redis" and out["backup"]["location"]["s3"].startswith("s3://")
    assert manifest["verification"]["keys"] == {"db0": KEYS + 3, "db1": 2}
    assert manifest["verification"]["keys_stable"] is True
    assert manifest["verification"]["rdb_check"] == "ok"
    assert redis_server.password not in out["_output"] and redis_server.password not in str(manifest)

    with redis_server.client() as client:
        client.execute("FLUSHALL")
    assert dbsize(redis_server) == 0

    check = ansible.module("lifeboat.backup.redis_restore",
                           dict(common, restart_command=redis_server.restart_command), check=True)
    assert not check.get("failed"), check
    assert check["verification"]["sha256"] == "ok" and dbsize(redis_server) == 0

    out = ansible.module("lifeboat.backup.redis_restore", dict(common, restart_command=redis_server.restart_command))
    assert not out.get("failed"), out
    assert out["verification"]["keys"] == {"db0": KEYS + 3, "db1": 2}
    assert out["verification"]["keys_match"] is True
    assert fingerprint(redis_server) == before
    # the data as it was just before the restore (empty after FLUSHALL) was saved and kept aside
    assert out["previous"] and os.path.exists(out["previous"])
    assert not glob.glob(os.path.join(redis_server.dir, ".*lifeboat-restore*"))


def test_server_down_fails_clearly(ansible, tmp_path):
    port = free_port()
    out = ansible.module("lifeboat.backup.redis_backup",
                         {"job": "cache", "redis_port": port, "dest": str(tmp_path / "repo")})
    assert out.get("failed")
    assert "cannot connect to Redis at 127.0.0.1:%d" % port in out["msg"]
    assert "Traceback" not in out["msg"]
    assert not os.path.exists(str(tmp_path / "repo" / "cache")) or not os.listdir(str(tmp_path / "repo" / "cache"))


def test_wrong_password_fails_clearly(ansible, redis_server, tmp_path):
    out = ansible.module("lifeboat.backup.redis_backup",
                         dict(redis_server.options(redis_password="not-the-password"), job="cache",
                              dest=str(tmp_path / "repo")))
    assert out.get("failed")
    assert "authentication to Redis" in out["msg"] and "WRONGPASS" in out["msg"]
    assert "not-the-password" not in out["_output"]
    assert not os.path.exists(str(tmp_path / "repo" / "cache")) or not os.listdir(str(tmp_path / "repo" / "cache"))
    # the password can also come from REDISCLI_AUTH, as for redis-cli
    out = ansible.module("lifeboat.backup.redis_backup",
                         {"job": "cache", "redis_port": redis_server.port, "dest": str(tmp_path / "repo")},
                         env={"REDISCLI_AUTH": redis_server.password})
    assert not out.get("failed"), out


def test_corrupted_set_leaves_live_data(ansible, redis_server, tmp_path):
    with redis_server.client() as client:
        client.pipeline([("SET", "k%d" % i, "v%d" % i) for i in range(1000)])
    repo = tmp_path / "repo"
    common = dict(redis_server.options(), job="cache", dest=str(repo))
    engine_backup(redis_server, repo, compression="none")
    with redis_server.client() as client:
        client.execute("SET", "after-backup", "1")
    data = glob.glob(str(repo / "cache" / "*" / "data.rdb"))[0]
    with open(data, "r+b") as handle:
        handle.seek(200)
        chunk = handle.read(16)
        handle.seek(200)
        handle.write(bytes(b ^ 0xFF for b in chunk))
    rdb_before = open(redis_server.rdb, "rb").read()

    out = ansible.module("lifeboat.backup.redis_restore", dict(common, restart_command=redis_server.restart_command))
    assert out.get("failed")
    assert "sha256 mismatch" in out["msg"]
    assert dbsize(redis_server) == 1001
    assert open(redis_server.rdb, "rb").read() == rdb_before
    assert sorted(os.listdir(redis_server.dir)) == ["dump.rdb"]


def test_appendonly_is_refused(ansible, redis_server, tmp_path):
    with redis_server.client() as client:
        client.execute("SET", "a", "1")
    common = dict(redis_server.options(), job="cache", dest=str(tmp_path / "repo"))
    engine_backup(redis_server, tmp_path / "repo")
    with redis_server.client() as client:
        client.execute("CONFIG", "SET", "appendonly", "yes")
        client.execute("SET", "b", "2")
    out = ansible.module("lifeboat.backup.redis_restore", dict(common, restart_command=redis_server.restart_command))
    assert out.get("failed")
    assert "appendonly yes" in out["msg"] and "nothing was changed" in out["msg"]
    assert dbsize(redis_server) == 2


def test_restore_onto_stopped_server(ansible, redis_server, tmp_path):
    """Disaster recovery: Redis is down; rdb_path says where the RDB goes, restart_command starts it."""
    with redis_server.client() as client:
        client.pipeline([("SET", "k%d" % i, "v%d" % i) for i in range(500)])
    common = dict(redis_server.options(), job="cache", dest=str(tmp_path / "repo"))
    engine_backup(redis_server, tmp_path / "repo")
    redis_server.stop()
    os.unlink(redis_server.rdb)

    out = ansible.module("lifeboat.backup.redis_restore", dict(common, restart_command=redis_server.restart_command))
    assert out.get("failed")
    assert "cannot connect to Redis" in out["msg"] and "rdb_path" in out["msg"]
    assert not os.path.exists(redis_server.rdb)

    out = ansible.module("lifeboat.backup.redis_restore",
                         dict(common, rdb_path=redis_server.rdb, restart_command=redis_server.restart_command))
    assert not out.get("failed"), out
    assert out["previous"] is None and out["verification"]["keys"] == {"db0": 500}
    assert oct(os.stat(redis_server.rdb).st_mode & 0o777) == oct(0o640)
    assert dbsize(redis_server) == 500


def test_key_count_mismatch_puts_previous_back(ansible, redis_server, tmp_path):
    """A set whose data does not hold the keys its manifest promises is rolled back after the restart."""
    with redis_server.client() as client:
        client.pipeline([("SET", "k%d" % i, "v%d" % i) for i in range(300)])
    repo = tmp_path / "repo"
    common = dict(redis_server.options(), job="cache", dest=str(repo))
    engine_backup(redis_server, repo)
    manifest_path = glob.glob(str(repo / "cache" / "*" / "manifest.json"))[0]
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    manifest["verification"]["keys"] = {"db0": 999}
    with open(manifest_path, "w") as handle:
        json.dump(manifest, handle)
    with redis_server.client() as client:
        client.execute("SET", "live-only", "1")

    out = ansible.module("lifeboat.backup.redis_restore", dict(common, restart_command=redis_server.restart_command))
    assert out.get("failed")
    assert "db0 has 300 keys, the backup had 999" in out["msg"] and "previous RDB was put back" in out["msg"]
    # the live data (saved before the restore) is what the server runs on again
    assert dbsize(redis_server) == 301
    with redis_server.client() as client:
        assert client.execute("GET", "live-only") == b"1"
    assert sorted(os.listdir(redis_server.dir)) == ["dump.rdb"]
