"""Set ids, job names, data object names, keys and times: the naming contract shared by every store and the
pipeline.

A set lives at ``<root>/<job>/<set id>/`` where root is ``<dest>`` locally, the server's path on SFTP/FTP and
``s3://<bucket>/<prefix>`` on S3. The set id is ``YYYYmmddTHHMMSSZ-<hex>``, the UTC start time.
"""

import datetime
import re
import secrets

from .errors import ConfigError, IntegrityError

SET_ID_RE = re.compile(r"^(\d{8}T\d{6}Z)-([0-9a-f]{4,8})$")
JOB_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MANIFEST_NAME = "manifest.json"
DATA_PREFIX = "data."
COMPRESSION_SUFFIX = {"zstd": ".zst", "gzip": ".gz", "none": ""}
ENCRYPTION_SUFFIX = ".age"
# data.<ext>[.zst|.gz][.age]: one path component, nothing a reader could resolve outside the set.
# Names are matched whole (fullmatch): "$" alone would accept a trailing newline.
DATA_NAME_RE = re.compile(r"^data\.([a-z0-9]{1,16})(\.zst|\.gz)?(\.age)?$")

UTC = datetime.timezone.utc


def utcnow():
    return datetime.datetime.now(UTC)


def validate_job(job):
    """The one check of a job name, at every entry point and wherever a job becomes part of a key or path."""
    if not isinstance(job, str) or not JOB_RE.fullmatch(job):
        raise ConfigError(
            "job name %r is not valid: use 1 to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit" % (job,)
        )
    return job


def normalise_prefix(prefix):
    """Strip slashes at both ends and collapse doubled ones; '' means keys start at the job."""
    parts = [p for p in (prefix or "").split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ConfigError("s3.prefix %r must not contain '.' or '..' segments" % (prefix,))
    return "/".join(parts)


def new_set_id(started):
    return "%s-%s" % (started.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"), secrets.token_hex(3))


def is_set_id(text):
    return isinstance(text, str) and bool(SET_ID_RE.fullmatch(text))


def set_id_time(set_id):
    """The start time encoded in a set id, as an aware UTC datetime."""
    match = SET_ID_RE.fullmatch(set_id) if isinstance(set_id, str) else None
    if not match:
        raise ConfigError(
            "backup %r is not a set id: expected 'latest' or an id such as 20261122T031500Z-3f9a" % (set_id,)
        )
    return datetime.datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def job_key(prefix, job):
    """Key prefix (ending in '/') under which every set of `job` lives."""
    validate_job(job)
    prefix = normalise_prefix(prefix)
    return "%s/%s/" % (prefix, job) if prefix else "%s/" % job


def set_key(prefix, job, set_id):
    return "%s%s/" % (job_key(prefix, job), set_id)


def set_member(job, set_id, name):
    """[job, set id, name] of a file of a set, each checked to be one component of the layout, for stores that
    join them into a remote path: nothing else can reach a repository's path functions."""
    validate_job(job)
    if not is_set_id(set_id) or not (name == MANIFEST_NAME or (isinstance(name, str) and DATA_NAME_RE.fullmatch(name))):
        raise IntegrityError("%r/%r is not a file of a set (<set id>/manifest.json or <set id>/data.<ext>...): "
                             "refusing to read it" % (set_id, name))
    return [job, set_id, name]


def data_name(extension, compression, encrypted):
    return "%s%s%s%s" % (DATA_PREFIX, extension, COMPRESSION_SUFFIX[compression], ENCRYPTION_SUFFIX if encrypted else "")


def data_name_problem(name, compression, encrypted):
    """Why `name` (read from a manifest) is not the data object of a set with this compression and encryption,
    or None when it is. Only data.<ext><compression suffix>[.age] is accepted: never a path."""
    if not isinstance(name, str):
        return "data must be a file name such as data.db.zst, not %s" % type(name).__name__
    match = DATA_NAME_RE.fullmatch(name)
    if not match:
        return "data %r is not a data object name of the set layout (data.<ext>[.zst|.gz][.age])" % name[:80]
    if compression in COMPRESSION_SUFFIX and (match.group(2) or "") != COMPRESSION_SUFFIX[compression]:
        return "data %r does not match the manifest's compression %s" % (name, compression)
    if bool(match.group(3)) != bool(encrypted):
        return "data %r does not match the manifest's encryption (%s)" % (name, "age" if encrypted else "none")
    return None


def format_time(moment):
    """UTC ISO 8601 with microseconds and a Z, e.g. 2026-11-22T03:15:00.123456Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text):
    """Parse an ISO 8601 time (date only, naive = UTC, 'Z' or an offset) into an aware UTC datetime."""
    if isinstance(text, datetime.datetime):
        moment = text
    else:
        raw = str(text).strip()
        value = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError:
            try:
                moment = datetime.datetime.strptime(value, "%Y-%m-%d")
            except ValueError:
                raise ConfigError(
                    "time %r is not ISO 8601: use e.g. 2026-11-22T02:00:00Z or 2026-11-22 02:00+01:00" % (raw,)
                )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
