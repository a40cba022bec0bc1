"""manifest.json, the document written last into every set (its presence means the set is complete): building
and serialising it, and reading it back with every field checked against the set layout (loads, check_belongs)."""

import datetime
import json
import re
import socket

from .errors import ConfigError, IntegrityError
from .naming import COMPRESSION_SUFFIX, JOB_RE, SET_ID_RE, data_name_problem, format_time, parse_time

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "id", "job", "kind", "data", "started", "finished", "size", "raw_size", "sha256", "compression")
ENGINE_VERSION = "0.2.0"  # the collection version (galaxy.yml); a unit test keeps them equal
KIND_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
MAX_BYTES = 16 * 1024 * 1024  # far above any real manifest (row counts of thousands of tables): a bound on memory
# How far ahead of the reader's clock a set may be dated: clock skew between a writer and a reader (NTP keeps
# them within seconds). Beyond it the set is damaged: a wrong clock, or a set forged to stay `latest` and to count
# as newest for keep_last (pruning the real sets) long after its writer lost access.
FUTURE_TOLERANCE = datetime.timedelta(hours=1)
DICT_KEYS = ("source", "verification", "tags", "tools")  # read by the kinds; each must be an object when present


def build(set_id, job, kind, data, source, started, finished, raw_size, size, sha256,
          compression, encryption=None, tools=None, verification=None, tags=None):
    """The manifest document. `source` must already be free of secrets."""
    return {
        "format": FORMAT_VERSION,
        "id": set_id,
        "job": job,
        "kind": kind,
        "data": data,
        "source": source,
        "host": socket.gethostname(),
        "started": format_time(started),
        "finished": format_time(finished),
        "raw_size": raw_size,
        "size": size,
        "sha256": sha256,
        "compression": compression,
        "encryption": encryption,
        "tools": dict(tools or {}, lifeboat=ENGINE_VERSION),
        "verification": verification or {},
        "tags": tags or {},
    }


def dumps(manifest):
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")


def loads(raw, where):
    """Parse and check a manifest; `where` names it in errors (a path or an s3:// URL).

    Every field a reader uses later is type- and value-checked here, once: a manifest that fails is an
    IntegrityError (the catalog marks its set invalid), never a crash or a path built from its values."""
    if len(raw) > MAX_BYTES:
        raise IntegrityError("manifest %s is corrupted (more than %d bytes); restore another set (backup: <id>)"
                             % (where, MAX_BYTES))
    try:
        document = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except RecursionError:
        raise IntegrityError("manifest %s is corrupted (nested too deeply); restore another set (backup: <id>)"
                             % where)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError("manifest %s is corrupted (not valid JSON: %s); restore another set "
                             "(backup: <id>) or run a new backup" % (where, exc))
    if not isinstance(document, dict):
        raise IntegrityError("manifest %s is corrupted (not a JSON object)" % where)
    missing = [key for key in REQUIRED_KEYS if key not in document]
    if missing:
        raise IntegrityError("manifest %s is incomplete (missing %s); restore another set" % (where, ", ".join(missing)))
    if not _is_int(document["format"]):
        raise IntegrityError("manifest %s is corrupted (format %s is not a version number); restore another set"
                             % (where, _show(document["format"])))
    if document["format"] != FORMAT_VERSION:
        raise IntegrityError("manifest %s has format %r; this lifeboat reads format %d: upgrade the collection"
                             % (where, document["format"], FORMAT_VERSION))
    problems = problems_of(document)
    if problems:
        raise IntegrityError("manifest %s is corrupted (%s): the set is damaged or was not written by lifeboat; "
                             "restore another set (backup: <id>) or run a new backup" % (where, "; ".join(problems)))
    return document


def check_belongs(document, job, set_id, where):
    """A manifest is only valid in its own set: its id and job must be those of the place it was read from."""
    if document["id"] != set_id or document["job"] != job:
        raise IntegrityError("manifest %s is corrupted (it describes set %s of job %s, but lies in set %s of job "
                             "%s): the set is damaged or was copied there; restore another set (backup: <id>)"
                             % (where, _show(document["id"]), _show(document["job"]), set_id, job))


def check_not_future(document, where, now):
    """A set dated after `now` (the reader's clock) plus FUTURE_TOLERANCE is damaged, an alarm like any other."""
    finished = parse_time(document["finished"])
    latest = max(finished, parse_time(document["started"]))
    if latest > now + FUTURE_TOLERANCE:
        raise IntegrityError(
            "manifest %s is dated in the future (finished %s, %s ahead of this host's clock %s): the clock of the host "
            "that wrote it is wrong, or the set was forged to stay the newest. Check both clocks (NTP); restore "
            "another set (backup: <id>) or inspect this one, it is never chosen or pruned automatically"
            % (where, document["finished"], _ahead(latest - now), format_time(now)))


def _ahead(delta):
    hours = delta.total_seconds() / 3600
    return "%.1f hours" % hours if hours < 48 else "%d days" % (hours // 24)


def problems_of(document):
    """What is wrong with the fields of a parsed manifest (a list of short reasons; empty when it is usable)."""
    problems = []

    def need(key, ok, expected):
        if not ok:
            problems.append("%s %s is not %s" % (key, _show(document.get(key)), expected))

    need("id", _matches(SET_ID_RE, document["id"]), "a set id")
    need("job", _matches(JOB_RE, document["job"]), "a job name")
    need("kind", _matches(KIND_RE, document["kind"]), "a kind name")
    need("sha256", _matches(SHA256_RE, document["sha256"]), "64 lowercase hex digits")
    for key in ("size", "raw_size"):
        need(key, _is_int(document[key]) and document[key] >= 0, "a byte count")
    for key in ("started", "finished"):
        need(key, _is_time(document[key]), "an ISO 8601 time")
    compression = document["compression"]
    algorithm = compression.get("algorithm") if isinstance(compression, dict) else None
    need("compression", algorithm in COMPRESSION_SUFFIX and (compression.get("level") is None
                                                             or _is_int(compression["level"])),
         "an object with algorithm %s" % "|".join(sorted(COMPRESSION_SUFFIX)))
    encryption = document.get("encryption")
    need("encryption", encryption is None or (
        isinstance(encryption, dict) and encryption.get("algorithm") == "age"
        and isinstance(encryption.get("recipients"), list)
        and all(isinstance(r, str) for r in encryption["recipients"])), "null or an age recipients object")
    if algorithm in COMPRESSION_SUFFIX:
        problem = data_name_problem(document["data"], algorithm, encryption is not None)
        if problem:
            problems.append(problem)
    for key in DICT_KEYS:
        if key in document:
            need(key, isinstance(document[key], dict), "an object")
    return problems


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _matches(pattern, value):
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def _is_time(value):
    if not isinstance(value, str):
        return False
    try:
        parse_time(value)
    except (ConfigError, ValueError, OverflowError):
        return False
    return True


def _show(value):
    """A value from a manifest for an error message: short, and only ever the manifest's own content."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
