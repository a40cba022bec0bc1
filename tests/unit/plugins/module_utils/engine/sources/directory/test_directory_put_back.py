"""Directory put-back (sources/directory/put_back.py, the kind's put_back_from_options): the kept tree goes back,
the rejected one is removed, nothing else is touched; a symlinked kept copy or a non-directory target is refused."""

import os

import pytest

from engine.core.errors import ConfigError, RestoreError
from engine.sources.directory.kind import put_back_from_options
from engine.sources.directory.put_back import put_back_directory


def test_put_back_swaps_the_kept_directory_back_and_removes_the_rejected_one(tmp_path):
    target = str(tmp_path / "chroma")
    previous = target + ".lifeboat-prev-20261122T020000Z"
    os.makedirs(os.path.join(target, "restored"))
    os.makedirs(os.path.join(previous, "index"))
    (tmp_path / "chroma.lifeboat-prev-20261122T020000Z" / "index" / "a.bin").write_bytes(b"old data")
    result = put_back_directory(target, previous)
    assert (result["status"], result["restored_to"], result["previous"]) == ("ok", target, previous)
    (rejected,) = result["removed"]
    assert rejected.startswith(target + ".lifeboat-failed-")
    assert sorted(os.listdir(target)) == ["index"]
    assert (tmp_path / "chroma" / "index" / "a.bin").read_bytes() == b"old data"
    assert sorted(os.listdir(str(tmp_path))) == ["chroma"]


def test_the_rejected_tree_is_removed_without_following_its_symlinks(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_bytes(b"not ours")
    target = str(tmp_path / "data" / "chroma")
    previous = target + ".lifeboat-prev-20261122T020000Z-0123abcd"
    os.makedirs(previous)
    os.makedirs(target)
    os.symlink(str(outside), os.path.join(target, "link"))
    put_back_from_options({"path": target}, previous)
    assert (outside / "keep.txt").read_bytes() == b"not ours"
    assert sorted(os.listdir(str(tmp_path / "data"))) == ["chroma"] and os.listdir(target) == []


def test_check_mode_changes_nothing(tmp_path):
    target = str(tmp_path / "chroma")
    previous = target + ".lifeboat-prev-20261122T020000Z"
    os.makedirs(os.path.join(target, "restored"))
    os.makedirs(os.path.join(previous, "index"))
    result = put_back_from_options({"path": target}, previous, check_mode=True)
    assert result["changed"] and result["removed"][0].startswith(target + ".lifeboat-failed-")
    assert sorted(os.listdir(str(tmp_path))) == ["chroma", "chroma.lifeboat-prev-20261122T020000Z"]
    assert os.listdir(target) == ["restored"]


@pytest.mark.parametrize("previous", ["{target}.bak", "/etc", "{target}.lifeboat-prev-20261122T020000Z/../x",
                                      "{target}2.lifeboat-prev-20261122T020000Z"])
def test_put_back_refuses_anything_but_the_targets_kept_aside_copy(tmp_path, previous):
    target = str(tmp_path / "chroma")
    os.makedirs(os.path.join(target, "restored"))
    previous = previous.format(target=target)
    if previous.startswith(str(tmp_path)) and ".." not in previous:
        os.makedirs(previous)
    with pytest.raises(ConfigError, match="is not the kept-aside copy"):
        put_back_directory(target, previous)
    assert os.listdir(target) == ["restored"]


def test_put_back_never_follows_a_symlink_as_the_kept_copy(tmp_path):
    target = str(tmp_path / "chroma")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.makedirs(os.path.join(target, "restored"))
    previous = target + ".lifeboat-prev-20261122T020000Z"
    os.symlink(str(elsewhere), previous)
    with pytest.raises(ConfigError, match="not a directory"):
        put_back_directory(target, previous)
    assert os.listdir(target) == ["restored"] and os.path.islink(previous) and elsewhere.is_dir()


def test_put_back_refuses_a_target_that_is_not_a_directory(tmp_path):
    target = str(tmp_path / "chroma")
    (tmp_path / "chroma").write_bytes(b"a file")
    previous = target + ".lifeboat-prev-20261122T020000Z"
    os.makedirs(previous)
    with pytest.raises(ConfigError, match="is not a directory"):
        put_back_directory(target, previous)
    assert (tmp_path / "chroma").read_bytes() == b"a file" and os.path.isdir(previous)


def failing_rename(monkeypatch, fails):
    """os.rename, except for the sources in `fails` (EBUSY, as for a mount point)."""
    real_rename = os.rename

    def rename(source, destination):
        if source in fails:
            raise OSError(16, "Device or resource busy", source)
        real_rename(source, destination)

    monkeypatch.setattr(os, "rename", rename)


def test_a_restored_tree_that_cannot_be_moved_aside_changes_nothing(tmp_path, monkeypatch):
    target = str(tmp_path / "chroma")
    previous = target + ".lifeboat-prev-20261122T020000Z"
    os.makedirs(os.path.join(target, "restored"))
    os.makedirs(os.path.join(previous, "index"))
    failing_rename(monkeypatch, {target})
    with pytest.raises(RestoreError, match=r"moving the restored tree %s aside to %s\.lifeboat-failed-\S+ failed "
                                           r"\(Device or resource busy\); nothing was changed: the previous tree is "
                                           r"still at %s$" % (target, target, previous)):
        put_back_directory(target, previous)
    assert os.listdir(target) == ["restored"] and os.listdir(previous) == ["index"]
    assert sorted(os.listdir(str(tmp_path))) == ["chroma", "chroma.lifeboat-prev-20261122T020000Z"]


def test_when_neither_tree_can_be_renamed_back_the_message_names_both(tmp_path, monkeypatch):
    target = str(tmp_path / "chroma")
    previous = target + ".lifeboat-prev-20261122T020000Z"
    os.makedirs(os.path.join(target, "restored"))
    os.makedirs(os.path.join(previous, "index"))
    real_rename = os.rename
    moved = []

    def rename(source, destination):
        if moved:
            raise OSError(16, "Device or resource busy", source)
        real_rename(source, destination)
        moved.append(destination)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(RestoreError) as raised:
        put_back_directory(target, previous)
    rejected = moved[0]
    expected = ("renaming %s back to %s failed (Device or resource busy), and so did renaming the restored tree %s "
                "back (Device or resource busy): %s is missing; rename one of them to it by hand")
    assert raised.value.msg == expected % (previous, target, rejected, target)
    assert os.listdir(rejected) == ["restored"] and os.listdir(previous) == ["index"]
