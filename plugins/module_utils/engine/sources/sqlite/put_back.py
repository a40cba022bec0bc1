"""SQLite put-back: undo a restore whose data was rejected (a failed health check) from the copy the restore kept
aside (<target>.lifeboat-prev-<UTC time>[-<hex>], its `previous`). The rejected database's -wal/-shm/-journal are
removed, the kept copy and its journal files are renamed back. Only renames and unlinks of these exact names; a
symlink is never followed (a symlinked kept copy is refused). `previous` is untrusted: checked against the target."""

import contextlib
import os
import stat

from ...core.errors import ConfigError, RestoreError
from ...core.files import fsync_dir, stat_kept_aside
from .snapshot import COMPANIONS


def put_back_sqlite(target, previous, check_mode=False):
    """Put the database kept at `previous` back at `target` (absolute, normalised). Returns {'status',
    'restored_to', 'previous', 'removed' (the rejected database and its journal files), 'changed'}."""
    stat_kept_aside(target, previous, stat.S_ISREG, "a regular file")
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISREG(os.lstat(target).st_mode):
            raise ConfigError("%s is not a regular file; nothing was changed" % target)
    removed = [name for name in [target] + [target + suffix for suffix in COMPANIONS] if os.path.lexists(name)]
    result = {"status": "ok", "restored_to": target, "previous": previous, "removed": removed, "changed": True}
    if check_mode:
        return result
    try:
        for suffix in COMPANIONS:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target + suffix)
        os.rename(previous, target)
        for suffix in COMPANIONS:
            companion = previous + suffix
            if os.path.lexists(companion) and stat.S_ISREG(os.lstat(companion).st_mode):
                os.rename(companion, target + suffix)
    except OSError as exc:
        raise RestoreError("putting %s back at %s failed: %s; look at both before going on" % (previous, target, exc))
    fsync_dir(os.path.dirname(target))
    return result
