"""External tools as pipeline stages: argument lists only, exit status checked, stderr kept for messages."""

import os
import subprocess
import tempfile
import threading

from .errors import ToolError
from .streams import CHUNK, pump, widen_pipe

STDERR_TAIL = 2000


def missing_tool_error(tool, purpose):
    return ToolError("%s is not installed or not on PATH (needed for %s): install it on this host "
                     "(Debian/Ubuntu: apt-get install %s) or choose another option" % (tool, purpose, tool))


class ProcessReader(object):
    """Reads a process's stdout; optionally feeds `stdin` (a reader) into it from a thread.

    At end of output the process is waited for: a non-zero exit, or a failure of the reader feeding
    it, raises, so a tool that dies after writing part of its output never passes for a good stream.
    Secrets go through `env` (never argv).

    `buffered=False` reads straight from the pipe (as many reads as it takes to return `size` bytes, or
    fewer only at the end), so nothing is ever held in a Python buffer and a consumer may splice the
    output straight to another tool or file at any point.
    """

    def __init__(self, argv, purpose, stdin=None, env=None, cwd=None, ok_codes=(0,), buffered=True):
        self.argv = list(argv)
        self.purpose = purpose
        self.ok_codes = ok_codes
        self._stderr = tempfile.TemporaryFile()
        self._feed_error = None
        self._feeder = None
        self._finished = False
        self._buffered = buffered
        self._read_any = False
        self.returncode = None
        try:
            self._proc = subprocess.Popen(
                self.argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=self._stderr, env=env, cwd=cwd, close_fds=True,
                bufsize=-1 if buffered else 0)
        except FileNotFoundError:
            self._stderr.close()
            raise missing_tool_error(self.argv[0], purpose)
        widen_pipe(self._proc.stdout.fileno())
        if stdin is not None:
            widen_pipe(self._proc.stdin.fileno())
            self._feeder = threading.Thread(target=self._feed, args=(stdin,), name="feed-%s" % self.argv[0])
            self._feeder.daemon = True
            self._feeder.start()

    def _feed(self, source):
        try:
            pump(source, self._proc.stdin)
        except (BrokenPipeError, ValueError):
            pass  # the tool exited early; its exit status says why
        except BaseException as exc:  # pylint: disable=broad-except
            self._feed_error = exc
        finally:
            try:
                self._proc.stdin.close()
            except OSError:
                pass

    def stderr_tail(self):
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - STDERR_TAIL))
            return self._stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    def read(self, size=CHUNK):
        self._read_any = True
        size = size if size and size > 0 else CHUNK
        data = self._proc.stdout.read(size)
        if data and not self._buffered and len(data) < size:
            parts, have = [data], len(data)
            while have < size:
                more = self._proc.stdout.read(size - have)
                if not more:
                    break
                parts.append(more)
                have += len(more)
            data = b"".join(parts)
        if not data:
            self._finish()
        return data

    def splice_fd(self):
        """stdout's descriptor, when no output sits in a Python buffer (see streams.pump)."""
        if self._buffered and self._read_any:
            return None
        return self._proc.stdout.fileno()

    def _finish(self):
        if self._finished:
            return
        self._finished = True
        if self._feeder is not None:
            self._feeder.join()
        self.returncode = self._proc.wait()
        if self._feed_error is not None:
            raise self._feed_error
        if self.returncode not in self.ok_codes:
            raise ToolError("%s failed (%s exited with status %s): %s" % (
                self.purpose, os.path.basename(self.argv[0]), self.returncode,
                self.stderr_tail() or "no error output"), returncode=self.returncode)

    def close(self):
        """Stop the tool if it is still running (the pipeline failed elsewhere) and release pipes."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._feeder is not None:
            self._feeder.join(timeout=10)
        for stream in (self._proc.stdout, self._proc.stdin, self._stderr):
            try:
                if stream:
                    stream.close()
            except (OSError, ValueError):
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_tool(argv, purpose, env=None, timeout=None, input_bytes=None):
    """Run a short command to completion; returns stdout text or raises ToolError with stderr."""
    try:
        proc = subprocess.run(argv, input=input_bytes, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env, timeout=timeout, check=False,
                              stdin=None if input_bytes is not None else subprocess.DEVNULL)
    except FileNotFoundError:
        raise missing_tool_error(argv[0], purpose)
    except subprocess.TimeoutExpired:
        raise ToolError("%s timed out after %s seconds (%s)" % (purpose, timeout, os.path.basename(argv[0])))
    if proc.returncode != 0:
        raise ToolError("%s failed (%s exited with status %s): %s" % (
            purpose, os.path.basename(argv[0]), proc.returncode,
            proc.stderr.decode("utf-8", "replace").strip()[-STDERR_TAIL:] or "no error output"),
            returncode=proc.returncode)
    return proc.stdout.decode("utf-8", "replace")
