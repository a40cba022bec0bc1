"""MongoDB test restore: the set parsed end to end without a server, documents per collection against the manifest.
nx-27017 stands in for mongod (tests/integration/mongo/conftest.py); there is no mongodump here, so the archive
format is covered with a stream built by hand."""

import io
import struct
import tarfile

import pytest

from engine.sources.mongo import kind as mongo_kind
from engine.core.errors import IntegrityError
from engine.pipeline.verify import verify_set

from conftest import BytesSource, decoded, forged, store

JOB = "shopdb"


@pytest.fixture
def mongo_set(nx, tmp_path):
    client = nx.client()
    database = client["shop_%s" % tmp_path.name[-8:].replace("-", "_")]
    database["orders"].insert_many([{"n": index, "item": "thing %d" % index} for index in range(90)])
    database["users"].insert_many([{"name": "user %d" % index} for index in range(12)])
    client.close()
    source = mongo_kind.source_from_options({"mongo_uri": nx.uri, "databases": [database.name], "method": "builtin"})
    repository, backup = store(tmp_path / "repo", JOB, source)
    return repository, backup, database.name


def test_a_good_set_parses_with_the_recorded_document_counts(mongo_set, tmp_path):
    repository, backup, name = mongo_set
    assert backup["manifest"]["verification"]["document_counts"] == {name + ".orders": 90, name + ".users": 12}
    report = verify_set(repository, JOB, scratch_dir=str(tmp_path))["verification"]
    assert report["status"] == "ok" and report["test_restore"] == "ok" and report["document_counts_match"]
    assert report["document_counts"] == {name + ".orders": 90, name + ".users": 12}


def without(data, collection):
    """The tar layout rebuilt without the members of `collection` (and so with its own right sha256 once stored)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as source, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as target:
        for item in source:
            if "/%s." % collection in item.name:
                continue
            target.addfile(item, source.extractfile(item) if item.isfile() else None)
    return out.getvalue()


def test_a_set_missing_a_collection_fails(mongo_set, tmp_path):
    repository, _backup, name = mongo_set
    data, manifest = decoded(repository, JOB)
    forged_repository = forged(tmp_path / "forged", JOB, manifest, without(data, "users"))[0]
    with pytest.raises(IntegrityError) as info:
        verify_set(forged_repository, JOB, scratch_dir=str(tmp_path))
    assert "%s.users: 12 / absent" % name in info.value.msg
    assert info.value.details["verification"]["document_counts_match"] is False


def test_a_truncated_bson_file_fails(mongo_set, tmp_path):
    repository, _backup, _name = mongo_set
    data, manifest = decoded(repository, JOB)
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as source, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as target:
        for item in source:
            payload = source.extractfile(item).read() if item.isfile() else None
            if item.name.endswith("orders.bson"):
                payload = payload[:-7]
                item.size = len(payload)
            target.addfile(item, io.BytesIO(payload) if payload is not None else None)
    forged_repository = forged(tmp_path / "forged", JOB, manifest, out.getvalue())[0]
    with pytest.raises(IntegrityError) as info:
        verify_set(forged_repository, JOB, scratch_dir=str(tmp_path))
    assert "damaged BSON" in info.value.msg or "truncated BSON" in info.value.msg


# ---- mongodump --archive stream, built by hand

def bson(**fields):
    body = b""
    for name, value in fields.items():
        key = name.encode() + b"\0"
        if isinstance(value, bool):
            body += b"\x08" + key + (b"\x01" if value else b"\x00")
        elif isinstance(value, int):
            body += b"\x12" + key + struct.pack("<q", value)
        else:
            raw = value.encode() + b"\0"
            body += b"\x02" + key + struct.pack("<i", len(raw)) + raw
    return struct.pack("<i", len(body) + 5) + body + b"\0"


END = b"\xff\xff\xff\xff"


def archive(collections):
    stream = struct.pack("<I", 0x8199E26D) + bson(version="0.1", server_version="7.0")
    for name in collections:
        stream += bson(db="shop", collection=name, metadata="{}", size=0, type="collection")
    stream += END
    for name, count in collections.items():
        stream += bson(db="shop", collection=name, EOF=False, CRC=0)
        stream += b"".join(bson(n=index) for index in range(count)) + END
        stream += bson(db="shop", collection=name, EOF=True, CRC=0)
    return stream


def test_archive_format_is_parsed_and_counted(tmp_path):
    from engine.sources.mongo.layout import parse_archive
    assert parse_archive(io.BytesIO(archive({"orders": 5, "users": 2})), "x") == {"shop.orders": 5, "shop.users": 2}
    with pytest.raises(IntegrityError):
        parse_archive(io.BytesIO(archive({"orders": 5})[:-30]), "x")
    source = BytesSource("mongo", "archive", archive({"orders": 5}), {"document_counts": {"shop.orders": 5,
                                                                                          "shop.users": 2}},
                         {"format": "archive"})
    repository, _backup = store(tmp_path / "repo", JOB, source)
    with pytest.raises(IntegrityError) as info:
        verify_set(repository, JOB, scratch_dir=str(tmp_path))
    assert "shop.users: 2 / absent" in info.value.msg


def test_metadata_nested_too_deep_is_damage_not_a_traceback(tmp_path):
    from engine.sources.mongo.layout import parse_tar_layout
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        payload = b"[" * 100000 + b"]" * 100000
        info = tarfile.TarInfo("shop/orders.metadata.json")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(IntegrityError) as info:
        parse_tar_layout(io.BytesIO(out.getvalue()), "set x")
    assert "not valid metadata JSON" in info.value.msg


def test_verify_applies_the_restore_policy_to_names_and_metadata(tmp_path):
    """A set mongo_restore would refuse (a system collection, server-side JavaScript in a validator) fails its
    verification too, instead of passing as 'restorable'; allow_javascript lets the JavaScript one through."""
    from engine.sources.mongo.layout import parse_tar_layout

    def layout(members):
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, payload in members:
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
        return out.getvalue()

    system = layout([("admin/system.users.bson", b"")])
    with pytest.raises(IntegrityError) as info:
        parse_tar_layout(io.BytesIO(system), "set x")
    assert "system.users" in info.value.msg and "never restores" in info.value.msg
    javascript = layout([("shop/orders.metadata.json", b'{"options": {"validator": {"$where": "sleep(1)"}}}'),
                         ("shop/orders.bson", b"")])
    with pytest.raises(IntegrityError) as info:
        parse_tar_layout(io.BytesIO(javascript), "set x")
    assert "allow_javascript" in info.value.msg
    assert parse_tar_layout(io.BytesIO(javascript), "set x", allow_javascript=True) == {"shop.orders": 0}


def test_verify_walks_the_layout_with_the_restore_parser(tmp_path):
    """The test restore and mongo_restore read a tar-layout set with one parser (layout.read_tar_layout), so the
    verify refuses everything the restore refuses: a collection's file twice, documents for a view, a directory
    that is no database name."""
    from engine.sources.mongo.layout import parse_tar_layout

    def layout(members):
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, payload in members:
                info = tarfile.TarInfo(name)
                if payload is None:
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                    continue
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
        return out.getvalue()

    document = struct.pack("<i", 5) + b"\0"
    twice = layout([("shop/orders.bson", document), ("shop/orders.bson", document)])
    with pytest.raises(IntegrityError) as info:
        parse_tar_layout(io.BytesIO(twice), "set x")
    assert "appears twice" in info.value.msg
    view = layout([("shop/v.metadata.json", b'{"type": "view", "options": {"viewOn": "orders", "pipeline": []}}'),
                   ("shop/v.bson", document)])
    with pytest.raises(IntegrityError) as info:
        parse_tar_layout(io.BytesIO(view), "set x")
    assert "calls a view" in info.value.msg
    directory = layout([("shop$x", None), ("shop/orders.bson", document)])
    with pytest.raises(IntegrityError) as info:
        parse_tar_layout(io.BytesIO(directory), "set x")
    assert "not a database directory" in info.value.msg
    assert parse_tar_layout(io.BytesIO(layout([("shop", None), ("shop/orders.bson", document * 3)])),
                            "set x") == {"shop.orders": 3}
