"""What a Redis set promises about its keys and how a restored server is judged against it. The backup records
the key counts per database with a tolerance, the writes and expiries Redis counted around its snapshot
(key_churn, key_tolerance); the restore and the test restore read that promise from the untrusted manifest
(key_expectation, which refuses anything but small counts per dbN) and compare the counts of the restored server
with it (compare_keys), so both judge a set the same way."""

import re

from ...core.errors import IntegrityError


def key_churn(info):
    """Keys removed without a write command (TTL ran out, maxmemory eviction): Redis counts them apart."""
    return sum(int(info.get(name) or 0) for name in ("expired_keys", "evicted_keys"))


def key_tolerance(info, churn_before):
    """How far the key count of each database may lie from the snapshot's, as the server counted it: the
    changes since the snapshot (rdb_changes_since_last_save, reset to "changes since the fork" when a save
    completes; one change moves a key count by at most one) plus the keys that expired or were evicted
    since before the save. 0 when nobody wrote."""
    return int(info.get("rdb_changes_since_last_save") or 0) + max(0, key_churn(info) - churn_before)


DB_NAME_RE = re.compile(r"db[0-9]{1,5}\Z")


def key_expectation(manifest):
    """What a set promises about its keys, from its (untrusted) manifest: ({db: keys}, {db: keys with a TTL},
    tolerance), or None when it records no counts. Anything but small non-negative integers per dbN is an
    IntegrityError, raised before anything is changed."""
    checks = manifest.get("verification") or {}
    if not isinstance(checks, dict) or checks.get("keys") is None:
        return None

    def counts(field):
        value = checks.get(field)
        value = {} if value is None and field == "expires" else value
        if not isinstance(value, dict) or not all(
                isinstance(db, str) and DB_NAME_RE.match(db) and _count(number) for db, number in value.items()):
            raise IntegrityError("the manifest of set %s is corrupted (verification.%s is not a count per database); "
                                 "nothing was changed: restore another set" % (manifest["id"], field))
        return value

    keys, expires = counts("keys"), counts("expires")
    tolerance = checks.get("keys_tolerance", 0)  # sets of lifeboat 0.1.0 record none: their counts must match
    if not _count(tolerance):
        raise IntegrityError("the manifest of set %s is corrupted (verification.keys_tolerance is not a count); "
                             "nothing was changed: restore another set" % manifest["id"])
    return keys, expires, tolerance


def _count(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2 ** 63


def compare_keys(expected, expires, tolerance, actual):
    """Restored key counts against the manifest. Per database the count may lie `tolerance` (the changes the
    server counted after its snapshot) above or below the recorded one, and keys with a TTL may have expired
    since (the TTL count itself may be off by the tolerance too). A server left with no keys at all while the
    set recorded keys without a TTL is never right, whatever tolerance the manifest claims. Returns
    (ok, problems)."""
    problems = []
    for db in sorted(set(expected) | set(actual)):
        want, got, ttl = expected.get(db, 0), actual.get(db, 0), expires.get(db, 0)
        lowest, highest = max(0, want - ttl - 2 * tolerance), want + tolerance
        if not lowest <= got <= highest:
            allowed = [("%d with a TTL" % ttl) if ttl else "", ("%d changes during the backup" % tolerance)
                       if tolerance else ""]
            problems.append("%s has %d keys, the backup had %d" % (db, got, want) + (
                " (allowed %d to %d: %s)" % (lowest, highest, ", ".join(part for part in allowed if part))
                if lowest != highest else ""))
    durable = sum(max(0, want - expires.get(db, 0)) for db, want in expected.items())
    if durable and not any(actual.values()):
        problems.insert(0, "the restored server holds no keys at all, the backup had %d without a TTL" % durable)
    return not problems, problems
