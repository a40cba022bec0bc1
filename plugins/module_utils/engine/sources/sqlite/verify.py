"""Test restore of a SQLite set: the database written into a private scratch file, PRAGMA integrity_check on it
and its row counts against the manifest's. The scratch file (and any -wal/-shm/-journal) is removed afterwards."""

import contextlib
import os
import tempfile

from ...core.errors import IntegrityError
from ...pipeline.restore import fetch_to_file
from .snapshot import COMPANIONS, inspect


def test_restore(repository, job, backup_set, identity_file, scratch_dir, options):
    manifest = backup_set.manifest
    fd, scratch = tempfile.mkstemp(prefix="lifeboat-verify-", suffix=".db", dir=scratch_dir)
    try:
        with os.fdopen(fd, "wb") as handle:
            total = fetch_to_file(repository, job, backup_set, handle, identity_file)  # sha256 checked at its end
        checked = inspect(scratch, immutable=True)
    finally:
        for suffix in ("",) + COMPANIONS:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(scratch + suffix)
    report = {"raw_size": total, "integrity_check": checked["integrity_check"], "row_counts": checked["row_counts"],
              "checked": {"integrity_check": checked["integrity_check"]}}
    if checked["integrity_check"] != "ok":
        problem = checked["integrity_check"]
        raise IntegrityError("set %s of job %s decodes to a SQLite database that fails integrity_check (%s): do "
                             "not rely on it; restore another set" % (backup_set.set_id, job, problem), report=report)
    expected = (manifest.get("verification") or {}).get("row_counts")
    if expected is not None:
        report["checked"]["row_counts"] = {"expected": expected, "actual": checked["row_counts"]}
        report["row_counts_match"] = expected == checked["row_counts"]
        if not report["row_counts_match"]:
            raise IntegrityError("set %s of job %s restores with row counts %s but its manifest recorded %s"
                                 % (backup_set.set_id, job, checked["row_counts"], expected), report=report)
    return report
