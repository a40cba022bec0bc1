"""lifeboat: the scheduled runner. Runs the job files in <config dir>/jobs/ with the same engine as the modules.

Installed on hosts by the schedule role as /opt/lifeboat/lib/lifeboat_engine/ and started as
``python3 -m lifeboat_engine.cli`` (wrapper /usr/local/bin/lifeboat). Exit status: 0 ok, 1 failure,
2 usage or configuration error, 75 (EX_TEMPFAIL) another run of the job holds its lock.
"""

import argparse
import contextlib
import fcntl
import json
import os
import signal
import sys
import threading
import time
import traceback

from . import audit, jobs, metrics, notify

from ..sources import kinds
from ..pipeline.backup import Progress, is_partial_failure, run_backup
from ..pipeline.catalog import list_sets
from ..core.errors import ConfigError, LifeboatError
from ..core.manifest import ENGINE_VERSION
from ..core.naming import format_time, utcnow, validate_job
from ..repositories.repository import Repository
from ..pipeline.retention import apply_retention
from ..pipeline.verify import POSTGRES_LOGIN_KEYS, verify_set

EX_OK = 0
EX_FAILURE = 1
EX_USAGE = 2
EX_TEMPFAIL = 75
DEFAULT_CONFIG_DIR = "/etc/lifeboat"
DEFAULT_STATE_DIR = "/var/lib/lifeboat"
LOCKS_DIR = "locks"
AUDITED = ("run", "prune", "verify", "restore")


class Busy(Exception):
    """Another process holds the job's lock."""


def human(size):
    size = float(size or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return ("%d %s" if unit == "B" else "%.1f %s") % (size, unit)
        size /= 1024.0
    return "%d B" % size  # pragma: no cover


class Console(object):
    """Messages on stderr: bare on a terminal, with a UTC timestamp otherwise (cron, systemd, pipes)."""

    def __init__(self, quiet=False, stream=None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self.job = None

    def _write(self, level, message):
        if self.tty:
            line = "lifeboat: %s%s" % ("" if level == "info" else level + ": ", message)
        else:
            line = "%s lifeboat[%d] %s%s %s" % (format_time(utcnow())[:19] + "Z", os.getpid(), level,
                                                " job=%s" % self.job if self.job else "", message)
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def info(self, message):
        if not self.quiet:
            self._write("info", message)

    def warn(self, message):
        self._write("warning", message)

    def error(self, message):
        self._write("error", message)


class TerminalProgress(Progress):
    """Stage, bytes and rate on one refreshed terminal line."""

    def __init__(self, stream, interval=0.25):
        self.stream = stream
        self.interval = interval
        self._stage = None
        self._started = time.monotonic()
        self._shown = 0.0
        self._open = False

    def stage(self, name):
        self._stage = name
        self._draw(0, force=True)

    def advance(self, stored_bytes):
        self._draw(stored_bytes)

    def _draw(self, stored_bytes, force=False):
        now = time.monotonic()
        if not force and now - self._shown < self.interval:
            return
        self._shown = now
        elapsed = max(now - self._started, 1e-6)
        text = "  %-7s %10s stored" % (self._stage or "", human(stored_bytes)) if stored_bytes else \
            "  %-7s" % (self._stage or "")
        if stored_bytes:
            text += "  %s/s  %ds" % (human(stored_bytes / elapsed), int(elapsed))
        self.stream.write("\r\033[K" + text)
        self.stream.flush()
        self._open = True

    def finish(self):
        if self._open:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._open = False


class LogProgress(Progress):
    """Plain log lines: each stage, and the bytes stored so far every `interval` seconds."""

    def __init__(self, console, interval=60.0):
        self.console = console
        self.interval = interval
        self._last = time.monotonic()
        self._started = self._last

    def stage(self, name):
        self.console.info("stage %s" % name)

    def advance(self, stored_bytes):
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self.console.info("%s stored so far (%s/s)" % (human(stored_bytes),
                                                           human(stored_bytes / max(now - self._started, 1e-6))))

    def finish(self):
        pass


class JobLock(object):
    """Non-blocking exclusive flock on <state dir>/locks/<job>.lock, holding the owner's pid."""

    def __init__(self, state_dir, job):
        self.path = os.path.join(state_dir, LOCKS_DIR, "%s.lock" % job)
        self.job = job
        self._fd = None

    def acquire(self):
        audit.ensure_dir(os.path.dirname(self.path))
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (BlockingIOError, PermissionError):
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            raise Busy("another run of job %s holds %s%s: nothing done; this run exits with %d" % (
                self.job, self.path, " (pid %s)" % holder if holder else "", EX_TEMPFAIL))
        os.ftruncate(fd, 0)
        os.write(fd, ("%d\n" % os.getpid()).encode("ascii"))
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()


class Context(object):
    def __init__(self, args):
        self.config_dir = getattr(args, "config_dir", None) or os.environ.get("LIFEBOAT_CONFIG_DIR") or \
            DEFAULT_CONFIG_DIR
        self.state_dir = getattr(args, "state_dir", None) or os.environ.get("LIFEBOAT_STATE_DIR") or \
            DEFAULT_STATE_DIR
        self.quiet = bool(getattr(args, "quiet", False))
        self.json = bool(getattr(args, "json", False))
        self.console = Console(self.quiet)

    def progress(self):
        if self.quiet or self.json:
            return Progress()
        if self.console.tty:
            return TerminalProgress(self.console.stream)
        return LogProgress(self.console)

    def output(self, document):
        sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")
        sys.stdout.flush()

    def record(self, operation, job, status, started, set_id=None, size=None, error=None, notify_config=None,
               **extra):
        """Audit entry for the operation, then notifications; neither may mask the result."""
        document = audit.entry(operation, job, status, set_id=set_id, duration_seconds=time.monotonic() - started,
                               size=size, error=error, **extra)
        try:
            audit.append(self.state_dir, document)
        except OSError as exc:
            self.console.warn("cannot append to the audit log in %s: %s" % (self.state_dir, exc))
        if notify_config:
            for outcome in notify.send(notify_config, document, log=self.console.warn):
                if outcome["ok"]:
                    self.console.info("notified: %s" % outcome["channel"])
        return document


def _say(text):
    """A line of command output on stdout (tables, listings)."""
    sys.stdout.write(text + "\n")


def _unexpected(ctx, exc):
    ctx.console.error("unexpected %s: %s (this is a bug in lifeboat: please report it with the traceback)"
                      % (type(exc).__name__, exc))
    traceback.print_exc(file=sys.stderr)
    return "unexpected %s: %s" % (type(exc).__name__, exc)


def _code(exc):
    return EX_USAGE if isinstance(exc, ConfigError) else EX_FAILURE


def _repository(job, skip_damaged=False):
    return Repository.from_options(dest=job.get("dest"), s3=job.get("s3"), sftp=job.get("sftp"), ftp=job.get("ftp"),
                                   skip_damaged=skip_damaged)


def _report_skipped(ctx, result):
    """Damaged sets passed over (--skip-damaged) move from result["backup"] to result["skipped"], each warned
    about: a fallback is never silent."""
    backup = result.get("backup") or {}
    result["skipped"] = backup.pop("skipped", [])
    for entry in result["skipped"]:
        ctx.console.warn("skipped damaged set %s (skip_damaged) and used the older set %s instead: %s"
                         % (entry["id"], backup.get("id"), entry["error"]))
    return [entry["id"] for entry in result["skipped"]]


def _warn_damaged(ctx, result):
    for entry in result["kept"]:
        if entry["status"] == "invalid":
            ctx.console.warn("set %s is damaged and was left in place: %s" % (entry["id"], "; ".join(entry["reasons"])))


# --- commands -----------------------------------------------------------------------------------------------

def cmd_run(ctx, args):
    name = validate_job(args.job)
    with JobLock(ctx.state_dir, name):
        started = time.monotonic()
        job = jobs.load(ctx.config_dir, name)
        code, error, set_id, size, backup = EX_OK, None, None, None, None
        progress = ctx.progress()
        try:
            repository = _repository(job)
            module = kinds.load(job["kind"])
            source = module.source_from_options(dict(job))
            ctx.console.info("backup of job %s (%s) to %s" % (name, job["kind"], repository.describe()))
            backup = run_backup(source, repository, name, compression=job["compression"],
                                compression_level=job.get("compression_level"), encryption=job.get("encryption"),
                                tags=job.get("tags"), progress=progress, threads=job.get("compression_threads") or 0)
            set_id, size = backup["id"], backup["size"]
        except LifeboatError as exc:
            code, error = _code(exc), exc.msg
            if is_partial_failure(exc):
                set_id, size = exc.details["backup"]["id"], exc.details["backup"]["size"]
        except Exception as exc:  # pylint: disable=broad-except
            code, error = EX_FAILURE, _unexpected(ctx, exc)
        finally:
            finish = getattr(progress, "finish", None)
            if finish:
                finish()
        duration = time.monotonic() - started
        if code == EX_OK:
            ctx.console.info("set %s of job %s written: %s stored (%s raw) in %.1f s: %s" % (
                set_id, name, human(size), human(backup["manifest"]["raw_size"]), duration,
                ", ".join(sorted(backup["location"].values()))))
        else:
            ctx.console.error("backup of job %s failed: %s" % (name, error))
        if job.get("metrics_dir"):
            try:
                path = metrics.write_backup_metrics(
                    job["metrics_dir"], name, code == EX_OK, time.time(), duration, size, job.get("rpo_seconds"),
                    rto_seconds=job.get("rto_seconds"),
                    verify_objective_seconds=(job.get("verify_restore") or {}).get("objective"))
                ctx.console.info("metrics written to %s" % path)
            except OSError as exc:
                ctx.console.warn("cannot write metrics to %s: %s" % (job["metrics_dir"], exc))
        metrics.push_backup(name, job, code == EX_OK, duration, size, ctx.console)
        ctx.record("run", name, "ok" if code == EX_OK else "failed", started, set_id=set_id, size=size,
                   error=error, notify_config=job.get("notify"), kind=job["kind"])
        result = {"job": name, "status": "ok" if code == EX_OK else "failed", "backup": backup, "error": error}
        if code == EX_OK and job.get("retention") and job.get("prune_after_run"):
            prune_code, result["prune"] = _prune(ctx, job, dry_run=False)
            code = code or prune_code
        if ctx.json:
            ctx.output(result)
        return code


def _prune(ctx, job, dry_run):
    name = job["job"]
    started = time.monotonic()
    try:
        result = apply_retention(_repository(job), name, job["retention"], check_mode=dry_run)
        _warn_damaged(ctx, result)
    except LifeboatError as exc:
        ctx.console.error("retention of job %s failed: %s" % (name, exc.msg))
        ctx.record("prune", name, "failed", started, error=exc.msg, notify_config=job.get("notify"), dry_run=dry_run)
        return _code(exc), {"status": "failed", "error": exc.msg}
    except Exception as exc:  # pylint: disable=broad-except
        error = _unexpected(ctx, exc)
        ctx.record("prune", name, "failed", started, error=error, notify_config=job.get("notify"), dry_run=dry_run)
        return EX_FAILURE, {"status": "failed", "error": error}
    verb = "would remove" if dry_run else "removed"
    for entry in result["removed"]:
        ctx.console.info("%s set %s (%s, finished %s): %s" % (verb, entry["id"], entry["status"], entry["finished"],
                                                              "; ".join(entry["reasons"])))
    ctx.console.info("retention of job %s: kept %d set(s), %s %d (%s)" % (
        name, len(result["kept"]), verb, len(result["removed"]), human(result["freed_bytes"])))
    ctx.record("prune", name, "ok", started, size=result["freed_bytes"], notify_config=job.get("notify"),
               dry_run=dry_run, removed=[e["id"] for e in result["removed"]], kept=len(result["kept"]))
    return EX_OK, dict(result, status="ok")


def cmd_prune(ctx, args):
    name = validate_job(args.job)
    with JobLock(ctx.state_dir, name):
        job = jobs.load(ctx.config_dir, name)
        if not job.get("retention"):
            raise ConfigError("job %s has no retention object in its job file: add one, e.g. "
                              "\"retention\": {\"keep_daily\": 7, \"keep_weekly\": 4}" % name)
        code, result = _prune(ctx, job, dry_run=args.dry_run)
        if ctx.json:
            ctx.output(result)
        return code


def cmd_list(ctx, args):
    name = validate_job(args.job)
    job = jobs.load(ctx.config_dir, name)
    entries = [backup_set.to_dict() for backup_set in list_sets(_repository(job), name)]
    if ctx.json:
        ctx.output(entries)
        return EX_OK
    if not entries:
        _say("no sets for job %s" % name)
        return EX_OK
    _say("%-25s %-10s %-27s %10s  %s" % ("ID", "STATUS", "FINISHED", "SIZE", "IN"))
    for entry in entries:
        _say("%-25s %-10s %-27s %10s  %s" % (
            entry["id"], entry["status"], entry["finished"] or "-", human(entry["size"]),
            ",".join(entry["complete_in"]) or "-"))
    return EX_OK


def verify_options(job, mode=None):
    """What the kind's test restore takes, from the job file: the `verify` object (mode, postgres, redis) over the
    job's own connection options (the scratch PostgreSQL database goes on the job's own server unless
    verify.postgres names another) and allow_functions / allow_javascript from the job or its restore object."""
    settings = job.get("verify_restore") or {}
    postgres = {key: job[key] for key in POSTGRES_LOGIN_KEYS if job.get(key) not in (None, "")}
    postgres.update(settings.get("postgres") or {})
    options = {"mode": mode or settings.get("mode") or "full", "postgres": postgres,
               "redis": dict(settings.get("redis") or {})}
    for name in ("allow_functions", "allow_javascript"):
        allow = (job.get("restore") or {}).get(name, job.get(name))
        if allow is not None:
            options[name] = bool(allow)
    return options


def _verify_metrics(ctx, job, name, ok, report):
    metrics.push_verify(name, job, ok, report, ctx.console)
    if not job.get("metrics_dir"):
        return
    settings = job.get("verify_restore") or {}
    try:
        path = metrics.write_verify_metrics(job["metrics_dir"], name, ok, time.time(),
                                            restore_seconds=(report or {}).get("restore_seconds"),
                                            objective_seconds=settings.get("objective"),
                                            rpo_seconds=job.get("rpo_seconds"), rto_seconds=job.get("rto_seconds"))
        ctx.console.info("metrics written to %s" % path)
    except OSError as exc:
        ctx.console.warn("cannot write metrics to %s: %s" % (job["metrics_dir"], exc))


def _verify_audit(report):
    report = report or {}
    return {key: report.get(key) for key in ("restore_seconds", "mode", "test_restore")}


def _interrupted_by_sigterm(_signum, _frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def _cleanup_on_sigterm():
    """SIGTERM (systemd's stop, a timeout) as an interrupt while a test restore runs, so it still drops its scratch
    database and stops its scratch server on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupted_by_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_verify(ctx, args):
    """A test restore of a set into scratch. It takes no lock of the job: the backup's lock stays free, so a long
    verify never makes a backup skip (the schedule role runs it under a lock of its own, locks/verify/<job>.lock)."""
    with _cleanup_on_sigterm():
        return _verify(ctx, args)


def _verify(ctx, args):
    name = validate_job(args.job)
    job = jobs.load(ctx.config_dir, name)
    settings = job.get("verify_restore") or {}
    started = time.monotonic()
    min_free_mb = args.min_free_mb if args.min_free_mb is not None else settings.get("min_free_mb")
    try:
        result = verify_set(_repository(job, args.skip_damaged), name, backup=args.backup, before=args.before,
                            identity_file=(job.get("encryption") or {}).get("age_identity_file"),
                            scratch_dir=args.scratch_dir or settings.get("scratch_dir") or job.get("tmp_dir"),
                            all_copies=not args.first_copy, options=verify_options(job, args.mode),
                            min_free_mb=min_free_mb or None)
        skipped = _report_skipped(ctx, result)
    except LifeboatError as exc:
        ctx.console.error("verify of job %s failed: %s" % (name, exc.msg))
        backup = exc.details.get("backup") or {}
        report = exc.details.get("verification") or {}
        _verify_metrics(ctx, job, name, False, report)
        ctx.record("verify", name, "failed", started, set_id=backup.get("id"), size=backup.get("size"),
                   error=exc.msg, notify_config=job.get("notify"), **_verify_audit(report))
        if ctx.json:
            ctx.output({"status": "failed", "error": exc.msg, "backup": backup or None, "verification": report or None})
        return _code(exc)
    except Exception as exc:  # pylint: disable=broad-except
        error = _unexpected(ctx, exc)
        _verify_metrics(ctx, job, name, False, None)
        ctx.record("verify", name, "failed", started, error=error, notify_config=job.get("notify"))
        return EX_FAILURE
    backup, report = result["backup"], result["verification"]
    ctx.console.info("set %s of job %s verified (%s, mode %s): test restore %s in %.1f s; copies %s" % (
        backup["id"], name, backup["kind"], report["mode"], report.get("test_restore"),
        report.get("restore_seconds") or 0.0, ", ".join("%s %s" % item for item in sorted(report["copies"].items()))))
    for warning in report.get("warnings") or []:
        ctx.console.warn(warning)
    _verify_metrics(ctx, job, name, True, report)
    extra = _verify_audit(report)
    if skipped:
        extra["skipped"] = skipped
    ctx.record("verify", name, "ok", started, set_id=backup["id"], size=backup["size"],
               notify_config=job.get("notify"), **extra)
    if ctx.json:
        ctx.output(dict(result, status="ok"))
    return EX_OK


def cmd_restore(ctx, args):
    name = validate_job(args.job)
    job = jobs.load(ctx.config_dir, name)
    started = time.monotonic()
    set_id = None
    try:
        module = kinds.load(job["kind"])
        options = dict(job)
        options.update(job.get("restore") or {})
        options["backup"] = args.backup or "latest"
        options["before"] = args.before
        if args.to:
            options[kinds.restore_target(job["kind"], module)] = args.to
        skip_damaged = bool(args.skip_damaged or options.get("skip_damaged"))
        ctx.console.info("%srestore of job %s (%s, backup %s%s)" % (
            "dry-run " if args.dry_run else "", name, job["kind"], options["backup"],
            ", before %s" % args.before if args.before else ""))
        result = module.restore_from_options(_repository(job, skip_damaged), options, check_mode=args.dry_run)
        set_id = (result.get("backup") or {}).get("id")
        skipped = _report_skipped(ctx, result)
    except LifeboatError as exc:
        ctx.console.error("restore of job %s failed: %s" % (name, exc.msg))
        ctx.record("restore", name, "failed", started, error=exc.msg, notify_config=job.get("notify"),
                   dry_run=args.dry_run)
        if ctx.json:
            ctx.output(dict({"status": "failed", "error": exc.msg},
                            **({"damaged": exc.details["damaged"]} if exc.details.get("damaged") else {})))
        return _code(exc)
    except Exception as exc:  # pylint: disable=broad-except
        error = _unexpected(ctx, exc)
        ctx.record("restore", name, "failed", started, error=error, notify_config=job.get("notify"),
                   dry_run=args.dry_run)
        return EX_FAILURE
    ctx.console.info("%s set %s of job %s to %s%s" % (
        "verified (dry run, nothing changed)" if args.dry_run else "restored", set_id, name,
        result.get("restored_to"), "; previous data kept at %s" % result["previous"] if result.get("previous") else ""))
    for warning in result.get("warnings") or []:  # e.g. an ANALYZE that failed after a verified restore
        ctx.console.warn(warning)
    ctx.record("restore", name, "ok", started, set_id=set_id, size=(result.get("backup") or {}).get("size"),
               notify_config=job.get("notify"), dry_run=args.dry_run, restored_to=result.get("restored_to"),
               **({"skipped": skipped} if skipped else {}))
    if ctx.json:
        ctx.output(dict(result, status="ok"))
    return EX_OK


def cmd_jobs(ctx, args):
    rows = []
    code = EX_OK
    for name in jobs.names(ctx.config_dir):
        try:
            job = jobs.load(ctx.config_dir, name)
            rows.append({"job": name, "kind": job["kind"], "valid": True, "error": None,
                         "repository": _describe_repository(job), "retention": job.get("retention"),
                         "metrics_dir": job.get("metrics_dir")})
        except LifeboatError as exc:
            code = EX_USAGE
            rows.append({"job": name, "kind": None, "valid": False, "error": exc.msg})
    if ctx.json:
        ctx.output(rows)
        return code
    if not rows:
        _say("no job files in %s" % os.path.join(ctx.config_dir, jobs.JOBS_DIR))
    for row in rows:
        if row["valid"]:
            _say("%-24s %-10s %s" % (row["job"], row["kind"], row["repository"]))
        else:
            _say("%-24s %-10s INVALID: %s" % (row["job"], "-", row["error"]))
    return code


def _describe_repository(job):
    try:
        return _repository(job).describe()
    except LifeboatError as exc:
        return "(unusable repository options: %s)" % exc.msg


# --- arguments ----------------------------------------------------------------------------------------------

SKIP_DAMAGED_HELP = ("with latest/--before, pass over damaged sets that may be newer (each is named in a warning) "
                     "instead of failing")


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config-dir", default=argparse.SUPPRESS, metavar="DIR",
                        help="directory holding jobs/<job>.json (default: $LIFEBOAT_CONFIG_DIR or %s)"
                        % DEFAULT_CONFIG_DIR)
    common.add_argument("--state-dir", default=argparse.SUPPRESS, metavar="DIR",
                        help="audit log and locks (default: $LIFEBOAT_STATE_DIR or %s)" % DEFAULT_STATE_DIR)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="print only warnings and errors")
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print the result as JSON on stdout")

    parser = argparse.ArgumentParser(
        prog="lifeboat", parents=[common],
        description="Run lifeboat backup jobs (job files in <config dir>/jobs/<job>.json).",
        epilog="Exit status: 0 ok, 1 failure, 2 usage or configuration error, 75 another run of the job holds "
               "its lock.")
    parser.add_argument("--version", action="version", version="lifeboat %s" % ENGINE_VERSION)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser("run", parents=[common, output], help="back up a job now (then prune, if configured)")
    run.add_argument("job")

    listing = sub.add_parser("list", parents=[common, output], help="list the sets of a job, newest first")
    listing.add_argument("job")

    prune = sub.add_parser("prune", parents=[common, output], help="apply the job's retention")
    prune.add_argument("job")
    prune.add_argument("--dry-run", action="store_true", help="only say what would be removed")

    verify = sub.add_parser("verify", parents=[common, output],
                            help="test-restore a set into scratch and check it against its manifest (takes no lock "
                                 "of the job: a backup may run meanwhile)")
    verify.add_argument("job")
    verify.add_argument("--backup", default="latest", metavar="ID", help="latest (default) or a set id")
    verify.add_argument("--before", metavar="TIME", help="the newest set finished at or before this ISO time")
    verify.add_argument("--scratch-dir", metavar="DIR",
                        help="where a test restore is written (default: the job's verify.scratch_dir, tmp_dir, "
                             "else $TMPDIR)")
    verify.add_argument("--min-free-mb", type=int, metavar="N",
                        help="free MiB the scratch directory needs before the test restore starts (default: the "
                             "set's raw size plus 10%%)")
    verify.add_argument("--mode", choices=("full", "list", "decode"),
                        help="full: a test restore (default, or the job's verify.mode); list: PostgreSQL's "
                             "pg_restore --list only; decode: sha256 and decoding only")
    verify.add_argument("--first-copy", action="store_true",
                        help="verify only the first repository's copy (default: every copy)")
    verify.add_argument("--skip-damaged", action="store_true", help=SKIP_DAMAGED_HELP)

    restore = sub.add_parser("restore", parents=[common, output], help="restore a set of a job")
    restore.add_argument("job")
    restore.add_argument("--backup", default="latest", metavar="ID", help="latest (default) or a set id")
    restore.add_argument("--before", metavar="TIME", help="the newest set finished at or before this ISO time")
    restore.add_argument("--to", metavar="TARGET",
                         help="restore somewhere else than the job's source (path or database, by kind)")
    restore.add_argument("--dry-run", action="store_true",
                         help="download and verify the set without touching the target")
    restore.add_argument("--skip-damaged", action="store_true",
                         help=SKIP_DAMAGED_HELP + " (or \"skip_damaged\": true in the job file's restore object)")

    job_list = sub.add_parser("jobs", parents=[common, output], help="list and validate the job files")
    del job_list
    return parser


COMMANDS = {"run": cmd_run, "list": cmd_list, "prune": cmd_prune, "verify": cmd_verify, "restore": cmd_restore,
            "jobs": cmd_jobs}


def main(argv=None):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (EX_OK if exc.code is None else EX_USAGE)
    ctx = Context(args)
    job = getattr(args, "job", None)
    ctx.console.job = job
    started = time.monotonic()
    try:
        return COMMANDS[args.command](ctx, args)
    except Busy as exc:
        ctx.console.info(str(exc))
        return EX_TEMPFAIL
    except LifeboatError as exc:
        # raised before the command could record it itself: a bad job name or job file, a missing retention
        ctx.console.error(exc.msg)
        if args.command in AUDITED and job:
            ctx.record(args.command, job, "failed", started, error=exc.msg)
        return _code(exc)
    except KeyboardInterrupt:
        ctx.console.error("interrupted")
        if args.command in AUDITED and job:
            ctx.record(args.command, job, "failed", started, error="interrupted")
        return 130
    except Exception as exc:  # pylint: disable=broad-except
        error = _unexpected(ctx, exc)
        if args.command in AUDITED and job:
            ctx.record(args.command, job, "failed", started, error=error)
        return EX_FAILURE


if __name__ == "__main__":
    raise SystemExit(main())
