"""lifeboat: the scheduled runner. Runs the job files in <config dir>/jobs/ with the same engine as the modules.

This module holds the command line (build_parser) and main; the commands are in commands.py, the run's context
(directories, exit codes, lock, audit) in context.py and what it shows in console.py. Installed on hosts by the
schedule role as one zipapp, /opt/lifeboat/lib/lifeboat.pyz (roles/schedule/files/build_runner.py), started as
``python3 lifeboat.pyz`` (entry point lifeboat_engine.runner.cli:main; wrapper /usr/local/bin/lifeboat). Exit
status: 0 ok, 1 failure, 2 usage or configuration error, 75 (EX_TEMPFAIL) another run of the job holds its lock.
"""

import argparse
import time

from ..core.errors import LifeboatError
from ..core.manifest import ENGINE_VERSION
from ..pipeline.verify import MODES as VERIFY_MODES
from .commands import COMMANDS
from .context import (DEFAULT_CONFIG_DIR, DEFAULT_STATE_DIR, EX_FAILURE, EX_OK, EX_TEMPFAIL, EX_USAGE, Busy,
                      Context, exit_code, unexpected)

AUDITED = ("run", "prune", "verify", "restore", "put-back")


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
    verify.add_argument("--mode", choices=VERIFY_MODES,
                        help="full: a test restore (default, or the job's verify.mode); list: a check of the kind "
                             "that needs no scratch server, such as pg_restore --list (kinds without one: as "
                             "decode); decode: sha256 and decoding only")
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

    put_back = sub.add_parser("put-back", parents=[common, output],
                              help="undo a restore whose data was rejected: put back the data it kept aside")
    put_back.add_argument("job")
    put_back.add_argument("--previous", required=True, metavar="NAME",
                          help="what the restore kept aside, as it reported it in `previous` "
                               "(<target>.lifeboat-prev-<time>, PostgreSQL <database>_lbprev_<hex>)")
    put_back.add_argument("--to", metavar="TARGET",
                          help="where the restore went (default: the job's restore target, as restore computes it)")
    put_back.add_argument("--dry-run", action="store_true", help="check the names without changing anything")

    job_list = sub.add_parser("jobs", parents=[common, output], help="list and validate the job files")
    del job_list

    check_jobs = sub.add_parser(
        "check-jobs", parents=[common, output],
        help="check job documents (a JSON object or a list of them) without a job file: what `jobs` checks, minus "
             "the file's owner and mode; reads, writes and connects to nothing else (the schedule roles run it on "
             "the controller before they write job files)")
    check_jobs.add_argument("file", nargs="?", default="-", metavar="FILE",
                            help="the JSON to check (default -: stdin)")
    check_jobs.add_argument("--no-secrets", action="store_true",
                            help="also refuse a document that holds a credential (a password, key, token, webhook "
                                 "URL or URL with a password), for job files others can read, such as a Kubernetes "
                                 "Secret mounted with fsGroup: credentials then come from the environment")
    return parser


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
        return exit_code(exc)
    except KeyboardInterrupt:
        ctx.console.error("interrupted")
        if args.command in AUDITED and job:
            ctx.record(args.command, job, "failed", started, error="interrupted")
        return 130
    except Exception as exc:  # pylint: disable=broad-except
        error = unexpected(ctx, exc)
        if args.command in AUDITED and job:
            ctx.record(args.command, job, "failed", started, error=error)
        return EX_FAILURE


if __name__ == "__main__":
    raise SystemExit(main())
