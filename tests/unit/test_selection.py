import datetime

import pytest

from engine.catalog import BackupSet, select
from engine.errors import ConfigError, IntegrityError, NotFoundError
from engine.stored import StoredSet

UTC = datetime.timezone.utc


def make(set_id, finished=None, error=None):
    backup_set = BackupSet(set_id)
    backup_set.stored["local"] = StoredSet(set_id, finished is not None or error is not None, "data.db.zst", 10,
                                           datetime.datetime.now(UTC), "/r/" + set_id)
    if finished:
        backup_set.manifest = {"id": set_id, "finished": finished, "kind": "sqlite"}
    backup_set.error = error
    return backup_set


SETS = [
    make("20261122T030000Z-aaaa", "2026-11-22T03:01:00Z"),
    make("20261122T020000Z-bbbb", "2026-11-22T02:01:00Z"),
    make("20261122T040000Z-cccc"),  # incomplete: a run that died
    make("20261122T010000Z-dddd", "2026-11-22T01:01:00Z"),
    make("20261122T050000Z-eeee", error="manifest is corrupted"),
]


def test_latest_is_newest_complete():
    assert select(SETS, "app", "here").set_id == "20261122T030000Z-aaaa"


def test_latest_uses_finished_time_not_start_time():
    sets = [make("20261122T030000Z-aaaa", "2026-11-22T03:01:00Z"), make("20261122T025900Z-bbbb", "2026-11-22T03:05:00Z")]
    assert select(sets, "app", "here").set_id == "20261122T025900Z-bbbb"


def test_latest_tie_takes_the_greater_id():
    sets = [make("20261122T030000Z-aaaa", "2026-11-22T03:01:00Z"), make("20261122T030000Z-ffff", "2026-11-22T03:01:00Z")]
    assert select(sets, "app", "here").set_id == "20261122T030000Z-ffff"


def test_by_id():
    assert select(SETS, "app", "here", backup="20261122T020000Z-bbbb").set_id == "20261122T020000Z-bbbb"


def test_by_id_incomplete_is_refused():
    with pytest.raises(NotFoundError, match="incomplete"):
        select(SETS, "app", "here", backup="20261122T040000Z-cccc")


def test_by_id_invalid_manifest_is_refused():
    with pytest.raises(IntegrityError, match="corrupted"):
        select(SETS, "app", "here", backup="20261122T050000Z-eeee")


def test_by_unknown_id_names_the_catalog():
    with pytest.raises(NotFoundError, match="backup_catalog"):
        select(SETS, "app", "s3://b/prod", backup="20261122T090000Z-9999")


def test_before_picks_newest_finished_at_or_before():
    assert select(SETS, "app", "here", before="2026-11-22T02:30:00Z").set_id == "20261122T020000Z-bbbb"
    assert select(SETS, "app", "here", before="2026-11-22T02:01:00Z").set_id == "20261122T020000Z-bbbb"
    assert select(SETS, "app", "here", before="2026-11-22T03:00:59+00:00").set_id == "20261122T020000Z-bbbb"


def test_before_the_oldest_says_when_the_oldest_is():
    with pytest.raises(NotFoundError, match="oldest finished at 2026-11-22T01:01:00Z"):
        select(SETS, "app", "here", before="2026-11-22T00:00:00Z")


def test_no_complete_set():
    with pytest.raises(NotFoundError, match="run a backup first"):
        select([make("20261122T040000Z-cccc")], "app", "here")


def test_id_and_before_together_are_refused():
    with pytest.raises(ConfigError):
        select(SETS, "app", "here", backup="20261122T020000Z-bbbb", before="2026-11-22T02:30:00Z")
