"""Directories (uploads, ChromaDB stores): a streamed POSIX tar (pax) of a tree with modes, owners, mtimes
and symlinks; SQLite databases inside are captured through the SQLite backup API (their -wal/-shm/-journal
are skipped) and written after every other file. Restore extracts into a new sibling directory, verifies
it against the manifest, then swaps it into place keeping the previous tree aside."""

import contextlib
import fnmatch
import grp
import os
import pwd
import shutil
import sqlite3
import stat
import tarfile
import tempfile

from .errors import ConfigError, IntegrityError, LifeboatError, RestoreError, SourceError
from .files import aside_name, fsync_dir
from .restore import find_set, open_set, set_result
from .sqlite import COMPANIONS, HEADER, copy_snapshot, inspect
from .streams import CHUNK, IterReader, iter_chunks

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
        try:
            handle = open(full, "rb")
        except FileNotFoundError:
            _note(stats["vanished"], relpath)
            return
        except OSError as exc:
            raise SourceError("cannot read %s: %s; run as a user who may read it (become: true) or exclude it"
                              % (full, exc.strerror))
        with handle:
            st = os.fstat(handle.fileno())
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
            elif os.fstat(handle.fileno()).st_size != size:
                _note(stats["changed"], relpath)
            yield padding(size)
        stats["files"] += 1
        stats["total_bytes"] += size

    def _database(self, relpath, full, stats):
        fd, scratch = tempfile.mkstemp(prefix="lifeboat-dir-sqlite-", suffix=".db", dir=self.tmp_dir)
        os.close(fd)
        try:
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


def _note(items, relpath):
    if len(items) < LIST_LIMIT:
        items.append(relpath or ".")


# ---------------------------------------------------------------------------------------------- restore

def safe_member_name(name):
    """Relative path of a tar member inside the target ('' for the root), or IntegrityError for absolute
    names and '..' segments (path traversal)."""
    if not name or "\x00" in name:
        raise IntegrityError("archive member with an empty or NUL-containing name: refusing to extract")
    if name.startswith("/"):
        raise IntegrityError("archive member %r has an absolute path: refusing to extract (path traversal)" % name)
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise IntegrityError("archive member %r contains '..': refusing to extract (path traversal)" % name)
    return "/".join(parts)


class _Extractor(object):
    def __init__(self, staging, numeric_owner=False):
        self.staging = staging
        self.numeric_owner = numeric_owner
        self.as_root = os.geteuid() == 0
        self.symlinks = set()
        self.directories = []
        self.counts = {"files": 0, "directories": 0, "symlinks": 0, "total_bytes": 0}

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

    def _check_parents(self, rel):
        parts = rel.split("/")
        for index in range(1, len(parts)):
            if "/".join(parts[:index]) in self.symlinks:
                raise IntegrityError("archive member %r lies below the symlink %r: refusing to extract (path "
                                     "traversal)" % (rel, "/".join(parts[:index])))

    def add(self, tar, member):
        rel = safe_member_name(member.name)
        self._check_parents(rel)
        dest = os.path.join(self.staging, rel) if rel else self.staging
        if member.isdir():
            if rel:
                if os.path.lexists(dest) and not os.path.isdir(dest):
                    raise IntegrityError("archive member %r is both a file and a directory" % rel)
                if not os.path.isdir(dest):
                    os.makedirs(dest, 0o700)
            self.directories.append((dest, member))
            self.counts["directories"] += 1
            return
        if not rel:
            raise IntegrityError("archive root entry is not a directory")
        parent = os.path.dirname(dest)
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o700)
        if member.issym():
            try:
                os.symlink(member.linkname, dest)
            except FileExistsError:
                raise IntegrityError("archive member %r appears twice" % rel)
            self.symlinks.add(rel)
            self._attributes(dest, member, link=True)
            self.counts["symlinks"] += 1
        elif member.isreg():
            try:
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            except FileExistsError:
                raise IntegrityError("archive member %r appears twice" % rel)
            with os.fdopen(fd, "wb") as out:
                source = tar.extractfile(member)
                written = 0
                for chunk in iter_chunks(source):
                    out.write(chunk)
                    written += len(chunk)
                if written != member.size:
                    raise IntegrityError("archive member %r is truncated" % rel)
            self._attributes(dest, member)
            self.counts["files"] += 1
            self.counts["total_bytes"] += member.size
        else:
            raise IntegrityError("archive member %r is a special file (type %r): lifeboat directory snapshots hold "
                                 "only files, directories and symlinks; refusing to extract" % (rel, member.type))

    def _attributes(self, dest, member, link=False):
        uid, gid = self._owner(member)
        if (uid, gid) != (-1, -1):
            os.chown(dest, uid, gid, follow_symlinks=not link)
        if not link:
            os.chmod(dest, member.mode & 0o7777)
        with contextlib.suppress(NotImplementedError, OSError):
            os.utime(dest, (member.mtime, member.mtime), follow_symlinks=not link)

    def finish(self):
        """Directory attributes last (deepest first), so creating children does not reset their mtimes."""
        for dest, member in sorted(self.directories, key=lambda item: item[0].count(os.sep), reverse=True):
            self._attributes(dest, member)


def _extract(repository, job, backup_set, identity_file, staging, numeric_owner):
    extractor = _Extractor(staging, numeric_owner)
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
        _drain(reader)  # to the end of the stream: the sha256 check happens there
    extractor.finish()
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


def _verify_tree(staging, counts, manifest):
    expected = manifest.get("verification") or {}
    problems = []
    for key in ("files", "directories", "symlinks", "total_bytes"):
        if key in expected and expected[key] != counts[key]:
            problems.append("%s: %s restored, %s in the manifest" % (key, counts[key], expected[key]))
    if problems:
        raise IntegrityError("restored tree of set %s does not match its manifest (%s); the live directory was not "
                             "touched" % (manifest["id"], "; ".join(problems)))
    checked = {}
    for relpath, recorded in sorted((expected.get("sqlite") or {}).items()):
        database = os.path.join(staging, relpath)
        result = inspect(database, immutable=True)
        if result["integrity_check"] != "ok":
            raise IntegrityError("restored SQLite file %s of set %s fails integrity_check (%s); the live directory "
                                 "was not touched" % (relpath, manifest["id"], result["integrity_check"]))
        if recorded.get("row_counts") is not None and recorded["row_counts"] != result["row_counts"]:
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


def restore_directory(repository, job, path, backup="latest", before=None, identity_file=None, keep_previous=True,
                      numeric_owner=False, tmp_dir=None, check_mode=False):
    """Restore a directory set to `path`. On any failure the live tree is as it was and no staging remains."""
    target = os.path.realpath(os.path.abspath(os.path.expanduser(path)))
    backup_set = find_set(repository, job, "directory", backup, before)
    result = {"backup": set_result(repository, job, backup_set), "restored_to": target, "previous": None}
    if os.path.lexists(target) and not os.path.isdir(target):
        raise RestoreError("%s exists and is not a directory: choose the directory path as the target" % target)
    if tmp_dir and not os.path.isdir(tmp_dir):
        raise ConfigError("tmp_dir %s does not exist" % tmp_dir)
    parent = os.path.dirname(target)
    created = []
    if check_mode:
        staging = tempfile.mkdtemp(prefix="lifeboat-dir-restore-", dir=tmp_dir)
    else:
        missing = parent
        while not os.path.isdir(missing):
            created.append(missing)
            missing = os.path.dirname(missing)
        if created:
            os.makedirs(parent, 0o755)
        staging = tempfile.mkdtemp(prefix=".%s.lifeboat-restore-" % os.path.basename(target), dir=parent)
    placed = False
    try:
        counts = _extract(repository, job, backup_set, identity_file, staging, numeric_owner)
        result["verification"] = _verify_tree(staging, counts, backup_set.manifest)
        if check_mode:
            return result
        try:
            result["previous"] = swap_directories(staging, target)
        except OSError as exc:
            raise RestoreError("cannot put the restored tree in place at %s (%s); the live directory was left as it "
                               "was" % (target, exc))
        placed = True
        if not keep_previous and result["previous"]:
            shutil.rmtree(result["previous"])
            result["previous"] = None
        return result
    finally:
        if not placed:
            shutil.rmtree(staging, ignore_errors=True)
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
                             numeric_owner=options.get("numeric_owner", False), tmp_dir=options.get("tmp_dir"),
                             check_mode=check_mode)
