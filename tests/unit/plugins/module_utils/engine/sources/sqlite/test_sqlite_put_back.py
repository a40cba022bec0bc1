"""SQLite put-back (sources/sqlite/put_back.py, the kind's put_back_from_options): the kept-aside database and its
journal files go back, the rejected one's journal files go; `previous` is untrusted, so anything but the target's
own <target>.lifeboat-prev-<time>[-<hex>] is refused, and a symlinked kept copy is never followed."""

import os

import pytest

from engine.core.errors import ConfigError, RestoreError
from engine.sources.sqlite.kind import put_back_from_options
from engine.sources.sqlite.put_back import put_back_sqlite
from support.sqlite_one_value import make_db, read_db


def test_put_back_renames_the_kept_sqlite_database_back_and_drops_the_restored_journal(tmp_path):
    target = str(tmp_path / "app.db")
    previous = target + ".lifeboat-prev-20261122T020000Z-0123abcd"
    make_db(target, "restored")
    make_db(previous, "previous")
    (tmp_path / "app.db-wal").write_bytes(b"stale journal of the restored database")
    result = put_back_sqlite(target, previous)
    assert (result["status"], result["restored_to"], result["previous"]) == ("ok", target, previous)
    assert result["removed"] == [target, target + "-wal"]
    assert read_db(target) == "previous"
    assert not os.path.exists(previous) and not os.path.exists(target + "-wal")
    assert sorted(os.listdir(str(tmp_path))) == ["app.db"]


def test_put_back_brings_the_kept_journal_files_back_with_the_database(tmp_path):
    target = str(tmp_path / "app.db")
    previous = target + ".lifeboat-prev-20261122T020000Z"
    make_db(target, "restored")
    make_db(previous, "previous")
    (tmp_path / "app.db-shm").write_bytes(b"rejected shm")
    (tmp_path / ("app.db.lifeboat-prev-20261122T020000Z-journal")).write_bytes(b"kept journal")
    put_back_sqlite(target, previous)
    assert (tmp_path / "app.db-journal").read_bytes() == b"kept journal"
    assert sorted(os.listdir(str(tmp_path))) == ["app.db", "app.db-journal"]


def test_the_kind_defaults_to_the_jobs_path_and_check_mode_changes_nothing(tmp_path):
    target = str(tmp_path / "app.db")
    previous = target + ".lifeboat-prev-20261122T020000Z-0123abcd"
    make_db(target, "restored")
    make_db(previous, "previous")
    checked = put_back_from_options({"path": target}, previous, check_mode=True)
    assert (checked["status"], checked["restored_to"], checked["changed"]) == ("ok", target, True)
    assert read_db(target) == "restored" and read_db(previous) == "previous"
    done = put_back_from_options({"path": target}, previous)
    assert done["restored_to"] == target and read_db(target) == "previous" and not os.path.exists(previous)


@pytest.mark.parametrize("previous", ["{target}.bak", "/etc/passwd", "{target}.lifeboat-prev-20261122T020000Z/../x",
                                      "{target}2.lifeboat-prev-20261122T020000Z",
                                      "{target}.lifeboat-prev-20261122T020000Z\n",
                                      "{target}.lifeboat-prev-20261122T020000Z-XYZW"])
def test_put_back_refuses_anything_but_the_targets_kept_aside_copy(tmp_path, previous):
    target = str(tmp_path / "app.db")
    make_db(target, "restored")
    previous = previous.format(target=target)
    if previous.startswith(str(tmp_path)) and ".." not in previous:
        make_db(previous, "previous")
    with pytest.raises(ConfigError, match="is not the kept-aside copy"):
        put_back_sqlite(target, previous)
    assert read_db(target) == "restored"
    if previous.startswith(str(tmp_path)) and ".." not in previous:
        assert read_db(previous) == "previous"


@pytest.mark.parametrize("target", ["relative/app.db", "/data/../etc/app.db", "/data//app.db", "/"])
def test_put_back_refuses_a_target_that_is_not_absolute_and_normalised(target):
    with pytest.raises(ConfigError, match="not a normalised absolute path"):
        put_back_sqlite(target, target + ".lifeboat-prev-20261122T020000Z")


def test_put_back_never_follows_a_symlink_as_the_kept_copy(tmp_path):
    target = str(tmp_path / "app.db")
    elsewhere = str(tmp_path / "elsewhere.db")
    make_db(target, "restored")
    make_db(elsewhere, "not ours")
    previous = target + ".lifeboat-prev-20261122T020000Z"
    os.symlink(elsewhere, previous)
    with pytest.raises(ConfigError, match="not a regular file"):
        put_back_sqlite(target, previous)
    assert read_db(target) == "restored" and os.path.islink(previous) and read_db(elsewhere) == "not ours"


def test_put_back_says_when_the_kept_copy_is_gone(tmp_path):
    target = str(tmp_path / "app.db")
    make_db(target, "restored")
    with pytest.raises(RestoreError, match="is gone"):
        put_back_sqlite(target, target + ".lifeboat-prev-20261122T020000Z")
    assert read_db(target) == "restored"
