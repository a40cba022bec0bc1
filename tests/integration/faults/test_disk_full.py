"""Disk full (an 8 MiB tmpfs) during a backup and during a restore: a clear 'no space left' message,
nothing that looks complete, live data intact, and the next run works once there is room."""

import os

import pytest

from fault_helpers import count, digest, make_db, staging
from engine.pipeline.backup import run_backup
from engine.pipeline.catalog import list_sets
from engine.core.errors import RestoreError, SinkError, SourceError
from engine.repositories.repository import Repository
from engine.sources.sqlite.restore import restore_sqlite
from engine.sources.sqlite.snapshot import SqliteSource

JOB = "app"


def test_backup_into_a_full_local_repository(small_fs, tmp_path):
    db = make_db(tmp_path / "app.db", rows=3000, blob=4096)  # about 12 MiB, incompressible
    live = digest(db)
    dest = str(small_fs.root / "repo")
    with pytest.raises(SinkError) as info:
        run_backup(SqliteSource(db), Repository.from_options(dest=dest), JOB, compression="none")
    assert "no space left on device" in info.value.msg and "dest" in info.value.msg, info.value.msg
    assert os.listdir(os.path.join(dest, JOB)) == []  # the partial data file and its set directory are gone
    assert list_sets(Repository.from_options(dest=dest), JOB) == []
    assert digest(db) == live

    small_fs.grow()
    backup = run_backup(SqliteSource(db), Repository.from_options(dest=dest), JOB, compression="none")
    assert [s.set_id for s in list_sets(Repository.from_options(dest=dest), JOB)] == [backup["id"]]


def test_backup_with_a_full_scratch_directory(small_fs, tmp_path):
    db = make_db(tmp_path / "app.db", rows=3000, blob=4096)
    live = digest(db)
    dest = str(tmp_path / "repo")
    with pytest.raises(SourceError) as info:
        run_backup(SqliteSource(db, tmp_dir=str(small_fs.root)), Repository.from_options(dest=dest), JOB)
    assert "no space left on device" in info.value.msg and "tmp_dir" in info.value.msg, info.value.msg
    assert os.listdir(str(small_fs.root)) == []  # the scratch copy is removed
    assert list_sets(Repository.from_options(dest=dest), JOB) == []
    assert digest(db) == live


def test_restore_onto_a_full_filesystem(small_fs, tmp_path, ansible):
    source = make_db(tmp_path / "source.db", rows=3000, blob=4096)
    dest = str(tmp_path / "repo")
    run_backup(SqliteSource(source), Repository.from_options(dest=dest), JOB)
    live_path = small_fs.root / "app.db"
    make_db(live_path, rows=50)
    live = digest(live_path)

    with pytest.raises(RestoreError) as info:
        restore_sqlite(Repository.from_options(dest=dest), JOB, str(live_path))
    assert "no space left on device" in info.value.msg and "not touched" in info.value.msg, info.value.msg
    assert digest(live_path) == live and staging(small_fs.root) == []

    # The same through the module: failed with the message, not a traceback.
    out = ansible.module("lifeboat.backup.sqlite_restore", {"job": JOB, "dest": dest, "path": str(live_path)})
    assert out.get("failed") and "no space left on device" in out["msg"], out
    assert "Traceback" not in out["msg"] and "unexpected" not in out["msg"]
    assert digest(live_path) == live and count(live_path) == 50 and staging(small_fs.root) == []

    small_fs.grow()
    result = restore_sqlite(Repository.from_options(dest=dest), JOB, str(live_path))
    assert result["verification"]["integrity_check"] == "ok" and count(live_path) == 3000
    assert staging(small_fs.root) == []
