"""Shared helpers for the benchmarks: a moto S3 endpoint, timed child processes with peak RSS."""

import os
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))
ENGINE_PATH = os.path.join(REPO, "plugins", "module_utils")

from support.moto import MotoServer  # noqa: E402  (the same server the tests use)


class Timed(object):
    """Outcome of one child process: wall seconds and peak resident memory (MiB)."""

    def __init__(self, label, seconds, peak_mib, output=""):
        self.label = label
        self.seconds = seconds
        self.peak_mib = peak_mib
        self.output = output


def run_timed_rss(label, argv, env=None):
    """Wall time and peak RSS of one child and the descendants it waited for (wait4 rusage)."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit("%s failed (%s): %s" % (label, code, err.decode()[-2000:]))
    return Timed(label, seconds, usage.ru_maxrss / 1024.0, out.decode())


def reset_moto(server):
    request = urllib.request.Request(server.url + "/moto-api/reset", method="POST")
    urllib.request.urlopen(request).read()


def table(rows, headers):
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def start_moto(workdir):
    return MotoServer(os.path.join(workdir, "moto.log"))
