"""What the runner shows while it works: log lines on stderr (Console) and a backup's progress, on one refreshed
terminal line (TerminalProgress) or as periodic log lines (LogProgress)."""

import os
import sys
import time

from ..core.naming import format_time, utcnow
from ..pipeline.backup import Progress


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
