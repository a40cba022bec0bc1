"""Retention selection across hour/day/ISO-week/month/year boundaries, leap years, max_age, leftovers,
and removal from a local repository and an S3 client (DeleteObjects batches of 1000)."""

import datetime
import io
import json
import os

import pytest

from engine.core import manifest as manifest_mod
from engine.pipeline.catalog import COMPLETE, INCOMPLETE, INVALID
from engine.core.errors import ConfigError
from engine.repositories.local import LocalRepository
from engine.core.naming import MANIFEST_NAME, UTC
from engine.repositories.repository import Repository
from engine.pipeline.retention import apply_retention, parse_duration, parse_policy, period_key, select
from engine.repositories.s3 import S3Repository

NOW = datetime.datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


def t(text):
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def sets(*times, **kw):
    out = []
    for index, text in enumerate(times):
        moment = t(text)
        out.append({"id": moment.strftime("%Y%m%dT%H%M%SZ") + "-%04x" % index, "status": COMPLETE,
                    "finished": moment, "modified": moment})
    return out


def run(entries, now=NOW, **rules):
    kept, removed = select(entries, parse_policy(rules), now)
    by_time = {e["id"]: e["finished"].strftime("%Y-%m-%d %H:%M:%S") for e in entries if e.get("finished")}
    return ([by_time.get(e["id"], e["id"]) for e in kept], [by_time.get(e["id"], e["id"]) for e in removed],
            {by_time.get(e["id"], e["id"]): e["reasons"] for e in kept + removed})


# --- period keys -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("moment,period,key", [
    ("2024-12-31 23:59:59", "hourly", "2024-12-31T23"),
    ("2025-01-01 00:00:00", "hourly", "2025-01-01T00"),
    ("2024-02-29 12:00:00", "daily", "2024-02-29"),
    ("2024-12-29 23:59:59", "weekly", "2024-W52"),   # Sunday
    ("2024-12-30 00:00:00", "weekly", "2025-W01"),   # Monday: ISO week 1 of 2025 starts in 2024
    ("2021-01-03 10:00:00", "weekly", "2020-W53"),   # 2020 has 53 ISO weeks
    ("2021-01-04 10:00:00", "weekly", "2021-W01"),
    ("2024-02-29 23:59:59", "monthly", "2024-02"),
    ("2024-03-01 00:00:00", "monthly", "2024-03"),
    ("2023-12-31 23:59:59", "yearly", "2023"),
    ("2024-01-01 00:00:00", "yearly", "2024"),
])
def test_period_keys(moment, period, key):
    assert period_key(t(moment), period) == key


def test_period_key_uses_utc_for_offset_times():
    moment = datetime.datetime(2024, 3, 1, 0, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    assert period_key(moment, "monthly") == "2024-02"  # 2024-02-29 22:30 UTC


# --- rules -------------------------------------------------------------------------------------------------

def test_keep_last():
    entries = sets("2024-03-01 00:00:00", "2024-03-02 00:00:00", "2024-03-03 00:00:00", "2024-03-04 00:00:00",
                   "2024-03-05 00:00:00")
    kept, removed, reasons = run(entries, keep_last=3)
    assert kept == ["2024-03-05 00:00:00", "2024-03-04 00:00:00", "2024-03-03 00:00:00"]
    assert removed == ["2024-03-02 00:00:00", "2024-03-01 00:00:00"]
    assert reasons["2024-03-03 00:00:00"] == ["keep_last (3 of 3)"]
    assert reasons["2024-03-01 00:00:00"] == ["not selected by any keep rule"]


def test_keep_hourly_across_midnight_keeps_newest_per_hour():
    entries = sets("2024-02-28 22:10:00", "2024-02-28 23:05:00", "2024-02-28 23:50:00", "2024-02-29 00:10:00",
                   "2024-02-29 00:40:00")
    kept, removed, reasons = run(entries, keep_hourly=2)
    assert kept == ["2024-02-29 00:40:00", "2024-02-28 23:50:00"]
    assert removed == ["2024-02-29 00:10:00", "2024-02-28 23:05:00", "2024-02-28 22:10:00"]
    assert "keep_hourly 2024-02-28T23" in reasons["2024-02-28 23:50:00"]


def test_keep_daily_counts_only_days_that_have_sets_and_crosses_feb_29():
    entries = sets("2024-02-27 03:00:00", "2024-02-28 03:00:00", "2024-02-29 03:00:00", "2024-02-29 15:00:00",
                   "2024-03-02 03:00:00")  # no set on 2024-03-01
    kept, removed, reasons = run(entries, keep_daily=3)
    assert kept == ["2024-03-02 03:00:00", "2024-02-29 15:00:00", "2024-02-28 03:00:00"]
    assert removed == ["2024-02-29 03:00:00", "2024-02-27 03:00:00"]
    assert "keep_daily 2024-02-29" in reasons["2024-02-29 15:00:00"]


def test_keep_weekly_uses_iso_weeks_across_the_year_boundary():
    entries = sets("2024-12-22 12:00:00",  # Sun, 2024-W51
                   "2024-12-28 12:00:00",  # Sat, 2024-W52
                   "2024-12-29 12:00:00",  # Sun, 2024-W52 (newest of W52)
                   "2024-12-30 12:00:00",  # Mon, 2025-W01
                   "2025-01-05 12:00:00")  # Sun, 2025-W01 (newest of W01)
    kept, removed, reasons = run(entries, now=t("2025-01-06 00:00:00"), keep_weekly=2)
    assert kept == ["2025-01-05 12:00:00", "2024-12-29 12:00:00"]
    assert removed == ["2024-12-30 12:00:00", "2024-12-28 12:00:00", "2024-12-22 12:00:00"]
    assert reasons["2024-12-29 12:00:00"] == ["keep_weekly 2024-W52"]


def test_keep_weekly_53_week_year():
    entries = sets("2020-12-27 12:00:00", "2020-12-31 12:00:00", "2021-01-03 12:00:00", "2021-01-04 12:00:00")
    kept, removed, reasons = run(entries, now=t("2021-01-05 00:00:00"), keep_weekly=3)
    # 2021-01-04 is 2021-W01; 2020-12-31 and 2021-01-03 are both 2020-W53; 2020-12-27 is 2020-W52
    assert kept == ["2021-01-04 12:00:00", "2021-01-03 12:00:00", "2020-12-27 12:00:00"]
    assert removed == ["2020-12-31 12:00:00"]
    assert reasons["2021-01-03 12:00:00"] == ["keep_weekly 2020-W53"]


def test_keep_monthly_february_of_leap_and_common_years():
    entries = sets("2023-02-28 23:59:59", "2023-03-01 00:00:00", "2024-02-28 10:00:00", "2024-02-29 23:59:59",
                   "2024-03-01 00:00:01")
    kept, removed, reasons = run(entries, keep_monthly=3)
    assert kept == ["2024-03-01 00:00:01", "2024-02-29 23:59:59", "2023-03-01 00:00:00"]
    assert removed == ["2024-02-28 10:00:00", "2023-02-28 23:59:59"]
    assert reasons["2024-02-29 23:59:59"] == ["keep_monthly 2024-02"]


def test_keep_yearly_across_new_year():
    entries = sets("2022-06-01 00:00:00", "2022-12-31 23:59:59", "2023-01-01 00:00:00", "2023-12-31 23:59:58",
                   "2024-01-01 00:00:00")
    kept, removed, reasons = run(entries, keep_yearly=2)
    assert kept == ["2024-01-01 00:00:00", "2023-12-31 23:59:58"]
    assert removed == ["2023-01-01 00:00:00", "2022-12-31 23:59:59", "2022-06-01 00:00:00"]


def test_rules_combine_by_union_with_every_reason():
    entries = sets("2024-02-05 03:00:00", "2024-02-12 03:00:00", "2024-02-26 03:00:00", "2024-03-04 03:00:00",
                   "2024-03-08 03:00:00", "2024-03-09 03:00:00", "2024-03-10 03:00:00")
    kept, removed, reasons = run(entries, keep_daily=2, keep_weekly=3, keep_monthly=2)
    # daily: 03-10, 03-09; weekly: W10 03-10, W09 02-26, W07 02-12; monthly: 03 03-10, 02 02-26
    assert kept == ["2024-03-10 03:00:00", "2024-03-09 03:00:00", "2024-02-26 03:00:00", "2024-02-12 03:00:00"]
    assert removed == ["2024-03-08 03:00:00", "2024-03-04 03:00:00", "2024-02-05 03:00:00"]
    # 2024-03-10 is a Sunday: newest of ISO week 10, of March and of its day
    assert reasons["2024-03-10 03:00:00"] == ["newest complete set (never removed)", "keep_daily 2024-03-10",
                                              "keep_weekly 2024-W10", "keep_monthly 2024-03"]
    assert reasons["2024-03-09 03:00:00"] == ["keep_daily 2024-03-09"]
    assert reasons["2024-03-08 03:00:00"] == ["not selected by any keep rule"]
    assert reasons["2024-02-26 03:00:00"] == ["keep_weekly 2024-W09", "keep_monthly 2024-02"]


def test_max_age_is_a_ceiling_over_keep_rules():
    entries = sets("2024-01-01 00:00:00", "2024-02-01 00:00:00", "2024-03-01 00:00:00", "2024-03-09 00:00:00")
    kept, removed, reasons = run(entries, keep_monthly=12, keep_last=2, max_age="30d")
    assert kept == ["2024-03-09 00:00:00", "2024-03-01 00:00:00"]
    assert removed == ["2024-02-01 00:00:00", "2024-01-01 00:00:00"]
    assert reasons["2024-03-01 00:00:00"] == ["keep_last (2 of 2)"]
    assert reasons["2024-01-01 00:00:00"] == ["older than max_age (2592000s); overrides keep_monthly"]


def test_max_age_alone_keeps_younger_sets():
    entries = sets("2024-03-01 11:59:59", "2024-03-01 12:00:01", "2024-03-05 00:00:00")
    kept, removed, reasons = run(entries, max_age="9d")
    assert kept == ["2024-03-05 00:00:00", "2024-03-01 12:00:01"]
    assert removed == ["2024-03-01 11:59:59"]
    assert "within max_age (777600s)" in reasons["2024-03-01 12:00:01"]


def test_newest_complete_set_is_never_removed():
    entries = sets("2023-01-01 00:00:00", "2023-06-01 00:00:00")
    kept, removed, reasons = run(entries, max_age="1d")
    assert kept == ["2023-06-01 00:00:00"]
    assert removed == ["2023-01-01 00:00:00"]
    assert reasons["2023-06-01 00:00:00"] == ["newest complete set (never removed)"]


def test_newest_is_chosen_among_complete_sets_only():
    entries = sets("2024-03-01 00:00:00", "2024-03-02 00:00:00")
    entries.append({"id": "20240310T115000Z-beef", "status": INCOMPLETE, "finished": None,
                    "modified": t("2024-03-10 11:50:00")})
    kept, removed, reasons = run(entries, keep_last=1)
    assert kept == ["2024-03-02 00:00:00", "20240310T115000Z-beef"] or \
        kept == ["20240310T115000Z-beef", "2024-03-02 00:00:00"]
    assert removed == ["2024-03-01 00:00:00"]


def test_a_newer_damaged_set_never_costs_the_newest_intact_one():
    entries = sets("2024-03-01 00:00:00", "2024-03-02 00:00:00")
    entries.append({"id": "20240310T115000Z-dead", "status": INVALID, "finished": None,
                    "modified": t("2024-03-10 11:50:00"), "error": "manifest is corrupted"})
    for rules in ({"keep_last": 1}, {"max_age": "1d"}, {"keep_daily": 1}):
        kept, removed, reasons = run(entries, **rules)
        assert sorted(kept) == ["2024-03-02 00:00:00", "20240310T115000Z-dead"], rules
        assert removed == ["2024-03-01 00:00:00"]
        assert reasons["2024-03-02 00:00:00"][0] == "newest complete set (never removed)"
        assert reasons["20240310T115000Z-dead"][0].startswith("damaged (manifest is corrupted)")


def test_incomplete_sets_go_after_the_grace_period_invalid_sets_stay():
    entries = sets("2024-03-09 00:00:00")
    entries += [
        {"id": "20240308T000000Z-aaaa", "status": INCOMPLETE, "finished": None, "modified": t("2024-03-08 00:00:05")},
        {"id": "20240310T110000Z-bbbb", "status": INCOMPLETE, "finished": None, "modified": t("2024-03-10 11:00:00")},
        {"id": "20240101T000000Z-cccc", "status": INVALID, "finished": None, "modified": t("2024-01-01 00:00:00"),
         "error": "manifest is corrupted"},
    ]
    kept, removed, reasons = run(entries, keep_last=5, incomplete_grace="12h")
    assert removed == ["20240308T000000Z-aaaa"]
    assert set(kept) == {"2024-03-09 00:00:00", "20240310T110000Z-bbbb", "20240101T000000Z-cccc"}
    assert "within incomplete_grace" in reasons["20240310T110000Z-bbbb"][0]
    assert "never removed automatically" in reasons["20240101T000000Z-cccc"][0]


def test_no_sets_no_work():
    assert select([], parse_policy({"keep_last": 1}), NOW) == ([], [])


# --- options -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,seconds", [("90", 90), (90, 90), ("30d", 2592000), ("12h", 43200), ("1d12h", 129600),
                                          ("2w", 1209600), ("45m", 2700), ("30s", 30), ("1D 2H", 93600)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10x", "d", "-5", "1.5d", True])
def test_parse_duration_rejects(text):
    with pytest.raises(ConfigError):
        parse_duration(text)


@pytest.mark.parametrize("options,message", [
    ({}, "no rule"),
    ({"keep_last": 0}, "no rule"),
    ({"keep_last": -1}, "0 (off) or more"),
    ({"keep_daily": "many"}, "whole number"),
    ({"keep_dayly": 3}, "unknown retention option"),
    ({"max_age": "0"}, "more than 0"),
    ({"keep_last": 1, "incomplete_grace": "soon"}, "not a duration"),
])
def test_parse_policy_rejects(options, message):
    with pytest.raises(ConfigError) as info:
        parse_policy(options)
    assert message in info.value.msg


def test_parse_policy_defaults():
    policy = parse_policy({"keep_daily": 7, "max_age": "400d"})
    assert policy["keep_daily"] == 7 and policy["keep_last"] == 0
    assert policy["max_age"] == 400 * 86400 and policy["incomplete_grace"] == 86400


# --- repositories --------------------------------------------------------------------------------------------

def manifest_for(set_id, job, finished):
    return manifest_mod.build(set_id=set_id, job=job, kind="sqlite", data="data.db", source={"path": "/x"},
                              started=finished - datetime.timedelta(seconds=5), finished=finished, raw_size=1,
                              size=1, sha256="0" * 64, compression={"algorithm": "none", "level": None})


def make_local_set(root, job, finished, complete=True, suffix="0001"):
    set_id = finished.strftime("%Y%m%dT%H%M%SZ") + "-" + suffix
    directory = os.path.join(root, job, set_id)
    os.makedirs(directory)
    with open(os.path.join(directory, "data.db"), "wb") as handle:
        handle.write(b"x")
    if complete:
        with open(os.path.join(directory, MANIFEST_NAME), "wb") as handle:
            handle.write(manifest_mod.dumps(manifest_for(set_id, job, finished)))
    stamp = finished.timestamp()
    for name in os.listdir(directory):
        os.utime(os.path.join(directory, name), (stamp, stamp))
    os.utime(directory, (stamp, stamp))
    return set_id


def test_apply_retention_on_a_local_repository(tmp_path):
    root = str(tmp_path / "repo")
    ids = [make_local_set(root, "app", t("2024-03-%02d 03:00:00" % day)) for day in (1, 2, 3, 4, 5)]
    leftover = make_local_set(root, "app", t("2024-03-02 04:00:00"), complete=False, suffix="dead")
    repository = Repository([LocalRepository(root)])
    now = t("2024-03-06 00:00:00")

    plan = apply_retention(repository, "app", {"keep_last": 2}, now=now, check_mode=True)
    assert [e["id"] for e in plan["removed"]] == [ids[2], leftover, ids[1], ids[0]]
    assert sorted(os.listdir(os.path.join(root, "app"))) == sorted(ids + [leftover])  # check mode removes nothing

    result = apply_retention(repository, "app", {"keep_last": 2}, now=now)
    assert result["changed"] is True
    assert sorted(os.listdir(os.path.join(root, "app"))) == sorted(ids[3:])
    assert [e["id"] for e in result["kept"]] == [ids[4], ids[3]]
    again = apply_retention(repository, "app", {"keep_last": 2}, now=now)
    assert again["changed"] is False and again["removed"] == []


class FakeS3(object):
    """The few S3 client calls retention makes, with DeleteObjects batch sizes recorded."""

    def __init__(self, objects):
        self.objects = dict(objects)  # key -> (body, last_modified)
        self.batches = []

    def get_paginator(self, name):
        assert name == "list_objects_v2"
        fake = self

        class Paginator(object):
            def paginate(self, Bucket, Prefix):
                keys = sorted(k for k in fake.objects if k.startswith(Prefix))
                for start in range(0, len(keys), 1000):
                    yield {"Contents": [{"Key": k, "Size": len(fake.objects[k][0]), "LastModified": fake.objects[k][1]}
                                        for k in keys[start:start + 1000]]}
        return Paginator()

    def get_object(self, Bucket, Key):
        return {"Body": io.BytesIO(self.objects[Key][0])}

    def delete_objects(self, Bucket, Delete):
        batch = [item["Key"] for item in Delete["Objects"]]
        assert len(batch) <= 1000
        self.batches.append(batch)
        for key in batch:
            del self.objects[key]
        return {}


def test_apply_retention_on_s3_deletes_in_batches_of_1000_manifests_first():
    objects = {}
    start = t("2024-01-01 00:00:00")
    ids = []
    for index in range(600):  # 1200 objects
        finished = start + datetime.timedelta(hours=index)
        set_id = finished.strftime("%Y%m%dT%H%M%SZ") + "-%04x" % index
        ids.append(set_id)
        base = "prod/app/%s/" % set_id
        objects[base + "data.db"] = (b"x", finished)
        objects[base + MANIFEST_NAME] = (json.dumps(manifest_for(set_id, "app", finished)).encode(), finished)
    objects["prod/other/20240101T000000Z-ffff/" + MANIFEST_NAME] = (b"{}", start)
    client = FakeS3(objects)
    repository = Repository([S3Repository("bucket", prefix="/prod/", client=client)])
    result = apply_retention(repository, "app", {"keep_last": 10}, now=t("2024-02-01 00:00:00"))
    assert len(result["removed"]) == 590
    assert [len(b) for b in client.batches] == [1000, 180]
    assert all(k.endswith(MANIFEST_NAME) for k in client.batches[0][:590])
    remaining = sorted({k.split("/")[2] for k in client.objects if k.startswith("prod/app/")})
    assert remaining == sorted(ids[-10:])
    assert "prod/other/20240101T000000Z-ffff/" + MANIFEST_NAME in client.objects
