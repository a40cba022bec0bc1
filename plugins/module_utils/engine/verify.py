"""Verifying a stored set without touching live data: download, sha256 against the manifest, decrypt,
decompress, and per kind: SQLite a test restore into a scratch file (integrity_check, row counts),
PostgreSQL the archive's table of contents read by pg_restore (no server needed)."""

import contextlib
import os
import shutil
import tempfile

from . import postgres as postgres_kind
from . import sqlite as sqlite_kind
from .catalog import locate
from .errors import IntegrityError, LifeboatError
from .repository import Repository
from .restore import fetch_to_file, open_set, set_result
from .streams import iter_chunks


def _stream_check(repository, job, backup_set, identity_file):
    """Decode the whole set; VerifiedReader raises on sha256/size mismatch. Returns decoded bytes."""
    total = 0
    with open_set(repository, job, backup_set, identity_file) as reader:
        for chunk in iter_chunks(reader):
            total += len(chunk)
    return total


def _sqlite_check(repository, job, backup_set, identity_file, scratch_dir):
    """Test restore into scratch: the database must pass integrity_check and match the manifest's row counts."""
    manifest = backup_set.manifest
    fd, scratch = tempfile.mkstemp(prefix="lifeboat-verify-", suffix=".db", dir=scratch_dir)
    try:
        with os.fdopen(fd, "wb") as handle:
            total = fetch_to_file(repository, job, backup_set, handle, identity_file)
        checked = sqlite_kind.inspect(scratch, immutable=True)
    finally:
        for suffix in ("",) + sqlite_kind.COMPANIONS:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(scratch + suffix)
    report = {"raw_size": total, "integrity_check": checked["integrity_check"], "row_counts": checked["row_counts"]}
    if checked["integrity_check"] != "ok":
        problem = checked["integrity_check"]
        raise IntegrityError("set %s of job %s decodes to a SQLite database that fails integrity_check (%s): do "
                             "not rely on it; restore another set" % (backup_set.set_id, job, problem), report=report)
    expected = (manifest.get("verification") or {}).get("row_counts")
    if expected is not None:
        report["row_counts_match"] = expected == checked["row_counts"]
        if not report["row_counts_match"]:
            raise IntegrityError("set %s of job %s restores with row counts %s but its manifest recorded %s"
                                 % (backup_set.set_id, job, checked["row_counts"], expected), report=report)
    return report


def verify_set(repository, job, backup="latest", before=None, identity_file=None, scratch_dir=None,
               all_copies=True):
    """Verify one set (latest by default) in every repository holding it complete (or only the first).

    Returns {"backup": ..., "verification": {...}}; raises IntegrityError naming each failed copy."""
    backup_set = locate(repository, job, backup, before)
    manifest = backup_set.manifest
    if scratch_dir and not os.path.isdir(scratch_dir):
        raise LifeboatError("scratch_dir %s does not exist" % scratch_dir)
    stores = [store for store in repository.stores if store.name in backup_set.complete_in()]
    if not all_copies:
        stores = stores[:1]
    copies = {}
    failures = {}
    report = {"status": None, "size": manifest["size"], "raw_size": manifest.get("raw_size"),
              "kind": manifest["kind"], "encrypted": bool(manifest.get("encryption"))}
    for index, store in enumerate(stores):
        single = Repository([store])
        try:
            if manifest["kind"] == "sqlite" and index == 0:
                report.update(_sqlite_check(single, job, backup_set, identity_file, scratch_dir))
                report["test_restore"] = "ok"
            elif manifest["kind"] == "postgres" and index == 0 and shutil.which("pg_restore"):
                report.update(postgres_kind.inspect_set(single, job, backup_set, identity_file))
            else:
                _stream_check(single, job, backup_set, identity_file)
            copies[store.name] = "ok"
        except LifeboatError as exc:
            copies[store.name] = exc.msg
            failures[store.name] = exc.msg
            report.update(exc.details.get("report") or {})
    report["copies"] = copies
    report["status"] = "ok" if not failures else "failed"
    result = {"backup": set_result(repository, job, backup_set), "verification": report}
    if failures:
        raise IntegrityError("verification of set %s of job %s failed: %s" % (
            backup_set.set_id, job, "; ".join("%s: %s" % item for item in sorted(failures.items()))), **result)
    return result
