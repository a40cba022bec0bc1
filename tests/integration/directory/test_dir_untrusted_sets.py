"""dir_restore treats a set as untrusted input (issue 16), through ansible-playbook: a crafted set cannot reach
outside the target, setuid bits need keep_setuid, and the staging tree of a killed restore is swept by the next one.
The engine-level cases (every crafted member kind, depth, manifest paths) are in
tests/unit/plugins/module_utils/engine/sources/directory/test_directory.py."""

import glob
import os
import signal
import stat
import subprocess
import sys
import tarfile

from support.crafted_sets import crafted_set, member
from engine.sources.directory import kind as directory
from engine.pipeline.backup import run_backup
from engine.repositories.repository import Repository

# the folder that holds the engine package: .../module_utils/engine/sources/directory/kind.py -> .../module_utils
MODULE_UTILS = os.path.abspath(os.path.join(os.path.dirname(directory.__file__), "..", "..", ".."))


def state_of(path):
    st = os.lstat(str(path))
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns, sorted(os.listdir(str(path)))


def leftovers(tmp_path, name="live"):
    return glob.glob(str(tmp_path / (".%s.lifeboat-restore-*" % name)))


def test_symlink_then_directory_member_leaves_its_target_alone(ansible, tmp_path):
    outside = tmp_path / "outside"  # stands for /etc
    outside.mkdir()
    os.chmod(str(outside), 0o750)
    os.utime(str(outside), (1500000000, 1500000000))
    before = state_of(outside)
    crafted_set(tmp_path / "repo", [member(".", kind=tarfile.DIRTYPE),
                                    member("l", kind=tarfile.SYMTYPE, linkname=str(outside)),
                                    member("l", kind=tarfile.DIRTYPE, mode=0o777, uid=4242, mtime=1234)])
    live = tmp_path / "live"
    live.mkdir()
    (live / "keep").write_text("live data")
    out = ansible.module("lifeboat.backup.dir_restore", {"job": "crafted", "dest": str(tmp_path / "repo"),
                                                         "path": str(live)})
    assert state_of(outside) == before == (0o750, 0, 0, 1500000000 * 10 ** 9, [])
    assert out.get("failed") and "also a symlink" in out["msg"] and "Traceback" not in out["msg"], out
    assert os.listdir(str(live)) == ["keep"] and leftovers(tmp_path) == []


def test_setuid_bits_are_restored_only_with_keep_setuid(ansible, tmp_path):
    tree = tmp_path / "tree"
    (tree / "bin").mkdir(parents=True)
    (tree / "shared").mkdir()
    (tree / "bin" / "tool").write_bytes(b"#!/bin/sh\nid\n")
    os.chown(str(tree / "bin" / "tool"), 0, 0)
    os.chmod(str(tree / "bin" / "tool"), 0o4755)
    os.chmod(str(tree / "shared"), 0o2775)
    common = {"job": "tools", "dest": str(tmp_path / "repo")}
    out = ansible.module("lifeboat.backup.dir_snapshot", dict(common, path=str(tree)))
    assert not out.get("failed"), out

    live = tmp_path / "live"
    out = ansible.module("lifeboat.backup.dir_restore", dict(common, path=str(live)))
    assert not out.get("failed"), out
    assert stat.S_IMODE(os.lstat(str(live / "bin" / "tool")).st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(str(live / "shared")).st_mode) == 0o2775  # setgid directory: group inheritance
    assert out["setuid_stripped"] == ["bin/tool"] and any("keep_setuid" in w for w in out["warnings"])

    out = ansible.module("lifeboat.backup.dir_restore", dict(common, path=str(live), keep_setuid=True,
                                                             keep_previous=False))
    assert not out.get("failed"), out
    tool = os.lstat(str(live / "bin" / "tool"))
    assert stat.S_IMODE(tool.st_mode) == 0o4755 and tool.st_uid == 0  # mode set after the owner
    assert "setuid_stripped" not in out


STALLED_RESTORE = """
import sys, time
sys.path.insert(0, sys.argv[1])
from engine.sources.directory import extract
from engine.sources.directory.restore import restore_directory
from engine.repositories.repository import Repository

def stall(reader):  # every member is extracted; the process is killed before it verifies and cleans up
    print("extracted", flush=True)
    time.sleep(300)

extract._drain = stall
restore_directory(Repository.from_options(dest=sys.argv[2]), "tree", sys.argv[3])
"""


def test_staging_of_a_killed_restore_is_swept_by_the_next(ansible, tmp_path):
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "data.txt").write_text("snapshot")
    os.symlink("/etc", str(tree / "sub" / "etc-link"))
    repo = str(tmp_path / "repo")
    run_backup(directory.source_from_options({"path": str(tree)}), Repository.from_options(dest=repo), "tree")
    live = tmp_path / "live"
    live.mkdir()
    (live / "data.txt").write_text("live")

    process = subprocess.Popen([sys.executable, "-c", STALLED_RESTORE, MODULE_UTILS, repo, str(live)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "extracted", process.stderr.read()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    stale = leftovers(tmp_path)
    assert len(stale) == 1 and os.path.islink(os.path.join(stale[0], "sub", "etc-link"))

    out = ansible.module("lifeboat.backup.dir_restore", {"job": "tree", "dest": repo, "path": str(live)})
    assert not out.get("failed"), out
    assert (live / "sub" / "data.txt").read_text() == "snapshot"
    assert leftovers(tmp_path) == []  # the killed run's staging tree is gone, nothing else was touched
    assert os.path.isdir("/etc") and (tmp_path / "tree" / "sub" / "data.txt").read_text() == "snapshot"
