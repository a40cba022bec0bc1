"""The mongodump/mongorestore path with fake tools first on PATH (no real MongoDB tools exist here):
the URI reaches the tool only through a 0600 --config file that is removed afterwards, never argv,
and the archive round-trips through a local repository with its document counts checked."""

import hashlib
import json
import os
import sys

import pytest

from engine.sources.mongo import clients as mongo_clients
from engine.sources.mongo import dump as mongo_dump
from engine.sources.mongo import kind as mongo
from engine.sources.mongo import restore as mongo_restore
from engine.pipeline.backup import run_backup
from engine.core.errors import LifeboatError
from engine.repositories.repository import Repository

SECRET = "pa55-w0rd"
URI = "mongodb://backup:%s@db1.example.com:27017/?authSource=admin" % SECRET


def archive(collections, body=b"FAKE-MONGODUMP-ARCHIVE" * 5000):
    """The start of a mongodump --archive stream: magic number, header, one metadata document per collection
    ((db, collection, type, metadata dict)), terminator; then `body` (the namespace blocks, never parsed here)."""
    import bson
    out = (0x8199E26D).to_bytes(4, "little") + bson.encode({"concurrent_collections": 4, "version": "0.1"})
    for db, collection, kind, metadata in collections:
        out += bson.encode({"db": db, "collection": collection, "metadata": json.dumps(metadata), "size": 0,
                            "type": kind})
    return out + b"\xff\xff\xff\xff" + body


def plain(name):
    return {"indexes": [{"v": 2, "key": {"_id": 1}, "name": "_id_"}], "collectionName": name, "type": "collection",
            "options": {}}


PAYLOAD = archive([("shop", "items", "collection", plain("items")), ("shop", "users", "collection", plain("users"))])

FAKE = r'''#!%(python)s
import hashlib, json, os, stat, sys
tool = os.path.basename(sys.argv[0])
args = sys.argv[1:]
if args == ["--version"]:
    print("%%s version: 100.9.4" %% tool)
    sys.exit(0)
config = [a.split("=", 1)[1] for a in args if a.startswith("--config=")][0]
record = {"argv": sys.argv, "mode": stat.S_IMODE(os.stat(config).st_mode), "config": open(config).read(),
          "config_path": config}
if tool == "mongorestore":
    archive = [a.split("=", 1)[1] for a in args if a.startswith("--archive=")][0]
    record["archive_sha256"] = hashlib.sha256(open(archive, "rb").read()).hexdigest()
with open(os.path.join(os.environ["FAKE_RECORD_DIR"], tool + ".json"), "w") as handle:
    json.dump(record, handle)
if os.environ.get("FAKE_FAIL"):
    sys.stderr.write("Failed: could not connect to server with %%s\n" %% record["config"])
    sys.exit(1)
if tool == "mongodump":
    payload = %(payload)r
    if os.environ.get("FAKE_PAYLOAD"):
        payload = open(os.environ["FAKE_PAYLOAD"], "rb").read()
    sys.stdout.buffer.write(payload)
    sys.stderr.write("2026-01-01T00:00:00.000+0000\tdone dumping shop.items (3 documents)\n"
                     "2026-01-01T00:00:00.000+0000\tdone dumping shop.users (1 document)\n"
                     + os.environ.get("FAKE_EXTRA_LOG", ""))
else:
    sys.stderr.write("2026-01-01T00:00:00.000+0000\tfinished restoring shop2.items (3 documents, 0 failures)\n"
                     "2026-01-01T00:00:00.000+0000\tfinished restoring shop2.users (1 document, 0 failures)\n"
                     "4 document(s) restored successfully. 0 document(s) failed to restore.\n")
'''


class FakeClient(object):
    def close(self):
        pass


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("mongodump", "mongorestore"):
        path = bin_dir / tool
        path.write_text(FAKE % {"python": sys.executable, "payload": PAYLOAD})
        path.chmod(0o755)
    records = tmp_path / "records"
    records.mkdir()
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ["PATH"]))
    monkeypatch.setenv("FAKE_RECORD_DIR", str(records))
    # no server here: the pymongo pre-flight checks are replaced
    monkeypatch.setattr(mongo_dump, "connect", lambda *args, **kwargs: FakeClient())
    monkeypatch.setattr(mongo_restore, "connect", lambda *args, **kwargs: FakeClient())
    monkeypatch.setattr(mongo_restore, "_existing", lambda client, target, uri: None)
    return records


def load(records, tool):
    return json.loads((records / (tool + ".json")).read_text())


def test_mongodump_and_mongorestore_get_the_uri_only_through_a_0600_config_file(fake_tools, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    repo = Repository.from_options(dest=str(tmp_path / "repo"), s3=None)
    source = mongo.source_from_options({"mongo_uri": URI, "databases": ["shop"], "tmp_dir": str(scratch)})
    backup = run_backup(source, repo, "mongo-cli")

    record = load(fake_tools, "mongodump")
    assert record["argv"][1:] == ["--config=%s" % record["config_path"], "--archive", "--db=shop"]
    assert not any(SECRET in arg for arg in record["argv"])
    assert record["mode"] == 0o600 and os.path.dirname(record["config_path"]) == str(scratch)
    assert record["config"] == 'uri: "%s&serverSelectionTimeoutMS=5000"\n' % URI
    assert not os.path.exists(record["config_path"]) and os.listdir(str(scratch)) == []

    manifest = backup["manifest"]
    assert manifest["data"] == "data.archive.zst"
    assert manifest["source"]["format"] == "archive" and manifest["source"]["method"] == "mongodump"
    assert manifest["source"]["uri"] == "mongodb://backup@db1.example.com:27017/?authSource=admin"
    assert manifest["verification"]["document_counts"] == {"shop.items": 3, "shop.users": 1}
    assert manifest["tools"]["mongodump"] == "100.9.4"
    assert manifest["raw_size"] == len(PAYLOAD)
    assert SECRET not in json.dumps(manifest)

    result = mongo.restore_from_options(repo, {"job": "mongo-cli", "mongo_uri": URI, "rename": {"shop": "shop2"},
                                               "drop": True, "tmp_dir": str(scratch)})
    record = load(fake_tools, "mongorestore")
    argv = record["argv"][1:]
    assert argv[0] == "--config=%s" % record["config_path"] and argv[1].startswith("--archive=%s/" % scratch)
    assert argv[2:] == ["--stopOnError", "--nsInclude=shop.items", "--nsInclude=shop.users", "--nsExclude=*.system.*",
                        "--nsFrom=shop.*", "--nsTo=shop2.*", "--drop"]
    assert not any(SECRET in arg for arg in record["argv"]) and record["mode"] == 0o600
    assert record["archive_sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert os.listdir(str(scratch)) == []
    assert result["method"] == "mongorestore" and result["format"] == "archive"
    assert result["verification"]["document_counts"] == {"shop2.items": 3, "shop2.users": 1}
    assert SECRET not in json.dumps(result)


def test_failing_mongodump_writes_no_set_and_hides_the_password(fake_tools, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "1")
    repo_dir = tmp_path / "repo"
    repo = Repository.from_options(dest=str(repo_dir), s3=None)
    source = mongo.source_from_options({"mongo_uri": URI, "method": "mongodump"})
    with pytest.raises(LifeboatError) as caught:
        run_backup(source, repo, "mongo-cli")
    assert "mongodump" in caught.value.msg and "exited with status 1" in caught.value.msg
    assert SECRET not in caught.value.msg and "backup@db1.example.com" in caught.value.msg
    assert not list(repo_dir.rglob("manifest.json")) and not list(repo_dir.rglob("data.*"))
    assert not os.path.exists(load(fake_tools, "mongodump")["config_path"])


def test_builtin_method_without_pymongo_says_what_to_install(monkeypatch):
    monkeypatch.setattr(mongo_clients, "HAS_PYMONGO", False)
    source = mongo.source_from_options({"mongo_uri": "mongodb://127.0.0.1:1", "method": "builtin"})
    with pytest.raises(LifeboatError) as caught:
        source.check()
    assert "pymongo is not installed" in caught.value.msg and "pip install pymongo" in caught.value.msg


def test_oplog_of_a_set_is_replayed_only_when_asked(fake_tools, tmp_path):
    """A manifest saying oplog: true is the set's word, not the operator's: no --oplogReplay unless oplog_replay."""
    repo = Repository.from_options(dest=str(tmp_path / "repo"), s3=None)
    run_backup(mongo.source_from_options({"mongo_uri": URI, "oplog": True, "method": "mongodump"}), repo, "mongo-cli")
    options = {"job": "mongo-cli", "mongo_uri": URI, "drop": True}
    result = mongo.restore_from_options(repo, options, check_mode=True)
    assert any("holds an oplog, which was not replayed" in warning for warning in result["warnings"])
    with pytest.raises(LifeboatError):  # the fake tool reports shop2.* counts, which do not match: argv is recorded
        mongo.restore_from_options(repo, options)
    argv = load(fake_tools, "mongorestore")["argv"]
    assert "--oplogReplay" not in argv
    assert "--nsInclude=shop.items" in argv and "--nsInclude=shop.users" in argv
    with pytest.raises(LifeboatError):
        mongo.restore_from_options(repo, {"job": "mongo-cli", "mongo_uri": URI, "drop": True, "oplog_replay": True})
    assert "--oplogReplay" in load(fake_tools, "mongorestore")["argv"]


@pytest.mark.parametrize("extra, words", [
    ("\tdone dumping sh$op.items (1 document)\n", ["not a valid database name"]),
    ("\tdone dumping shop.it$ems (1 document)\n", ["'$' or NUL"]),
])
def test_archive_namespaces_are_checked_before_mongorestore_runs(fake_tools, tmp_path, monkeypatch, extra, words):
    """The manifest's namespaces decide the exact --nsInclude list; an invalid one stops the restore before
    mongorestore starts."""
    monkeypatch.setenv("FAKE_EXTRA_LOG", "2026-01-01T00:00:00.000+0000" + extra)
    repo = Repository.from_options(dest=str(tmp_path / "repo"), s3=None)
    run_backup(mongo.source_from_options({"mongo_uri": URI, "method": "mongodump"}), repo, "mongo-cli")
    with pytest.raises(LifeboatError) as caught:
        mongo.restore_from_options(repo, {"job": "mongo-cli", "mongo_uri": URI, "drop": True})
    for word in words:
        assert word in caught.value.msg
    assert not (fake_tools / "mongorestore.json").exists()


def test_archive_server_namespaces_are_left_out_unless_named(fake_tools, tmp_path, monkeypatch):
    """A whole-instance archive holds admin.system.users and the like: mongorestore never gets them (it would
    restore users and roles), admin.* only when admin is named exactly."""
    monkeypatch.setenv("FAKE_EXTRA_LOG", "x\tdone dumping admin.system.users (1 document)\n"
                                         "x\tdone dumping admin.settings (1 document)\n")
    repo = Repository.from_options(dest=str(tmp_path / "repo"), s3=None)
    run_backup(mongo.source_from_options({"mongo_uri": URI, "method": "mongodump"}), repo, "mongo-cli")
    result = mongo.restore_from_options(repo, {"job": "mongo-cli", "mongo_uri": URI}, check_mode=True)
    assert [entry["source"] for entry in result["collections"]] == ["shop.items", "shop.users"]
    assert any("admin.settings, admin.system.users, which were not restored" in warning
               for warning in result["warnings"])
    result = mongo.restore_from_options(repo, {"job": "mongo-cli", "mongo_uri": URI, "databases": ["admin"]},
                                        check_mode=True)
    assert [entry["source"] for entry in result["collections"]] == ["admin.settings"]
    with pytest.raises(LifeboatError):  # the fake tool's counts are for shop2; argv is what matters
        mongo.restore_from_options(repo, {"job": "mongo-cli", "mongo_uri": URI})
    argv = load(fake_tools, "mongorestore")["argv"]
    assert [arg for arg in argv if arg.startswith("--ns")] == [
        "--nsInclude=shop.items", "--nsInclude=shop.users", "--nsExclude=*.system.*"]


@pytest.mark.parametrize("collections, words", [
    ([("shop", "items", "collection", dict(plain("items"), options={"validator": {"$where": "sleep(1e9)"}}))],
     ["server-side JavaScript ($where)"]),
    ([("shop", "items", "collection", dict(plain("items"), options={"validator": {"f": {"$code": "function(){}"}}}))],
     ["server-side JavaScript ($code)"]),
    ([("shop", "items", "collection", dict(plain("items"), options={"storageEngine": {"wiredTiger": {}}}))],
     ["storageEngine"]),
    ([("shop", "v", "view", {"type": "view", "options": {"viewOn": "items", "pipeline": [
        {"$match": {"$expr": {"$function": {"body": "function(){return true}", "args": [], "lang": "js"}}}}]}})],
     ["server-side JavaScript ($function)"]),
])
def test_archive_metadata_is_checked_before_mongorestore_runs(fake_tools, tmp_path, monkeypatch, collections, words):
    """The archive's own collection metadata (validators, views) is read from its prelude and checked as a
    tar-layout set's is, before mongorestore starts."""
    payload = tmp_path / "payload"
    payload.write_bytes(archive(collections))
    monkeypatch.setenv("FAKE_PAYLOAD", str(payload))
    repo = Repository.from_options(dest=str(tmp_path / "repo"), s3=None)
    run_backup(mongo.source_from_options({"mongo_uri": URI, "method": "mongodump"}), repo, "mongo-cli")
    with pytest.raises(LifeboatError) as caught:
        mongo.restore_from_options(repo, {"job": "mongo-cli", "mongo_uri": URI, "drop": True})
    for word in words:
        assert word in caught.value.msg
    assert not (fake_tools / "mongorestore.json").exists()


def test_archive_views_are_restored_and_announced_system_namespaces_left_out(fake_tools, tmp_path, monkeypatch):
    view = {"type": "view", "options": {"viewOn": "items", "pipeline": [{"$match": {"n": 1}}]}}
    payload = tmp_path / "payload"
    payload.write_bytes(archive([("admin", "system.users", "collection", plain("system.users")),
                                 ("shop", "items", "collection", plain("items")), ("shop", "open", "view", view)]))
    monkeypatch.setenv("FAKE_PAYLOAD", str(payload))
    monkeypatch.setenv("FAKE_EXTRA_LOG", "x\tdone dumping admin.system.users (1 document)\n")
    repo = Repository.from_options(dest=str(tmp_path / "repo"), s3=None)
    run_backup(mongo.source_from_options({"mongo_uri": URI, "method": "mongodump"}), repo, "mongo-cli")
    result = mongo.restore_from_options(repo, {"job": "mongo-cli", "mongo_uri": URI}, check_mode=True)
    assert [entry["source"] for entry in result["collections"]] == ["shop.items", "shop.open", "shop.users"]
    assert result["collections"][1]["view_on"] == "shop.items"
    assert any("view shop.open on shop.items" in warning for warning in result["warnings"])
    assert any("admin.system.users, which were not restored" in warning for warning in result["warnings"])
    with pytest.raises(LifeboatError):  # the fake tool's counts are for shop2; argv is what matters
        mongo.restore_from_options(repo, {"job": "mongo-cli", "mongo_uri": URI})
    argv = load(fake_tools, "mongorestore")["argv"]
    assert [arg for arg in argv if arg.startswith("--ns")] == [
        "--nsInclude=shop.items", "--nsInclude=shop.open", "--nsInclude=shop.users", "--nsExclude=*.system.*"]
