"""streams.pump: bytes go from a file or a tool straight into another tool (kernel splice where it can),
counted on the way, with every tool's exit status still checked."""

import errno
import os
import sys

import pytest

from engine.core import codecs, streams
from engine.pipeline.backup import run_backup
from engine.core.errors import ConfigError, ToolError
from engine.repositories.local import LocalRepository
from engine.core.process import ProcessReader
from engine.repositories.repository import Repository
from engine.core.streams import CountingReader, splice_fd

CAT = [sys.executable, "-c", "import shutil, sys; shutil.copyfileobj(sys.stdin.buffer, sys.stdout.buffer)"]
SIZE = 3 * 1024 * 1024 + 17


def read_all(reader):
    return b"".join(iter(lambda: reader.read(65536), b""))


@pytest.fixture
def spliced(monkeypatch):
    """Records how many bytes went through the kernel splice path."""
    moved = []
    original = streams._splice_all

    def spy(source, in_fd, out_fd, size):
        count = original(source, in_fd, out_fd, size)
        moved.append(count)
        return count
    monkeypatch.setattr(streams, "_splice_all", spy)
    return moved


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(SIZE))
    return path


def test_file_into_tool_is_spliced_and_counted(data_file, spliced):
    with open(str(data_file), "rb") as handle:
        counted = CountingReader(handle)
        with ProcessReader(CAT, "cat", stdin=counted) as tool:
            assert read_all(tool) == data_file.read_bytes()
    assert counted.bytes == SIZE
    if streams.HAS_SPLICE:
        assert sum(c for c in spliced if c) == SIZE


def test_tool_into_tool_is_spliced_and_counted(spliced):
    producer = [sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'ab' * %d)" % (SIZE // 2)]
    with ProcessReader(producer, "producer", buffered=False) as upstream:
        counted = CountingReader(upstream)
        with ProcessReader(CAT, "cat", stdin=counted) as tool:
            assert read_all(tool) == b"ab" * (SIZE // 2)
    assert counted.bytes == SIZE // 2 * 2
    assert upstream.returncode == 0  # the upstream tool was waited for and checked


def test_upstream_failure_after_splicing_part_of_its_output_fails_the_stream():
    producer = [sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'x' * 300000); sys.stdout.flush(); "
                "sys.exit(3)"]
    with ProcessReader(producer, "fake dump", buffered=False) as upstream:
        with ProcessReader(CAT, "cat", stdin=CountingReader(upstream)) as tool:
            with pytest.raises(ToolError, match="fake dump failed .*status 3"):
                read_all(tool)


def test_without_splice_the_same_bytes_are_copied(data_file, monkeypatch, spliced):
    monkeypatch.setattr(streams, "HAS_SPLICE", False)
    with open(str(data_file), "rb") as handle:
        counted = CountingReader(handle)
        with ProcessReader(CAT, "cat", stdin=counted) as tool:
            assert read_all(tool) == data_file.read_bytes()
    assert counted.bytes == SIZE and spliced == []


def test_bytes_already_buffered_in_python_are_never_skipped(data_file):
    with open(str(data_file), "rb") as handle:
        first = handle.read(10)  # Python's buffer now holds bytes the descriptor is past
        assert splice_fd(handle) is None
        counted = CountingReader(handle)
        with ProcessReader(CAT, "cat", stdin=counted) as tool:
            assert first + read_all(tool) == data_file.read_bytes()
    assert counted.bytes == SIZE - 10


def test_a_buffered_tool_offers_its_output_only_before_the_first_read():
    with ProcessReader([sys.executable, "-c", "print('hello')"], "echo") as tool:
        assert splice_fd(tool) is not None
        assert tool.read(2) == b"he"
        assert splice_fd(tool) is None


def test_zstd_uses_one_worker_per_core_unless_told(monkeypatch):
    monkeypatch.setattr(codecs, "zstd_backend", lambda: "zstd cli")
    for threads, flag in ((0, "-T0"), (1, "-T1"), (4, "-T4")):
        with codecs.compress_reader(streams.IterReader([]), "zstd", 3, threads=threads) as tool:
            assert flag in tool.argv
    with pytest.raises(ConfigError, match="compression_threads"):
        codecs.compress_reader(streams.IterReader([]), "zstd", 3, threads=-1)


def test_a_bad_thread_count_fails_before_the_source_is_opened(tmp_path):
    class Untouchable(object):
        kind, extension = "fake", "bin"

        def check(self):
            pass

        def open(self):
            raise AssertionError("the source was opened")
    repo = Repository([LocalRepository(str(tmp_path / "repo"))])
    with pytest.raises(ConfigError, match="compression_threads"):
        run_backup(Untouchable(), repo, "app", threads=-2)


def test_descriptors_that_cannot_be_spliced_are_copied_without_asking_again(data_file, monkeypatch):
    calls = []

    def refuse(in_fd, out_fd, size):
        calls.append(in_fd)
        raise OSError(errno.EINVAL, "Invalid argument")
    monkeypatch.setattr(streams.os, "splice", refuse, raising=False)
    monkeypatch.setattr(streams, "HAS_SPLICE", True)
    with open(str(data_file), "rb") as handle:
        counted = CountingReader(handle)
        with ProcessReader(CAT, "cat", stdin=counted) as tool:
            assert read_all(tool) == data_file.read_bytes()
    assert counted.bytes == SIZE and len(calls) == 1


def test_bytes_spliced_before_the_reader_hangs_up_are_still_counted(data_file):
    """A tool that stops reading early (pg_restore --list reads only the table of contents): what was
    spliced into it counts, so a later drain of the same reader sees the true total (the sha256 and size
    checks of a restore depend on it)."""
    head = [sys.executable, "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read(100000))"]
    with open(str(data_file), "rb") as handle:
        counted = CountingReader(handle)
        with ProcessReader(head, "head", stdin=counted) as tool:
            assert len(read_all(tool)) == 100000
        read_all(counted)
    assert counted.bytes == SIZE


def test_an_unbuffered_tool_fills_each_read_but_holds_nothing_back():
    producer = [sys.executable, "-c", "import sys, time\nfor _ in range(4):\n sys.stdout.buffer.write(b'z' * 1000)\n"
                " sys.stdout.flush()\n time.sleep(0.05)"]
    with ProcessReader(producer, "slow producer", buffered=False) as tool:
        assert tool.read(3000) == b"z" * 3000  # several pipe reads make one full read
        assert tool.splice_fd() is not None  # nothing sits in a Python buffer
        assert tool.read(3000) == b"z" * 1000  # fewer bytes only at the end
        assert tool.read(3000) == b""


def test_tool_into_file_is_spliced_and_counted(tmp_path, spliced):
    """How a restore writes a decompressed set into its staging file."""
    producer = [sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'cd' * %d)" % (SIZE // 2)]
    target = tmp_path / "out.bin"
    with ProcessReader(producer, "producer", buffered=False) as upstream:
        counted = CountingReader(upstream)
        with open(str(target), "wb") as handle:
            handle.write(b"head")  # what Python wrote first stays first
            assert streams.pump(counted, handle) == SIZE // 2 * 2
    assert target.read_bytes() == b"head" + b"cd" * (SIZE // 2)
    assert counted.bytes == SIZE // 2 * 2 and upstream.returncode == 0
    if streams.HAS_SPLICE:
        assert sum(c for c in spliced if c) == SIZE // 2 * 2
