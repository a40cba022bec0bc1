"""mongo_dump / mongo_restore end to end through ansible-playbook, against nx-27017 (the MongoDB stand-in:
no real mongod exists on these machines) and moto S3. These tests exercise the built-in pymongo dumper
(tar-layout format); the mongodump/mongorestore path is covered by tests/unit/test_mongo_*.py."""

import datetime
import os

from bson import Binary, Int64, ObjectId, json_util

DUMP = "lifeboat.backup.mongo_dump"
RESTORE = "lifeboat.backup.mongo_restore"
DATABASES = ("lbshop", "lbother")


def populate(client):
    for name in DATABASES:
        client.drop_database(name)
    shop = client.lbshop
    base = datetime.datetime(2026, 1, 1)
    shop.orders.insert_many([{
        "_id": ObjectId(), "ref": "ord-%05d" % i, "qty": i % 17, "price": i * 1.25, "big": Int64(2 ** 40 + i),
        "when": base + datetime.timedelta(minutes=i), "paid": i % 3 == 0, "note": None,
        "lines": [{"sku": "s%d" % j, "n": j} for j in range(i % 4)], "blob": Binary(bytes([i % 256]) * (i % 9)),
        "meta": {"source": "web" if i % 2 else "shop", "tags": ["a", "b"][: i % 3]},
    } for i in range(3000)])
    shop.orders.create_index([("ref", 1)], unique=True)
    shop.orders.create_index([("qty", 1), ("paid", 1)])
    shop.customers.insert_many([{"_id": i, "name": "customer %d" % i, "email": "c%d@example.com" % i,
                                 "score": float(i) / 7} for i in range(1500)])
    shop.customers.create_index([("email", 1)], unique=True)
    shop.events.insert_many([{"_id": "ev-%06d" % i, "kind": ["click", "view", "buy"][i % 3], "n": i}
                             for i in range(1000)])
    client.lbother.notes.insert_many([{"text": "note %d" % i, "i": i} for i in range(200)])


def canonical(doc):
    return json_util.dumps(doc, json_options=json_util.CANONICAL_JSON_OPTIONS)


def snapshot(client, databases=DATABASES):
    """{namespace: (sorted canonical documents, sorted index descriptions)}."""
    out = {}
    for database in databases:
        for name in sorted(client[database].list_collection_names()):
            coll = client[database][name]
            docs = sorted((canonical(doc["_id"]), canonical(doc)) for doc in coll.find())
            indexes = sorted((canonical(index["key"]), bool(index.get("unique"))) for index in coll.list_indexes())
            out["%s.%s" % (database, name)] = ([doc for _key, doc in docs], indexes)
    return out


def test_dump_drop_restore_selected_and_drop(ansible, nx, s3, moto, tmp_path):
    client = nx.client()
    populate(client)
    before = snapshot(client)
    assert {ns: len(v[0]) for ns, v in before.items()} == {
        "lbshop.orders": 3000, "lbshop.customers": 1500, "lbshop.events": 1000, "lbother.notes": 200}
    repo = str(tmp_path / "repo")
    common = {"job": "mongo", "s3": s3, "dest": repo, "mongo_uri": nx.uri}

    out = ansible.module(DUMP, dict(common, databases=DATABASES))
    assert not out.get("failed"), out.get("msg")
    manifest = out["backup"]["manifest"]
    assert manifest["kind"] == "mongo"
    assert manifest["source"]["format"] == "tar-layout" and manifest["source"]["method"] == "builtin"
    assert manifest["verification"]["document_counts"] == {
        "lbshop.orders": 3000, "lbshop.customers": 1500, "lbshop.events": 1000, "lbother.notes": 200}
    assert manifest["data"] == "data.tar.zst"
    keys = [obj["Key"] for obj in moto.client().list_objects_v2(Bucket=s3["bucket"])["Contents"]]
    assert sorted(key.rsplit("/", 1)[1] for key in keys) == ["data.tar.zst", "manifest.json"]

    for name in DATABASES:
        client.drop_database(name)
    assert snapshot(client) == {}

    # whole set back, read from S3 only
    out = ansible.module(RESTORE, {"job": "mongo", "s3": s3, "mongo_uri": nx.uri})
    assert not out.get("failed"), out.get("msg")
    assert out["format"] == "tar-layout" and out["method"] == "builtin"
    assert snapshot(client) == before

    # without drop, a populated target makes the task fail and nothing changes
    client.lbshop.customers.delete_many({"_id": {"$lt": 100}})
    client.lbshop.customers.insert_one({"_id": 999999, "name": "intruder", "email": "x@example.com", "score": 0.0})
    changed = snapshot(client)
    out = ansible.module(RESTORE, dict(common, collections=["lbshop.customers"]))
    assert out.get("failed") and "already hold documents" in out["msg"] and "drop: true" in out["msg"], out
    assert snapshot(client) == changed

    # drop: true replaces just the selected collection
    out = ansible.module(RESTORE, dict(common, collections=["lbshop.customers"], drop=True))
    assert not out.get("failed"), out.get("msg")
    assert [c["target"] for c in out["collections"]] == ["lbshop.customers"]
    assert out["verification"]["document_counts"] == {"lbshop.customers": 1500}
    assert snapshot(client) == before

    # selected collection into another database (rename)
    out = ansible.module(RESTORE, dict(common, collections=["lbshop.orders"], rename={"lbshop": "lbcopy"}))
    assert not out.get("failed"), out.get("msg")
    copy = snapshot(client, ["lbcopy"])
    assert list(copy) == ["lbcopy.orders"] and copy["lbcopy.orders"] == before["lbshop.orders"]

    # check mode: verifies the set, writes nothing
    client.drop_database("lbcopy")
    out = ansible.module(RESTORE, dict(common, rename={"lbshop": "lbcopy", "lbother": "lbcopy2"}), check=True)
    assert not out.get("failed"), out.get("msg")
    assert len(out["collections"]) == 4 and client.lbcopy.list_collection_names() == []
    client.drop_database("lbcopy")


def test_server_down_fails_and_writes_nothing(ansible, s3, moto, tmp_path):
    from support.ports import free_port
    repo = tmp_path / "repo"
    out = ansible.module(DUMP, {"job": "down", "s3": s3, "dest": str(repo), "method": "builtin",
                                "mongo_uri": "mongodb://127.0.0.1:%d" % free_port(),
                                "server_selection_timeout_ms": 800})
    assert out.get("failed")
    # no_log on mongo_uri makes Ansible mask the (credential-free) URI in the message
    assert "cannot back up MongoDB at" in out["msg"] and "ServerSelectionTimeoutError" in out["msg"]
    assert "Connection refused" in out["msg"]
    assert "Traceback" not in out["msg"]
    assert not repo.exists() or not any(repo.rglob("*"))
    assert moto.client().list_objects_v2(Bucket=s3["bucket"]).get("KeyCount", 0) == 0


def test_credentials_never_leak(ansible, nx, tmp_path):
    """nx-27017 has no authentication: a URI with credentials fails its handshake. That still checks that
    the failure is clean, no set is written and the password appears nowhere in the task output."""
    repo = tmp_path / "repo"
    secret = "S3cr3t-pa55word"
    uri = "mongodb://backup:%s@127.0.0.1:%d/?authSource=admin" % (secret, nx.port)
    out = ansible.module(DUMP, {"job": "auth", "dest": str(repo), "mongo_uri": uri, "method": "builtin",
                                "server_selection_timeout_ms": 2000})
    assert out.get("failed"), out
    assert "cannot back up MongoDB at mongodb://backup@127.0.0.1:%d/?authSource=admin" % nx.port in out["msg"]
    assert secret not in out["msg"] and secret not in out["_output"]
    assert not repo.exists() or not any(repo.rglob("*"))


def test_corrupted_set_is_refused(ansible, nx, tmp_path):
    client = nx.client()
    client.drop_database("lbcorrupt")
    client.lbcorrupt.items.insert_many([{"_id": i, "v": "x" * 50} for i in range(2000)])
    repo = tmp_path / "repo"
    common = {"job": "corrupt", "dest": str(repo), "mongo_uri": nx.uri}
    out = ansible.module(DUMP, dict(common, databases=["lbcorrupt"], compression="none"))
    assert not out.get("failed"), out.get("msg")
    data = repo / "corrupt" / out["backup"]["id"] / "data.tar"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    out = ansible.module(RESTORE, dict(common, rename={"lbcorrupt": "lbcorrupt_r"}))
    assert out.get("failed") and "sha256 mismatch" in out["msg"], out
    assert "lbcorrupt_r" not in client.list_database_names() or client.lbcorrupt_r.list_collection_names() == []
    assert not [name for name in os.listdir(str(tmp_path)) if "lifeboat-mongo-restore" in name]
    client.drop_database("lbcorrupt")
