"""Test restore of a PostgreSQL set into a scratch database, dropped afterwards whatever happened.

Order (a set is untrusted input): the archive is staged into a private file in the scratch directory and its
sha256 checked at the end of that read; only then is a database created (``lifeboat_verify_<job>_<time>_<random>``,
on the job's own server or the one the verify options name) and the staged archive handed to pg_restore alone
(one transaction, --no-owner --no-acl: no ownership or grants to other roles). pg_restore sends SQL to the server
and has no meta-commands; no psql reads any of the set, and the globals of a bundle are never applied. The row
counts of the scratch database are compared with the manifest's ``verification.row_counts`` (tables in
``row_counts_skipped`` left out). Mode ``list`` only reads the archive's table of contents (no server).

A verify killed outright (SIGKILL, a host reboot) cannot drop its scratch database. Each full verify therefore
first drops the scratch databases of that server that are older than any verify can run (their name carries their
creation time) and that nobody is connected to: a leak lasts a day, not forever.
"""

import contextlib
import datetime
import os
import re
import secrets
import tempfile

from ...core.errors import ConfigError, IntegrityError, LifeboatError, ToolError
from ...core.naming import UTC, utcnow
from ...core.process import run_tool
from ...pipeline.restore import open_set
from ...core.streams import pump
from .archive import ArchiveReader, inspect_set
from .connection import MAX_IDENTIFIER, Connection, PostgresError, quote_ident
from .options import CONNECTION_KEYS
from .queries import ROW_COUNTS_SQL
from .restore import create_database_sql

# The verify modes test_restore takes (kinds.verify_modes): list reads the archive's table of contents, no server.
MODES = ("full", "list")
SCRATCH_PREFIX = "lifeboat_verify_"
RESTORE_TIMEOUT = 24 * 3600
# Older than this, a scratch database belongs to no running verify: pg_restore is bounded by RESTORE_TIMEOUT and
# the row counts by psql's 10 minutes; an hour more covers clocks and the rest.
STALE_AFTER = datetime.timedelta(seconds=RESTORE_TIMEOUT + 3600)
SCRATCH_TIME_FORMAT = "%Y%m%d%H%M%S"
SCRATCH_RE = re.compile(r"lifeboat_verify_[a-z0-9_]*_([0-9]{14})_[0-9a-f]{8}")
# the scratch databases of this server nobody is connected to (the ones in use are never listed)
IDLE_SCRATCH_SQL = ("SELECT coalesce(json_agg(d.datname ORDER BY d.datname), '[]') FROM pg_database d "
                    "WHERE d.datname LIKE 'lifeboat\\_verify\\_%' "
                    "AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)")


def scratch_database_name(job, now=None):
    """lifeboat_verify_<job>_<UTC time>_<8 hex>, within PostgreSQL's 63 bytes (the job part shortened, lowercased);
    the time lets a later verify tell a database left by a killed verify from one in use."""
    suffix = "_%s_%s" % ((now or utcnow()).strftime(SCRATCH_TIME_FORMAT), secrets.token_hex(4))
    part = re.sub(r"[^a-z0-9_]", "_", job.lower())[:MAX_IDENTIFIER - len(SCRATCH_PREFIX) - len(suffix)]
    return SCRATCH_PREFIX + part + suffix


def is_stale_scratch(name, now):
    """Whether `name` is a scratch database of ours created more than STALE_AFTER before `now`."""
    match = SCRATCH_RE.fullmatch(name)
    if not match:
        return False
    try:
        created = datetime.datetime.strptime(match.group(1), SCRATCH_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return False
    return created < now - STALE_AFTER


def sweep_stale_scratch(connection, report):
    """Drop the scratch databases killed verifies left on this server (is_stale_scratch, nobody connected);
    what was dropped goes to report["swept_scratch_databases"], what could not to its warnings."""
    try:
        idle = connection.query_json(IDLE_SCRATCH_SQL, doing="list the scratch databases of earlier verifies") or []
    except LifeboatError as exc:
        report.setdefault("warnings", []).append("the scratch databases of earlier verifies could not be listed "
                                                 "(%s); look for lifeboat_verify_* databases by hand" % exc.msg)
        return
    now = utcnow()
    for name in idle:
        if not isinstance(name, str) or not is_stale_scratch(name, now):
            continue
        problem = _drop_problem(connection, name)
        if problem:
            report.setdefault("warnings", []).append(problem)
        else:
            report.setdefault("swept_scratch_databases", []).append(name)


def compare_row_counts(expected, skipped, actual):
    """{table: {'expected', 'actual'}} of the tables whose restored count differs from the manifest's."""
    skipped = skipped if isinstance(skipped, dict) else {}
    return {name: {"expected": count, "actual": actual.get(name)} for name, count in sorted(expected.items())
            if name not in skipped and actual.get(name) != count}


def _expected_counts(manifest, where):
    checks = manifest.get("verification") or {}
    counts = checks.get("row_counts") if isinstance(checks, dict) else None
    if counts is None:
        return None, {}
    if not isinstance(counts, dict) or not all(isinstance(name, str) and isinstance(value, int)
                                               and not isinstance(value, bool) for name, value in counts.items()):
        raise IntegrityError("the manifest of %s is corrupted (verification.row_counts is not a count per table): "
                             "restore another set" % where)
    return counts, checks.get("row_counts_skipped") or {}


def _list_mode(repository, job, backup_set, identity_file, options):
    report = inspect_set(repository, job, backup_set, identity_file, pg_bin_dir=options.get("pg_bin_dir"))
    report["checked"] = {"toc_entries": report["toc_entries"], "tables": report["tables"]}
    report["test_restore"] = "skipped: mode list reads the archive's table of contents only (no data was loaded)"
    return report


def _stage(repository, job, backup_set, identity_file, scratch_dir, where):
    """The archive (a bundle's globals dropped) in a private scratch file; sha256 checked at the end of the read."""
    fd, staged = tempfile.mkstemp(prefix="lifeboat-verify-", suffix=".pgdump", dir=scratch_dir)
    try:
        with os.fdopen(fd, "wb") as handle:
            with open_set(repository, job, backup_set, identity_file) as reader:
                archive = ArchiveReader(reader, where)
                pump(archive, handle)  # reads to the end of the set, where VerifiedReader compares the sha256
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged)
        raise
    return staged


def _create(connection, name, manifest):
    encoding = (manifest.get("source") or {}).get("encoding")
    encoding = encoding if isinstance(encoding, str) and re.match(r"^[A-Za-z0-9_]{1,32}$", encoding) else None
    try:
        connection.query(create_database_sql(name, encoding), doing="create the scratch database %s" % name)
    except PostgresError as exc:
        if "does not match locale" not in exc.msg and "incompatible with the locale" not in exc.msg:
            raise
        connection.query(create_database_sql(name, encoding, locale_c=True),
                         doing="create the scratch database %s" % name)


def _drop_problem(connection, name):
    """Drop the scratch database `name`; None when it is gone, else the warning that says to drop it by hand."""
    try:
        connection.query("DROP DATABASE IF EXISTS %s" % quote_ident(name),
                         doing="drop the scratch database %s" % name)
        return None
    except LifeboatError as exc:
        return ("the scratch database %s on PostgreSQL at %s could not be dropped (%s): drop it by hand"
                % (name, connection.target(), exc.msg))


def _drop(connection, name, report):
    problem = _drop_problem(connection, name)
    report["scratch_database_dropped"] = problem is None
    if problem:
        report.setdefault("warnings", []).append(problem)


def test_restore(repository, job, backup_set, identity_file, scratch_dir, options):
    """Options: ``mode`` (full | list), ``postgres`` (login_* of the scratch server; default the job's own)."""
    login = dict(options.get("postgres") or {})
    unknown = sorted(set(login) - set(CONNECTION_KEYS))
    if unknown:
        raise ConfigError("verify.postgres has unknown option(s) %s (known: %s)"
                          % (", ".join(unknown), ", ".join(CONNECTION_KEYS)))
    if options.get("mode") == "list":
        return _list_mode(repository, job, backup_set, identity_file, login)
    manifest = backup_set.manifest
    where = "set %s of job %s" % (backup_set.set_id, job)
    expected, skipped = _expected_counts(manifest, where)
    connection = Connection.from_options(login)
    staged = _stage(repository, job, backup_set, identity_file, scratch_dir, where)
    name = scratch_database_name(job)
    report = {"scratch_database": name, "scratch_server": connection.target(), "globals_applied": False}
    try:
        sweep_stale_scratch(connection, report)
        _create(connection, name, manifest)
        try:
            argv = connection.restore_argv(name, jobs=1, no_owner=True, input_file=staged)
            try:
                run_tool(argv, "pg_restore of %s into the scratch database %s" % (where, name), env=connection.env(),
                         timeout=RESTORE_TIMEOUT)
            except ToolError as exc:
                if "not installed" in exc.msg:
                    raise
                raise IntegrityError("%s does not restore: pg_restore into the scratch database %s on PostgreSQL at "
                                     "%s failed although the sha256 matches (%s); do not rely on this set"
                                     % (where, name, connection.target(), exc.msg[-1500:]), report=report)
            actual = connection.query_json(ROW_COUNTS_SQL, name, "count rows in %s" % name) or {}
            actual = {key: int(value) for key, value in actual.items()}
        finally:
            _drop(connection, name, report)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged)
    report["row_counts"] = actual
    if expected is None:
        report["checked"] = {"row_counts": "not recorded in the manifest (made with verify: false)"}
        return report
    mismatches = compare_row_counts(expected, skipped, actual)
    report["checked"] = {"row_counts": {"expected": {k: v for k, v in expected.items() if k not in skipped},
                                        "actual": {k: actual.get(k) for k in sorted(expected) if k not in skipped}},
                         "row_counts_skipped": sorted(skipped)}
    report["row_counts_match"] = not mismatches
    if mismatches:
        raise IntegrityError("%s restores into a scratch database with row counts that differ from its manifest "
                             "(table: expected / restored) %s; the scratch database was dropped. Do not rely on this "
                             "set: restore another one and find out why" % (where, ", ".join(
                                 "%s: %s / %s" % (k, v["expected"], v["actual"]) for k, v in mismatches.items())),
                             report=report)
    return report
