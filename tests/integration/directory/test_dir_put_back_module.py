"""Undoing a directory restore with lifeboat.backup.dir_put_back through ansible-playbook: a real set restored over a
live tree with dir_restore, then put back from what the restore returned (`restored_to`, `previous`)."""

import hashlib
import os
import stat

from engine.pipeline.backup import run_backup
from engine.repositories.repository import Repository
from engine.sources.directory import kind as directory


def tree_state(root):
    """{relative path: (kind, mode, sha256 or link target)} of everything below root."""
    state = {}
    for folder, dirs, files in os.walk(str(root)):
        for name in dirs + files:
            full = os.path.join(folder, name)
            st = os.lstat(full)
            rel = os.path.relpath(full, str(root))
            if stat.S_ISLNK(st.st_mode):
                state[rel] = ("link", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                state[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                with open(full, "rb") as handle:
                    state[rel] = ("file", stat.S_IMODE(st.st_mode), hashlib.sha256(handle.read()).hexdigest())
    return state


def test_put_back_module_restores_the_previous_tree_exactly(ansible, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_bytes(b"not part of the tree")
    live = tmp_path / "live"
    uploads = live / "uploads"
    (uploads / "a").mkdir(parents=True)
    (uploads / "a" / "one.txt").write_bytes(b"one at backup time\n")
    repo = str(tmp_path / "repo")
    run_backup(directory.source_from_options({"path": str(uploads)}), Repository.from_options(dest=repo), "uploads")
    # the live tree after the backup: changed, added, a private file, a symlink out of the tree
    (uploads / "a" / "one.txt").write_bytes(b"one, live\n")
    (uploads / "two.bin").write_bytes(os.urandom(4096))
    (uploads / "secret.txt").write_bytes(b"private\n")
    os.chmod(str(uploads / "secret.txt"), 0o600)
    os.symlink(str(outside), str(uploads / "link"))
    before = tree_state(uploads)

    restored = ansible.module("lifeboat.backup.dir_restore", {"job": "uploads", "dest": repo, "path": str(uploads)})
    assert not restored.get("failed"), restored
    assert tree_state(uploads) != before
    # the rejected tree links out of itself: removing it must not follow the link
    os.symlink(str(outside), str(uploads / "escape"))
    args = {"path": restored["restored_to"], "previous": restored["previous"]}

    checked = ansible.module("lifeboat.backup.dir_put_back", args, check=True)
    assert not checked.get("failed") and checked["changed"], checked
    assert os.path.isdir(restored["previous"]) and os.path.islink(str(uploads / "escape"))

    done = ansible.module("lifeboat.backup.dir_put_back", args)
    assert not done.get("failed"), done
    assert (done["restored_to"], done["previous"]) == (str(uploads), restored["previous"])
    (rejected,) = done["removed"]
    assert rejected.startswith(str(uploads) + ".lifeboat-failed-")
    assert tree_state(uploads) == before  # the tree from before the restore, exactly
    assert os.listdir(str(live)) == ["uploads"]  # neither the kept nor the rejected tree is left
    assert (outside / "keep.txt").read_bytes() == b"not part of the tree"

    again = ansible.module("lifeboat.backup.dir_put_back", args)
    assert again.get("failed"), again
    assert "is gone (put back or removed already?)" in again["msg"]
    assert tree_state(uploads) == before


def test_put_back_module_refuses_a_file_as_the_target(ansible, tmp_path):
    target = tmp_path / "uploads"
    target.write_bytes(b"a file, not a tree")
    previous = str(target) + ".lifeboat-prev-20261122T020000Z-0123abcd"
    os.makedirs(previous)
    out = ansible.module("lifeboat.backup.dir_put_back", {"path": str(target), "previous": previous})
    assert out.get("failed"), out
    assert out["msg"] == "%s is not a directory; nothing was changed" % target
    assert target.read_bytes() == b"a file, not a tree" and os.path.isdir(previous)
