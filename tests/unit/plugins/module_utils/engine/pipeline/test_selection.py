import datetime

import pytest

from engine.pipeline.catalog import BackupSet, select
from engine.core.errors import ConfigError, IntegrityError, NotFoundError
from engine.repositories.store import StoredSet

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
    make("20261122T005000Z-eeee", error="manifest is corrupted"),  # damaged, but older than every intact set
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
        select(SETS, "app", "here", backup="20261122T005000Z-eeee")


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


# --- damaged sets (issue #16 item 8): an alarm, never silently passed over -----------------------------------

DAMAGED_NEWEST = SETS + [make("20261122T050000Z-ffff", error="manifest x is corrupted (not valid JSON)")]


def test_latest_fails_when_the_newest_set_is_damaged_and_names_it():
    with pytest.raises(IntegrityError) as info:
        select(DAMAGED_NEWEST, "app", "/repo")
    message = info.value.msg
    assert "20261122T050000Z-ffff" in message and "not valid JSON" in message
    assert "20261122T030000Z-aaaa" in message and "skip_damaged" in message and "Nothing was changed" in message
    assert info.value.details["damaged"] == [{"id": "20261122T050000Z-ffff",
                                              "error": "manifest x is corrupted (not valid JSON)"}]


def test_skip_damaged_falls_back_and_says_what_was_skipped():
    chosen = select(DAMAGED_NEWEST, "app", "/repo", skip_damaged=True)
    assert chosen.set_id == "20261122T030000Z-aaaa"
    assert chosen.skipped == [{"id": "20261122T050000Z-ffff", "error": "manifest x is corrupted (not valid JSON)"}]


def test_a_damaged_set_older_than_the_choice_does_not_matter():
    chosen = select(SETS, "app", "/repo")
    assert chosen.set_id == "20261122T030000Z-aaaa" and chosen.skipped == []


def test_a_damaged_set_started_during_the_chosen_one_is_an_alarm():
    sets = [make("20261122T030000Z-aaaa", "2026-11-22T03:10:00Z"), make("20261122T030500Z-ffff", error="bad")]
    with pytest.raises(IntegrityError, match="20261122T030500Z-ffff"):
        select(sets, "app", "here")


def test_before_ignores_a_damaged_set_started_after_the_limit():
    assert select(DAMAGED_NEWEST, "app", "here", before="2026-11-22T04:59:59Z").set_id == "20261122T030000Z-aaaa"


def test_before_fails_on_a_damaged_set_that_may_have_finished_before_the_limit():
    # started 05:00 and its finished time cannot be known: it may have finished by 05:30
    with pytest.raises(IntegrityError, match="20261122T050000Z-ffff"):
        select(DAMAGED_NEWEST, "app", "here", before="2026-11-22T05:30:00Z")
    chosen = select(DAMAGED_NEWEST, "app", "here", before="2026-11-22T05:30:00Z", skip_damaged=True)
    assert chosen.set_id == "20261122T030000Z-aaaa" and [s["id"] for s in chosen.skipped] == ["20261122T050000Z-ffff"]


def test_only_damaged_sets_is_an_alarm_not_a_missing_backup():
    sets = [make("20261122T050000Z-ffff", error="bad")]
    with pytest.raises(IntegrityError, match="no intact set"):
        select(sets, "app", "here")
    with pytest.raises(NotFoundError, match="damaged sets skipped: 20261122T050000Z-ffff: bad"):
        select(sets, "app", "here", skip_damaged=True)


def test_an_explicit_id_is_never_skipped_to():
    with pytest.raises(IntegrityError, match="cannot be used"):
        select(DAMAGED_NEWEST, "app", "here", backup="20261122T050000Z-ffff", skip_damaged=True)
    assert select(DAMAGED_NEWEST, "app", "here", backup="20261122T020000Z-bbbb").set_id == "20261122T020000Z-bbbb"
