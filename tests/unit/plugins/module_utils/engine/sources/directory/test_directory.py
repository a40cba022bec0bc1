"""Directory engine: exclude matching, tar stream format, member name safety, crafted archives refused."""

import copy
import io
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tarfile

import pytest

from engine.core.streams import CHUNK
from engine.sources.directory.archive import MAX_DEPTH, end_of_archive, padding
from engine.sources.directory.extract import remove_tree, safe_member_name
from engine.sources.directory.kind import restore_from_options, source_from_options
from engine.sources.directory.restore import restore_directory
from engine.sources.directory.snapshot import DirectorySource, is_excluded, normalise_excludes
from engine.pipeline.backup import run_backup
from engine.core.errors import ConfigError, IntegrityError, SourceError
from engine.repositories.repository import Repository
from support.crafted_sets import CraftedSource, crafted_set, member


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
    assert is_excluded(relpath, is_dir, normalise_excludes(patterns)) is excluded


def test_exclude_rejects_empty_patterns():
    with pytest.raises(ConfigError):
        normalise_excludes(["*.tmp", "  "])
    with pytest.raises(ConfigError):
        normalise_excludes(["/"])


@pytest.mark.parametrize("name,expected", [
    (".", ""), ("./", ""), ("a/b", "a/b"), ("./a//b/", "a/b"), ("a/./b", "a/b"),
])
def test_safe_member_names(name, expected):
    assert safe_member_name(name) == expected


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../x", "a/..", "", "a\x00b"])
def test_unsafe_member_names(name):
    with pytest.raises(IntegrityError):
        safe_member_name(name)


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
    source = DirectorySource(root)
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
        DirectorySource(str(tmp_path / "nope")).check()
    assert "does not exist" in failure.value.msg and "nope" in failure.value.msg
    (tmp_path / "file").write_text("x")
    with pytest.raises(SourceError):
        DirectorySource(str(tmp_path / "file")).check()


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
        restore_directory(repository, "crafted", str(live))
    assert message in failure.value.msg
    assert sorted(os.listdir(str(tmp_path))) == ["live", "repo"]  # no staging left, nothing escaped
    assert (live / "keep").read_text() == "live data"
    assert not os.path.exists(str(tmp_path / "escaped")) and not os.path.exists("/tmp/escaped-via-link")
    assert not os.path.exists("/tmp/absolute-lifeboat-test")


def test_restore_roundtrip_check_mode_and_swap(tmp_path):
    root = str(tmp_path / "tree")
    build_tree(root).close()
    repository = Repository.from_options(dest=str(tmp_path / "repo"))
    run_backup(source_from_options({"path": root}), repository, "tree")
    with open(os.path.join(root, "x.txt"), "w") as handle:
        handle.write("changed")
    result = restore_from_options(repository, {"job": "tree", "path": root}, check_mode=True)
    assert result["verification"]["files"] == 3
    assert open(os.path.join(root, "x.txt")).read() == "changed"  # check mode touched nothing
    assert sorted(os.listdir(str(tmp_path))) == ["repo", "tree"]
    result = restore_from_options(repository, {"job": "tree", "path": root})
    assert open(os.path.join(root, "x.txt")).read() == "x"
    assert oct(os.stat(os.path.join(root, "x.txt")).st_mode & 0o777) == oct(0o604)
    assert os.readlink(os.path.join(root, "link")) == "sub/deeper/big.bin"
    assert open(os.path.join(result["previous"], "x.txt")).read() == "changed"
    # a second restore in the same second gets its own aside name
    again = restore_from_options(repository, {"job": "tree", "path": root})
    assert again["previous"] != result["previous"] and os.path.isdir(result["previous"])


def test_end_of_archive_padding():
    assert len(end_of_archive(0)) == tarfile.RECORDSIZE
    assert (512 * 3 + len(end_of_archive(512 * 3))) % tarfile.RECORDSIZE == 0
    assert padding(512) == b"" and len(padding(513)) == 511


# ------------------------------------------------------------------- the trust boundary of dir_restore (issue 16)
# Each set is a real tar in a real set (run_backup writes data + manifest with its sha256), so only the checks of
# the restore itself stand between it and the host. Run as root, chown is real.

OUTSIDE_MODE, OUTSIDE_MTIME = 0o750, 1500000000


def outside_dir(tmp_path):
    """A directory outside the restore target, standing for /etc, with a known mode, owner, mtime and content."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "file").write_text("outside data")
    os.chmod(str(outside), OUTSIDE_MODE)
    os.utime(str(outside), (OUTSIDE_MTIME, OUTSIDE_MTIME))
    return outside


def state_of(path):
    st = os.lstat(str(path))
    listing = sorted(os.listdir(str(path))) if stat.S_ISDIR(st.st_mode) else None
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns, st.st_nlink, listing


def assert_refused(tmp_path, repository, message, job="crafted"):
    live = tmp_path / "live"
    live.mkdir()
    (live / "keep").write_text("live data")
    with pytest.raises(IntegrityError) as failure:
        restore_directory(repository, job, str(live))
    assert message in failure.value.msg
    assert (live / "keep").read_text() == "live data" and os.listdir(str(live)) == ["keep"]
    assert not [n for n in os.listdir(str(tmp_path)) if ".lifeboat-restore-" in n or ".lifeboat-prev-" in n]
    return failure.value.msg


@pytest.mark.parametrize("members,message", [
    # the reported attack: chmod 0777 / chown / utime of the link's target through the symlink
    ([member("l", kind=tarfile.SYMTYPE, linkname="{outside}"),
      member("l", kind=tarfile.DIRTYPE, mode=0o777, uid=4242, mtime=1234)], "also a symlink"),
    ([member("l", kind=tarfile.SYMTYPE, linkname="{outside}"),
      member("./l/", kind=tarfile.DIRTYPE, mode=0o777, uid=4242, mtime=1234)], "also a symlink"),
    ([member("l", kind=tarfile.SYMTYPE, linkname="{outside}"), member("l/x", mode=0o777, uid=4242)],
     "below the symlink"),
    ([member("l", kind=tarfile.SYMTYPE, linkname="{outside}"), member("l/sub", kind=tarfile.DIRTYPE, mode=0o777)],
     "below the symlink"),
    ([member("f", kind=tarfile.SYMTYPE, linkname="{outside}/file"), member("f", payload=b"pwned", mode=0o777)],
     "appears twice"),
    ([member("h", kind=tarfile.LNKTYPE, linkname="{outside}/file"), member("h2", payload=b"x")], "hard link"),
    ([member("h", kind=tarfile.LNKTYPE, linkname="../outside/file")], "hard link"),
    ([member("{outside}/x", payload=b"pwned")], "absolute path"),
    ([member("../outside/x", payload=b"pwned")], "'..'"),
    ([member("a/../../outside", kind=tarfile.DIRTYPE, mode=0o777)], "'..'"),
    ([member("dev", kind=tarfile.CHRTYPE)], "special file"),
    ([member("fifo", kind=tarfile.FIFOTYPE)], "special file"),
])
def test_nothing_outside_the_target_is_touched(tmp_path, members, message):
    outside = outside_dir(tmp_path)
    before, file_before = state_of(outside), state_of(outside / "file")
    aimed = []
    for info, payload in members:
        info = copy.copy(info)
        info.name, info.linkname = info.name.format(outside=outside), info.linkname.format(outside=outside)
        aimed.append((info, payload))
    assert_refused(tmp_path, crafted_set(tmp_path / "repo", aimed), message)
    assert state_of(outside) == before
    assert state_of(outside / "file") == file_before and (outside / "file").read_text() == "outside data"


def test_manifest_cannot_point_the_sqlite_check_outside(tmp_path):
    """The manifest is as untrusted as the archive: its SQLite paths must name regular files of the set, else a
    restore would open any database of the host and disclose its row counts in the error."""
    secret = sqlite3.connect(str(tmp_path / "secret.db"))
    secret.execute("CREATE TABLE accounts (v)")
    secret.executemany("INSERT INTO accounts VALUES (?)", [(i,) for i in range(7)])
    secret.commit()
    secret.close()
    members = [member(".", kind=tarfile.DIRTYPE), member("db", kind=tarfile.SYMTYPE, linkname=str(tmp_path))]
    for name in ("../secret.db", "db/secret.db", str(tmp_path / "secret.db")):
        verification = {"sqlite": {name: {"row_counts": {"accounts": 1}}}}
        repository = crafted_set(tmp_path / "repo", members, verification, job="m")
        msg = assert_refused(tmp_path, repository, "", job="m")
        assert "not a regular file of the set" in msg and "row counts" not in msg and "accounts" not in msg
        shutil.rmtree(str(tmp_path / "live"))
        shutil.rmtree(str(tmp_path / "repo"))


@pytest.mark.parametrize("suffix", ["-wal", "-journal", "-shm"])
def test_companion_of_a_listed_sqlite_file_is_refused(tmp_path, suffix):
    """A snapshot never stores a database's -wal/-journal/-shm: one in the set would be replayed by the application
    over the database the restore checked (integrity_check and row counts see the file opened immutable)."""
    source = tmp_path / "app.db"
    db = sqlite3.connect(str(source))
    db.execute("CREATE TABLE t (v)")
    db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(3)])
    db.commit()
    db.close()
    members = [member(".", kind=tarfile.DIRTYPE), member("app.db", payload=source.read_bytes()),
               member("app.db" + suffix, payload=b"replayed over the checked database")]
    verification = {"sqlite": {"app.db": {"row_counts": {"t": 3}}}}
    repository = crafted_set(tmp_path / "repo", members, verification, job="c")
    msg = assert_refused(tmp_path, repository, "app.db%s beside the SQLite file" % suffix, job="c")
    assert "not touched" in msg


def restore_modes(tmp_path, **options):
    members = [member(".", kind=tarfile.DIRTYPE), member("bin", kind=tarfile.DIRTYPE),
               member("bin/tool", payload=b"\x7fELF", mode=0o4755), member("bin/group-tool", mode=0o2755),
               member("shared", kind=tarfile.DIRTYPE, mode=0o3775), member("odd", kind=tarfile.DIRTYPE, mode=0o4755)]
    repository = Repository.from_options(dest=str(tmp_path / "repo"))
    if not os.path.isdir(str(tmp_path / "repo")):
        run_backup(CraftedSource(members), repository, "modes")
    live = str(tmp_path / "live")
    result = restore_directory(repository, "modes", live, keep_previous=False, **options)
    modes = {name: stat.S_IMODE(os.lstat(os.path.join(live, name)).st_mode)
             for name in ("bin/tool", "bin/group-tool", "shared", "odd")}
    return result, modes


def test_setuid_and_setgid_are_stripped_unless_asked_for(tmp_path):
    result, modes = restore_modes(tmp_path)
    assert modes == {"bin/tool": 0o755, "bin/group-tool": 0o755, "shared": 0o3775, "odd": 0o755}
    assert result["setuid_stripped"] == ["bin/tool", "bin/group-tool", "odd"]
    assert "keep_setuid" in result["warnings"][0] and "3 restored entries" in result["warnings"][0]
    result, modes = restore_modes(tmp_path, keep_setuid=True)
    assert modes == {"bin/tool": 0o4755, "bin/group-tool": 0o2755, "shared": 0o3775, "odd": 0o4755}
    assert os.lstat(str(tmp_path / "live" / "bin" / "tool")).st_uid == 0  # mode after owner: chown kept no bit
    assert "warnings" not in result and "setuid_stripped" not in result


def nested(depth, leaf=True):
    names = ["d" * (index % 3 + 1) for index in range(depth)]
    members = [member(".", kind=tarfile.DIRTYPE, mode=0o755)]
    members += [member("/".join(names[:level]), kind=tarfile.DIRTYPE, mode=0o750) for level in range(1, depth + 1)]
    if leaf:
        members.append(member("/".join(names) + "/leaf", payload=b"deep"))
    return names, members


def test_too_deep_a_set_fails_clearly_and_leaves_no_staging(tmp_path):
    _names, members = nested(1100)
    msg = assert_refused(tmp_path, crafted_set(tmp_path / "repo", members), "levels deep")
    assert "at most %d levels" % MAX_DEPTH in msg and len(msg) < 600


def test_deep_sets_within_the_limit_restore_and_deep_trees_are_removed(tmp_path):
    names, members = nested(500)  # within the limit (512): real trees are far shallower
    repository = crafted_set(tmp_path / "repo", members)
    live = tmp_path / "live"
    live.mkdir()
    deep = str(live)
    for _level in range(1100):  # a live tree deeper than Python's recursion limit, dropped after the swap
        deep += "/x"
        os.mkdir(deep)
    result = restore_directory(repository, "crafted", str(live), keep_previous=False)
    assert result["previous"] is None and result["verification"]["directories"] == 501
    fd = os.open(str(live), os.O_RDONLY)
    try:  # walk down by fd: the path is longer than some tools accept
        for name in names:
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            assert stat.S_IMODE(os.fstat(child).st_mode) == 0o750
            os.close(fd)
            fd = child
        leaf = os.open("leaf", os.O_RDONLY, dir_fd=fd)
        assert os.read(leaf, 10) == b"deep"
        os.close(leaf)
    finally:
        os.close(fd)
    assert sorted(os.listdir(str(tmp_path))) == ["live", "repo"]
    remove_tree(str(live))
    assert not os.path.exists(str(live))


def test_snapshot_refuses_a_tree_too_deep_to_restore(tmp_path):
    root = tmp_path / "tree"
    os.makedirs(str(root) + "/d" * 600)  # 600 > 512 levels
    repository = Repository.from_options(dest=str(tmp_path / "repo"))
    try:
        with pytest.raises(SourceError) as failure:
            run_backup(DirectorySource(str(root)), repository, "deep")
    finally:
        remove_tree(str(root))  # pytest's own clean-up of old tmp dirs recurses
    assert "levels deep" in failure.value.msg and "exclude it" in failure.value.msg
    assert not any(files for _dir, _subdirs, files in os.walk(str(tmp_path / "repo")))


def test_remove_tree_never_follows_symlinks(tmp_path):
    outside = outside_dir(tmp_path)
    before = state_of(outside)
    tree = tmp_path / "tree"
    os.makedirs(str(tree / "a" / "b"))
    os.symlink(str(outside), str(tree / "a" / "link"))
    os.symlink(str(outside / "file"), str(tree / "a" / "b" / "file-link"))
    remove_tree(str(tree))
    assert not os.path.lexists(str(tree)) and state_of(outside) == before


def test_stale_staging_of_dead_runs_is_swept_live_one_kept(tmp_path):
    members = [member(".", kind=tarfile.DIRTYPE), member("new", payload=b"restored")]
    repository = crafted_set(tmp_path / "repo", members)
    outside = outside_dir(tmp_path)
    before = state_of(outside)
    dead = tmp_path / ".live.lifeboat-restore-dead1234"
    os.makedirs(str(dead / "sub"))
    os.symlink(str(outside), str(dead / "sub" / "link"))
    os.chmod(str(dead / "sub"), 0o500)
    os.utime(str(dead), (OUTSIDE_MTIME, OUTSIDE_MTIME))
    alive = tmp_path / ".live.lifeboat-restore-alive123"
    alive.mkdir()
    os.utime(str(alive), (OUTSIDE_MTIME, OUTSIDE_MTIME))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(alive)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = restore_directory(repository, "crafted", str(tmp_path / "live"))
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / "live" / "new").read_text() == "restored" and result["previous"] is None
    assert not os.path.lexists(str(dead)) and os.path.isdir(str(alive))
    assert state_of(outside) == before


HOLD_LOCK = "import fcntl, os, sys, time\n" \
            "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n" \
            "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(300)\n"


def test_same_size_rewrite_during_the_snapshot_is_reported_changed(tmp_path):
    root = tmp_path / "tree"
    root.mkdir()
    big = root / "big.bin"
    big.write_bytes(b"a" * (3 * CHUNK))
    (root / "quiet.txt").write_text("unchanged")
    for path in (big, root / "quiet.txt"):
        os.utime(str(path), (OUTSIDE_MTIME, OUTSIDE_MTIME))  # so the rewrite's mtime differs whatever the clock tick
    source = DirectorySource(str(root))
    source.check()
    with source.open() as reader:
        head = b""
        while len(head) < CHUNK // 2 + 4 * tarfile.BLOCKSIZE:  # into big.bin's data: it is being read
            head += reader.read(4096)
        assert b"big.bin" in head
        with open(str(big), "r+b") as handle:  # rewritten in place, same size, same first MiB
            handle.seek(2 * CHUNK)
            handle.write(b"b" * CHUNK)
        rest = b"".join(iter(lambda: reader.read(100000), b""))
    assert os.path.getsize(str(big)) == 3 * CHUNK
    assert len(head + rest) % tarfile.RECORDSIZE == 0
    assert source.verification()["changed"] == ["big.bin"]


def test_snapshot_sweeps_sqlite_scratch_copies_of_killed_runs(tmp_path):
    """dir_snapshot names and flocks its SQLite scratch copies like sqlite_backup, and removes dead runs' copies."""
    root = str(tmp_path / "tree")
    build_tree(root).close()
    scratch_dir = tmp_path / "scratch"
    scratch_dir.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid whose run is over
    dead = scratch_dir / ("lifeboat-sqlite-%d-1-abc123.db" % gone.pid)
    dead.write_bytes(b"SQLite format 3\0" + b"\0" * 4096)
    unrelated = scratch_dir / "lifeboat-dir-notes.txt"
    unrelated.write_text("not ours")
    source = DirectorySource(root, tmp_dir=str(scratch_dir))
    source.check()
    ours = "lifeboat-sqlite-%d-" % os.getpid()
    seen = []
    with source.open() as reader:
        for _chunk in iter(lambda: reader.read(100000), b""):
            seen.extend(name for name in os.listdir(str(scratch_dir)) if name.startswith(ours))
    assert not dead.exists() and unrelated.read_text() == "not ours"
    assert seen and sorted(os.listdir(str(scratch_dir))) == ["lifeboat-dir-notes.txt"]
