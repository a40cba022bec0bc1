"""Scratch database names carry their creation time, so a later verify can tell one a killed verify left (older
than any verify runs) from one in use; names of any other shape are never taken for ours."""

import datetime

from engine.core.naming import UTC
from engine.sources.postgres import verify

NOW = datetime.datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)


def test_names_fit_postgresql_and_hold_the_time():
    name = verify.scratch_database_name("App-DB.prod", now=NOW)
    assert name.startswith("lifeboat_verify_app_db_prod_20261205120000_") and len(name.rsplit("_", 1)[1]) == 8
    long_name = verify.scratch_database_name("j" * 128, now=NOW)
    assert len(long_name.encode()) <= 63 and verify.SCRATCH_RE.fullmatch(long_name)
    assert verify.scratch_database_name("app", now=NOW) != verify.scratch_database_name("app", now=NOW)


def test_only_our_names_older_than_any_verify_are_stale():
    made = NOW - verify.STALE_AFTER
    assert verify.is_stale_scratch(verify.scratch_database_name("app", now=made - datetime.timedelta(seconds=1)), NOW)
    assert not verify.is_stale_scratch(verify.scratch_database_name("app", now=made + datetime.timedelta(minutes=1)),
                                       NOW)
    old = (made - datetime.timedelta(days=1)).strftime("%Y%m%d%H%M%S")
    for other in ("lifeboat_verify_app_3f9a0c1d",  # before names held a time
                  "lifeboat_verify_app_%s_3F9A0C1D" % old,  # not our hex
                  "lifeboat_verify_app_%s_3f9a0c1d_x" % old,  # something after it
                  "app_lifeboat_verify_app_%s_3f9a0c1d" % old,
                  "lifeboat_verify_app_20261399999999_3f9a0c1d"):  # not a time
        assert not verify.is_stale_scratch(other, NOW), other
