import datetime

import pytest

from engine.core import naming
from engine.core.errors import ConfigError, LifeboatError

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


@pytest.mark.parametrize("job", ["app\n", "/abs", "a/b", "..", ".", "app/../other", None, 5, "\u00e9t\u00e9"])
def test_invalid_jobs_whatever_their_type_or_a_trailing_newline(job):
    with pytest.raises(ConfigError, match="job name"):
        naming.validate_job(job)


@pytest.mark.parametrize("prefix", ["", "prod"])
@pytest.mark.parametrize("job", ["../other", "/abs", "a/b"])
def test_keys_are_never_built_from_an_invalid_job(prefix, job):
    with pytest.raises(ConfigError):
        naming.job_key(prefix, job)
    with pytest.raises(ConfigError):
        naming.set_key(prefix, job, "20261122T031500Z-3f9a")


def test_set_ids_are_matched_whole():
    assert naming.is_set_id("20261122T031500Z-3f9a")
    for text in ("20261122T031500Z-3f9a\n", "../20261122T031500Z-3f9a", None, 20261122):
        assert not naming.is_set_id(text)
    with pytest.raises(ConfigError):
        naming.set_id_time("20261122T031500Z-3f9a\n")


@pytest.mark.parametrize("name,compression,encrypted", [
    ("data.db.zst", "zstd", False), ("data.db.gz", "gzip", False), ("data.db", "none", False),
    ("data.pgbundle.zst.age", "zstd", True), ("data.tar.age", "none", True)])
def test_data_names_of_the_layout(name, compression, encrypted):
    assert naming.data_name_problem(name, compression, encrypted) is None


@pytest.mark.parametrize("name,compression,encrypted,reason", [
    ("../../../etc/shadow", "zstd", False, "layout"), ("/etc/shadow", "none", False, "layout"),
    ("data.db.zst", "gzip", False, "compression gzip"), ("data.db.zst", "zstd", True, "encryption (age)"),
    ("data.db.zst.age", "zstd", False, "encryption (none)"), ("data.db.zst\n", "zstd", False, "layout"),
    (b"data.db.zst", "zstd", False, "file name")])
def test_data_names_outside_the_layout_or_inconsistent(name, compression, encrypted, reason):
    assert reason in naming.data_name_problem(name, compression, encrypted)


@pytest.mark.parametrize("job,set_id,name", [
    ("../x", "20261122T031500Z-3f9a", "manifest.json"), ("app", "..", "manifest.json"),
    ("app", "20261122T031500Z-3f9a", "../../x"), ("app", "20261122T031500Z-3f9a", "/etc/shadow")])
def test_remote_paths_are_built_only_from_layout_components(job, set_id, name):
    with pytest.raises(LifeboatError):
        naming.set_member(job, set_id, name)
