"""The local directory store (Store on dest): sets at <dest>/<job>/<set id>/, manifest written last by rename,
members read without following any symlink."""

import datetime
import errno
import os
import shutil
import stat

from ..core import manifest as manifest_mod
from ..core.errors import IntegrityError, NotFoundError, SinkError
from ..core.files import fsync_dir
from ..core.naming import DATA_PREFIX, MANIFEST_NAME, UTC, is_set_id, validate_job
from .store import SetWriter, Store, StoredSet

DIR_MODE = 0o700
FILE_MODE = 0o600


def _disk_error(exc, path):
    if exc.errno == errno.ENOSPC:
        return SinkError("local repository: no space left on device while writing %s; free space or point dest "
                         "at a larger filesystem, then run the backup again" % path)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return SinkError("local repository: cannot write %s (%s); fix permissions of dest or run as a user "
                         "who may write there" % (path, exc.strerror))
    return SinkError("local repository: writing %s failed: %s" % (path, exc))


class LocalSetWriter(SetWriter):
    def __init__(self, set_dir, data_name):
        self.set_dir = set_dir
        self.data_path = os.path.join(set_dir, data_name)
        self._file = None
        try:
            os.makedirs(os.path.dirname(set_dir), mode=DIR_MODE, exist_ok=True)
            os.mkdir(set_dir, DIR_MODE)
            fd = os.open(self.data_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            self._file = os.fdopen(fd, "wb")
        except OSError as exc:
            self.abort()
            raise _disk_error(exc, self.data_path)

    def write(self, chunk):
        try:
            self._file.write(chunk)
        except OSError as exc:
            raise _disk_error(exc, self.data_path)

    def commit(self, manifest_bytes):
        final = os.path.join(self.set_dir, MANIFEST_NAME)
        temp = os.path.join(self.set_dir, "." + MANIFEST_NAME + ".tmp")
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            with os.fdopen(fd, "wb") as handle:
                handle.write(manifest_bytes)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, final)
            fsync_dir(self.set_dir)
        except OSError as exc:
            raise _disk_error(exc, final)

    def abort(self):
        """Remove everything this writer made: nothing half-written is left to look like a set."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
        shutil.rmtree(self.set_dir, ignore_errors=True)


class LocalRepository(Store):
    """Implements Store on a local directory (dest)."""

    name = "local"

    def __init__(self, root):
        self.root = os.path.abspath(os.path.expanduser(root))

    def describe(self):
        return self.root

    def set_location(self, job, set_id):
        return os.path.join(self.root, validate_job(job), set_id)

    def preflight(self):
        """Fail early (before anything is written) when the repository cannot possibly be written."""
        probe = self.root
        while not os.path.exists(probe):
            probe = os.path.dirname(probe)
        if not os.access(probe, os.W_OK | os.X_OK):
            raise SinkError("local repository %s is not writable by this user; fix its permissions or choose "
                            "another dest" % self.root)

    def begin_set(self, job, set_id, data_name):
        return LocalSetWriter(self.set_location(job, set_id), data_name)

    def list_sets(self, job):
        job_dir = os.path.join(self.root, validate_job(job))
        found = []
        try:
            if os.path.islink(job_dir):
                raise IntegrityError("local repository: %s is a symbolic link, not the job's directory: refusing to "
                                     "read sets through it (was the repository tampered with?); replace it with "
                                     "the directory itself" % job_dir)
            entries = list(os.scandir(job_dir))
        except FileNotFoundError:
            return found
        except OSError as exc:
            raise SinkError("cannot list local repository %s: %s" % (job_dir, exc))
        for entry in entries:
            if not (is_set_id(entry.name) and entry.is_dir(follow_symlinks=False)):
                continue
            names = os.listdir(entry.path)
            data = sorted(n for n in names if n.startswith(DATA_PREFIX))
            size = None
            newest = entry.stat(follow_symlinks=False).st_mtime
            for name in names:
                # lstat: a symlink planted in a set must not lend it the size or time of a file elsewhere
                info = os.lstat(os.path.join(entry.path, name))
                newest = max(newest, info.st_mtime)
                if data and name == data[0]:
                    size = info.st_size
            found.append(StoredSet(entry.name, MANIFEST_NAME in names, data[0] if data else None, size,
                                   datetime.datetime.fromtimestamp(newest, UTC), entry.path))
        return found

    def _open_member(self, job, set_id, name):
        """Open a file of a set for reading, following no symlink below dest: the job and set directories and the
        file itself must be real (whoever can write the repository could plant `data.db.zst -> /etc/shadow`),
        and the file must be a regular one (a FIFO or device would hang or never end)."""
        directory_flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        path = os.path.join(self.set_location(job, set_id), name)
        if not is_set_id(set_id) or name in ("", ".", "..") or os.path.basename(name) != name:
            raise IntegrityError("local repository: %r is not a file of a set directory: refusing to read it" % path)
        opened = []
        try:
            opened.append(os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
            opened.append(os.open(job, directory_flags, dir_fd=opened[-1]))
            opened.append(os.open(set_id, directory_flags, dir_fd=opened[-1]))
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=opened[-1])
        except FileNotFoundError:
            raise
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise IntegrityError("local repository: %s is reached through a symbolic link or is not what the "
                                     "set layout says: refusing to read it (was the repository tampered with?); "
                                     "restore another set" % path)
            raise SinkError("local repository: cannot read %s: %s" % (path, exc.strerror or exc))
        finally:
            for directory in opened:
                os.close(directory)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise IntegrityError("local repository: %s is not a regular file: refusing to read it; restore another "
                                 "set" % path)
        return os.fdopen(fd, "rb")

    def read_manifest(self, job, set_id):
        path = os.path.join(self.set_location(job, set_id), MANIFEST_NAME)
        try:
            with self._open_member(job, set_id, MANIFEST_NAME) as handle:
                raw = handle.read(manifest_mod.MAX_BYTES + 1)
        except FileNotFoundError:
            raise NotFoundError("set %s of job %s has no manifest in %s (incomplete set)" % (set_id, job, self.root))
        return manifest_mod.loads(raw, path)

    def open_data(self, job, set_id, data_name):
        path = os.path.join(self.set_location(job, set_id), data_name)
        try:
            return self._open_member(job, set_id, data_name)
        except FileNotFoundError:
            raise NotFoundError("set %s: data object %s is missing" % (set_id, path))

    def delete_set(self, job, set_id):
        shutil.rmtree(self.set_location(job, set_id))
