"""Verifying a stored set without touching live data: download, sha256 against the manifest, decrypt,
decompress, and a test restore of the kind into scratch, checked against what the manifest recorded.

The test restore is the kind's verify hook (kinds.verify_hook: sources/<kind>/verify.py), run on the first copy;
every further copy is checked by sha256 and decoding. Modes: ``full`` (the test restore, the default), ``list``
(for a kind whose verify module names it in MODES, a check that needs no scratch server, such as reading the
archive's table of contents; other kinds: as decode) and ``decode`` (sha256 and decoding only). The wall time of
the first copy's check is reported as ``restore_seconds``: the RTO estimate.
"""

import os
import shutil
import tempfile
import time

from ..sources import kinds
from .catalog import locate
from ..core.errors import ConfigError, IntegrityError, LifeboatError
from .options import VERIFY_MODES
from ..repositories.repository import Repository
from .restore import open_set, set_result
from ..core.streams import iter_chunks

MODES = VERIFY_MODES  # (defined with the other verify settings in options.py)
FREE_SPACE_MARGIN = 1.10  # a test restore needs the set's raw size plus 10%


class NoSpaceError(LifeboatError):
    """The scratch directory has less free space than the test restore needs."""


def stream_check(repository, job, backup_set, identity_file):
    """Decode the whole set; VerifiedReader raises on sha256/size mismatch. Returns decoded bytes."""
    total = 0
    with open_set(repository, job, backup_set, identity_file) as reader:
        for chunk in iter_chunks(reader):
            total += len(chunk)
    return total


def check_free_space(scratch_dir, raw_size, min_free_mb=None):
    """Refuse to start when `scratch_dir` has less room than the test restore needs: `min_free_mb` when given, else
    the set's raw size plus 10%. Returns {'free_bytes', 'needed_bytes'}."""
    if min_free_mb is not None:
        needed = int(min_free_mb) * 1024 * 1024
        why = "--min-free-mb / min_free_mb %d" % int(min_free_mb)
    else:
        needed = int((raw_size or 0) * FREE_SPACE_MARGIN)
        why = "the set's raw size %d bytes plus 10%%" % (raw_size or 0)
    free = shutil.disk_usage(scratch_dir).free
    if free < needed:
        raise NoSpaceError("not enough free space in the scratch directory %s for the test restore: %d MiB free, "
                           "%d MiB needed (%s); nothing was verified. Free space there, point --scratch-dir (the "
                           "job's verify.scratch_dir) at a larger file system, or set --min-free-mb"
                           % (scratch_dir, free // (1024 * 1024), -(-needed // (1024 * 1024)), why),
                           free_bytes=free, needed_bytes=needed)
    return {"free_bytes": free, "needed_bytes": needed}


def _first_copy(store, job, backup_set, identity_file, scratch_dir, options, mode, report):
    """The kind's test restore (mode full, or another mode the kind takes: kinds.verify_modes) or a decode of the
    first copy."""
    kind = backup_set.manifest["kind"]
    single = Repository([store])
    if mode == "decode" or (mode != "full" and mode not in kinds.verify_modes(kind)):
        report["raw_size"] = stream_check(single, job, backup_set, identity_file)
        report["test_restore"] = "skipped: mode %s%s" % (mode, "" if mode == "decode" else
                                                         " is not one the test restore of kind %s takes, so the set "
                                                         "was only decoded" % kind)
        return
    hook = kinds.verify_hook(kind)
    result = hook(single, job, backup_set, identity_file, scratch_dir, dict(options, mode=mode))
    report.update(result)
    report.setdefault("test_restore", "ok")


def verify_set(repository, job, backup="latest", before=None, identity_file=None, scratch_dir=None,
               all_copies=True, options=None, min_free_mb=None, check_space=True):
    """Verify one set (latest by default) in every repository holding it complete (or only the first).

    `options`: ``mode`` (full | list | decode) and what the kinds' test restores take, under the kind's name
    (such as the login options of a scratch database server, or ``redis_server_bin``) or at the top
    (``allow_functions``...).
    Returns {"backup": ..., "verification": {...}}; raises IntegrityError naming each failed copy."""
    options = dict(options or {})
    mode = options.get("mode") or "full"
    if mode not in MODES:
        raise ConfigError("verify mode must be one of %s, not %r" % (", ".join(MODES), mode))
    if scratch_dir and not os.path.isdir(scratch_dir):
        raise ConfigError("scratch_dir %s does not exist: create it or choose another directory" % scratch_dir)
    backup_set = locate(repository, job, backup, before)
    manifest = backup_set.manifest
    scratch_dir = scratch_dir or tempfile.gettempdir()
    report = {"status": None, "size": manifest["size"], "raw_size": manifest.get("raw_size"),
              "kind": manifest["kind"], "encrypted": bool(manifest.get("encryption")), "mode": mode,
              "scratch_dir": scratch_dir, "restore_seconds": None, "checked": {}}
    stages_to_scratch = mode == "full" and kinds.verify_stages_to_scratch(manifest["kind"])
    if check_space and (stages_to_scratch or min_free_mb is not None):
        report["scratch_space"] = check_free_space(scratch_dir, manifest.get("raw_size"), min_free_mb)
    stores = [store for store in repository.stores if store.name in backup_set.complete_in()]
    if not all_copies:
        stores = stores[:1]
    copies = {}
    failures = {}
    for index, store in enumerate(stores):
        started = time.monotonic()
        try:
            if index == 0:
                _first_copy(store, job, backup_set, identity_file, scratch_dir, options, mode, report)
            else:
                stream_check(Repository([store]), job, backup_set, identity_file)
            copies[store.name] = "ok"
        except LifeboatError as exc:
            copies[store.name] = exc.msg
            failures[store.name] = exc.msg
            report.update(exc.details.get("report") or {})
            if index == 0:
                report["test_restore"] = exc.msg
        finally:
            if index == 0:
                report["restore_seconds"] = round(time.monotonic() - started, 3)
    report["copies"] = copies
    report["status"] = "ok" if not failures else "failed"
    result = {"backup": set_result(repository, job, backup_set), "verification": report}
    if failures:
        raise IntegrityError("verification of set %s of job %s failed: %s" % (
            backup_set.set_id, job, "; ".join("%s: %s" % item for item in sorted(failures.items()))), **result)
    return result
