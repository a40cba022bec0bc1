import datetime
import json

import pytest

from engine.core import manifest
from engine.core.errors import IntegrityError

UTC = datetime.timezone.utc


def sample(**overrides):
    document = manifest.build(
        set_id="20261122T031500Z-3f9a", job="app", kind="sqlite", data="data.db.zst", source={"path": "/a.db"},
        started=datetime.datetime(2026, 11, 22, 3, 15, tzinfo=UTC),
        finished=datetime.datetime(2026, 11, 22, 3, 16, tzinfo=UTC), raw_size=100, size=40, sha256="ab" * 32,
        compression={"algorithm": "zstd", "level": 3}, tools={"sqlite": "3.40"},
        verification={"integrity_check": "ok"}, tags={"env": "prod"})
    document.update(overrides)
    return document


def test_build_has_every_contract_field():
    document = sample()
    for key in ("format", "id", "job", "kind", "source", "host", "started", "finished", "raw_size", "size",
                "sha256", "compression", "encryption", "tools", "verification", "tags"):
        assert key in document
    assert document["started"] == "2026-11-22T03:15:00.000000Z"
    assert document["tools"]["lifeboat"] == manifest.ENGINE_VERSION


def test_roundtrip():
    document = sample()
    assert manifest.loads(manifest.dumps(document), "x") == document


def test_corrupted_json_is_an_integrity_error():
    with pytest.raises(IntegrityError, match="corrupted"):
        manifest.loads(b'{"format": 1, "id": ', "s3://b/app/x/manifest.json")


def test_missing_keys_are_named():
    document = sample()
    del document["sha256"]
    with pytest.raises(IntegrityError, match="sha256"):
        manifest.loads(json.dumps(document), "x")


def test_future_format_asks_for_an_upgrade():
    with pytest.raises(IntegrityError, match="upgrade"):
        manifest.loads(json.dumps(sample(format=99)), "x")


# --- every field a reader uses is checked once, when the manifest is read (issue #16 item 5) ----------------

def loads_error(**overrides):
    with pytest.raises(IntegrityError) as info:
        manifest.loads(json.dumps(sample(**overrides)), "/repo/app/20261122T031500Z-3f9a/manifest.json")
    assert "/repo/app/20261122T031500Z-3f9a/manifest.json" in info.value.msg  # names the set's manifest
    assert "restore another set" in info.value.msg
    return info.value.msg


@pytest.mark.parametrize("data", [
    "../../../etc/shadow", "/etc/shadow", "data.db.zst/../../x", "data/../../etc/passwd", "sub/data.db.zst",
    "data..zst", "data.db.zst\n", "manifest.json", ".", "", "data.DB.zst", "data.db.zst.age.zst", None, 7,
    ["data.db.zst"]])
def test_data_outside_the_set_layout_is_refused(data):
    message = loads_error(data=data)
    assert "layout" in message or "must be a file name" in message, message


@pytest.mark.parametrize("overrides,reason", [
    ({"data": "data.db.gz"}, "compression zstd"),  # the manifest's compression decides the suffix
    ({"data": "data.db"}, "compression zstd"),
    ({"data": "data.db.zst.age"}, "encryption (none)"),
    ({"encryption": {"algorithm": "age", "recipients": ["sha256:ab"]}}, "encryption (age)"),
])
def test_data_name_must_agree_with_compression_and_encryption(overrides, reason):
    assert reason in loads_error(**overrides)


def test_encrypted_and_uncompressed_names_are_accepted():
    document = sample(data="data.db.gz.age", compression={"algorithm": "gzip", "level": 6},
                      encryption={"algorithm": "age", "recipients": ["sha256:0123456789abcdef"]})
    assert manifest.loads(manifest.dumps(document), "x") == document
    document = sample(data="data.pgbundle", compression={"algorithm": "none", "level": None})
    assert manifest.loads(manifest.dumps(document), "x") == document


@pytest.mark.parametrize("overrides,field", [
    ({"format": True}, "format"), ({"format": "1"}, "format"),
    ({"id": "../x"}, "id"), ({"id": 5}, "id"),
    ({"job": "../other"}, "job"), ({"job": "a/b"}, "job"), ({"job": "/abs"}, "job"), ({"job": None}, "job"),
    ({"kind": "Sql ite"}, "kind"), ({"kind": ["sqlite"]}, "kind"),
    ({"sha256": "AB" * 32}, "sha256"), ({"sha256": "ab" * 31}, "sha256"), ({"sha256": None}, "sha256"),
    ({"size": -1}, "size"), ({"size": "40"}, "size"), ({"size": True}, "size"), ({"size": 4.0}, "size"),
    ({"raw_size": None}, "raw_size"),
    ({"started": "yesterday"}, "started"), ({"finished": 1764000000}, "finished"),
    ({"finished": "0001-01-01T00:00:00+01:00"}, "finished"),
    ({"compression": "zstd"}, "compression"), ({"compression": {"algorithm": "lz4"}}, "compression"),
    ({"compression": {"algorithm": "zstd", "level": "max"}}, "compression"),
    ({"encryption": {"algorithm": "rot13"}}, "encryption"), ({"encryption": {}}, "encryption"),
    ({"source": None}, "source"), ({"verification": []}, "verification"), ({"tags": "prod"}, "tags"),
])
def test_malformed_fields_are_an_integrity_error_naming_the_field(overrides, field):
    message = loads_error(**overrides)
    assert message.split("(", 1)[1].startswith(field) or (field + " ") in message, message


def test_huge_or_deeply_nested_manifests_are_refused_without_a_crash():
    with pytest.raises(IntegrityError, match="nested too deeply"):
        manifest.loads(b"[" * 100000 + b"]" * 100000, "x")
    with pytest.raises(IntegrityError, match="more than"):
        manifest.loads(b" " * (manifest.MAX_BYTES + 1), "x")


def test_a_manifest_only_counts_in_its_own_set():
    document = sample()
    manifest.check_belongs(document, "app", "20261122T031500Z-3f9a", "x")
    with pytest.raises(IntegrityError, match="describes set 20261122T031500Z-3f9a of job 'app'|describes set"):
        manifest.check_belongs(document, "app", "20261123T000000Z-beef", "/r/app/20261123T000000Z-beef/manifest.json")
    with pytest.raises(IntegrityError, match="lies in set 20261122T031500Z-3f9a of job other"):
        manifest.check_belongs(document, "other", "20261122T031500Z-3f9a", "x")


def test_engine_version_is_the_collection_version():
    """Manifests and `lifeboat --version` name the version galaxy.yml publishes."""
    import os
    import re
    from engine.core.manifest import ENGINE_VERSION
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 6))
    with open(os.path.join(root, "galaxy.yml")) as handle:
        version = re.search(r"^version:\s*([0-9.]+)", handle.read(), re.M).group(1)
    assert ENGINE_VERSION == version


def test_a_set_dated_past_the_tolerance_is_damaged_and_one_within_it_is_not():
    document = sample()  # finished 2026-11-22T03:16Z
    finished = datetime.datetime(2026, 11, 22, 3, 16, tzinfo=UTC)
    manifest.check_not_future(document, "x", now=finished)  # written now
    manifest.check_not_future(document, "x", now=finished - manifest.FUTURE_TOLERANCE)  # a writer clock ahead
    with pytest.raises(IntegrityError, match=r"dated in the future \(finished 2026-11-22T03:16:00.000000Z, "
                                             r"1\.0 hours ahead of this host's clock 2026-11-22T02:15:59"):
        manifest.check_not_future(document, "x", now=finished - manifest.FUTURE_TOLERANCE - datetime.timedelta(
            seconds=1))
    with pytest.raises(IntegrityError, match="days ahead"):
        manifest.check_not_future(sample(finished="2099-01-01T00:00:00Z"), "x", now=finished)
