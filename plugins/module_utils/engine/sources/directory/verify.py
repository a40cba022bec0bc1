"""Test restore of a directory set: extracted into a private staging directory in scratch with dir_restore's own
hardened extractor (extract.py: no member outside the staging tree, no symlink followed, setuid/setgid
stripped, every directory 0700 and ours while it is checked), then compared with the manifest (files,
directories, symlinks, bytes; integrity_check and row counts of the SQLite files it records), and
``PRAGMA integrity_check`` run on every other SQLite file found in the tree (a ChromaDB store snapshot made with
``sqlite: false``, or a set whose manifest leaves one out). The staging tree is removed afterwards.

The tar stream is read once: members are extracted as they arrive and the sha256 is compared at its end, before
any check of the tree runs. Nothing of the set reaches a server or a shell.
"""

import contextlib
import os
import stat
import time

from ...core.errors import IntegrityError
from ..sqlite.snapshot import inspect
from .extract import Extractor, extract_set, make_staging, remove_tree, verify_tree
from .snapshot import is_sqlite

COUNTED = (("files", "file_count"), ("total_bytes", "bytes"), ("directories", "directories"),
           ("symlinks", "symlinks"))


def _sqlite_files(staging):
    """Relative paths of the regular files below `staging` that start with the SQLite header (no symlink is
    followed: os.walk does not descend into symlinked directories and each file is lstat'ed)."""
    found = []
    for root, _dirs, names in os.walk(staging, followlinks=False):
        for name in names:
            full = os.path.join(root, name)
            try:
                if stat.S_ISREG(os.lstat(full).st_mode) and is_sqlite(full):
                    found.append(os.path.relpath(full, staging))
            except OSError:
                continue
    return sorted(found)


def test_restore(repository, job, backup_set, identity_file, scratch_dir, options):
    manifest = backup_set.manifest
    expected = manifest.get("verification") or {}
    where = "set %s of job %s" % (backup_set.set_id, job)
    # dir_restore's own steps in check mode (extract.py), so the extraction is exactly as hardened
    staging, root_fd = make_staging(None, None, scratch_dir, True, time.time())
    try:
        extractor = Extractor(root_fd)
        extract_set(repository, job, backup_set, identity_file, extractor, staging)
        counts = extractor.counts
        report = {"checked": {label: {"expected": expected.get(key), "actual": counts[key]}
                              for key, label in COUNTED}, "tree": dict(counts)}
        try:
            verification = verify_tree(staging, extractor, manifest)
        except IntegrityError as exc:
            raise IntegrityError("%s does not restore as recorded: %s" % (where, exc.msg.replace(
                "; the live directory was not touched", "")), report=report)
        recorded = set(verification.get("sqlite") or {})
        sqlite_checked = dict((name, "ok") for name in recorded)
        for rel in _sqlite_files(staging):
            if rel in recorded:
                continue
            result = inspect(os.path.join(staging, rel), immutable=True)
            sqlite_checked[rel] = result["integrity_check"]
            if result["integrity_check"] != "ok":
                report["checked"]["sqlite"] = sqlite_checked
                raise IntegrityError("SQLite file %s of %s fails integrity_check (%s) although the set's sha256 "
                                     "matches: do not rely on this set" % (rel, where, result["integrity_check"]),
                                     report=report)
        report["checked"]["sqlite"] = sqlite_checked
        report["sqlite_files"] = len(sqlite_checked)
        return report
    finally:
        os.close(root_fd)
        with contextlib.suppress(OSError):
            remove_tree(staging)
