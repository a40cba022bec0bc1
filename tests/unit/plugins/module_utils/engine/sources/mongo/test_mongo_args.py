"""MongoDB pieces that need no server: mongodump/mongorestore argument lists, URI redaction,
selection, log parsing, the tar stream of the directory layout and BSON framing checks."""

import io
import stat
import tarfile

import pytest

from engine.core.errors import ConfigError, IntegrityError
from engine.sources.mongo.format import (Selection, mongodump_args, mongorestore_args, parse_dump_counts,
                                         parse_restore_counts, parse_tools_version, redact_uri, scrub, with_uri_option,
                                         write_tool_config)
from engine.sources.mongo.layout import TarStream, iter_bson, member_path, parse_member

CFG = "/tmp/lb.yaml"


def dump(**selection):
    oplog = selection.pop("oplog", False)
    return mongodump_args(CFG, Selection(**selection), oplog)


def test_mongodump_whole_instance():
    assert dump() == ["mongodump", "--config=/tmp/lb.yaml", "--archive"]
    assert dump(oplog=True) == ["mongodump", "--config=/tmp/lb.yaml", "--archive", "--oplog"]


def test_mongodump_one_database_with_excludes():
    assert dump(databases=["shop"], exclude_collections=["shop.logs", "shop.tmp_*"]) == [
        "mongodump", "--config=/tmp/lb.yaml", "--archive", "--db=shop", "--excludeCollection=logs",
        "--excludeCollectionsWithPrefix=tmp_"]


def test_mongodump_one_collection():
    expected = ["mongodump", "--config=/tmp/lb.yaml", "--archive", "--db=shop", "--collection=orders"]
    assert dump(collections=["shop.orders"]) == expected
    assert dump(databases=["shop"], collections=["shop.orders"]) == expected


@pytest.mark.parametrize("selection", [
    dict(databases=["a", "b"]), dict(databases=["a*"]), dict(exclude_databases=["x"]),
    dict(collections=["a.x", "a.y"]), dict(collections=["a.*"]), dict(exclude_collections=["a.x"]),
    dict(databases=["a"], oplog=True), dict(databases=["a"], exclude_collections=["a.x?y"]),
])
def test_mongodump_inexpressible_selection(selection):
    with pytest.raises(ConfigError):
        dump(**selection)


def test_mongorestore_args():
    assert mongorestore_args(CFG, "/stage/set.archive") == [
        "mongorestore", "--config=/tmp/lb.yaml", "--archive=/stage/set.archive", "--stopOnError",
        "--nsExclude=*.system.*"]
    assert mongorestore_args(CFG, "/s.archive", include=["shop.orders", "crm.*"], rename={"shop": "shop2", "crm": "c2"},
                             drop=True) == [
        "mongorestore", "--config=/tmp/lb.yaml", "--archive=/s.archive", "--stopOnError", "--nsInclude=shop.orders",
        "--nsInclude=crm.*", "--nsExclude=*.system.*", "--nsFrom=crm.*", "--nsTo=c2.*", "--nsFrom=shop.*",
        "--nsTo=shop2.*", "--drop"]
    assert mongorestore_args(CFG, "/s.archive", oplog_replay=True)[-1] == "--oplogReplay"


def test_redact_uri():
    assert redact_uri("mongodb://u:p%40ss@h1:27017,h2/db?authSource=admin") == "mongodb://u@h1:27017,h2/db?authSource=admin"
    assert redact_uri("mongodb+srv://u:p@x.example.net/?tlsCertificateKeyFilePassword=z&w=1") == \
        "mongodb+srv://u@x.example.net/?tlsCertificateKeyFilePassword=REDACTED&w=1"
    assert redact_uri("mongodb://h") == "mongodb://h"
    with pytest.raises(ConfigError):
        redact_uri("http://h")
    text = scrub("auth failed for mongodb://u:pw@h/ with pw", "mongodb://u:pw@h/")
    assert "pw" not in text.replace("mongodb://u@h/", "")


def test_with_uri_option():
    assert with_uri_option("mongodb://h:1", "serverSelectionTimeoutMS", 5) == "mongodb://h:1/?serverSelectionTimeoutMS=5"
    assert with_uri_option("mongodb://u:p@h/db?a=1", "x", 2) == "mongodb://u:p@h/db?a=1&x=2"
    assert with_uri_option("mongodb://h/?serverselectiontimeoutms=9", "serverSelectionTimeoutMS", 5) == \
        "mongodb://h/?serverselectiontimeoutms=9"


def test_tool_config_file(tmp_path):
    path = write_tool_config('mongodb://u:p"q@h/', str(tmp_path))
    assert stat.S_IMODE(__import__("os").stat(path).st_mode) == 0o600
    assert open(path).read() == 'uri: "mongodb://u:p\\"q@h/"\n'


def test_selection():
    default = Selection()
    assert not default.database_wanted("admin") and default.database_wanted("shop")
    assert not default.collection_wanted("shop", "system.views")
    chosen = Selection(databases=["admin"], collections=["admin.things", "shop.*"], exclude_collections=["shop.tmp"])
    assert chosen.database_wanted("admin") and not chosen.database_wanted("shop")
    by_collection = Selection(collections=["shop.*"], exclude_collections=["shop.tmp"])
    assert by_collection.database_wanted("shop") and not by_collection.database_wanted("crm")
    assert by_collection.collection_wanted("shop", "a") and not by_collection.collection_wanted("shop", "tmp")
    with pytest.raises(ConfigError):
        Selection(collections=["orders"])


def test_log_parsing():
    assert parse_tools_version("mongodump version: 100.9.4\ngit version: abc") == (100, 9, 4)
    assert parse_tools_version("mongodump version: r4.0.28") == (4, 0, 28)
    log = "2026\twriting shop.a\n2026\tdone dumping shop.a (3 documents)\n2026\tdone dumping shop.b (1 document)\n"
    assert parse_dump_counts(log) == {"shop.a": 3, "shop.b": 1}
    log = "x\tfinished restoring shop.a (3 documents, 0 failures)\nx\tfinished restoring s.b (1 document, 1 failure)"
    assert parse_restore_counts(log) == {"shop.a": (3, 0), "s.b": (1, 1)}


def _bson(n):
    import bson
    return [bson.encode({"_id": i, "v": "x" * i}) for i in range(n)]


def test_tar_stream_is_a_tar_with_the_mongodump_layout():
    tar = TarStream()
    docs = _bson(50)
    body = b"".join(docs)
    chunks = list(tar.directory("shop"))
    chunks += list(tar.bytes_member(member_path("shop", "a/b%c", ".metadata.json"), b'{"indexes": []}'))
    chunks += list(tar.member(member_path("shop", "a/b%c", ".bson"), len(body), [body[:100], body[100:]]))
    chunks += list(tar.end())
    data = b"".join(chunks)
    assert len(data) % 10240 == 0 and tar.written == len(data)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        names = archive.getnames()
        assert names == ["shop", "shop/a%2Fb%25c.metadata.json", "shop/a%2Fb%25c.bson"]
        assert parse_member(names[2]) == ("shop", "a/b%c", "bson")
        assert list(iter_bson(archive.extractfile(names[2]), "t")) == docs


def test_tar_member_size_must_match():
    with pytest.raises(IntegrityError):
        list(TarStream().member("x.bson", 10, [b"123"]))


@pytest.mark.parametrize("damage", [lambda b: b[:-3], lambda b: b[:-1] + b"\x01",
                                    lambda b: (10 ** 9).to_bytes(4, "little") + b[4:]])
def test_iter_bson_rejects_damage(damage):
    raw = b"".join(_bson(3))
    with pytest.raises(IntegrityError):
        list(iter_bson(io.BytesIO(damage(raw)), "set x"))
