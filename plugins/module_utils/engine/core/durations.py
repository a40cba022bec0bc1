"""Durations in options and job files (retention's max_age and incomplete_grace, the runner's rto and
verify.objective), parsed in one place.

Accepted: a whole number of seconds (an int, or a float cut down to whole seconds; not true or false), a string of
digits ("90"), or a string of one or more <number><unit> parts with units s, m, h, d, w ("15m", "8d", "1d12h",
"1D 2H": case and spaces do not matter).
"""

import math
import re

from .errors import ConfigError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+)([smhdw])")


def parse_duration(value, name="duration", positive=False):
    """Seconds (an int) from `value`; ConfigError naming `name` when it is not a duration, is negative or, with
    `positive`, is 0."""
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int):
        seconds = value
    elif isinstance(value, float):
        seconds = value if math.isfinite(value) else None
    elif isinstance(value, str):
        seconds = _parse_text(value.strip().lower().replace(" ", ""))
    else:
        seconds = None
    if seconds is None:
        raise ConfigError("%s must be a whole number of seconds or a duration such as \"8d\", \"12h\", \"1d12h\" "
                          "or \"90m\": %r is not a duration" % (name, value))
    if seconds < 0:
        raise ConfigError("%s must not be negative, not %r" % (name, value))
    seconds = int(seconds)
    if positive and seconds <= 0:
        raise ConfigError("%s must be more than 0, not %r" % (name, value))
    return seconds


def _parse_text(text):
    """Seconds of a lowercased string without spaces, or None."""
    if text.isdecimal():
        return int(text)
    seconds = 0
    pos = 0
    for match in _PART.finditer(text):
        if match.start() != pos:
            return None
        seconds += int(match.group(1)) * UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        return None
    return seconds
