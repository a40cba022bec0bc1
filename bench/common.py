"""Shared helpers for the benchmarks: a moto S3 endpoint, timed child processes with peak RSS."""

import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))
ENGINE_PATH = os.path.join(REPO, "plugins", "module_utils")

from support.moto import MotoServer  # noqa: E402  (the same server the tests use)


class Run(object):
    """One measured run: wall seconds, peak RSS of the whole process tree (sampled from /proc every 50 ms),
    the largest wait4 ru_maxrss, and stdout. wait4's figure is kept only for reference: on Linux it includes
    pages of the forked Python parent before exec, which hides a small tool's real footprint."""

    def __init__(self, label, seconds, tree_mib, max_mib, output, cpu=0.0):
        self.label, self.seconds, self.tree_mib, self.max_mib, self.output = label, seconds, tree_mib, max_mib, output
        self.cpu = cpu  # user + system seconds of the tree (children that were waited for included)

    @property
    def peak_mib(self):
        return self.tree_mib


def _tree_rss_kib(root):
    children = {}
    rss = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def timed(label, argv, env=None, stdin=None, pipe_to=None):
    """Run argv (optionally piped into pipe_to); wall time, peak RSS of the whole tree, max single RSS."""
    start = time.monotonic()
    first = subprocess.Popen(argv, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    procs = [first]
    if pipe_to:
        procs.append(subprocess.Popen(pipe_to, env=env, stdin=first.stdout, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE))
        first.stdout.close()
    peak = [0]
    done = threading.Event()

    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], sum(_tree_rss_kib(p.pid) for p in procs))
            time.sleep(0.05)
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    out = procs[-1].stdout.read()
    max_rss, cpu, failures = 0, 0.0, []
    for proc in procs:
        err = proc.stderr.read()
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        max_rss = max(max_rss, usage.ru_maxrss)
        cpu += usage.ru_utime + usage.ru_stime
        if os.waitstatus_to_exitcode(status) != 0:
            failures.append("%s: %s" % (proc.args[0], err.decode()[-1500:]))
    seconds = time.monotonic() - start
    done.set()
    poller.join()
    if failures:
        raise SystemExit("%s failed: %s" % (label, "; ".join(failures)))
    return Run(label, seconds, peak[0] / 1024.0, max_rss / 1024.0, out.decode(), cpu)


def process_cpu(pid):
    """user + system seconds a running process (e.g. the moto server) has used so far."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


def median_run(make_run, repeat):
    """Call make_run() (it prepares and returns one timed Run) `repeat` times. Returns the run with the median
    wall time, carrying the largest peak memory seen: on a shared 2-core machine single runs vary by 10-30%."""
    runs = sorted((make_run() for _index in range(max(1, repeat))), key=lambda run: run.seconds)
    chosen = runs[len(runs) // 2]
    chosen.tree_mib = max(run.tree_mib for run in runs)
    chosen.spread = (runs[0].seconds, runs[-1].seconds)
    return chosen


def reset_moto(server):
    request = urllib.request.Request(server.url + "/moto-api/reset", method="POST")
    urllib.request.urlopen(request).read()


def table(rows, headers):
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


PEER_TOOLS = {"restic": "restic", "borg": "borgbackup", "borgmatic": "borgmatic"}  # command: Debian package
SKIPPED = "skipped (--no-peers)"


def require_peers(no_peers):
    """True when the peers run. They always do unless --no-peers was given; a missing tool is an error, never a
    silently shorter table."""
    if no_peers:
        return False
    missing = [tool for tool in PEER_TOOLS if not shutil.which(tool)]
    if missing:
        raise SystemExit("the benchmark compares lifeboat with restic, borg and borgmatic, but %s %s not installed: "
                         "run `bash .ci/install --bench` (Debian packages %s), or pass --no-peers to leave them out "
                         "(the table then says so)" % (", ".join(missing), "is" if len(missing) == 1 else "are",
                                                       " ".join(PEER_TOOLS[tool] for tool in missing)))
    return True


def peer_versions():
    """`restic 0.14.0, borg 1.2.4, borgmatic 1.7.7`: the peers' versions, for the figures' heading."""
    versions = []
    for tool in PEER_TOOLS:
        out = subprocess.run([tool, "version" if tool == "restic" else "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             check=False).stdout.split()
        number = next((word for word in out if word[:1].isdigit()), "?")
        versions.append("%s %s" % (tool, number))
    return ", ".join(versions)


def start_moto(workdir):
    return MotoServer(os.path.join(workdir, "moto.log"))
