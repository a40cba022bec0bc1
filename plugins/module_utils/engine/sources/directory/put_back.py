"""Directory put-back: undo a restore whose tree was rejected (a failed health check) from the tree the restore
kept aside (<target>.lifeboat-prev-<UTC time>[-<hex>], its `previous`). The rejected tree is renamed aside, the kept
one renamed back, then the rejected one removed (without following symlinks). Only renames of these exact names;
a symlinked kept copy is refused. `previous` is untrusted: checked against the target."""

import os
import secrets
import stat

from ...core.errors import ConfigError, RestoreError
from ...core.files import fsync_dir, stat_kept_aside
from ...core.naming import utcnow
from .extract import remove_tree


def rejected_name(target):
    """A free name for the rejected tree: <target>.lifeboat-failed-<UTC time>-<hex>."""
    return "%s.lifeboat-failed-%s-%s" % (target, utcnow().strftime("%Y%m%dT%H%M%SZ"), secrets.token_hex(4))


def put_back_directory(target, previous, check_mode=False):
    """Put the tree kept at `previous` back at `target` (absolute, normalised). Returns {'status', 'restored_to',
    'previous', 'removed' (where the rejected tree went before it was removed), 'changed'} and 'warnings' when
    the rejected tree could not be removed."""
    stat_kept_aside(target, previous, stat.S_ISDIR, "a directory")
    present = os.path.lexists(target)
    if present and not stat.S_ISDIR(os.lstat(target).st_mode):
        raise ConfigError("%s is not a directory; nothing was changed" % target)
    rejected = rejected_name(target) if present else None
    if rejected and os.path.lexists(rejected):
        raise RestoreError("%s exists already; nothing was changed: run the put-back again" % rejected)
    result = {"status": "ok", "restored_to": target, "previous": previous, "removed": [rejected] if rejected else [],
              "changed": True}
    if check_mode:
        return result
    parent = os.path.dirname(target)
    if rejected:
        try:
            os.rename(target, rejected)
        except OSError as exc:
            raise RestoreError("moving the restored tree %s aside to %s failed (%s); nothing was changed: the "
                               "previous tree is still at %s" % (target, rejected, exc.strerror or exc, previous))
    try:
        os.rename(previous, target)
    except OSError as exc:
        if rejected:
            try:
                os.rename(rejected, target)
            except OSError as back:
                raise RestoreError("renaming %s back to %s failed (%s), and so did renaming the restored tree %s "
                                   "back (%s): %s is missing; rename one of them to it by hand" % (
                                       previous, target, exc.strerror or exc, rejected, back.strerror or back,
                                       target))
        raise RestoreError("renaming %s back to %s failed (%s); the restored tree is still at %s and the previous "
                           "one at %s" % (previous, target, exc.strerror or exc, target, previous))
    fsync_dir(parent)
    if rejected:
        try:
            remove_tree(rejected)
        except OSError as exc:
            result["removed"] = []
            result["warnings"] = ["%s is back; removing the rejected tree %s failed (%s): remove it by hand" % (
                target, rejected, exc)]
    return result
