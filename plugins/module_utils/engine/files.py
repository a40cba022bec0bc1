"""File placement shared by restores: owner/group/mode, fsync, and the atomic swap that keeps the
previous data aside until the new data is in place and verified."""

import grp
import os
import pwd
import shutil

from .errors import ConfigError, RestoreError
from .local_repository import _fsync_dir
from .naming import utcnow

fsync_dir = _fsync_dir


def parse_mode(mode):
    if mode is None or mode == "":
        return None
    if isinstance(mode, int):
        return mode
    try:
        return int(str(mode), 8)
    except ValueError:
        raise ConfigError("mode %r is not an octal file mode such as '0640'" % (mode,))


def resolve_ids(owner=None, group=None):
    uid = gid = -1
    if owner not in (None, ""):
        try:
            uid = int(owner) if str(owner).isdigit() else pwd.getpwnam(owner).pw_uid
        except KeyError:
            raise ConfigError("owner %s does not exist on this host; create the user first" % owner)
    if group not in (None, ""):
        try:
            gid = int(group) if str(group).isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigError("group %s does not exist on this host; create the group first" % group)
    return uid, gid


def apply_attributes(path, owner=None, group=None, mode=None, like=None):
    """Set owner/group/mode; unset ones are copied from `like` (the file being replaced) when it exists."""
    uid, gid = resolve_ids(owner, group)
    mode = parse_mode(mode)
    if like and os.path.exists(like):
        stat = os.stat(like)
        uid = stat.st_uid if uid == -1 else uid
        gid = stat.st_gid if gid == -1 else gid
        mode = (stat.st_mode & 0o7777) if mode is None else mode
    if mode is None:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    if (uid, gid) != (-1, -1):
        try:
            os.chown(path, uid, gid)
        except PermissionError:
            raise RestoreError("cannot give %s to owner/group %s:%s: run the restore as root (become: true)"
                               % (path, owner or uid, group or gid))
    os.chmod(path, mode)


ASIDE_MARK = ".lifeboat-prev-"


def aside_name(target):
    return "%s%s%s" % (target, ASIDE_MARK, utcnow().strftime("%Y%m%dT%H%M%SZ"))


def kept_for(aside):
    """The target whose previous data `aside` holds (<target>.lifeboat-prev-<time>), or None for another name."""
    target, mark, _stamp = aside.rpartition(ASIDE_MARK)
    return target if mark and target else None


class Swap(object):
    """Put `staged` at `target` atomically. The old target (and companion files such as -wal) is kept
    at `self.aside` via hard links, so at every moment `target` holds either the old or the new data."""

    def __init__(self, staged, target, companions=()):
        self.staged = staged
        self.target = target
        self.companions = companions
        self.aside = None
        self._moved = []  # (original, aside) pairs

    def _keep(self, original, kept):
        try:
            os.link(original, kept)
        except OSError:
            shutil.copy2(original, kept)
        self._moved.append((original, kept))

    def run(self):
        try:
            return self._run()
        except BaseException:
            self.rollback_partial()
            raise

    def rollback_partial(self):
        """Undo a swap that failed before the new data was in place: companions come back, target untouched."""
        for original, kept in reversed(self._moved):
            if not os.path.lexists(original):
                os.link(kept, original)
            os.unlink(kept)
        self._moved = []
        self.aside = None

    def _run(self):
        if os.path.lexists(self.target):
            if os.path.isdir(self.target) and not os.path.islink(self.target):
                raise RestoreError("%s is a directory, not a file: choose the file path as the target" % self.target)
            self.aside = aside_name(self.target)
            self._keep(self.target, self.aside)
        for suffix in self.companions:
            companion = self.target + suffix
            if os.path.lexists(companion):
                if self.aside:
                    self._keep(companion, self.aside + suffix)
                os.unlink(companion)
        os.replace(self.staged, self.target)
        fsync_dir(os.path.dirname(self.target) or ".")
        return self.aside

    def rollback(self):
        """Put the previous data back exactly as it was."""
        for original, kept in reversed(self._moved):
            os.replace(kept, original)
        if not self.aside and os.path.lexists(self.target):
            os.unlink(self.target)
        fsync_dir(os.path.dirname(self.target) or ".")

    def discard_previous(self):
        for _original, kept in self._moved:
            if os.path.lexists(kept):
                os.unlink(kept)
        self.aside = None
