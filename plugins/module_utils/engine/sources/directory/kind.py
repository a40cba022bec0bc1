"""Directories (uploads, ChromaDB stores): a streamed POSIX tar (pax) of a tree with modes, owners, mtimes
and symlinks; SQLite databases inside are captured through the SQLite backup API (their -wal/-shm/-journal
are skipped) and written after every other file. Restore extracts into a new sibling directory, verifies
it against the manifest, then swaps it into place keeping the previous tree aside."""

import contextlib
import errno
import fcntl
import fnmatch
import grp
import os
import pwd
import sqlite3
import stat
import tarfile
import tempfile
import time

from ...core.errors import ConfigError, IntegrityError, LifeboatError, RestoreError, SourceError
from ...core.files import aside_name, fsync_dir, sweep_unheld
from ...pipeline.restore import find_set, open_set, set_result
from ..sqlite.kind import COMPANIONS, HEADER, copy_snapshot, inspect, scratch_prefix, sweep_dead_scratch
from ...core.streams import CHUNK, IterReader, iter_chunks

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
NUL = b"\0"
LIST_LIMIT = 50  # names kept in the manifest for changed/vanished/skipped entries
TAR_FORMAT = tarfile.PAX_FORMAT
ENCODING = "utf-8"
ERRORS = "surrogateescape"


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


# ------------------------------------------------------------------------------------------ tar members

_users = {}
_groups = {}


def _user(uid):
    if uid not in _users:
        try:
            _users[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            _users[uid] = ""
    return _users[uid]


def _group(gid):
    if gid not in _groups:
        try:
            _groups[gid] = grp.getgrgid(gid).gr_name
        except KeyError:
            _groups[gid] = ""
    return _groups[gid]


def tarinfo_for(relpath, st, linkname=None, size=None):
    info = tarfile.TarInfo(relpath or ".")
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid = st.st_uid
    info.gid = st.st_gid
    info.uname = _user(st.st_uid)
    info.gname = _group(st.st_gid)
    info.mtime = int(st.st_mtime)
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = linkname
    else:
        info.type = tarfile.REGTYPE
        info.size = st.st_size if size is None else size
    return info


def header_bytes(info):
    return info.tobuf(TAR_FORMAT, ENCODING, ERRORS)


def padding(size):
    return NUL * ((BLOCK - size % BLOCK) % BLOCK)


def end_of_archive(offset):
    """Two zero blocks, then zeros up to a whole record, as tarfile's stream mode writes."""
    tail = NUL * (2 * BLOCK)
    remainder = (offset + len(tail)) % RECORD
    return tail + (NUL * (RECORD - remainder) if remainder else b"")


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


class DirectorySource(object):
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
                    _note(stats["vanished"], relpath)
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
                _note(stats["vanished"], relbase)
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
                    _note(stats["vanished"], relpath)
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
                if is_excluded(relpath, is_dir, self.exclude):
                    continue
                if relpath.count("/") >= MAX_DEPTH:
                    raise SourceError("%s is nested more than %d levels deep below %s; dir_restore restores at most "
                                      "%d levels: exclude it" % (entry.path, MAX_DEPTH, self.path, MAX_DEPTH))
                if not (is_dir or stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                    _note(stats["skipped"], relpath)  # sockets, FIFOs, devices
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
            _note(stats["vanished"], relpath)
            return
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                _note(stats["changed"], relpath)  # now a symlink: left out of this snapshot
                return
            raise SourceError("cannot read %s: %s; run as a user who may read it (become: true) or exclude it"
                              % (full, exc.strerror))
        with handle:
            st = os.fstat(handle.fileno())
            if not stat.S_ISREG(st.st_mode):
                _note(stats["changed"], relpath)  # replaced by a FIFO or device since the walk
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
                _note(stats["changed"], relpath)
                while remaining > 0:
                    step = min(CHUNK, remaining)
                    remaining -= step
                    yield NUL * step
            elif _rewritten(st, os.fstat(handle.fileno())):
                _note(stats["changed"], relpath)
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
                _note(stats["vanished"], relpath)
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


def _note(items, relpath):
    if len(items) < LIST_LIMIT:
        items.append(relpath or ".")


# ----------------------------------------------------------------------------------- safe tree operations
# A set is untrusted input. Below its staging directory a restore touches nothing by path: every directory is
# opened relative to its parent's fd with O_NOFOLLOW, every file is created with O_EXCL|O_NOFOLLOW and every
# owner/mode/mtime fix-up goes through the fd just opened (or lchown/lutimes for symlinks), so no symlink, from
# the set or planted by anyone, is ever followed. Nothing recurses, so depth costs no stack.

MAX_DEPTH = 512  # levels below the directory; deeper members are refused and dir_snapshot refuses deeper trees
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
STAGING_MARK = ".lifeboat-restore-"
CHECK_MODE_PREFIX = "lifeboat-dir-restore-"


def open_dir(name, dir_fd=None):
    """fd of the directory `name` (relative to dir_fd); OSError ELOOP/ENOTDIR when it is a symlink or no directory."""
    return os.open(name, DIR_FLAGS, dir_fd=dir_fd)


def _identity(fd):
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _clear_entries(fd):
    """Unlink every non-directory in the directory `fd`; return the names of its subdirectories."""
    subdirs = []
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.name)
            else:
                os.unlink(entry.name, dir_fd=fd)
    return subdirs


def remove_tree(path):
    """Remove `path` and everything below it without following symlinks and without recursion. One directory fd
    is open at a time: the way back up goes through '..' and must arrive at the inode recorded on the way down, so
    a directory moved meanwhile stops the removal instead of taking it outside `path`. A missing path is fine."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            os.unlink(path)
            return
        fd = open_dir(path)
    except FileNotFoundError:
        return
    try:
        chain = [_identity(fd)]  # the directories from `path` down to the current one
        names = []  # the name of each of them in its parent
        pending = [_clear_entries(fd)]  # per level: subdirectories still to remove
        while True:
            if pending[-1]:
                name = pending[-1].pop()
                try:
                    child = open_dir(name, dir_fd=fd)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    os.unlink(name, dir_fd=fd)  # replaced by a symlink or file since it was listed
                    continue
                os.close(fd)
                fd = child
                chain.append(_identity(fd))
                names.append(name)
                pending.append(_clear_entries(fd))
                continue
            pending.pop()
            chain.pop()
            if not pending:
                break
            parent = os.open("..", DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            if _identity(fd) != chain[-1]:
                raise OSError(errno.ESTALE, "a directory was moved during the removal; remove the rest by hand", path)
            os.rmdir(names.pop(), dir_fd=fd)
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(path)


def lock_staging(path):
    """fd of the staging directory `path`, holding an exclusive flock for the whole restore: the mark that tells
    sweep_stale_staging of later runs this directory is in use. The caller closes it."""
    fd = open_dir(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def sweep_stale_staging(directory, prefix, older_than):
    """Remove the staging directories named `prefix`* in `directory` that a killed restore left; a running
    restore holds an flock on its own (lock_staging). A symlink or a file of that name is not ours: left alone."""
    return sweep_unheld(directory, prefix, older_than, open_dir, remove_tree)


# ---------------------------------------------------------------------------------------------- restore

def safe_member_name(name):
    """Relative path of a tar member inside the target ('' for the root), or IntegrityError for absolute
    names, '..' segments (path traversal) and nesting deeper than MAX_DEPTH."""
    if not name or "\x00" in name:
        raise IntegrityError("archive member with an empty or NUL-containing name: refusing to extract")
    if name.startswith("/"):
        raise IntegrityError("archive member %r has an absolute path: refusing to extract (path traversal)" % name)
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise IntegrityError("archive member %r contains '..': refusing to extract (path traversal)" % name)
    if len(parts) > MAX_DEPTH:
        raise IntegrityError("archive member %r is nested %d levels deep; dir_restore restores at most %d levels "
                             "(dir_snapshot makes no deeper sets): refusing to extract"
                             % (name[:200] + "...", len(parts), MAX_DEPTH))
    return "/".join(parts)


def restored_mode(mode, is_dir, keep_setuid):
    """Permission bits to restore. Without keep_setuid, setuid is dropped everywhere and setgid from everything
    but directories (on a directory it only makes new files inherit its group). Sticky bits are kept: they only
    restrict who may delete."""
    mode &= 0o7777
    if not keep_setuid:
        mode &= ~(stat.S_ISUID if is_dir else stat.S_ISUID | stat.S_ISGID)
    return mode


class _Extractor(object):
    """Writes tar members below the staging directory held open as `root_fd` (see 'safe tree operations')."""

    def __init__(self, root_fd, numeric_owner=False, keep_setuid=False):
        self.root_fd = root_fd
        self.numeric_owner = numeric_owner
        self.keep_setuid = keep_setuid
        self.as_root = os.geteuid() == 0
        self.symlinks = set()  # members that are symlinks: nothing of the set may go below them
        self.directories = []  # (rel, uid, gid, mode, mtime): applied last by finish()
        self.stripped = []  # first LIST_LIMIT members whose setuid/setgid bits were dropped
        self.stripped_count = 0
        self.counts = {"files": 0, "directories": 0, "symlinks": 0, "total_bytes": 0}
        self._parent = (None, None)  # (rel, fd) of the last parent directory: members come directory by directory

    def close(self):
        if self._parent[1] is not None:
            os.close(self._parent[1])
        self._parent = (None, None)

    def _owner(self, member):
        if not self.as_root:
            return -1, -1
        uid, gid = member.uid, member.gid
        if not self.numeric_owner:
            try:
                uid = pwd.getpwnam(member.uname).pw_uid if member.uname else uid
            except KeyError:
                pass
            try:
                gid = grp.getgrnam(member.gname).gr_gid if member.gname else gid
            except KeyError:
                pass
        return uid, gid

    def _mode(self, rel, member, is_dir):
        mode = restored_mode(member.mode, is_dir, self.keep_setuid)
        if mode != member.mode & 0o7777:
            self.stripped_count += 1
            _note(self.stripped, rel)
        return mode

    def _check_parents(self, rel):
        parts = rel.split("/")
        for index in range(1, len(parts)):
            if "/".join(parts[:index]) in self.symlinks:
                raise IntegrityError("archive member %r lies below the symlink %r: refusing to extract (path "
                                     "traversal)" % (rel, "/".join(parts[:index])))

    def open_dir(self, rel, create=False):
        """fd of the directory `rel` below the root, walking one O_NOFOLLOW component at a time; missing ones are
        created (0700) when `create`. A component that is a symlink or a file is refused."""
        fd = os.dup(self.root_fd)
        try:
            for part in rel.split("/") if rel else ():
                try:
                    child = open_dir(part, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(part, 0o700, dir_fd=fd)
                    child = open_dir(part, dir_fd=fd)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    raise IntegrityError("archive member %r needs %r to be a directory, but the set made it a "
                                         "symlink or a file: refusing to extract (path traversal)" % (rel, part))
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _parent_fd(self, rel):
        parent = rel.rpartition("/")[0]
        if self._parent[0] != parent:
            fd = self.open_dir(parent, create=True)
            self.close()
            self._parent = (parent, fd)
        return self._parent[1]

    def add(self, tar, member):
        rel = safe_member_name(member.name)
        self._check_parents(rel)
        if member.isdir():
            self._directory(rel, member)
            return
        if not rel:
            raise IntegrityError("archive root entry is not a directory")
        if member.islnk():
            raise IntegrityError("archive member %r is a hard link (to %r): lifeboat directory snapshots store hard "
                                 "links as separate files; refusing to extract" % (rel, member.linkname))
        if not (member.issym() or member.isreg()):
            raise IntegrityError("archive member %r is a special file (type %r): lifeboat directory snapshots hold "
                                 "only files, directories and symlinks; refusing to extract" % (rel, member.type))
        parent_fd = self._parent_fd(rel)
        name = rel.rpartition("/")[2]
        if member.issym():
            self._symlink(parent_fd, name, rel, member)
        else:
            self._file(parent_fd, name, rel, tar, member)

    def _directory(self, rel, member):
        if rel:
            parent_fd = self._parent_fd(rel)
            name = rel.rpartition("/")[2]
            try:
                os.mkdir(name, 0o700, dir_fd=parent_fd)
            except FileExistsError:
                if not stat.S_ISDIR(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode):
                    raise IntegrityError("archive member %r is a directory and also a symlink or file: refusing to "
                                         "extract (a directory member must never reach through a symlink)" % rel)
        uid, gid = self._owner(member)
        self.directories.append((rel, uid, gid, self._mode(rel, member, True), member.mtime))
        self.counts["directories"] += 1

    def _symlink(self, parent_fd, name, rel, member):
        try:
            os.symlink(member.linkname, name, dir_fd=parent_fd)
        except FileExistsError:
            raise IntegrityError("archive member %r appears twice" % rel)
        except OSError as exc:
            raise IntegrityError("archive member %r is a symlink that cannot be made (%s): refusing to extract"
                                 % (rel, exc.strerror))
        self.symlinks.add(rel)
        uid, gid = self._owner(member)
        if (uid, gid) != (-1, -1):
            os.chown(name, uid, gid, dir_fd=parent_fd, follow_symlinks=False)
        with contextlib.suppress(NotImplementedError, OSError):
            os.utime(name, (member.mtime, member.mtime), dir_fd=parent_fd, follow_symlinks=False)
        self.counts["symlinks"] += 1

    def _file(self, parent_fd, name, rel, tar, member):
        try:
            fd = os.open(name, FILE_FLAGS, 0o600, dir_fd=parent_fd)
        except FileExistsError:
            raise IntegrityError("archive member %r appears twice" % rel)
        with os.fdopen(fd, "wb") as out:
            written = 0
            for chunk in iter_chunks(tar.extractfile(member)):
                out.write(chunk)
                written += len(chunk)
            if written != member.size:
                raise IntegrityError("archive member %r is truncated" % rel)
            out.flush()
            self._attributes(fd, self._owner(member), self._mode(rel, member, False), member.mtime)
        self.counts["files"] += 1
        self.counts["total_bytes"] += member.size

    @staticmethod
    def _attributes(fd, owner, mode, mtime):
        """Owner first, then mode: chown clears setuid/setgid, so the reverse order would lose kept bits."""
        if owner != (-1, -1):
            os.fchown(fd, *owner)
        os.chmod(fd, mode)
        with contextlib.suppress(OSError):
            os.utime(fd, (mtime, mtime))

    def lstat(self, rel):
        """lstat of the member `rel` reached without following any symlink (IntegrityError/OSError when it cannot)."""
        parent_fd = self.open_dir(rel.rpartition("/")[0])
        try:
            return os.stat(rel.rpartition("/")[2], dir_fd=parent_fd, follow_symlinks=False)
        finally:
            os.close(parent_fd)

    def finish(self):
        """Directory attributes last (deepest first), so creating children does not reset their mtimes and no
        directory becomes unsearchable before its children are done."""
        self.close()
        for rel, uid, gid, mode, mtime in sorted(self.directories, key=lambda item: item[0].count("/") + bool(item[0]),
                                                 reverse=True):
            fd = self.open_dir(rel)
            try:
                self._attributes(fd, (uid, gid), mode, mtime)
            finally:
                os.close(fd)


def _extract(repository, job, backup_set, identity_file, extractor, staging):
    with open_set(repository, job, backup_set, identity_file) as reader:
        try:
            tar = tarfile.open(fileobj=reader, mode="r|", encoding=ENCODING, errors=ERRORS)
            for member in tar:
                extractor.add(tar, member)
        except IntegrityError:
            _drain_quietly(reader)  # damaged stored bytes explain it better: 'sha256 mismatch' wins
            raise
        except LifeboatError:
            raise  # a decoding failure: VerifiedReader already compared the stored bytes with the manifest
        except (tarfile.TarError, EOFError) as exc:
            _drain_quietly(reader)
            raise IntegrityError("set %s is not a readable tar archive (%s) although its sha256 matches; restore "
                                 "another set" % (backup_set.set_id, exc))
        except OSError as exc:
            raise RestoreError("writing the restored tree into %s failed: %s; free space (or fix permissions) "
                               "there; the live directory was not touched" % (staging, exc))
        finally:
            extractor.close()
        _drain(reader)  # to the end of the stream: the sha256 check happens there
    return extractor.counts


def _drain(reader):
    for _chunk in iter_chunks(reader):
        pass


def _drain_quietly(reader):
    """After a failure: read to the end so the sha256 check runs; only a sha256 mismatch replaces the failure."""
    if getattr(reader, "checked", False):
        return
    try:
        _drain(reader)
    except IntegrityError as exc:
        if "sha256 mismatch" in exc.msg:
            raise
    except LifeboatError:
        pass


def _verify_tree(staging, extractor, manifest):
    """Counts and SQLite files against the manifest. Runs before finish(): every directory of the staging tree is
    still 0700 and ours, so nobody can swap a path under the SQLite checks."""
    counts = extractor.counts
    expected = manifest.get("verification") or {}
    problems = []
    for key in ("files", "directories", "symlinks", "total_bytes"):
        if key in expected and expected[key] != counts[key]:
            problems.append("%s: %s restored, %s in the manifest" % (key, counts[key], expected[key]))
    if problems:
        raise IntegrityError("restored tree of set %s does not match its manifest (%s); the live directory was not "
                             "touched" % (manifest["id"], "; ".join(problems)))
    checked = {}
    recorded_sqlite = expected.get("sqlite") or {}
    if not isinstance(recorded_sqlite, dict):
        raise IntegrityError("manifest of set %s has a malformed sqlite entry; the live directory was not touched"
                             % manifest["id"])
    for relpath, recorded in sorted(recorded_sqlite.items()):
        try:  # the manifest is as untrusted as the archive: only a regular file the set itself holds
            rel = safe_member_name(relpath)
            is_file = bool(rel) and stat.S_ISREG(extractor.lstat(rel).st_mode)
        except (OSError, IntegrityError):
            is_file = False
        if not is_file:
            raise IntegrityError("manifest of set %s names SQLite file %r, which is not a regular file of the set; "
                                 "the live directory was not touched" % (manifest["id"], relpath))
        # dir_snapshot captures a database through the backup API and never stores its -wal/-journal/-shm: one in
        # the set would be replayed by the application over the content checked here, so it is refused
        for suffix in COMPANIONS:
            try:
                extractor.lstat(rel + suffix)
            except OSError:
                continue
            raise IntegrityError("set %s holds %s%s beside the SQLite file it lists: a snapshot never stores it, and "
                                 "the application would replay it over the checked database; the live directory was "
                                 "not touched" % (manifest["id"], relpath, suffix))
        result = inspect(os.path.join(staging, rel), immutable=True)
        if result["integrity_check"] != "ok":
            raise IntegrityError("restored SQLite file %s of set %s fails integrity_check (%s); the live directory "
                                 "was not touched" % (relpath, manifest["id"], result["integrity_check"]))
        if isinstance(recorded, dict) and recorded.get("row_counts") is not None \
                and recorded["row_counts"] != result["row_counts"]:
            raise IntegrityError("restored SQLite file %s of set %s has row counts %s, the manifest says %s; the live "
                                 "directory was not touched"
                                 % (relpath, manifest["id"], result["row_counts"], recorded["row_counts"]))
        checked[relpath] = "ok"
    verification = {"sha256": "ok"}
    verification.update(counts)
    verification["sqlite"] = checked
    return verification


def aside_dir_name(target):
    base = aside_name(target)
    candidate, number = base, 1
    while os.path.lexists(candidate):
        candidate = "%s-%d" % (base, number)
        number += 1
    return candidate


def swap_directories(staging, target):
    """Rename the live tree aside and the staging tree into place; on failure the live tree is put back.
    Returns where the previous tree is, or None when there was none."""
    parent = os.path.dirname(target)
    if not os.path.lexists(target):
        os.rename(staging, target)
        fsync_dir(parent)
        return None
    aside = aside_dir_name(target)
    os.rename(target, aside)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(aside, target)
        raise
    fsync_dir(parent)
    return aside


def _make_staging(target, parent, tmp_dir, check_mode, started):
    """Create (and flock) the staging directory, after sweeping the ones dead runs left. Returns (path, fd)."""
    if check_mode:
        where, prefix = tmp_dir or tempfile.gettempdir(), CHECK_MODE_PREFIX
    else:
        where, prefix = parent, ".%s%s" % (os.path.basename(target), STAGING_MARK)
    sweep_stale_staging(where, prefix, started)
    staging = tempfile.mkdtemp(prefix=prefix, dir=where)
    try:
        return staging, lock_staging(staging)
    except BaseException:
        os.rmdir(staging)
        raise


def restore_directory(repository, job, path, backup="latest", before=None, identity_file=None, keep_previous=True,
                      numeric_owner=False, keep_setuid=False, tmp_dir=None, check_mode=False):
    """Restore a directory set to `path`. On any failure the live tree is as it was and no staging remains."""
    started = time.time()
    target = os.path.realpath(os.path.abspath(os.path.expanduser(path)))
    backup_set = find_set(repository, job, "directory", backup, before)
    result = {"backup": set_result(repository, job, backup_set), "restored_to": target, "previous": None}
    if os.path.lexists(target) and not os.path.isdir(target):
        raise RestoreError("%s exists and is not a directory: choose the directory path as the target" % target)
    if tmp_dir and not os.path.isdir(tmp_dir):
        raise ConfigError("tmp_dir %s does not exist" % tmp_dir)
    parent = os.path.dirname(target)
    created = []
    if not check_mode:
        missing = parent
        while not os.path.isdir(missing):
            created.append(missing)
            missing = os.path.dirname(missing)
        if created:
            os.makedirs(parent, 0o755)
    staging, root_fd = _make_staging(target, parent, tmp_dir, check_mode, started)
    placed = False
    try:
        extractor = _Extractor(root_fd, numeric_owner, keep_setuid)
        _extract(repository, job, backup_set, identity_file, extractor, staging)
        result["verification"] = _verify_tree(staging, extractor, backup_set.manifest)
        try:
            extractor.finish()
        except OSError as exc:
            raise RestoreError("setting the owners and modes of the restored directories in %s failed: %s; the live "
                               "directory was not touched" % (staging, exc))
        if extractor.stripped_count:
            result["setuid_stripped"] = extractor.stripped
            result["warnings"] = ["setuid/setgid bits were removed from %d restored entries (%s%s): set keep_setuid: "
                                  "true to keep them" % (extractor.stripped_count, ", ".join(extractor.stripped),
                                                         ", ..." if extractor.stripped_count > LIST_LIMIT else "")]
        if check_mode:
            return result
        try:
            result["previous"] = swap_directories(staging, target)
        except OSError as exc:
            raise RestoreError("cannot put the restored tree in place at %s (%s); the live directory was left as it "
                               "was" % (target, exc))
        placed = True
        if not keep_previous and result["previous"]:
            remove_tree(result["previous"])
            result["previous"] = None
        return result
    finally:
        os.close(root_fd)
        if not placed:
            with contextlib.suppress(OSError):
                remove_tree(staging)
            for directory in created:
                with contextlib.suppress(OSError):
                    os.rmdir(directory)


def source_from_options(options):
    """Kind contract: a Source from module option names (path, exclude, sqlite, tmp_dir, verify, busy_timeout)."""
    return DirectorySource(options["path"], exclude=options.get("exclude"), sqlite=options.get("sqlite", True),
                           tmp_dir=options.get("tmp_dir"), verify=options.get("verify", True),
                           busy_timeout=options.get("busy_timeout", 30.0))


def restore_from_options(repository, options, check_mode=False):
    """Kind contract: restore with module option names; returns the module's result dict."""
    return restore_directory(repository, options["job"], options["path"], backup=options.get("backup", "latest"),
                             before=options.get("before"),
                             identity_file=(options.get("encryption") or {}).get("age_identity_file"),
                             keep_previous=options.get("keep_previous", True),
                             numeric_owner=options.get("numeric_owner", False),
                             keep_setuid=options.get("keep_setuid", False), tmp_dir=options.get("tmp_dir"),
                             check_mode=check_mode)
