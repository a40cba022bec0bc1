"""A well-formed set dated in the future, as whoever can write a repository could plant one (a correct sha256,
only its id and times moved to 2099): it would stay `latest` for every restore and the newest set for keep_last,
so retention would prune the real sets while it stays. It is damaged (an alarm) instead: never chosen, never
counted, never pruned. A set within manifest.FUTURE_TOLERANCE (a writer's clock a little ahead) stays usable."""

import datetime
import json
import os
import shutil
import sqlite3

import pytest

from fault_helpers import count, digest, make_db
from engine.core import manifest as manifest_mod
from engine.core.errors import IntegrityError
from engine.core.naming import format_time, utcnow
from engine.pipeline.backup import run_backup
from engine.pipeline.catalog import COMPLETE, INVALID, list_sets
from engine.pipeline.retention import apply_retention
from engine.pipeline.verify import verify_set
from engine.repositories.repository import Repository
from engine.sources.sqlite.restore import restore_sqlite
from engine.sources.sqlite.snapshot import SqliteSource

JOB = "app"


def redate(repo, real, moment):
    """A copy of set `real` (a run_backup result) under the id of `moment`, its manifest's id and times moved
    there; data, sha256 and everything else as they were. Returns the new id."""
    set_id = moment.strftime("%Y%m%dT%H%M%SZ") + "-" + real["id"].rsplit("-", 1)[1]
    shutil.copytree(real["location"]["local"], os.path.join(repo, JOB, set_id))
    document = dict(real["manifest"], id=set_id, started=format_time(moment),
                    finished=format_time(moment + datetime.timedelta(seconds=1)))
    with open(os.path.join(repo, JOB, set_id, "manifest.json"), "wb") as handle:
        handle.write(manifest_mod.dumps(document))
    return set_id


@pytest.fixture
def planted(tmp_path):
    """Two real sets of a database (200 rows, then 201) and a copy of the older one dated 2099."""
    repo = str(tmp_path / "repo")
    db = make_db(tmp_path / "app.db", rows=200)
    repository = Repository.from_options(dest=repo)
    older = run_backup(SqliteSource(db), repository, JOB)
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO t (v) VALUES ('newer')")
    conn.commit()
    conn.close()
    newer = run_backup(SqliteSource(db), repository, JOB)
    future = redate(repo, older, datetime.datetime(2099, 1, 1, tzinfo=datetime.timezone.utc))
    return repo, db, older, newer, future


def test_a_set_dated_in_the_future_is_damaged_and_never_restored_as_latest(planted):
    repo, db, _older, newer, future = planted
    repository = Repository.from_options(dest=repo)
    sets = {s.set_id: s for s in list_sets(repository, JOB)}
    assert sets[future].status == INVALID and "dated in the future" in sets[future].error
    assert sets[newer["id"]].status == COMPLETE

    live = digest(db)
    for operation in (lambda: restore_sqlite(repository, JOB, db), lambda: verify_set(repository, JOB),
                      lambda: restore_sqlite(repository, JOB, db, backup=future)):
        with pytest.raises(IntegrityError, match=future):
            operation()
    assert digest(db) == live  # nothing restored from the planted set, the live database untouched

    allowing = Repository.from_options(dest=repo, skip_damaged=True)
    result = restore_sqlite(allowing, JOB, db)
    assert result["backup"]["id"] == newer["id"] and count(db) == 201
    assert [s["id"] for s in result["backup"]["skipped"]] == [future]


def test_retention_neither_counts_nor_removes_a_set_dated_in_the_future(planted):
    repo, _db, older, newer, future = planted
    result = apply_retention(Repository.from_options(dest=repo), JOB, {"keep_last": 1})
    # counted as the newest, the planted set would have made keep_last 1 remove the real newest set
    assert [e["id"] for e in result["removed"]] == [older["id"]]
    kept = {e["id"]: e for e in result["kept"]}
    assert set(kept) == {newer["id"], future}
    assert "newest complete set" in kept[newer["id"]]["reasons"][0]
    assert kept[future]["status"] == INVALID and "never removed automatically" in kept[future]["reasons"][0]
    assert sorted(os.listdir(os.path.join(repo, JOB))) == sorted([newer["id"], future])


def test_a_writer_clock_slightly_ahead_is_tolerated(tmp_path):
    repo = str(tmp_path / "repo")
    db = make_db(tmp_path / "app.db", rows=50)
    real = run_backup(SqliteSource(db), Repository.from_options(dest=repo), JOB)
    ahead = redate(repo, real, utcnow() + manifest_mod.FUTURE_TOLERANCE - datetime.timedelta(minutes=5))
    sets = {s.set_id: s for s in list_sets(Repository.from_options(dest=repo), JOB)}
    assert sets[ahead].status == COMPLETE, sets[ahead].error
    target = str(tmp_path / "restored.db")
    assert restore_sqlite(Repository.from_options(dest=repo), JOB, target)["backup"]["id"] == ahead
    assert count(target) == 50
    assert json.loads(open(os.path.join(repo, JOB, ahead, "manifest.json")).read())["id"] == ahead
