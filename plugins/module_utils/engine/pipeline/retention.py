"""Retention: which sets of a job to keep, which to remove (restic/borg style rules), and removing them.

Rules (every count 0 or unset = rule off):
- ``keep_last: N``: the N newest complete sets.
- ``keep_hourly/daily/weekly/monthly/yearly: N``: for each of the N most recent calendar periods that
  hold at least one complete set, the newest set of that period. Periods are UTC calendar periods of
  the set's ``finished`` time; weeks are ISO 8601 weeks (Monday to Sunday, week-numbering year).
- A set selected by any rule is kept; a complete set selected by none is removed.
- ``max_age: 30d``: a ceiling. A complete set that finished before ``now - max_age`` is removed even
  when a keep rule selected it. With no keep rule, every set younger than max_age is kept.
- The newest complete set is never removed, whatever the rules say.
- Sets without a manifest (incomplete: a failed or running backup) are removed once nothing was
  written to them for ``incomplete_grace`` (default 24h); younger ones are kept (a run may be writing).
- Sets whose manifest cannot be read or does not match its set (invalid: damaged) are never removed
  automatically: they are reported. They are not complete, so a damaged set never counts as the newest
  complete set: the newest intact one is still kept, whatever the damaged set's time.
"""

import datetime
import os

from .catalog import COMPLETE, INCOMPLETE, INVALID, list_sets
from ..core.durations import parse_duration
from ..core.errors import ConfigError, SinkError
from ..core.naming import MANIFEST_NAME, UTC, format_time, job_key, utcnow, validate_job
from ..core.options import find, names
from .options import RETENTION

# The rules come from the schema (options.RETENTION): its counts are keep_last and keep_<period>, its strings the
# durations.
COUNT_KEYS = tuple(option.name for option in RETENTION if option.type == "int")
DURATION_KEYS = tuple(option.name for option in RETENTION if option.type == "str")
POLICY_KEYS = names(RETENTION)
PERIODS = tuple(key[len("keep_"):] for key in COUNT_KEYS if key != "keep_last")
DEFAULT_GRACE = find(RETENTION, "incomplete_grace").default


def parse_policy(options):
    """Validate retention options (module option names) into a policy dict; ConfigError on bad input."""
    options = dict(options or {})
    unknown = sorted(k for k, v in options.items() if k not in POLICY_KEYS and v is not None)
    if unknown:
        raise ConfigError("unknown retention option(s) %s (known: %s)" % (", ".join(unknown), ", ".join(POLICY_KEYS)))
    policy = {}
    for key in COUNT_KEYS:
        value = options.get(key)
        if value is None:
            policy[key] = find(RETENTION, key).default
            continue
        try:
            if isinstance(value, bool):
                raise ValueError()
            count = int(value)
        except (TypeError, ValueError):
            raise ConfigError("retention %s must be a whole number, not %r" % (key, value))
        if count < 0:
            raise ConfigError("retention %s must be 0 (off) or more, not %d" % (key, count))
        policy[key] = count
    max_age = options.get("max_age")
    policy["max_age"] = parse_duration(max_age, "max_age") if max_age not in (None, "") else None
    if policy["max_age"] == 0:
        raise ConfigError("max_age must be more than 0 (unset it to keep sets of any age)")
    grace = options.get("incomplete_grace")
    policy["incomplete_grace"] = parse_duration(DEFAULT_GRACE if grace in (None, "") else grace, "incomplete_grace")
    if not any(policy[k] for k in COUNT_KEYS) and policy["max_age"] is None:
        raise ConfigError("retention has no rule: set at least one of %s or max_age (a policy without rules "
                          "would remove every set but the newest)" % ", ".join(COUNT_KEYS))
    return policy


def period_key(moment, period):
    """The calendar period (UTC) of an aware datetime, as a sortable label."""
    moment = moment.astimezone(UTC)
    if period == "hourly":
        return moment.strftime("%Y-%m-%dT%H")
    if period == "daily":
        return moment.strftime("%Y-%m-%d")
    if period == "weekly":
        year, week, _day = moment.isocalendar()
        return "%04d-W%02d" % (year, week)
    if period == "monthly":
        return moment.strftime("%Y-%m")
    if period == "yearly":
        return moment.strftime("%Y")
    raise ValueError(period)


def select(entries, policy, now=None):
    """Pure selection. `entries`: dicts with id, status (complete|incomplete|invalid), finished (aware
    datetime, complete sets) and modified (aware datetime of the newest object). Returns (kept, removed):
    lists of the same dicts with ``reasons`` (list of str) added, newest first."""
    now = now or utcnow()
    reasons = {}
    removed_reasons = {}
    complete = sorted((e for e in entries if e["status"] == COMPLETE),
                      key=lambda e: (e["finished"], e["id"]), reverse=True)
    for entry in complete:
        reasons[entry["id"]] = []

    if policy.get("keep_last"):
        for index, entry in enumerate(complete[:policy["keep_last"]]):
            reasons[entry["id"]].append("keep_last (%d of %d)" % (index + 1, policy["keep_last"]))
    for period in PERIODS:
        wanted = policy.get("keep_" + period) or 0
        if not wanted:
            continue
        last = None
        count = 0
        for entry in complete:
            bucket = period_key(entry["finished"], period)
            if bucket == last:
                continue
            if count >= wanted:
                break
            last = bucket
            count += 1
            reasons[entry["id"]].append("keep_%s %s" % (period, bucket))

    has_keep_rule = any(policy.get(k) for k in COUNT_KEYS)
    max_age = policy.get("max_age")
    cutoff = now - datetime.timedelta(seconds=max_age) if max_age else None
    for entry in complete:
        entry_reasons = reasons[entry["id"]]
        if cutoff is not None and entry["finished"] < cutoff:
            removed_reasons[entry["id"]] = ["older than max_age (%ds)%s" % (
                max_age, "; overrides " + ", ".join(r.split(" ")[0] for r in entry_reasons) if entry_reasons else "")]
            reasons[entry["id"]] = []
        elif cutoff is not None and not has_keep_rule:
            entry_reasons.append("within max_age (%ds)" % max_age)
        elif not entry_reasons:
            removed_reasons[entry["id"]] = ["not selected by any keep rule"]
    if complete:
        newest = complete[0]["id"]
        removed_reasons.pop(newest, None)
        reasons[newest].insert(0, "newest complete set (never removed)")

    grace = datetime.timedelta(seconds=policy.get("incomplete_grace") or 0)
    for entry in entries:
        if entry["status"] == INCOMPLETE:
            if entry["modified"] is not None and entry["modified"] < now - grace:
                removed_reasons[entry["id"]] = ["incomplete (no manifest), last written %s, older than "
                                                "incomplete_grace (%ds)" % (format_time(entry["modified"]),
                                                                            grace.total_seconds())]
            else:
                reasons[entry["id"]] = ["incomplete but within incomplete_grace: a backup may still be writing it"]
        elif entry["status"] == INVALID:
            reasons[entry["id"]] = ["damaged (%s): left for inspection, never removed automatically"
                                    % entry.get("error")]

    kept, removed = [], []
    for entry in sorted(entries, key=_order, reverse=True):
        if entry["id"] in removed_reasons:
            removed.append(dict(entry, reasons=removed_reasons[entry["id"]]))
        else:
            kept.append(dict(entry, reasons=reasons.get(entry["id"], [])))
    return kept, removed


def _order(entry):
    return (entry.get("finished") or entry.get("modified") or datetime.datetime.min.replace(tzinfo=UTC), entry["id"])


def _entries(sets):
    entries = []
    for backup_set in sets:
        modified = [s.modified for s in backup_set.stored.values() if s.modified is not None]
        entries.append({
            "id": backup_set.set_id,
            "status": backup_set.status,
            "finished": backup_set.finished,
            "modified": max(modified) if modified else None,
            "error": backup_set.error,
            "size": (backup_set.manifest or {}).get("size") or max([s.size or 0 for s in backup_set.stored.values()]
                                                                   or [0]),
            "stores": sorted(backup_set.stored),
            "location": {name: stored.location for name, stored in backup_set.stored.items()},
        })
    return entries


def _public(entry):
    out = {
        "id": entry["id"],
        "status": entry["status"],
        "finished": format_time(entry["finished"]) if entry.get("finished") else None,
        "size": entry.get("size"),
        "location": entry.get("location", {}),
        "reasons": entry["reasons"],
    }
    return out


def _delete_local(store, job, set_id):
    """Remove the manifest first, so a half-removed set never looks complete."""
    directory = store.set_location(job, set_id)
    try:
        os.unlink(os.path.join(directory, MANIFEST_NAME))
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise SinkError("cannot remove set %s from %s: %s" % (set_id, directory, exc))
    try:
        store.delete_set(job, set_id)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise SinkError("cannot remove set %s from %s: %s; its manifest is already gone, so readers ignore it"
                        % (set_id, directory, exc))


def _delete_s3(store, job, set_ids):
    """One listing of the job, then DeleteObjects in batches of 1000 (manifests first)."""
    base = job_key(store.prefix, job)
    wanted = set(set_ids)
    keys = []
    for item in store.list_objects(base):
        set_id = item["Key"][len(base):].partition("/")[0]
        if set_id in wanted:
            keys.append(item["Key"])
    store.delete_keys(keys)
    return len(keys)


def apply_retention(repository, job, options, now=None, check_mode=False):
    """Select and (unless check_mode) remove. Returns {changed, kept, removed, freed_bytes, policy, now}."""
    validate_job(job)
    policy = parse_policy(options)
    now = now or utcnow()
    entries = _entries(list_sets(repository, job))
    kept, removed = select(entries, policy, now)
    result = {
        "changed": bool(removed),
        "kept": [_public(e) for e in kept],
        "removed": [_public(e) for e in removed],
        "freed_bytes": sum(e.get("size") or 0 for e in removed),
        "policy": policy,
        "now": format_time(now),
    }
    if check_mode or not removed:
        return result
    done = []
    for store in repository.stores:
        ids = [e["id"] for e in removed if store.name in e["stores"]]
        if not ids:
            continue
        try:
            if store.name == "s3":
                _delete_s3(store, job, ids)
            elif store.name == "local":
                for set_id in ids:
                    _delete_local(store, job, set_id)
            else:
                for set_id in ids:
                    store.delete_set(job, set_id)  # remote stores remove the manifest first themselves
        except SinkError as exc:
            raise SinkError("retention of job %s failed while removing sets from %s: %s (already removed: %s); "
                            "run it again once the repository is reachable"
                            % (job, store.describe(), exc.msg, ", ".join(done) or "none"),
                            kept=result["kept"], removed=result["removed"])
        done.append(store.name)
    return result
