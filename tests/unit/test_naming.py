import datetime

import pytest

from engine import naming
from engine.errors import ConfigError

UTC = datetime.timezone.utc


def test_set_id_is_utc_start_time_plus_hex():
    started = datetime.datetime(2026, 11, 22, 4, 15, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    set_id = naming.new_set_id(started)
    assert set_id.startswith("20261122T031500Z-")
    assert naming.is_set_id(set_id)
    assert naming.set_id_time(set_id) == datetime.datetime(2026, 11, 22, 3, 15, tzinfo=UTC)


@pytest.mark.parametrize("text", ["20261122T031500Z-3f9a", "20261122T031500Z-3f9a0c1d"])
def test_valid_set_ids(text):
    assert naming.is_set_id(text)


@pytest.mark.parametrize("text", [
    "20261122T031500Z-3f9", "20261122T031500Z-3F9A", "20261122-3f9a", "latest",
    "20261122T031500Z-3f9a0c1d2", "../20261122T031500Z-3f9a"])
def test_invalid_set_ids(text):
    assert not naming.is_set_id(text)


def test_set_id_time_rejects_garbage_with_a_hint():
    with pytest.raises(ConfigError, match="latest"):
        naming.set_id_time("yesterday")


@pytest.mark.parametrize("prefix,expected", [("", ""), ("/", ""), ("prod", "prod"), ("/prod/db/", "prod/db"),
                                             ("prod//db", "prod/db")])
def test_prefix_normalised(prefix, expected):
    assert naming.normalise_prefix(prefix) == expected


def test_prefix_rejects_dot_segments():
    with pytest.raises(ConfigError):
        naming.normalise_prefix("prod/../other")


def test_keys_follow_the_layout():
    assert naming.job_key("", "app") == "app/"
    assert naming.job_key("/prod/", "app") == "prod/app/"
    assert naming.set_key("prod", "app", "20261122T031500Z-3f9a") == "prod/app/20261122T031500Z-3f9a/"


@pytest.mark.parametrize("compression,encrypted,name", [
    ("zstd", False, "data.db.zst"), ("gzip", False, "data.db.gz"), ("none", False, "data.db"),
    ("zstd", True, "data.db.zst.age")])
def test_data_names(compression, encrypted, name):
    assert naming.data_name("db", compression, encrypted) == name


@pytest.mark.parametrize("job", ["app", "app-db", "app_db.v2", "A1"])
def test_valid_jobs(job):
    assert naming.validate_job(job) == job


@pytest.mark.parametrize("job", ["", "-app", "app/db", "app db", "../x", "a" * 129])
def test_invalid_jobs(job):
    with pytest.raises(ConfigError):
        naming.validate_job(job)


@pytest.mark.parametrize("text,expected", [
    ("2026-11-22T02:00:00Z", datetime.datetime(2026, 11, 22, 2, tzinfo=UTC)),
    ("2026-11-22T03:00:00+01:00", datetime.datetime(2026, 11, 22, 2, tzinfo=UTC)),
    ("2026-11-22 02:00", datetime.datetime(2026, 11, 22, 2, tzinfo=UTC)),
    ("2026-11-22", datetime.datetime(2026, 11, 22, tzinfo=UTC)),
])
def test_parse_time(text, expected):
    assert naming.parse_time(text) == expected


def test_parse_time_rejects_garbage():
    with pytest.raises(ConfigError, match="ISO 8601"):
        naming.parse_time("last tuesday")


def test_format_time_roundtrip():
    moment = datetime.datetime(2026, 11, 22, 2, 0, 0, 123456, tzinfo=UTC)
    assert naming.format_time(moment) == "2026-11-22T02:00:00.123456Z"
    assert naming.parse_time(naming.format_time(moment)) == moment
