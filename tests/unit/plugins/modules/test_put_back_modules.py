"""sqlite_put_back and dir_put_back: thin modules over the kinds' put_back_from_options (the code of `lifeboat
put-back` and the Kubernetes put-back Job). Their argument_spec is the kind's PUT_BACK schema; run through
AnsibleModule they put the kept-aside data back, change nothing in check mode, refuse a `previous` that is not the
target's kept-aside copy with a message saying so, and turn the engine's warnings into module warnings."""

import contextlib
import importlib
import json
import os
import sqlite3

import pytest

from support.module_spec import PREFIX, argument_spec_of

STAMP = ".lifeboat-prev-20261122T020000Z-0123abcd"


@contextlib.contextmanager
def module_args(args):
    """AnsibleModule reads `args` (ansible-core 2.19 and later have patch_module_args; older ones read _ANSIBLE_ARGS)."""
    try:
        from ansible.module_utils.testing import patch_module_args
    except ImportError:
        from unittest import mock

        from ansible.module_utils import basic
        with mock.patch.object(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()):
            yield
        return
    with patch_module_args(args):
        yield


def run(name, args, capsys, check_mode=False):
    """The result dict the module prints (exit_json or fail_json)."""
    module = importlib.import_module(PREFIX + "modules." + name)
    with module_args(dict(args, _ansible_check_mode=check_mode)):
        with pytest.raises(SystemExit):
            module.main()
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])


def warning_texts(result):
    """The warnings' text: plain strings before ansible-core 2.19, {"event": {"msg": ...}} summaries since."""
    return [w if isinstance(w, str) else w["event"]["msg"] for w in result.get("warnings", [])]


def make_db(path, value):
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.execute("INSERT INTO t VALUES (?)", (value,))
    conn.commit()
    conn.close()


def read_bytes(path):
    with open(str(path), "rb") as handle:
        return handle.read()


@pytest.mark.parametrize("name, kind", [("sqlite_put_back", "sqlite"), ("dir_put_back", "directory")])
def test_the_spec_is_the_kinds_put_back_schema(name, kind, monkeypatch):
    options = importlib.import_module(PREFIX + "module_utils.engine.core.options")
    schema = importlib.import_module(PREFIX + "module_utils.engine.sources.%s.options" % kind).PUT_BACK
    spec = argument_spec_of(name, monkeypatch)
    assert spec == options.argument_spec(schema)
    assert spec == {"path": {"type": "path", "required": True}, "previous": {"type": "path", "required": True}}


@pytest.fixture
def sqlite_pair(tmp_path):
    """A restored (rejected) database with a stale -wal and -shm, and the kept-aside one with its own -journal."""
    target = tmp_path / "app.db"
    previous = str(target) + STAMP
    make_db(previous, "previous")
    with open(previous + "-journal", "wb") as handle:
        handle.write(b"kept journal")
    make_db(target, "restored")
    (tmp_path / "app.db-wal").write_bytes(b"rejected wal")
    (tmp_path / "app.db-shm").write_bytes(b"rejected shm")
    return str(target), previous, read_bytes(previous)


def test_sqlite_put_back_puts_the_kept_database_and_its_journal_back(sqlite_pair, tmp_path, capsys):
    target, previous, kept = sqlite_pair
    result = run("sqlite_put_back", {"path": target, "previous": previous}, capsys)
    assert not result.get("failed"), result
    assert result["changed"] is True
    assert (result["restored_to"], result["previous"]) == (target, previous)
    assert result["removed"] == [target, target + "-wal", target + "-shm"]
    assert "status" not in result
    assert read_bytes(target) == kept  # byte for byte the database that was kept aside
    assert read_bytes(target + "-journal") == b"kept journal"
    assert sorted(os.listdir(str(tmp_path))) == ["app.db", "app.db-journal"]


def test_sqlite_put_back_check_mode_changes_nothing(sqlite_pair, tmp_path, capsys):
    target, previous, kept = sqlite_pair
    before = {name: read_bytes(tmp_path / name) for name in os.listdir(str(tmp_path))}
    result = run("sqlite_put_back", {"path": target, "previous": previous}, capsys, check_mode=True)
    assert not result.get("failed") and result["changed"] is True, result
    assert result["removed"] == [target, target + "-wal", target + "-shm"]
    assert {name: read_bytes(tmp_path / name) for name in os.listdir(str(tmp_path))} == before
    assert read_bytes(previous) == kept


def test_sqlite_put_back_resolves_a_relative_path_as_the_restore_does(sqlite_pair, tmp_path, capsys, monkeypatch):
    target, previous, kept = sqlite_pair
    monkeypatch.chdir(str(tmp_path))
    result = run("sqlite_put_back", {"path": "app.db", "previous": previous}, capsys)
    assert not result.get("failed"), result
    assert result["restored_to"] == target and read_bytes(target) == kept


@pytest.mark.parametrize("previous", ["{target}.bak", "/etc/passwd", "{target}2" + STAMP,
                                      "{target}" + STAMP + "/../app.db"])
def test_sqlite_put_back_refuses_anything_but_the_kept_aside_copy(sqlite_pair, tmp_path, capsys, previous):
    target = sqlite_pair[0]
    before = {name: read_bytes(tmp_path / name) for name in os.listdir(str(tmp_path))}
    result = run("sqlite_put_back", {"path": target, "previous": previous.format(target=target)}, capsys)
    assert result["failed"] is True
    assert "is not the kept-aside copy of %s" % target in result["msg"]
    assert "nothing was changed" in result["msg"]
    assert {name: read_bytes(tmp_path / name) for name in os.listdir(str(tmp_path))} == before


def test_sqlite_put_back_says_when_the_kept_copy_is_gone(tmp_path, capsys):
    target = str(tmp_path / "app.db")
    make_db(target, "restored")
    result = run("sqlite_put_back", {"path": target, "previous": target + STAMP}, capsys)
    assert result["failed"] is True
    assert result["msg"] == ("the kept-aside copy %s is gone (put back or removed already?); the restored data stays "
                             "at %s" % (target + STAMP, target))


def test_sqlite_put_back_never_follows_a_symlinked_kept_copy(tmp_path, capsys):
    target = str(tmp_path / "app.db")
    make_db(target, "restored")
    make_db(tmp_path / "other.db", "other")
    os.symlink(str(tmp_path / "other.db"), target + STAMP)
    result = run("sqlite_put_back", {"path": target, "previous": target + STAMP}, capsys)
    assert result["failed"] is True and "a symlink is never followed" in result["msg"]
    assert os.path.islink(target + STAMP)


@pytest.fixture
def tree_pair(tmp_path):
    target = tmp_path / "uploads"
    (target / "restored").mkdir(parents=True)
    (target / "restored" / "new.txt").write_bytes(b"rejected")
    previous = tmp_path / ("uploads" + STAMP)
    (previous / "a").mkdir(parents=True)
    (previous / "a" / "one.txt").write_bytes(b"kept one")
    (previous / "two.bin").write_bytes(b"\x00kept two")
    return str(target), str(previous)


def files(root):
    found = {}
    for top, _dirs, names in os.walk(root):
        for name in names:
            found[os.path.relpath(os.path.join(top, name), root)] = read_bytes(os.path.join(top, name))
    return found


def test_dir_put_back_puts_the_kept_tree_back_and_removes_the_rejected_one(tree_pair, tmp_path, capsys):
    target, previous = tree_pair
    kept = files(previous)
    result = run("dir_put_back", {"path": target, "previous": previous}, capsys)
    assert not result.get("failed"), result
    assert result["changed"] is True and (result["restored_to"], result["previous"]) == (target, previous)
    (rejected,) = result["removed"]
    assert rejected.startswith(target + ".lifeboat-failed-")
    assert files(target) == kept
    assert sorted(os.listdir(str(tmp_path))) == ["uploads"]  # nothing kept aside or rejected is left


def test_dir_put_back_check_mode_changes_nothing(tree_pair, tmp_path, capsys):
    target, previous = tree_pair
    rejected, kept = files(target), files(previous)
    result = run("dir_put_back", {"path": target, "previous": previous}, capsys, check_mode=True)
    assert not result.get("failed") and result["changed"] is True, result
    assert result["removed"][0].startswith(target + ".lifeboat-failed-")
    assert files(target) == rejected and files(previous) == kept
    assert sorted(os.listdir(str(tmp_path))) == ["uploads", "uploads" + STAMP]


def test_dir_put_back_follows_the_restores_resolution_of_a_symlinked_path(tree_pair, tmp_path, capsys):
    target, previous = tree_pair
    kept = files(previous)
    os.symlink(target, str(tmp_path / "link"))
    result = run("dir_put_back", {"path": str(tmp_path / "link"), "previous": previous}, capsys)
    assert not result.get("failed"), result
    assert result["restored_to"] == target and files(target) == kept


def test_dir_put_back_refuses_a_kept_copy_of_another_target(tree_pair, tmp_path, capsys):
    target, previous = tree_pair
    other = str(tmp_path / "other")
    os.makedirs(other)
    result = run("dir_put_back", {"path": other, "previous": previous}, capsys)
    assert result["failed"] is True and "is not the kept-aside copy of %s" % other in result["msg"]
    assert os.listdir(other) == [] and os.path.isdir(previous) and os.path.isdir(target)


def test_dir_put_back_warns_when_the_rejected_tree_cannot_be_removed(tree_pair, capsys, monkeypatch):
    target, previous = tree_pair
    kept = files(previous)
    put_back = importlib.import_module(PREFIX + "module_utils.engine.sources.directory.put_back")

    def refuse(path):
        raise OSError(13, "Permission denied", path)

    monkeypatch.setattr(put_back, "remove_tree", refuse)
    result = run("dir_put_back", {"path": target, "previous": previous}, capsys)
    assert not result.get("failed"), result
    assert files(target) == kept and result["removed"] == []
    (warning,) = warning_texts(result)
    assert warning.startswith("%s is back; removing the rejected tree %s.lifeboat-failed-" % (target, target))
    assert warning.endswith("remove it by hand")


def test_dir_put_back_says_where_both_trees_are_when_the_rename_fails(tree_pair, capsys, monkeypatch):
    target, previous = tree_pair
    rejected, kept = files(target), files(previous)
    put_back = importlib.import_module(PREFIX + "module_utils.engine.sources.directory.put_back")
    real_rename = os.rename

    def rename(source, destination):
        if source == previous:
            raise OSError(16, "Device or resource busy", source)
        real_rename(source, destination)

    monkeypatch.setattr(put_back.os, "rename", rename)
    result = run("dir_put_back", {"path": target, "previous": previous}, capsys)
    assert result["failed"] is True
    assert result["msg"] == ("renaming %s back to %s failed (Device or resource busy); the restored tree is still at %s "
                             "and the previous one at %s" % (previous, target, target, previous))
    assert files(target) == rejected and files(previous) == kept
