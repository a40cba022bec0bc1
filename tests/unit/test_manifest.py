import datetime
import json

import pytest

from engine import manifest
from engine.errors import IntegrityError

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
