"""core/durations.parse_duration: the one parser of durations (#18). Before it, the runner's job files
(jobs.parse_duration: rto, verify.objective) and retention (retention.parse_duration: max_age, incomplete_grace)
each had their own; both are kept below, as they were, to prove that every input either accepted is still accepted
with the same number of seconds, and that both call sites now give the same results."""

import re

import pytest

from engine.core.durations import parse_duration
from engine.core.errors import ConfigError
from engine.pipeline.retention import parse_policy
from engine.runner import jobs

# --- the two parsers as they were before #18 (reference only) ------------------------------------------------
_JOBS_DURATION = re.compile(r"^\s*([0-9]+)\s*([smhdw]?)\s*$")
_JOBS_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def old_jobs(value):
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    else:
        match = _JOBS_DURATION.match(value) if isinstance(value, str) else None
        if not match:
            raise ValueError(value)
        seconds = int(match.group(1)) * _JOBS_UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(value)
    return seconds


_RETENTION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RETENTION_RE = re.compile(r"(\d+)\s*([smhdw])")


def old_retention(value):
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        seconds = value
    else:
        text = str(value).strip().lower().replace(" ", "")
        if text.isdigit():
            seconds = int(text)
        else:
            pos = 0
            seconds = 0
            for match in _RETENTION_RE.finditer(text):
                if match.start() != pos:
                    break
                seconds += int(match.group(1)) * _RETENTION_UNITS[match.group(2)]
                pos = match.end()
            if not text or pos != len(text):
                raise ValueError(value)
    if seconds < 0:
        raise ValueError(value)
    return int(seconds)


# Every form either parser documented or tested, and what neither took.
INPUTS = ["90", 90, "0", 0, "15m", " 15 m ", "15 m", "8d", "12h", "90m", "3600s", "1w", "2w", "30d", "1d12h",
          "1D 2H", "1d 12h", "45m", "30s", 3600.0, 1.5, "", "abc", "10x", "d", "-5", -5, "1.5d", "1.5", True, False,
          None, [], {}, "8d4", "h12", "12hh", "1y", "  ", "+5", "0x10"]


def old_result(parser, value):
    try:
        return parser(value)
    except (ValueError, TypeError, AttributeError, ConfigError):
        return None


@pytest.mark.parametrize("value", INPUTS, ids=repr)
def test_what_either_old_parser_accepted_is_accepted_with_the_same_seconds(value):
    accepted = [result for result in (old_result(old_jobs, value), old_result(old_retention, value))
                if result is not None]
    if accepted:
        assert len(set(accepted)) == 1
        assert parse_duration(value) == accepted[0]
    else:
        with pytest.raises(ConfigError):
            parse_duration(value)


@pytest.mark.parametrize("value", [True, False, None, [], "", "abc", "10x", "-5", -5, "1.5d", "1y", float("nan"),
                                   float("inf"), -1.0, "²", "5²"], ids=repr)
def test_what_is_not_a_duration_is_refused(value):
    with pytest.raises(ConfigError) as info:
        parse_duration(value, "rto")
    assert info.value.msg.startswith("rto must ")


def test_positive_refuses_zero_and_says_so():
    assert parse_duration(0) == 0 and parse_duration("0s") == 0
    for value in (0, "0", "0m", 0.5):
        with pytest.raises(ConfigError) as info:
            parse_duration(value, "verify.objective", positive=True)
        assert "verify.objective must be more than 0" in info.value.msg


def through_jobs(value):
    """rto of a job file, as the runner reads it."""
    try:
        return jobs.validate({"job": "a", "kind": "sqlite", "path": "/x", "dest": "/r", "rto": value})["rto_seconds"]
    except ConfigError:
        return None


def through_verify_objective(value):
    try:
        job = jobs.validate({"job": "a", "kind": "sqlite", "path": "/x", "dest": "/r", "verify": {"objective": value}})
    except ConfigError:
        return None
    return job["verify_restore"]["objective"]


def through_retention(value, key):
    try:
        return parse_policy({"keep_last": 1, key: value})[key]
    except ConfigError:
        return None


@pytest.mark.parametrize("value", [v for v in INPUTS if v not in (None, "")] + [float("nan")], ids=repr)
def test_both_call_sites_give_the_same_results(value):
    # max_age and the runner's durations refuse 0; incomplete_grace takes it (remove leftovers at once)
    expected = old_result(lambda v: parse_duration(v, positive=True), value)
    assert through_jobs(value) == expected
    assert through_verify_objective(value) == expected
    assert through_retention(value, "max_age") == expected
    assert through_retention(value, "incomplete_grace") == old_result(parse_duration, value)
    if old_result(old_jobs, value) is not None:
        assert expected == old_jobs(value)


def test_the_runner_and_retention_call_the_same_parser():
    from engine.pipeline import retention
    assert jobs.parse_duration is parse_duration and retention.parse_duration is parse_duration
