"""Directory engine: exclude matching, tar stream format, member name safety, crafted archives refused."""

import contextlib
import io
import os
import sqlite3
import tarfile

import pytest

from engine import directory
from engine.backup import run_backup
from engine.errors import ConfigError, IntegrityError, SourceError
from engine.repository import Repository


@pytest.mark.parametrize("relpath,is_dir,patterns,excluded", [
    ("a/b/upload.tmp", False, ["*.tmp"], True),
    ("upload.tmp", False, ["*.tmp"], True),
    ("a/cache", True, ["cache/"], True),
    ("a/cache", False, ["cache/"], False),  # trailing slash: directories only
    ("cache", True, ["/cache"], True),
    ("a/cache", True, ["/cache"], False),  # leading slash anchors at the top
    ("tmp/x/y", False, ["tmp/*"], True),
    ("other/tmp/x", False, ["tmp/*"], False),
    ("Photo.JPG", False, ["*.jpg"], False),  # case-sensitive
    ("keep.txt", False, ["*.tmp", "cache/"], False),
    ("a/b/c.log", False, ["a/*/c.log"], True),
])
def test_exclude_matching(relpath, is_dir, patterns, excluded):
    assert directory.is_excluded(relpath, is_dir, directory.normalise_excludes(patterns)) is excluded


def test_exclude_rejects_empty_patterns():
    with pytest.raises(ConfigError):
        directory.normalise_excludes(["*.tmp", "  "])
    with pytest.raises(ConfigError):
        directory.normalise_excludes(["/"])


@pytest.mark.parametrize("name,expected", [
    (".", ""), ("./", ""), ("a/b", "a/b"), ("./a//b/", "a/b"), ("a/./b", "a/b"),
])
def test_safe_member_names(name, expected):
    assert directory.safe_member_name(name) == expected


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../x", "a/..", "", "a\x00b"])
def test_unsafe_member_names(name):
    with pytest.raises(IntegrityError):
        directory.safe_member_name(name)


def build_tree(root):
    os.makedirs(os.path.join(root, "sub", "deeper"))
    with open(os.path.join(root, "sub", "deeper", "big.bin"), "wb") as handle:
        handle.write(os.urandom(2 * 1024 * 1024 + 5))
    with open(os.path.join(root, "x.txt"), "w") as handle:
        handle.write("x")
    os.chmod(os.path.join(root, "x.txt"), 0o604)
    os.symlink("sub/deeper/big.bin", os.path.join(root, "link"))
    conn = sqlite3.connect(os.path.join(root, "sub", "data.db"))
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("CREATE TABLE t (v)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)])
    conn.commit()
    return conn  # kept open: -wal and -shm exist


def test_stream_is_a_valid_tar_with_sqlite_last(tmp_path):
    root = str(tmp_path / "tree")
    conn = build_tree(root)
    assert os.path.exists(os.path.join(root, "sub", "data.db-wal"))
    source = directory.DirectorySource(root)
    source.check()
    with source.open() as reader:
        data = b"".join(iter(lambda: reader.read(100000), b""))
    conn.close()
    assert len(data) % tarfile.RECORDSIZE == 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tar:
        members = [(m.name, m.type) for m in tar]
    names = [name for name, _type in members]
    assert names[0] == "."
    assert names[-1] == "sub/data.db"  # SQLite databases come last
    assert "sub/data.db-wal" not in names and "sub/data.db-shm" not in names
    assert ("link", tarfile.SYMTYPE) in members
    verification = source.verification()
    assert verification["files"] == 3 and verification["symlinks"] == 1 and verification["directories"] == 3
    assert verification["sqlite"]["sub/data.db"]["row_counts"] == {"t": 100}
    assert verification["companions_skipped"] == 2


def test_missing_or_wrong_source(tmp_path):
    with pytest.raises(SourceError) as failure:
        directory.DirectorySource(str(tmp_path / "nope")).check()
    assert "does not exist" in failure.value.msg and "nope" in failure.value.msg
    (tmp_path / "file").write_text("x")
    with pytest.raises(SourceError):
        directory.DirectorySource(str(tmp_path / "file")).check()


class CraftedSource(object):
    """A 'directory' set holding an arbitrary tar: what a tampered repository could serve."""
    kind = "directory"
    extension = "tar"

    def __init__(self, members):
        self.members = members

    def check(self):
        pass

    def describe(self):
        return {"path": "crafted"}

    def tools(self):
        return {}

    def verification(self):
        return {}

    @contextlib.contextmanager
    def open(self):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for info, payload in self.members:
                tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
        buffer.seek(0)
        yield buffer


def member(name, payload=b"evil", kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o644
    if kind == tarfile.REGTYPE:
        info.size = len(payload)
        return info, payload
    return info, None


@pytest.mark.parametrize("members,message", [
    ([member("../escaped")], "path traversal"),
    ([member("/tmp/absolute-lifeboat-test")], "absolute path"),
    ([member("link", kind=tarfile.SYMTYPE, linkname="/tmp"), member("link/escaped-via-link")], "below the symlink"),
    ([member("fifo", kind=tarfile.FIFOTYPE)], "special file"),
    ([member("dup"), member("dup")], "appears twice"),
])
def test_crafted_archives_are_refused(tmp_path, members, message):
    repository = Repository.from_options(dest=str(tmp_path / "repo"))
    run_backup(CraftedSource(members), repository, "crafted")
    live = tmp_path / "live"
    live.mkdir()
    (live / "keep").write_text("live data")
    with pytest.raises(IntegrityError) as failure:
        directory.restore_directory(repository, "crafted", str(live))
    assert message in failure.value.msg
    assert sorted(os.listdir(str(tmp_path))) == ["live", "repo"]  # no staging left, nothing escaped
    assert (live / "keep").read_text() == "live data"
    assert not os.path.exists(str(tmp_path / "escaped")) and not os.path.exists("/tmp/escaped-via-link")
    assert not os.path.exists("/tmp/absolute-lifeboat-test")


def test_restore_roundtrip_check_mode_and_swap(tmp_path):
    root = str(tmp_path / "tree")
    build_tree(root).close()
    repository = Repository.from_options(dest=str(tmp_path / "repo"))
    run_backup(directory.source_from_options({"path": root}), repository, "tree")
    with open(os.path.join(root, "x.txt"), "w") as handle:
        handle.write("changed")
    result = directory.restore_from_options(repository, {"job": "tree", "path": root}, check_mode=True)
    assert result["verification"]["files"] == 3
    assert open(os.path.join(root, "x.txt")).read() == "changed"  # check mode touched nothing
    assert sorted(os.listdir(str(tmp_path))) == ["repo", "tree"]
    result = directory.restore_from_options(repository, {"job": "tree", "path": root})
    assert open(os.path.join(root, "x.txt")).read() == "x"
    assert oct(os.stat(os.path.join(root, "x.txt")).st_mode & 0o777) == oct(0o604)
    assert os.readlink(os.path.join(root, "link")) == "sub/deeper/big.bin"
    assert open(os.path.join(result["previous"], "x.txt")).read() == "changed"
    # a second restore in the same second gets its own aside name
    again = directory.restore_from_options(repository, {"job": "tree", "path": root})
    assert again["previous"] != result["previous"] and os.path.isdir(result["previous"])


def test_end_of_archive_padding():
    assert len(directory.end_of_archive(0)) == tarfile.RECORDSIZE
    assert (512 * 3 + len(directory.end_of_archive(512 * 3))) % tarfile.RECORDSIZE == 0
    assert directory.padding(512) == b"" and len(directory.padding(513)) == 511
