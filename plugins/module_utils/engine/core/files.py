"""File placement shared by restores and stores: owner/group/mode, directory fsync, names for kept-aside copies,
the atomic swap that keeps the previous data aside until the new data is in place and verified, and the sweep of
dead runs' flocked leftovers."""

import errno
import fcntl
import grp
import os
import pwd
import re
import secrets
import shutil

from .errors import ConfigError, RestoreError
from .naming import utcnow


def fsync_dir(path):
    """Make a rename or a new entry in directory `path` durable; best effort (some filesystems refuse)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
# <UTC second>Z-<8 hex>: the random part makes the name unique even for two restores of one target within a
# second. Names without it (written before) are still read back.
_ASIDE_STAMP = re.compile(r"^[0-9]{8}T[0-9]{6}Z(-[0-9a-f]{4,16})?$")
ASIDE_ATTEMPTS = 20


def aside_name(target):
    """A fresh name for keeping `target`'s previous data: <target>.lifeboat-prev-<UTC time>-<random hex>. The
    name is only a candidate: it is taken with link()/O_EXCL (keep_aside), which never overwrites."""
    return "%s%s%s-%s" % (target, ASIDE_MARK, utcnow().strftime("%Y%m%dT%H%M%SZ"), secrets.token_hex(4))


def kept_for(aside):
    """The target whose previous data `aside` holds (<target>.lifeboat-prev-<time>[-<hex>]), or None for
    another name."""
    target, mark, stamp = aside.rpartition(ASIDE_MARK)
    return target if mark and target and _ASIDE_STAMP.match(stamp) else None


def check_kept_aside(target, previous):
    """Refuse (ConfigError) a `previous` that is not exactly <target>.lifeboat-prev-<UTC time>[-<hex>] for the
    absolute, normalised `target`: a put-back's `previous` is untrusted input (it comes back through a log)."""
    if not isinstance(target, str) or not os.path.isabs(target) or os.path.normpath(target) != target \
            or target == "/":
        raise ConfigError("target %r is not a normalised absolute path" % (target,))
    if not isinstance(previous, str) or not re.fullmatch(
            re.escape(target + ASIDE_MARK) + r"[0-9]{8}T[0-9]{6}Z(-[0-9a-f]{4,16})?", previous):
        raise ConfigError("%r is not the kept-aside copy of %s (<target>%s<time>); nothing was changed"
                          % (previous, target, ASIDE_MARK))


def stat_kept_aside(target, previous, is_kind, what):
    """check_kept_aside, then the lstat of `previous`, which must be `what` (is_kind: stat.S_ISREG or S_ISDIR; a
    symlink is never followed). RestoreError when it is gone, ConfigError otherwise; nothing is changed."""
    check_kept_aside(target, previous)
    try:
        kept = os.lstat(previous)
    except FileNotFoundError:
        raise RestoreError("the kept-aside copy %s is gone (put back or removed already?); the restored data stays "
                           "at %s" % (previous, target))
    if not is_kind(kept.st_mode):
        raise ConfigError("%s is not %s (a symlink is never followed); nothing was changed" % (previous, what))
    return kept


def keep_aside(original, kept):
    """Make `kept` a second name of `original` (a hard link), or an exclusive copy where the filesystem has
    no hard links. Never replaces anything: raises FileExistsError when `kept` exists."""
    try:
        os.link(original, kept, follow_symlinks=False)
        return
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
    fd = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out, open(original, "rb") as source:
            shutil.copyfileobj(source, out, 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        shutil.copystat(original, kept)
        stat = os.stat(original)
        try:
            os.chown(kept, stat.st_uid, stat.st_gid)
        except PermissionError:
            pass  # not root: the copy stays ours, with the original's mode
    except BaseException:
        os.unlink(kept)
        raise


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
        keep_aside(original, kept)
        self._moved.append((original, kept))

    def _keep_all(self):
        """Keep the target and its companions under one fresh aside name; a name any of them would collide
        with (another restore in the same second, a file someone left) is given up for the next."""
        for _attempt in range(ASIDE_ATTEMPTS):
            aside = aside_name(self.target)
            try:
                self._keep(self.target, aside)
                for suffix in self.companions:
                    if os.path.lexists(self.target + suffix):
                        self._keep(self.target + suffix, aside + suffix)
            except FileExistsError:
                for _original, kept in reversed(self._moved):
                    os.unlink(kept)
                self._moved = []
                continue
            return aside
        raise RestoreError("could not find a free name to keep the previous data of %s aside after %d attempts; "
                           "the live data was not touched: remove old %s* files there" % (
                               self.target, ASIDE_ATTEMPTS, os.path.basename(self.target) + ASIDE_MARK))

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
            self.aside = self._keep_all()
        for suffix in self.companions:
            companion = self.target + suffix
            if os.path.lexists(companion):
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


def sweep_unheld(directory, prefix, older_than, open_entry, remove):
    """Remove the entries named `prefix`* in `directory` that a killed run left (SIGKILL, power loss). A live run
    holds an flock on its entry, so only entries nobody holds and last changed before `older_than` (the start of
    this run) go. `open_entry(path)` opens one without following a symlink (OSError: not ours, left alone);
    `remove(path)` deletes it. Best effort: an entry that cannot be removed is tried again by a later run.
    Returns the removed paths."""
    removed = []
    try:
        names = [name for name in os.listdir(directory) if name.startswith(prefix)]
    except OSError:
        return removed
    for name in names:
        candidate = os.path.join(directory, name)
        try:
            fd = open_entry(candidate)
        except OSError:
            continue
        try:
            if os.fstat(fd).st_mtime >= older_than:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live run holds it
            remove(candidate)
            removed.append(candidate)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed
