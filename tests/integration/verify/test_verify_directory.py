"""Directory test restore: the tree extracted into scratch with dir_restore's extractor, file count and bytes
against the manifest, integrity_check of every SQLite file inside (a ChromaDB store); damaged or forged sets fail
and the staging tree is removed."""

import os
import sqlite3
import tarfile

import pytest

from engine.sources.directory import kind as dir_kind
from engine.sources.directory.extract import CHECK_MODE_PREFIX
from engine.core.errors import IntegrityError
from engine.pipeline.verify import verify_set
from support.crafted_sets import crafted_set, member

from conftest import store

JOB = "chroma"


def make_store(path):
    """A ChromaDB-like store: chroma.sqlite3 and a segment directory of plain files."""
    os.makedirs(os.path.join(path, "segment"))
    conn = sqlite3.connect(os.path.join(path, "chroma.sqlite3"))
    conn.execute("CREATE TABLE embeddings (id INTEGER PRIMARY KEY, doc TEXT)")
    conn.executemany("INSERT INTO embeddings (doc) VALUES (?)", [("document %d " % i * 20,) for i in range(400)])
    conn.commit()
    conn.close()
    for name in ("header.bin", "data_level0.bin"):
        with open(os.path.join(path, "segment", name), "wb") as handle:
            handle.write(os.urandom(3000))


def corrupted_sqlite(tmp_path):
    """Bytes of a SQLite database whose header is intact but whose b-tree pages are garbage."""
    path = str(tmp_path / "damaged.sqlite3")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [("row %d" % i * 30,) for i in range(300)])
    conn.commit()
    conn.close()
    with open(path, "rb") as handle:
        data = bytearray(handle.read())
    page = int.from_bytes(data[16:18], "big")
    for offset in range(page + 100, len(data), 97):  # every page but the first (schema) gets garbage
        data[offset] = (data[offset] + 0x5A) & 0xFF
    return bytes(data)


def staging_left(tmp_path):
    return [name for name in os.listdir(str(tmp_path)) if name.startswith(CHECK_MODE_PREFIX)]


def test_a_good_tree_restores_with_the_recorded_counts_and_sqlite_checked(tmp_path):
    make_store(str(tmp_path / "store"))
    repository, backup = store(tmp_path / "repo", JOB, dir_kind.source_from_options({"path": str(tmp_path / "store")}))
    recorded = backup["manifest"]["verification"]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    report = verify_set(repository, JOB, scratch_dir=str(scratch))["verification"]
    assert report["status"] == "ok" and report["test_restore"] == "ok"
    assert report["checked"]["file_count"] == {"expected": 3, "actual": 3}
    assert recorded["files"] == 3
    assert report["checked"]["bytes"]["actual"] == recorded["total_bytes"]
    assert report["checked"]["sqlite"] == {"chroma.sqlite3": "ok"}
    assert os.listdir(str(scratch)) == []


def test_a_set_with_a_corrupted_sqlite_file_inside_fails(tmp_path):
    payload = corrupted_sqlite(tmp_path)
    # a snapshot made with sqlite: false (the file copied as it was): counts right, the file itself damaged
    repository = crafted_set(tmp_path / "repo", [member(".", kind=tarfile.DIRTYPE), member("chroma.sqlite3", payload)],
                             verification={"files": 1, "directories": 1, "symlinks": 0,
                                           "total_bytes": len(payload)}, job=JOB)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(IntegrityError) as info:
        verify_set(repository, JOB, scratch_dir=str(scratch))
    assert "SQLite file chroma.sqlite3" in info.value.msg and "fails integrity_check" in info.value.msg
    assert os.listdir(str(scratch)) == []


def test_a_recorded_sqlite_file_that_is_corrupted_fails(tmp_path):
    payload = corrupted_sqlite(tmp_path)
    repository = crafted_set(tmp_path / "repo", [member(".", kind=tarfile.DIRTYPE), member("chroma.sqlite3", payload)],
                             verification={"files": 1, "total_bytes": len(payload),
                                           "sqlite": {"chroma.sqlite3": {"integrity_check": "ok"}}}, job=JOB)
    with pytest.raises(IntegrityError) as info:
        verify_set(repository, JOB, scratch_dir=str(tmp_path))
    assert "chroma.sqlite3" in info.value.msg and "integrity_check" in info.value.msg
    assert staging_left(tmp_path) == []


def test_file_count_and_bytes_that_disagree_with_the_manifest_fail(tmp_path):
    repository = crafted_set(tmp_path / "repo", [member(".", kind=tarfile.DIRTYPE), member("a.txt", b"hello")],
                             verification={"files": 2, "total_bytes": 10}, job=JOB)
    with pytest.raises(IntegrityError) as info:
        verify_set(repository, JOB, scratch_dir=str(tmp_path))
    assert "files: 1 restored, 2 in the manifest" in info.value.msg
    assert info.value.details["verification"]["checked"]["file_count"] == {"expected": 2, "actual": 1}
    assert staging_left(tmp_path) == []


def test_a_member_outside_the_tree_is_refused_and_nothing_is_written_outside_scratch(tmp_path):
    repository = crafted_set(tmp_path / "repo", [member("../escaped.txt", b"x")], verification={}, job=JOB)
    with pytest.raises(IntegrityError) as info:
        verify_set(repository, JOB, scratch_dir=str(tmp_path / "repo"))
    assert "path traversal" in info.value.msg
    assert not os.path.exists(str(tmp_path / "escaped.txt"))
