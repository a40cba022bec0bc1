"""A MongoDB tar-layout set is untrusted input even with a good sha256 (issue #16, DESIGN.md "Trust boundary").

Each test builds its crafted set itself, stores it as a complete set through the engine's own backup path (so its
sha256 is right and only the restore's checks stand between it and the server) and restores it into nx-27017 (the
MongoDB stand-in: no real mongod exists here). It then proves nothing of the set reached the server."""

import json
import os
import tarfile

import bson
import pytest
from bson import json_util

from engine.pipeline.backup import run_backup
from engine.core.errors import IntegrityError
from engine.sources.mongo.restore import restore_mongo
from engine.repositories.repository import Repository
from support.crafted_sets import CraftedSource

RESTORE = "lifeboat.backup.mongo_restore"


def member(name, payload=b"", kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o644
    if kind == tarfile.REGTYPE:
        info.size = len(payload)
        return info, payload
    return info, None


def docs(*documents):
    return b"".join(bson.encode(document) for document in documents)


def metadata(name, **extra):
    document = {"indexes": [{"v": 2, "key": {"_id": 1}, "name": "_id_"}], "collectionName": name, "type": "collection",
                "options": {}}
    document.update(extra)
    return json_util.dumps(document).encode()


def crafted(tmp_path, members, counts, job="crafted"):
    repository = Repository.from_options(dest=str(tmp_path / "repo"))
    source = {"uri": "mongodb://crafted", "method": "builtin", "format": "tar-layout", "oplog": False}
    run_backup(CraftedSource(members, {"document_counts": dict(counts)}, kind="mongo", source=source), repository, job)
    return repository


def restore(repository, nx, tmp_path, **options):
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return restore_mongo(repository, "crafted", nx.uri, tmp_dir=str(scratch), server_selection_timeout_ms=3000,
                         **options)


def namespaces(client):
    """Every namespace on the server outside the stand-in's own bookkeeping."""
    out = set()
    for database in client.list_database_names():
        for name in client[database].list_collection_names():
            out.add("%s.%s" % (database, name))
    return out


@pytest.fixture
def client(nx):
    client = nx.client()
    for name in client.list_database_names():
        if name.startswith("lbx") or name in ("admin",):
            client.drop_database(name)
    yield client
    client.close()


def assert_refused(repository, nx, tmp_path, client, words, **options):
    before = namespaces(client)
    with pytest.raises(IntegrityError) as caught:
        restore(repository, nx, tmp_path, **options)
    message = caught.value.msg
    for word in words:
        assert word in message, message
    assert "nothing was changed" in message and "Traceback" not in message
    assert namespaces(client) == before
    assert os.listdir(str(tmp_path / "scratch")) == []
    return message


def test_database_name_with_a_dot_cannot_reach_admin_system_users(nx, client, tmp_path):
    """'admin.system/users.bson' was namespace 'admin.system.users' split at its first dot: a new user in admin."""
    user = {"_id": "admin.pwned", "user": "pwned", "db": "admin", "roles": [{"role": "root", "db": "admin"}]}
    repository = crafted(tmp_path, [member("admin.system/users.bson", docs(user))], {"admin.system.users": 1})
    assert_refused(repository, nx, tmp_path, client, ["'admin.system'", "not a valid database name"])
    # (nx-27017 cannot even name a system collection; a real server would have taken the user)
    assert "admin.system.users" not in namespaces(client)


@pytest.mark.parametrize("name, words", [
    ("lbx/system.js.bson", ["system collection"]),
    ("lbx/system.users.bson", ["system collection"]),
    ("lbx/c$x.bson", ["'$' or NUL"]),
])
def test_system_and_invalid_collections_are_never_written(nx, client, tmp_path, name, words):
    collection = name.split("/", 1)[1][:-len(".bson")]
    repository = crafted(tmp_path, [member(name, docs({"_id": 1, "value": "function() { return 1; }"}))],
                         {"lbx." + collection: 1})
    assert_refused(repository, nx, tmp_path, client, words)
    assert "lbx" not in client.list_database_names()


@pytest.mark.parametrize("members, words", [
    # tarfile-normalised names: the old reader stripped './' and '../' and restored lbx.c from them
    ([member("../lbx/c.bson", docs({"_id": 1}))], ["is not <database>/<collection>.bson"]),
    ([member("/lbx/c.bson", docs({"_id": 1}))], ["is not <database>/<collection>.bson"]),
    ([member("lbx/c.bson", docs({"_id": 1})), member("lbx/c.bson", docs({"_id": 2}))], ["appears twice"]),
    ([member("lbx/c.bson", docs({"_id": 1})), member("lbx/d.bson", kind=tarfile.SYMTYPE, linkname="/etc/passwd")],
     ["is not a regular file"]),
    ([member("lbx/c.bson", docs({"_id": 1})), member("lbx/d.bson", kind=tarfile.LNKTYPE, linkname="lbx/c.bson")],
     ["is not a regular file"]),
    ([member("lbx/c.bson", docs({"_id": 1})), member("lbx/notes.txt", b"x")], ["is not <database>/<collection>"]),
])
def test_members_outside_the_layout_are_refused(nx, client, tmp_path, members, words):
    counts = {"lbx.c": 1, "lbx.d": 1} if any(info.name == "lbx/d.bson" for info, _payload in members) else {"lbx.c": 1}
    repository = crafted(tmp_path, members, counts)
    assert_refused(repository, nx, tmp_path, client, words)
    assert "lbx" not in client.list_database_names()


def test_server_databases_need_to_be_named(nx, client, tmp_path):
    """admin/local/config collections are restored only when the operator names that database exactly."""
    repository = crafted(tmp_path, [member("lbx1/c.bson", docs({"_id": 1})), member("admin/c.bson", docs({"_id": 1}))],
                         {"lbx1.c": 1, "admin.c": 1})
    assert_refused(repository, nx, tmp_path, client, ["admin.c", "name admin exactly in databases"])
    assert_refused(repository, nx, tmp_path, client, ["admin.c"], databases=["*"])
    assert "lbx1" not in client.list_database_names()
    result = restore(repository, nx, tmp_path, databases=["lbx1"])
    assert [entry["target"] for entry in result["collections"]] == ["lbx1.c"]
    assert client.admin.c.count_documents({}) == 0
    client.drop_database("lbx1")


def test_collections_the_manifest_does_not_list_are_refused(nx, client, tmp_path):
    repository = crafted(tmp_path, [member("lbx/c.bson", docs({"_id": 1})), member("lbx/extra.bson", docs({"_id": 1}))],
                         {"lbx.c": 1})
    assert_refused(repository, nx, tmp_path, client, ["does not list", "lbx.extra"])


@pytest.mark.parametrize("options, words", [
    ({"validator": {"$where": "sleep(100000) || true"}}, ["server-side JavaScript ($where)", "allow_javascript"]),
    ({"validator": {"$expr": {"$function": {"body": "function() { return true; }", "args": [], "lang": "js"}}}},
     ["server-side JavaScript ($function)"]),
    ({"storageEngine": {"wiredTiger": {"configString": "log=(enabled=false)"}}}, ["options lifeboat does not restore",
                                                                                  "storageEngine"]),
])
def test_metadata_with_javascript_or_unknown_options_is_refused(nx, client, tmp_path, options, words):
    repository = crafted(tmp_path, [member("lbx/c.metadata.json", metadata("c", options=options)),
                                    member("lbx/c.bson", docs({"_id": 1}))], {"lbx.c": 1})
    assert_refused(repository, nx, tmp_path, client, words)
    assert "lbx" not in client.list_database_names()


def test_view_pipeline_with_javascript_is_refused_and_views_are_announced(nx, client, tmp_path):
    pipeline = [{"$match": {"$expr": {"$accumulator": {"init": "function() {}"}}}}]
    view = metadata("v", type="view", options={"viewOn": "c", "pipeline": pipeline}, indexes=[])
    repository = crafted(tmp_path, [member("lbx/c.bson", docs({"_id": 1})), member("lbx/v.metadata.json", view)],
                         {"lbx.c": 1})
    assert_refused(repository, nx, tmp_path, client, ["$accumulator"])

    plain = metadata("v", type="view", options={"viewOn": "c", "pipeline": [{"$match": {"x": 1}}]}, indexes=[])
    repository = crafted(tmp_path / "2", [member("lbx/c.bson", docs({"_id": 1})), member("lbx/v.metadata.json", plain)],
                         {"lbx.c": 1})
    result = restore(repository, nx, tmp_path, check_mode=True)
    assert any("view lbx.v on lbx.c (1 pipeline stage(s))" in warning for warning in result["warnings"])
    assert [entry.get("view_on") for entry in result["collections"]] == [None, "lbx.c"]


def test_huge_bson_length_prefix_is_a_clear_integrity_error(nx, client, tmp_path):
    body = (0x7FFFFFF0).to_bytes(4, "little") + b"\x00" * 64
    repository = crafted(tmp_path, [member("lbx/c.bson", body)], {"lbx.c": 1})
    with pytest.raises(IntegrityError) as caught:
        restore(repository, nx, tmp_path)
    assert "impossible length" in caught.value.msg
    assert "lbx" not in client.list_database_names()


def test_module_refuses_javascript_unless_allowed(ansible, nx, client, tmp_path):
    """Through the module: the refusal is a clean failure; allow_javascript lets the same set pass verification."""
    options = {"validator": {"$where": "true"}}
    crafted(tmp_path, [member("lbx/c.metadata.json", metadata("c", options=options)),
                       member("lbx/c.bson", docs({"_id": 1}))], {"lbx.c": 1})
    args = {"job": "crafted", "dest": str(tmp_path / "repo"), "mongo_uri": nx.uri}
    out = ansible.module(RESTORE, args, check=True)
    assert out.get("failed") and "server-side JavaScript ($where)" in out["msg"], out
    assert "Traceback" not in out["_output"]
    out = ansible.module(RESTORE, dict(args, allow_javascript=True), check=True)
    assert not out.get("failed"), out.get("msg")
    assert out["collections"][0]["validator"] is True
    assert any("document validator on lbx.c" in warning for warning in out.get("warnings", [])), json.dumps(out)
    assert client.lbx.list_collection_names() == []  # check mode wrote nothing
