"""A SIGKILLed sqlite_backup leaves its database-sized scratch snapshot in tmp_dir; the next sqlite_backup removes
it (issue #16 item 11), and never the scratch file of a run that is still alive. Real runs of the engine are killed
mid-backup (while the scratch file exists), then the next backup runs through ansible-playbook."""

import fcntl
import os
import signal
import subprocess
import sys

from sqlite_helpers import make_database

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

# A backup that takes its scratch snapshot and then waits (as if uploading) until it is killed or told to stop.
HOLDER = r"""
import sys
sys.path.insert(0, sys.argv[1])
from engine.sources.sqlite.snapshot import SqliteSource
with SqliteSource(sys.argv[2], tmp_dir=sys.argv[3]).open() as handle:
    print(handle.name, flush=True)
    sys.stdin.readline()
"""


def start_holder(db, scratch):
    process = subprocess.Popen([sys.executable, "-c", HOLDER, os.path.join(ROOT, "plugins", "module_utils"), str(db),
                                str(scratch)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    path = process.stdout.readline().strip()
    assert path and os.path.isfile(path), "the backup did not take its scratch snapshot"
    return process, path


def test_next_backup_sweeps_a_killed_runs_scratch_copy_but_not_a_live_ones(ansible, tmp_path):
    db = make_database(tmp_path / "app.db", rows=20000)
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    killed, dead_copy = start_holder(db, scratch)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    assert os.path.getsize(dead_copy) > 1024 * 1024  # a database-sized leftover
    live, live_copy = start_holder(db, scratch)
    # Files that only look like leftovers: the name of a dead pid but a live flock holder (e.g. a run in another
    # pid namespace), a symlink in the scratch directory, and a file that is not a scratch name at all.
    locked = scratch / ("lifeboat-sqlite-%d-0-abcdefgh.db" % dead_pid())
    locked.write_bytes(b"held")
    lock = os.open(str(locked), os.O_RDONLY)
    fcntl.flock(lock, fcntl.LOCK_EX)
    victim = tmp_path / "victim.db"
    victim.write_bytes(b"not a scratch file")
    (scratch / ("lifeboat-sqlite-%d-0-zzzzzzzz.db" % dead_pid())).symlink_to(victim)
    other = scratch / "lifeboat-sqlite-notes.txt"
    other.write_bytes(b"someone else's")
    try:
        out = ansible.module("lifeboat.backup.sqlite_backup",
                             {"job": "app", "dest": str(tmp_path / "repo"), "path": str(db), "tmp_dir": str(scratch)})
        assert not out.get("failed"), out
        assert out["backup"]["manifest"]["verification"]["row_counts"]["events"] == 20000

        assert not os.path.exists(dead_copy)  # the killed run's copy is gone
        assert os.path.isfile(live_copy)  # the live run's copy stays
        assert locked.read_bytes() == b"held" and other.read_bytes() == b"someone else's"
        assert victim.read_bytes() == b"not a scratch file"
        assert os.path.islink(str(scratch / ("lifeboat-sqlite-%d-0-zzzzzzzz.db" % dead_pid())))
        assert sorted(os.listdir(str(scratch))) == sorted([os.path.basename(live_copy), locked.name, other.name,
                                                           "lifeboat-sqlite-%d-0-zzzzzzzz.db" % dead_pid()])
    finally:
        os.close(lock)
        live.stdin.write("\n")
        live.stdin.close()
        live.wait(timeout=30)
    assert live.returncode == 0 and not os.path.exists(live_copy)  # the live run finished and cleaned up itself


_DEAD = []


def dead_pid():
    """A pid that no process has (one that existed and ended)."""
    if not _DEAD:
        process = subprocess.Popen(["true"])
        process.wait()
        _DEAD.append(process.pid)
    return _DEAD[0]


def test_a_run_is_told_by_pid_and_start_time():
    from engine.sources.sqlite.snapshot import process_start, run_alive
    me = os.getpid()
    start = process_start(me)
    assert start > 0
    assert run_alive(me, start) and run_alive(me, 0)  # 0: written where /proc could not say; the pid decides
    assert not run_alive(me, start + 1)  # the pid was reused by another process: the run that named it is gone
    assert not run_alive(dead_pid(), 0)
