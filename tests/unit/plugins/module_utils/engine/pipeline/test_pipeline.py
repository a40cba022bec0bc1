"""Error paths of the backup/restore pipeline, with fake sources and stores (no network, no ansible)."""

import contextlib
import io
import os
import sys

import pytest

from engine.core import codecs
from engine.pipeline.backup import run_backup
from engine.pipeline.catalog import list_sets, locate
from engine.core.errors import ConfigError, IntegrityError, SinkError, SourceError, ToolError
from engine.repositories.local import LocalRepository
from engine.core.process import ProcessReader
from engine.repositories.repository import Repository
from engine.pipeline.restore import fetch_to_file
from engine.repositories.s3 import S3Repository
from engine.core.streams import IterReader


class FakeSource(object):
    kind = "fake"
    extension = "bin"

    def __init__(self, chunks, fail_after=None, check_error=None):
        self.chunks = chunks
        self.fail_after = fail_after
        self.check_error = check_error

    def check(self):
        if self.check_error:
            raise SourceError(self.check_error)

    def describe(self):
        return {"fake": True}

    def tools(self):
        return {}

    def verification(self):
        return {"chunks": len(self.chunks)}

    @contextlib.contextmanager
    def open(self):
        def produce():  # a generator of chunks that may die midway
            for index, chunk in enumerate(self.chunks):
                if self.fail_after is not None and index >= self.fail_after:
                    raise SourceError("source died after %d chunks" % index)
                yield chunk
        yield IterReader(produce())


def payload(n=8):
    return [os.urandom(1024) + b"x" * 200000 for _index in range(n)]


def set_dirs(root, job="app"):
    path = os.path.join(root, job)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def test_backup_and_restore_roundtrip_local(tmp_path):
    repo = Repository([LocalRepository(str(tmp_path / "repo"))])
    chunks = payload()
    result = run_backup(FakeSource(chunks), repo, "app")
    assert result["manifest"]["raw_size"] == sum(map(len, chunks))
    assert result["size"] < result["manifest"]["raw_size"]
    backup_set = locate(repo, "app")
    out = io.BytesIO()
    fetch_to_file(repo, "app", backup_set, out)
    assert out.getvalue() == b"".join(chunks)


def test_source_failure_midway_leaves_no_set(tmp_path):
    repo = Repository([LocalRepository(str(tmp_path / "repo"))])
    with pytest.raises(SourceError, match="died"):
        run_backup(FakeSource(payload(), fail_after=3), repo, "app")
    assert set_dirs(str(tmp_path / "repo")) == []


def test_invalid_source_writes_nothing(tmp_path):
    repo = Repository([LocalRepository(str(tmp_path / "repo"))])
    with pytest.raises(SourceError, match="not a database"):
        run_backup(FakeSource(payload(), check_error="x is not a database"), repo, "app")
    assert not (tmp_path / "repo").exists()


def test_tool_failing_after_partial_output_leaves_no_set(tmp_path):
    class ToolSource(FakeSource):
        @contextlib.contextmanager
        def open(self):
            script = "import sys; sys.stdout.write('x' * 300000); sys.stdout.flush(); sys.exit(3)"
            with ProcessReader([sys.executable, "-c", script], "fake dump") as reader:
                yield reader
    repo = Repository([LocalRepository(str(tmp_path / "repo"))])
    with pytest.raises(ToolError, match="fake dump failed .*status 3"):
        run_backup(ToolSource([]), repo, "app")
    assert set_dirs(str(tmp_path / "repo")) == []


def test_missing_tool_is_named():
    with pytest.raises(ToolError, match="no-such-tool-xyz is not installed"):
        ProcessReader(["no-such-tool-xyz"], "a test")


class BrokenStore(LocalRepository):
    """A local store whose writes fail (a full disk, a dropped connection)."""
    name = "s3"

    def begin_set(self, job, set_id, data_name):
        writer = super(BrokenStore, self).begin_set(job, set_id, data_name)

        def write(chunk):
            raise SinkError("simulated upload failure after %d bytes" % len(chunk))
        writer.write = write
        return writer


def test_one_sink_failing_keeps_the_other_complete(tmp_path):
    good = LocalRepository(str(tmp_path / "good"))
    bad = BrokenStore(str(tmp_path / "bad"))
    repo = Repository([good, bad])
    with pytest.raises(SinkError) as info:
        run_backup(FakeSource(payload()), repo, "app")
    assert "complete in local but failed in s3" in info.value.msg
    partial = info.value.details["backup"]
    assert set(partial["location"]) == {"local"}
    assert set_dirs(str(tmp_path / "bad")) == []  # the failed sink cleaned up
    sets = list_sets(Repository([good]), "app")
    assert [s.status for s in sets] == ["complete"]
    assert sets[0].set_id == partial["id"]


class PreflightStore(LocalRepository):
    """A store whose preflight (run in a thread beside the source check) raises `error`."""
    name = "sftp"

    def __init__(self, root, error):
        super(PreflightStore, self).__init__(root)
        self.error = error

    def preflight(self):
        raise self.error


def test_an_unreachable_repository_fails_alone_but_bad_configuration_fails_the_run(tmp_path):
    good = LocalRepository(str(tmp_path / "good"))
    unreachable = PreflightStore(str(tmp_path / "u"), SinkError("cannot reach sftp.example: timed out"))
    with pytest.raises(SinkError) as info:
        run_backup(FakeSource(payload()), Repository([good, unreachable]), "app")
    assert "complete in local but failed in sftp: cannot reach sftp.example" in info.value.msg
    misconfigured = PreflightStore(str(tmp_path / "m"), ConfigError("sftp.key_file /k is not a private key"))
    with pytest.raises(ConfigError, match="sftp.key_file /k is not a private key"):
        run_backup(FakeSource(payload()), Repository([LocalRepository(str(tmp_path / "g2")), misconfigured]), "app")
    assert set_dirs(str(tmp_path / "g2")) == []  # nothing was written anywhere


@pytest.mark.parametrize("algorithm", ["zstd", "gzip", "none"])
def test_corrupted_artifact_is_a_sha256_mismatch(tmp_path, algorithm):
    repo = Repository([LocalRepository(str(tmp_path / "repo"))])
    result = run_backup(FakeSource(payload()), repo, "app", compression=algorithm)
    data = os.path.join(result["location"]["local"], result["manifest"]["data"])
    with open(data, "r+b") as handle:
        handle.seek(result["size"] // 2)
        byte = handle.read(1)
        handle.seek(result["size"] // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        fetch_to_file(repo, "app", locate(repo, "app"), io.BytesIO())


def test_truncated_artifact_is_a_sha256_mismatch(tmp_path):
    repo = Repository([LocalRepository(str(tmp_path / "repo"))])
    result = run_backup(FakeSource(payload()), repo, "app")
    data = os.path.join(result["location"]["local"], result["manifest"]["data"])
    os.truncate(data, result["size"] // 3)
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        fetch_to_file(repo, "app", locate(repo, "app"), io.BytesIO())


@pytest.mark.parametrize("algorithm", ["zstd", "gzip"])
def test_codecs_roundtrip_in_bounded_reads(algorithm):
    raw = b"".join(payload(4)) + b"\0" * 5000000
    level = codecs.resolve_level(algorithm, None)
    compressed = io.BytesIO(b"".join(iter(lambda r=codecs.compress_reader(io.BytesIO(raw), algorithm, level): r.read(65536), b"")))
    reader = codecs.decompress_reader(compressed, algorithm)
    pieces = []
    while True:
        piece = reader.read(1 << 20)
        if not piece:
            break
        assert len(piece) <= 1 << 20
        pieces.append(piece)
    assert b"".join(pieces) == raw


def test_zstd_cli_output_is_read_by_the_library():
    raw = b"lifeboat " * 100000
    cli = ProcessReader(["zstd", "-q", "-c", "-3"], "zstd", stdin=io.BytesIO(raw))
    compressed = b"".join(iter(lambda: cli.read(65536), b""))
    assert codecs.decompress_reader(io.BytesIO(compressed), "zstd").read(10 ** 7) == raw


def test_compression_level_out_of_range():
    with pytest.raises(Exception, match="out of range"):
        codecs.resolve_level("gzip", 12)


class FakeS3Client(object):
    """Records calls; optionally fails upload_part number `fail_part`."""

    def __init__(self, fail_part=None):
        self.calls = []
        self.fail_part = fail_part
        self.objects = {}

    def create_multipart_upload(self, **kwargs):
        self.calls.append(("create", kwargs["Key"]))
        return {"UploadId": "u1"}

    def upload_part(self, **kwargs):
        if kwargs["PartNumber"] == self.fail_part:
            raise RuntimeError("connection reset")
        self.calls.append(("part", kwargs["PartNumber"], len(kwargs["Body"])))
        return {"ETag": "e%d" % kwargs["PartNumber"]}

    def complete_multipart_upload(self, **kwargs):
        self.calls.append(("complete", [p["PartNumber"] for p in kwargs["MultipartUpload"]["Parts"]]))
        self.objects[kwargs["Key"]] = True

    def abort_multipart_upload(self, **kwargs):
        self.calls.append(("abort", kwargs["UploadId"]))

    def put_object(self, **kwargs):
        self.calls.append(("put", kwargs["Key"], kwargs.get("StorageClass")))
        self.objects[kwargs["Key"]] = True

    def head_bucket(self, **kwargs):
        return {}

    def delete_object(self, **kwargs):
        self.calls.append(("delete", kwargs["Key"]))


def test_s3_multipart_parts_in_order_then_manifest_last():
    client = FakeS3Client()
    store = S3Repository("b", prefix="prod", multipart_chunk_size=5 * 1024 * 1024, storage_class="STANDARD_IA",
                         client=client)
    chunks = [os.urandom(1024 * 1024) for _index in range(12)]
    run_backup(FakeSource(chunks), Repository([store]), "app", compression="none")
    kinds = [c[0] for c in client.calls]
    assert kinds[0] == "create" and kinds[-2:] == ["complete", "put"]
    assert client.calls[-2][1] == [1, 2, 3]
    assert client.calls[-1][1].endswith("/manifest.json") and client.calls[-1][2] is None  # manifest stays STANDARD
    assert sorted(c[2] for c in client.calls if c[0] == "part") == [2 * 1024 * 1024, 5 * 1024 * 1024, 5 * 1024 * 1024]


def test_s3_part_failure_aborts_upload_and_writes_no_manifest():
    client = FakeS3Client(fail_part=2)
    store = S3Repository("b", multipart_chunk_size=5 * 1024 * 1024, client=client)
    chunks = [os.urandom(1024 * 1024) for _index in range(16)]
    with pytest.raises(SinkError, match="connection reset"):
        run_backup(FakeSource(chunks), Repository([store]), "app", compression="none")
    assert ("abort", "u1") in client.calls
    assert not any(c[0] == "put" for c in client.calls)


def test_s3_rejects_parts_below_5_mib():
    with pytest.raises(Exception, match="at least 5 MiB"):
        S3Repository("b", multipart_chunk_size=1024, client=FakeS3Client())


def test_sqlite_paths_with_uri_characters_back_up_and_restore(tmp_path):
    import sqlite3
    from engine.sources.sqlite.restore import restore_sqlite
    from engine.sources.sqlite.snapshot import SqliteSource
    odd = str(tmp_path / "app 100%25 ?v=1#x.db")
    conn = sqlite3.connect(odd)
    conn.execute("CREATE TABLE t (v)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(50)])
    conn.commit()
    conn.close()
    repo = Repository([LocalRepository(str(tmp_path / "repo"))])
    result = run_backup(SqliteSource(odd), repo, "app")
    assert result["manifest"]["verification"]["row_counts"] == {"t": 50}
    out = restore_sqlite(repo, "app", odd)
    assert out["verification"]["row_counts"] == {"t": 50} and out["previous"]
    assert sqlite3.connect(odd).execute("SELECT count(*) FROM t").fetchone()[0] == 50


class RecordingS3Client(FakeS3Client):
    """Keeps the bytes of every part, so a test can put the object back together."""

    def __init__(self):
        super(RecordingS3Client, self).__init__()
        self.parts = {}

    def upload_part(self, **kwargs):
        self.parts[kwargs["PartNumber"]] = kwargs["Body"]
        return super(RecordingS3Client, self).upload_part(**kwargs)


def test_s3_part_size_rule_doubles_every_step_up_to_5_gib():
    from engine.repositories.s3 import part_size
    mib = 1024 * 1024
    sizes = [part_size(number, 5 * mib, step=3) for number in range(1, 11)]
    assert sizes == [5 * mib] * 3 + [10 * mib] * 3 + [20 * mib] * 3 + [40 * mib]
    assert part_size(10000, 16 * mib) == 5 * 1024 * mib  # never beyond S3's largest part
    assert part_size(1000, 16 * mib) == 16 * mib and part_size(1001, 16 * mib) == 32 * mib
    # With the default step, 10,000 parts hold S3's largest object (5 TiB) from the 16 MiB default start; from the
    # 5 MiB minimum they hold 4.87 TiB (docs/performance.md states both). The old fixed 16 MiB parts held 156 GiB.
    assert sum(part_size(n, 16 * mib) for n in range(1, 10001)) >= 5 * 1024 ** 4
    assert sum(part_size(n, 5 * mib) for n in range(1, 10001)) >= int(4.87 * 1024 ** 4)


def test_s3_parts_grow_and_reassemble_byte_identical():
    """A small growth step shows the rule on a real upload: parts of exactly 5, 5, 10, 10, 20 MiB and the rest,
    from chunks that never line up with a part boundary, put back together to the very bytes that were sent."""
    mib = 1024 * 1024
    client = RecordingS3Client()
    store = S3Repository("b", multipart_chunk_size=5 * mib, client=client, growth_step=2, max_concurrency=2)
    data = os.urandom(53 * mib + 12345)
    chunks = [data[start:start + 3 * mib + 7] for start in range(0, len(data), 3 * mib + 7)]
    run_backup(FakeSource(chunks), Repository([store]), "app", compression="none")
    sizes = [len(client.parts[number]) for number in sorted(client.parts)]
    assert sizes == [5 * mib, 5 * mib, 10 * mib, 10 * mib, 20 * mib, 3 * mib + 12345]
    assert client.calls[-2] == ("complete", [1, 2, 3, 4, 5, 6])
    assert b"".join(client.parts[number] for number in sorted(client.parts)) == data


def test_s3_memory_stays_within_concurrency_plus_one_parts(monkeypatch):
    """A part is joined only once it has an upload slot: then at most max_concurrency - 1 other parts are in
    flight, so the chunks and the joined copy of the part being filled make (max_concurrency + 1) parts at most."""
    import threading
    import time
    from engine.repositories import s3 as s3_repository

    mib = 1024 * 1024

    class SlowClient(RecordingS3Client):
        def __init__(self):
            super(SlowClient, self).__init__()
            self.lock = threading.Lock()
            self.in_flight = 0

        def upload_part(self, **kwargs):
            with self.lock:
                self.in_flight += 1
            time.sleep(0.1)
            try:
                return super(SlowClient, self).upload_part(**kwargs)
            finally:
                with self.lock:
                    self.in_flight -= 1

    client = SlowClient()
    at_join = []
    take = s3_repository.S3SetWriter._take_pending

    def recording_take(writer):
        time.sleep(0.02)  # let the uploads submitted before this join start
        at_join.append(client.in_flight)
        return take(writer)

    monkeypatch.setattr(s3_repository.S3SetWriter, "_take_pending", recording_take)
    store = S3Repository("b", multipart_chunk_size=5 * mib, client=client, max_concurrency=2)
    run_backup(FakeSource([os.urandom(mib)] * 31), Repository([store]), "app", compression="none")
    assert len(client.parts) == 7 and at_join and max(at_join) <= 1, at_join


def test_s3_refuses_part_sizes_outside_s3_limits_and_bad_steps():
    with pytest.raises(Exception, match="at most 5 GiB"):
        S3Repository("b", multipart_chunk_size=6 * 1024 ** 3, client=FakeS3Client())
    with pytest.raises(Exception, match="growth step"):
        S3Repository("b", client=FakeS3Client(), growth_step=0)
