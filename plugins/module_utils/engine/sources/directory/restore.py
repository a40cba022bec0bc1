"""Directory restore: the set is extracted into a new staging directory beside the target with the hardened
extractor (extract.py), verified against its manifest, then swapped into place, keeping the previous tree aside
(or removing it). On any failure the live tree is as it was and no staging remains."""

import contextlib
import os
import time

from ...core.errors import ConfigError, RestoreError
from ...core.files import aside_name, fsync_dir
from ...pipeline.restore import find_set, set_result
from .archive import LIST_LIMIT
from .extract import Extractor, extract_set, make_staging, remove_tree, verify_tree


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
    staging, root_fd = make_staging(target, parent, tmp_dir, check_mode, started)
    placed = False
    try:
        extractor = Extractor(root_fd, numeric_owner, keep_setuid)
        extract_set(repository, job, backup_set, identity_file, extractor, staging)
        result["verification"] = verify_tree(staging, extractor, backup_set.manifest)
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
