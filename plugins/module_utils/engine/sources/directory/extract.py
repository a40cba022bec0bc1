"""The hardened extractor of directory sets, shared by dir_restore and the test restore of backup_verify. A set is
untrusted: every member name is checked (no absolute path, no '..', depth limited), the tree is built below a
flocked 0700 staging directory through directory fds only (see 'safe tree operations'), setuid/setgid bits are
dropped unless kept on purpose, and the tar stream is read once with its sha256 compared at the end before the
tree is checked against the manifest (counts, and integrity_check and row counts of the SQLite files it lists).
It also holds the fd-based tree removal and the sweep of staging directories that killed restores left."""

import contextlib
import errno
import fcntl
import grp
import os
import pwd
import stat
import tarfile
import tempfile

from ...core.errors import IntegrityError, LifeboatError, RestoreError
from ...core.files import sweep_unheld
from ...core.streams import iter_chunks
from ...pipeline.restore import open_set
from ..sqlite.snapshot import COMPANIONS, inspect
from .archive import ENCODING, ERRORS, MAX_DEPTH, note_path


# ----------------------------------------------------------------------------------- safe tree operations
# A set is untrusted input. Below its staging directory a restore touches nothing by path: every directory is
# opened relative to its parent's fd with O_NOFOLLOW, every file is created with O_EXCL|O_NOFOLLOW and every
# owner/mode/mtime fix-up goes through the fd just opened (or lchown/lutimes for symlinks), so no symlink, from
# the set or planted by anyone, is ever followed. Nothing recurses, so depth costs no stack.

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


def make_staging(target, parent, tmp_dir, check_mode, started):
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


# ------------------------------------------------------------------------------------------- extraction

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


class Extractor(object):
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
            note_path(self.stripped, rel)
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


def extract_set(repository, job, backup_set, identity_file, extractor, staging):
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


def verify_tree(staging, extractor, manifest):
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
