"""The runner's context for one command: its directories (config, state), exit codes, the job lock, the console,
the audit record (with notifications) and JSON output."""

import fcntl
import json
import os
import sys
import time
import traceback

from . import audit, notify
from ..core.errors import ConfigError
from ..pipeline.backup import Progress
from .console import Console, LogProgress, TerminalProgress

EX_OK = 0
EX_FAILURE = 1
EX_USAGE = 2
EX_TEMPFAIL = 75
DEFAULT_CONFIG_DIR = "/etc/lifeboat"
DEFAULT_STATE_DIR = "/var/lib/lifeboat"
LOCKS_DIR = "locks"


class Busy(Exception):
    """Another process holds the job's lock."""


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
    """Where one command reads job files and writes its state, and how it reports (console, audit, JSON)."""

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


def say(text):
    """A line of command output on stdout (tables, listings)."""
    sys.stdout.write(text + "\n")


def unexpected(ctx, exc):
    ctx.console.error("unexpected %s: %s (this is a bug in lifeboat: please report it with the traceback)"
                      % (type(exc).__name__, exc))
    traceback.print_exc(file=sys.stderr)
    return "unexpected %s: %s" % (type(exc).__name__, exc)


def exit_code(exc):
    """The exit status of a LifeboatError: 2 for a usage or configuration error, else 1."""
    return EX_USAGE if isinstance(exc, ConfigError) else EX_FAILURE
