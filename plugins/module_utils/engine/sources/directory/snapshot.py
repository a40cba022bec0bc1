"""Directory backup side: ``DirectorySource`` walks the tree (excludes, no symlink followed, special files skipped)
and streams it as a tar archive in bounded memory. SQLite databases inside are captured through the SQLite backup
API (their -wal/-shm/-journal are skipped) and written after every other file; files that change, vanish or are
replaced while they are read are noted in the manifest's verification."""

import contextlib
import errno
import fcntl
import fnmatch
import os
import sqlite3
import stat
import tempfile

from ...core.errors import ConfigError, SourceError
from ...core.streams import CHUNK, IterReader, iter_chunks
from ..protocol import Source
from ..sqlite.snapshot import COMPANIONS, HEADER, copy_snapshot, inspect, scratch_prefix, sweep_dead_scratch
from .archive import MAX_DEPTH, NUL, end_of_archive, header_bytes, note_path, padding, tarinfo_for


# ---------------------------------------------------------------------------------------------- excludes

def normalise_excludes(patterns):
    """Validate exclude patterns (glob, fnmatch syntax). Rules:
    - a pattern without '/' matches the name of an entry at any depth (``*.tmp``, ``cache``);
    - a pattern with '/' matches the path relative to the directory (``tmp/*``, ``a/b/c.log``; ``*`` also
      matches '/'); a leading '/' only anchors it (``/cache`` is the top-level cache only);
    - a trailing '/' matches directories only (``cache/``).
    An excluded directory is not descended into."""
    result = []
    for pattern in patterns or []:
        if not isinstance(pattern, str) or not pattern.strip("/").strip():
            raise ConfigError("exclude pattern %r is empty: give glob patterns such as '*.tmp' or 'cache/'"
                              % (pattern,))
        result.append(pattern.strip())
    return result


def is_excluded(relpath, is_dir, patterns):
    name = relpath.rsplit("/", 1)[-1]
    for pattern in patterns:
        dir_only = pattern.endswith("/")
        core = pattern.rstrip("/")
        if dir_only and not is_dir:
            continue
        if core.startswith("/") or "/" in core:
            core = core.lstrip("/")
            if core.startswith("./"):
                core = core[2:]
            if fnmatch.fnmatchcase(relpath, core):
                return True
        elif fnmatch.fnmatchcase(name, core):
            return True
    return False


def is_sqlite(path):
    try:
        with open(path, "rb") as handle:
            return handle.read(len(HEADER)) == HEADER
    except OSError:
        return False


def sqlite_companion(directory, name):
    """True when `name` is the -wal/-shm/-journal of a SQLite database in the same directory."""
    for suffix in COMPANIONS:
        if name.endswith(suffix) and len(name) > len(suffix):
            base = os.path.join(directory, name[:-len(suffix)])
            if os.path.isfile(base) and not os.path.islink(base) and is_sqlite(base):
                return True
    return False


class DirectorySource(Source):
    kind = "directory"
    extension = "tar"

    def __init__(self, path, exclude=None, sqlite=True, tmp_dir=None, verify=True, busy_timeout=30.0):
        self.path = os.path.abspath(os.path.expanduser(path))
        self.exclude = normalise_excludes(exclude)
        self.sqlite = sqlite
        self.tmp_dir = tmp_dir
        self.verify = verify
        self.busy_timeout = busy_timeout
        self._verification = {}

    def check(self):
        if not os.path.lexists(self.path):
            raise SourceError("directory %s does not exist: check path" % self.path)
        if not os.path.isdir(self.path):
            raise SourceError("%s is not a directory: path must name the directory to snapshot" % self.path)
        if not os.access(self.path, os.R_OK | os.X_OK):
            raise SourceError("cannot read directory %s: run as a user who may read it (become: true)" % self.path)
        if self.tmp_dir and not os.path.isdir(self.tmp_dir):
            raise ConfigError("tmp_dir %s does not exist" % self.tmp_dir)

    def describe(self):
        return {"path": self.path, "exclude": list(self.exclude), "sqlite_backup_api": bool(self.sqlite),
                "format": "pax"}

    def tools(self):
        return {"sqlite": sqlite3.sqlite_version, "tar": "python tarfile (pax)"}

    def verification(self):
        return dict(self._verification)

    @contextlib.contextmanager
    def open(self):
        self.check()
        sweep_dead_scratch(self.tmp_dir or tempfile.gettempdir())  # SQLite scratch copies of killed runs
        chunks = self._archive()
        try:
            yield IterReader(chunks)
        finally:
            chunks.close()  # runs the generator's cleanup (scratch copies) even when the pipeline failed

    # The archive is produced as a generator of byte chunks: headers from tarfile.TarInfo.tobuf, file data
    # in CHUNK pieces, so memory stays bounded whatever the file sizes.
    def _archive(self):
        stats = {"files": 0, "directories": 0, "symlinks": 0, "total_bytes": 0, "sqlite": {}, "changed": [],
                 "vanished": [], "skipped": [], "companions_skipped": 0}
        offset = 0
        databases = []
        for relpath, full, st in self._walk(stats):
            if stat.S_ISDIR(st.st_mode):
                data = header_bytes(tarinfo_for(relpath, st))
                stats["directories"] += 1
            elif stat.S_ISLNK(st.st_mode):
                try:
                    target = os.readlink(full)
                except FileNotFoundError:
                    note_path(stats["vanished"], relpath)
                    continue
                data = header_bytes(tarinfo_for(relpath, st, linkname=target))
                stats["symlinks"] += 1
            else:
                if self.sqlite and is_sqlite(full):
                    databases.append((relpath, full))
                    continue
                for piece in self._regular(relpath, full, st, stats):
                    offset += len(piece)
                    yield piece
                continue
            offset += len(data)
            yield data
        for relpath, full in databases:  # last: a ChromaDB queue is then at least as new as its segments
            for piece in self._database(relpath, full, stats):
                offset += len(piece)
                yield piece
        stats["sqlite_files"] = len(stats["sqlite"])
        for key in ("changed", "vanished", "skipped"):
            if not stats[key]:
                del stats[key]
        self._verification = stats
        yield end_of_archive(offset)

    def _walk(self, stats):
        try:
            root = os.lstat(self.path)
        except OSError as exc:
            raise SourceError("cannot read directory %s: %s" % (self.path, exc.strerror))
        yield "", self.path, root
        stack = [("", self.path)]
        while stack:
            relbase, directory = stack.pop()
            try:
                entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
            except FileNotFoundError:
                note_path(stats["vanished"], relbase)
                continue
            except OSError as exc:
                raise SourceError("cannot list %s: %s; run as a user who may read the whole tree (become: true) or "
                                  "exclude it" % (directory, exc.strerror))
            subdirs = []
            for entry in entries:
                relpath = relbase + "/" + entry.name if relbase else entry.name
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    note_path(stats["vanished"], relpath)
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
                if is_excluded(relpath, is_dir, self.exclude):
                    continue
                if relpath.count("/") >= MAX_DEPTH:
                    raise SourceError("%s is nested more than %d levels deep below %s; dir_restore restores at most "
                                      "%d levels: exclude it" % (entry.path, MAX_DEPTH, self.path, MAX_DEPTH))
                if not (is_dir or stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                    note_path(stats["skipped"], relpath)  # sockets, FIFOs, devices
                    continue
                if self.sqlite and stat.S_ISREG(st.st_mode) and sqlite_companion(directory, entry.name):
                    stats["companions_skipped"] += 1
                    continue
                yield relpath, entry.path, st
                if is_dir:
                    subdirs.append((relpath, entry.path))
            stack.extend(reversed(subdirs))

    def _regular(self, relpath, full, st, stats):
        try:  # O_NOFOLLOW: a file swapped for a symlink since the walk is not followed out of the tree
            handle = os.fdopen(os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC), "rb")
        except FileNotFoundError:
            note_path(stats["vanished"], relpath)
            return
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                note_path(stats["changed"], relpath)  # now a symlink: left out of this snapshot
                return
            raise SourceError("cannot read %s: %s; run as a user who may read it (become: true) or exclude it"
                              % (full, exc.strerror))
        with handle:
            st = os.fstat(handle.fileno())
            if not stat.S_ISREG(st.st_mode):
                note_path(stats["changed"], relpath)  # replaced by a FIFO or device since the walk
                return
            size = st.st_size
            yield header_bytes(tarinfo_for(relpath, st))
            remaining = size
            while remaining > 0:
                chunk = handle.read(min(CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
            if remaining:  # the file shrank while it was read: keep the archive well-formed, report it
                note_path(stats["changed"], relpath)
                while remaining > 0:
                    step = min(CHUNK, remaining)
                    remaining -= step
                    yield NUL * step
            elif _rewritten(st, os.fstat(handle.fileno())):
                note_path(stats["changed"], relpath)
            yield padding(size)
        stats["files"] += 1
        stats["total_bytes"] += size

    def _database(self, relpath, full, stats):
        # named and flocked like sqlite_backup's scratch copies, so a later run can tell a killed run's copy
        fd, scratch = tempfile.mkstemp(prefix=scratch_prefix(), suffix=".db", dir=self.tmp_dir)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held until the copy is gone (fd closed last, below)
            try:
                st = os.stat(full)
            except FileNotFoundError:
                note_path(stats["vanished"], relpath)
                return
            copy_snapshot(full, scratch, self.busy_timeout, read_only=True, hint=", or exclude it")
            checked = inspect(scratch, immutable=True) if self.verify else {"integrity_check": "not checked"}
            if self.verify and checked["integrity_check"] != "ok":
                raise SourceError("SQLite database %s fails integrity_check (%s); the snapshot was not written. Repair "
                                  "it, exclude it, or set verify: false" % (full, checked["integrity_check"]))
            stats["sqlite"][relpath] = {"integrity_check": checked["integrity_check"],
                                        "row_counts": checked.get("row_counts")}
            with open(scratch, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                yield header_bytes(tarinfo_for(relpath, st, size=size))
                yield from iter_chunks(handle)
                yield padding(size)
            stats["files"] += 1
            stats["total_bytes"] += size
        finally:
            for suffix in ("",) + COMPANIONS:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(scratch + suffix)
            os.close(fd)


def _rewritten(before, after):
    """True when a file changed while it was read: its size, or (an in-place rewrite of the same size) its mtime or
    ctime in nanoseconds. Writes within one tick of the file system's clock cannot be told apart."""
    def key(st):
        return st.st_size, st.st_mtime_ns, st.st_ctime_ns
    return key(before) != key(after)
