"""A set encrypted to a key the restore host does not hold fails verification with a clear message ("we encrypt to a
key we no longer hold"); with the right identity the same set passes."""

import sqlite3

import pytest

from engine.sources.sqlite import kind as sqlite_kind
from engine.core.errors import IntegrityError
from engine.pipeline.verify import verify_set

from conftest import store

JOB = "app"


@pytest.fixture
def encrypted_set(tmp_path, age_keys):
    db = str(tmp_path / "app.db")
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(33)])
    conn.commit()
    conn.close()
    repository, _backup = store(tmp_path / "repo", JOB, sqlite_kind.source_from_options({"path": db}),
                                encryption={"age_recipients": [age_keys["a"][1]]})
    return repository


def test_the_identity_of_a_recipient_restores(encrypted_set, age_keys, tmp_path):
    report = verify_set(encrypted_set, JOB, identity_file=age_keys["a"][0],
                        scratch_dir=str(tmp_path))["verification"]
    assert report["status"] == "ok" and report["encrypted"] is True and report["row_counts"] == {"t": 33}


def test_an_identity_the_set_was_not_encrypted_to_fails_clearly(encrypted_set, age_keys, tmp_path):
    with pytest.raises(IntegrityError) as info:
        verify_set(encrypted_set, JOB, identity_file=age_keys["b"][0], scratch_dir=str(tmp_path))
    message = info.value.msg
    assert "verification of set" in message
    assert "does not match any recipient" in message
    report = info.value.details["verification"]
    assert report["status"] == "failed" and report["test_restore"] == report["copies"]["local"]


def test_no_identity_on_this_host_fails_clearly(encrypted_set, tmp_path):
    with pytest.raises(IntegrityError) as info:
        verify_set(encrypted_set, JOB, scratch_dir=str(tmp_path))
    assert "encrypted with age" in info.value.msg and "age_identity_file" in info.value.msg
