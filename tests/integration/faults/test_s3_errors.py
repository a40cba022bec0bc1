"""S3 answering errors or throttling: retries carry a backup through a bad patch; a permanent failure
fails cleanly (multipart upload aborted, no object, no manifest) and keeps the local copy."""

import os

import pytest

from fault_helpers import MIB, count, digest, make_db
from engine.pipeline.backup import is_partial_failure, run_backup
from engine.pipeline.catalog import list_sets
from engine.core.errors import SinkError
from engine.repositories.repository import Repository
from engine.sources.sqlite.restore import restore_sqlite
from engine.sources.sqlite.snapshot import SqliteSource

JOB = "app"


def objects(moto, bucket):
    return sorted(o["Key"] for o in moto.client().list_objects_v2(Bucket=bucket).get("Contents", []))


def test_throttling_and_server_errors_are_retried(proxy, moto, s3, tmp_path):
    db = make_db(tmp_path / "app.db", rows=3000, blob=4096)  # about 12 MiB: three parts of 5 MiB
    options = dict(s3, endpoint_url=proxy.url, multipart_chunk_size=5 * MIB, max_concurrency=2)
    proxy.add("UploadPart", "fail", times=3, status=503, code="SlowDown")
    proxy.add("CreateMultipartUpload", "fail", times=1, status=500, code="InternalError")
    proxy.add("PutManifest", "fail", times=2, status=503, code="ServiceUnavailable")
    proxy.add("GetObject", "fail", times=1, status=500, code="InternalError")

    backup = run_backup(SqliteSource(db), Repository.from_options(s3=options), JOB, compression="none")

    assert proxy.statuses("UploadPart").count(503) == 3 and proxy.statuses("UploadPart").count(200) == 3
    assert proxy.statuses("CreateMultipartUpload") == [500, 200]
    assert proxy.statuses("PutManifest") == [503, 503, 200]
    assert objects(moto, s3["bucket"]) == ["prod/app/%s/data.db" % backup["id"], "prod/app/%s/manifest.json"
                                           % backup["id"]]
    restored = tmp_path / "restored.db"
    result = restore_sqlite(Repository.from_options(s3=options), JOB, str(restored))
    assert proxy.statuses("GetObject") == [500, 200]
    assert result["verification"]["integrity_check"] == "ok" and count(restored) == 3000


def test_permanent_upload_failure_fails_cleanly_and_keeps_the_local_copy(proxy, moto, s3, tmp_path):
    db = make_db(tmp_path / "app.db", rows=1500, blob=4096)  # about 6 MiB: two parts
    live = digest(db)
    options = dict(s3, endpoint_url=proxy.url, multipart_chunk_size=5 * MIB, max_concurrency=1)
    proxy.add("UploadPart", "fail", status=503, code="SlowDown")  # every time
    repository = Repository.from_options(dest=str(tmp_path / "repo"), s3=options)

    with pytest.raises(SinkError) as info:
        run_backup(SqliteSource(db), repository, JOB, compression="none")
    message = info.value.msg
    assert "SlowDown" in message and "failed in s3" in message and "complete in local" in message, message
    assert is_partial_failure(info.value)
    assert len(proxy.statuses("UploadPart")) >= 5  # retried before giving up

    client = moto.client()
    assert objects(moto, s3["bucket"]) == []
    assert client.list_multipart_uploads(Bucket=s3["bucket"]).get("Uploads", []) == []  # aborted
    assert proxy.statuses("AbortMultipartUpload") == [204]
    sets = list_sets(repository, JOB)
    assert len(sets) == 1 and sets[0].complete_in() == ["local"]
    assert digest(db) == live

    proxy.clear()  # S3 recovers: the next run writes a complete set to both
    backup = run_backup(SqliteSource(db), repository, JOB, compression="none")
    assert sorted(backup["location"]) == ["local", "s3"]
    assert [s.status for s in list_sets(Repository.from_options(s3=options), JOB)] == ["complete"]


def test_unreachable_endpoint_is_reported_without_writing(tmp_path):
    db = make_db(tmp_path / "app.db", rows=10)
    from support.ports import free_port
    options = {"bucket": "nowhere", "endpoint_url": "http://127.0.0.1:%d" % free_port(), "region": "us-east-1",
               "access_key": "testing", "secret_key": "testing"}
    with pytest.raises(SinkError) as info:
        run_backup(SqliteSource(db), Repository.from_options(s3=options), JOB)
    assert "unreachable" in info.value.msg and options["endpoint_url"] in info.value.msg
    assert not os.path.exists(str(tmp_path / "repo"))
