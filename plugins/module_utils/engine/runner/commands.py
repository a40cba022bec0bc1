"""The runner's commands (run, prune, list, verify, restore, put-back, jobs): each loads the job file, calls the engine,
prints what happened and records it in the audit log; check-jobs checks job documents given on stdin, touching
nothing. COMMANDS maps a command name to its function."""

import contextlib
import json
import os
import signal
import sys
import threading
import time

from . import jobs, metrics
from ..sources import kinds
from ..pipeline.backup import is_partial_failure, run_backup
from ..pipeline.catalog import list_sets
from ..core.errors import ConfigError, LifeboatError
from ..core.naming import validate_job
from ..repositories.repository import Repository
from ..sources.postgres import options as postgres_options
from ..pipeline.retention import apply_retention
from ..pipeline.verify import verify_set
from .console import human
from .context import EX_FAILURE, EX_OK, EX_USAGE, JobLock, exit_code, say, unexpected


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
            code, error = exit_code(exc), exc.msg
            if is_partial_failure(exc):
                set_id, size = exc.details["backup"]["id"], exc.details["backup"]["size"]
        except Exception as exc:  # pylint: disable=broad-except
            code, error = EX_FAILURE, unexpected(ctx, exc)
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
        return exit_code(exc), {"status": "failed", "error": exc.msg}
    except Exception as exc:  # pylint: disable=broad-except
        error = unexpected(ctx, exc)
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
        say("no sets for job %s" % name)
        return EX_OK
    say("%-25s %-10s %-27s %10s  %s" % ("ID", "STATUS", "FINISHED", "SIZE", "IN"))
    for entry in entries:
        say("%-25s %-10s %-27s %10s  %s" % (
            entry["id"], entry["status"], entry["finished"] or "-", human(entry["size"]),
            ",".join(entry["complete_in"]) or "-"))
    return EX_OK


def verify_options(job, mode=None):
    """What the kind's test restore takes, from the job file: the `verify` object (mode, postgres, redis) over the
    job's own connection options (the scratch PostgreSQL database goes on the job's own server unless
    verify.postgres names another) and allow_functions / allow_javascript from the job or its restore object."""
    settings = job.get("verify_restore") or {}
    postgres = {key: job[key] for key in postgres_options.CONNECTION_KEYS if job.get(key) not in (None, "")}
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
        return exit_code(exc)
    except Exception as exc:  # pylint: disable=broad-except
        error = unexpected(ctx, exc)
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
        return exit_code(exc)
    except Exception as exc:  # pylint: disable=broad-except
        error = unexpected(ctx, exc)
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


def cmd_put_back(ctx, args):
    """Undo a restore whose data was rejected: the kind's put_back_from_options with the job's options (those of
    its restore object over its own, as restore reads them) and the untrusted --previous, checked by the kind."""
    name = validate_job(args.job)
    job = jobs.load(ctx.config_dir, name)
    started = time.monotonic()
    try:
        module = kinds.load(job["kind"])
        hook = kinds.put_back_hook(job["kind"], module)
        options = dict(job)
        options.update(job.get("restore") or {})
        ctx.console.info("%sput-back of job %s (%s): %s" % ("dry-run " if args.dry_run else "", name, job["kind"],
                                                            args.previous))
        result = hook(options, args.previous, target=args.to, check_mode=args.dry_run)
    except LifeboatError as exc:
        ctx.console.error("put-back of job %s failed: %s" % (name, exc.msg))
        ctx.record("put-back", name, "failed", started, error=exc.msg, notify_config=job.get("notify"),
                   dry_run=args.dry_run)
        if ctx.json:
            ctx.output({"status": "failed", "error": exc.msg})
        return exit_code(exc)
    except Exception as exc:  # pylint: disable=broad-except
        error = unexpected(ctx, exc)
        ctx.record("put-back", name, "failed", started, error=error, notify_config=job.get("notify"),
                   dry_run=args.dry_run)
        if ctx.json:
            ctx.output({"status": "failed", "error": error})
        return EX_FAILURE
    ctx.console.info("%s %s back at %s%s" % (
        "would put (dry run, nothing changed)" if args.dry_run else "put", result["previous"], result["restored_to"],
        "; rejected restore %s: %s" % ("to remove" if args.dry_run else "removed", ", ".join(
            result["removed"])) if result.get("removed") else ""))
    for warning in result.get("warnings") or []:
        ctx.console.warn(warning)
    ctx.record("put-back", name, "ok", started, notify_config=job.get("notify"), dry_run=args.dry_run,
               restored_to=result["restored_to"], previous=result["previous"])
    if ctx.json:
        ctx.output(dict(result, status="ok", dry_run=args.dry_run))
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
        say("no job files in %s" % os.path.join(ctx.config_dir, jobs.JOBS_DIR))
    for row in rows:
        if row["valid"]:
            say("%-24s %-10s %s" % (row["job"], row["kind"], row["repository"]))
        else:
            say("%-24s %-10s INVALID: %s" % (row["job"], "-", row["error"]))
    return code


def _read_documents(source):
    """The job documents of `lifeboat check-jobs`: one JSON object, or a list of them, from a file or stdin ("-")."""
    try:
        if source == "-":
            raw = sys.stdin.read()
        else:
            with open(source, "r") as handle:
                raw = handle.read()
    except OSError as exc:
        raise ConfigError("cannot read %s: %s" % (source, exc.strerror))
    try:
        documents = json.loads(raw)
    except ValueError as exc:
        raise ConfigError("%s is not valid JSON: %s" % ("stdin" if source == "-" else source, exc))
    return documents if isinstance(documents, list) else [documents]


def cmd_check_jobs(ctx, args):
    """Check job documents as every command checks a job file when it loads it (jobs.validate), touching nothing:
    no job file, lock, audit log, store, source or notification. What only the host can tell is left to the runs:
    the job file's owner and mode, whether paths, credentials and servers exist. Error messages quote no secret
    value (jobs.redact)."""
    rows = []
    code = EX_OK
    for index, document in enumerate(_read_documents(args.file)):
        name = document.get("job") if isinstance(document, dict) else None
        where = "job %s" % name if isinstance(name, str) and name else "job document %d" % (index + 1)
        try:
            job = jobs.validate(document, where=where)
            held = jobs.secret_paths(document) if args.no_secrets else []
            if held:
                raise ConfigError(
                    "%s carries a credential (%s), and this job file must hold none (check-jobs --no-secrets): "
                    "give it through the environment instead (PGPASSWORD, REDISCLI_AUTH, LIFEBOAT_MONGO_PASSWORD, "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ...) or a 0600 file where an option takes one (the "
                    "password_file of sftp/ftp, age_identity_file)"
                    % (where, ", ".join(held)))
            rows.append({"job": name, "kind": job["kind"], "valid": True, "error": None})
        except LifeboatError as exc:
            code = EX_USAGE
            rows.append({"job": name, "kind": document.get("kind") if isinstance(document, dict) else None,
                         "valid": False, "error": jobs.redact(exc.msg, document)})
    if ctx.json:
        ctx.output(rows)
        return code
    for row in rows:
        if row["valid"]:
            say("%-24s %-10s valid" % (row["job"], row["kind"]))
        else:
            say("%-24s %-10s INVALID: %s" % (row["job"] or "-", row["kind"] or "-", row["error"]))
    return code


def _describe_repository(job):
    try:
        return _repository(job).describe()
    except LifeboatError as exc:
        return "(unusable repository options: %s)" % exc.msg


COMMANDS = {"run": cmd_run, "list": cmd_list, "prune": cmd_prune, "verify": cmd_verify, "restore": cmd_restore,
            "put-back": cmd_put_back, "jobs": cmd_jobs, "check-jobs": cmd_check_jobs}
