"""SQLite restore: the set is fetched into a flocked staging file beside the target (sha256 checked at its end),
checked with integrity_check and against the manifest's row counts, then swapped into place atomically with its
-wal/-journal/-shm, keeping the previous database aside. On any failure the live database is as it was; staging
files of killed restores are swept by the next one."""

import contextlib
import errno
import fcntl
import os
import sqlite3
import stat
import tempfile
import time

from ...core.errors import IntegrityError, RestoreError
from ...core.files import Swap, apply_attributes, fsync_dir, sweep_unheld
from ...pipeline.restore import fetch_to_file, find_set, set_result
from .snapshot import COMPANIONS, file_uri, inspect


def _staging_prefix(path):
    return ".%s.lifeboat-restore-" % os.path.basename(path)


def _open_regular(path):
    """fd of the regular file `path`, never through a symlink; OSError for anything else."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
    except OSError:
        os.close(fd)
        raise
    return fd


def remove_stale_staging(path, older_than):
    """Remove staging files beside `path` left by a restore that was killed (SIGKILL, power loss) before it
    could clean up; a running restore holds an flock on its own staging file. Returns the removed paths."""
    return sweep_unheld(os.path.dirname(path), _staging_prefix(path), older_than, _open_regular, os.unlink)


def _staging_error(exc, staged, manifest):
    if exc.errno == errno.ENOSPC:
        return RestoreError("no space left on device in %s while writing the restored copy of set %s (%d bytes "
                            "needed); the live database was not touched: free space there, then run the restore "
                            "again" % (os.path.dirname(staged) or ".", manifest["id"], manifest.get("raw_size") or 0))
    return RestoreError("restore of set %s failed while writing the restored copy %s (%s); the live database was "
                        "not touched" % (manifest["id"], staged, exc.strerror or exc))


def restore_sqlite(repository, job, path, backup="latest", before=None, identity_file=None, owner=None,
                   group=None, mode=None, keep_previous=True, check_mode=False):
    """Restore a set to `path`. On any failure the live database is as it was before."""
    started = time.time()
    path = os.path.abspath(os.path.expanduser(path))
    backup_set = find_set(repository, job, "sqlite", backup, before)
    result = {"backup": set_result(repository, job, backup_set), "restored_to": path, "previous": None}
    directory = os.path.dirname(path)
    created_dir = False
    if check_mode:
        staging_dir = None  # verify the set in the system temp directory; nothing beside the target
    else:
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o755)
            created_dir = True
        staging_dir = directory
        remove_stale_staging(path, started)
    try:
        fd, staged = tempfile.mkstemp(prefix=_staging_prefix(path), dir=staging_dir)
    except OSError as exc:
        if created_dir:
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        raise _staging_error(exc, os.path.join(staging_dir or tempfile.gettempdir(), "."), backup_set.manifest)
    lock_fd = None
    swap = None
    try:
        lock_fd = os.dup(fd)
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # tells remove_stale_staging of other runs that this file is in use
        try:
            with os.fdopen(fd, "wb") as handle:
                fetch_to_file(repository, job, backup_set, handle, identity_file)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise _staging_error(exc, staged, backup_set.manifest)
        verification = _verify_restored(staged, backup_set.manifest)
        result["verification"] = verification
        if check_mode:
            return result
        apply_attributes(staged, owner, group, mode, like=path)
        os.close(lock_fd)  # released before the file becomes the live database
        lock_fd = None
        swap = Swap(staged, path, COMPANIONS)
        result["previous"] = swap.run()
        try:
            conn = sqlite3.connect(file_uri(path, "immutable=1"), uri=True)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            swap.rollback()
            raise RestoreError("restored database %s does not open (%s); the previous database was put back" % (path, exc))
        if not keep_previous:
            swap.discard_previous()
            result["previous"] = None
        return result
    except BaseException:
        for suffix in ("",) + COMPANIONS:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged + suffix)
        if created_dir:
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        raise
    finally:
        if lock_fd is not None:
            os.close(lock_fd)
        if staging_dir:
            fsync_dir(staging_dir)


def _verify_restored(staged, manifest):
    checked = inspect(staged, immutable=True)
    if checked["integrity_check"] != "ok":
        raise IntegrityError("restored copy of set %s fails integrity_check (%s); the live database was not "
                             "touched: restore another set" % (manifest["id"], checked["integrity_check"]))
    expected = (manifest.get("verification") or {}).get("row_counts")
    if expected is not None and expected != checked["row_counts"]:
        raise IntegrityError("restored copy of set %s has row counts %s but the manifest recorded %s; the live "
                             "database was not touched" % (manifest["id"], checked["row_counts"], expected))
    return {"sha256": "ok", "integrity_check": "ok", "row_counts": checked["row_counts"]}
