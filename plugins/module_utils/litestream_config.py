"""Litestream 0.5.x configuration: build the document from structured options, validate it, render it
as YAML (no YAML library needed on the host) and render the credentials environment file. Writing the files
(atomic replacement, owner, group, mode, SELinux context) is the module's, through AnsibleModule.

Litestream 0.5 reads its YAML with a non-strict parser: a misspelt or obsolete key (0.3's per-replica
`retention`, `snapshot-interval`, `retention-check-interval`) is silently ignored. Building the file from
known options only is what keeps such mistakes out. Keys written here (verified against 0.5.17):

    addr, logging.level, snapshot.interval, snapshot.retention, l0-retention, l0-retention-check-interval,
    levels[].interval, sync-interval (global default), validation-interval,
    dbs[].path, dbs[].meta-path, dbs[].monitor-interval, dbs[].checkpoint-interval, dbs[].busy-timeout,
    dbs[].replica.{type, url, path, bucket, endpoint, region, force-path-style, skip-verify,
                   sync-interval, sse-kms-key-id, part-size, concurrency}

Credentials are never written to the YAML: they go to an environment file (LITESTREAM_ACCESS_KEY_ID,
LITESTREAM_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) that the service reads with systemd's EnvironmentFile.
"""

import json
import os
import re
import tempfile

from .engine.core.errors import ConfigError, ToolError

HEADER = "# Managed by Ansible (lifeboat.backup.litestream_config): local edits are overwritten.\n"

# Go time.ParseDuration syntax: one or more <number><unit>.
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|\u00b5s|ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|\u00b5s|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_BYTE_SIZE = re.compile(r"^\d+(?:\.\d+)?\s*(?:[kKmMgGtT]i?[bB]?|[bB])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

REPLICA_TYPES = ("s3", "file")
LOG_LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")


def duration(value, field):
    """A Go duration string ('1s', '1h30m'); a bare number means seconds. Must be greater than zero."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ConfigError("%s: %r is not a duration; use a Go duration such as '1s', '10m' or '24h'" % (field, value))
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ConfigError("%s must be greater than 0 (got %r)" % (field, value))
        return "%ss" % (int(value) if float(value).is_integer() else value)
    text = str(value).strip()
    if not _DURATION.match(text):
        raise ConfigError("%s: %r is not a duration; use a Go duration such as '1s', '10m' or '24h' "
                          "(units ns, us, ms, s, m, h; no 'd': write 7 days as '168h')" % (field, value))
    if duration_seconds(text) <= 0:
        raise ConfigError("%s must be greater than 0 (got %r)" % (field, text))
    return text


def duration_seconds(text):
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(text))


def _absolute(path, field):
    if not path or not os.path.isabs(path):
        raise ConfigError("%s must be an absolute path (got %r)" % (field, path))
    return os.path.normpath(path)


def _put(target, key, value):
    if value is not None and value != "" and value != []:
        target[key] = value


def build_replica(replica, field):
    if not isinstance(replica, dict) or not replica:
        raise ConfigError("%s: every database needs a replica (type s3 with a bucket, or type file with a path)"
                          % field)
    rtype = replica.get("type")
    url = replica.get("url")
    out = {}
    if url:
        if replica.get("bucket") or replica.get("path"):
            raise ConfigError("%s: give either url or bucket/path, not both" % field)
        if not re.match(r"^(s3|file)://", url):
            raise ConfigError("%s.url: %r is not an s3:// or file:// URL" % (field, url))
        scheme = url.split("://", 1)[0]
        if rtype and rtype != scheme:
            raise ConfigError("%s: type %s does not match the %s:// url" % (field, rtype, scheme))
        _put(out, "url", url)
        rtype = scheme
    elif not rtype:
        if replica.get("bucket"):
            rtype = "s3"
        else:
            raise ConfigError("%s.type is required: s3 (with a bucket) or file (with a path)" % field)
    if rtype not in REPLICA_TYPES:
        raise ConfigError("%s.type: %r is not supported; use one of %s" % (field, rtype, ", ".join(REPLICA_TYPES)))
    out = dict([("type", rtype)] + list(out.items()))
    if rtype == "file":
        s3_only = [key for key in ("bucket", "endpoint", "region", "force_path_style", "skip_verify",
                                   "sse_kms_key_id", "part_size", "concurrency")
                   if replica.get(key) not in (None, "", False)]
        if s3_only:
            raise ConfigError("%s: %s only apply to s3 replicas" % (field, ", ".join(s3_only)))
        if not url:
            _put(out, "path", _absolute(replica.get("path"), field + ".path"))
    else:
        if not url:
            if not replica.get("bucket"):
                raise ConfigError("%s.bucket is required for an s3 replica" % field)
            _put(out, "bucket", replica["bucket"])
            path = (replica.get("path") or "").strip("/")
            _put(out, "path", path)
        _put(out, "endpoint", replica.get("endpoint"))
        _put(out, "region", replica.get("region"))
        if replica.get("force_path_style") is not None:
            out["force-path-style"] = bool(replica["force_path_style"])
        if replica.get("skip_verify"):
            out["skip-verify"] = True
        _put(out, "sse-kms-key-id", replica.get("sse_kms_key_id"))
        part_size = replica.get("part_size")
        if part_size not in (None, ""):
            if not _BYTE_SIZE.match(str(part_size)):
                raise ConfigError("%s.part_size: %r is not a size such as '5MB' or '8MiB'" % (field, part_size))
            out["part-size"] = str(part_size)
        concurrency = replica.get("concurrency")
        if concurrency not in (None, ""):
            if int(concurrency) < 1:
                raise ConfigError("%s.concurrency must be at least 1" % field)
            out["concurrency"] = int(concurrency)
    _put(out, "sync-interval", duration(replica.get("sync_interval"), field + ".sync_interval"))
    return out


def build_config(options):
    """Options (the module's snake_case names) -> the Litestream document as nested dicts/lists."""
    dbs = options.get("dbs") or []
    if not dbs:
        raise ConfigError("dbs is empty: list at least one database with its path and replica")
    config = {}
    _put(config, "addr", options.get("addr"))
    level = options.get("log_level")
    if level:
        if str(level).upper() not in LOG_LEVELS:
            raise ConfigError("log_level: %r is not one of %s" % (level, ", ".join(LOG_LEVELS)))
        config["logging"] = {"level": str(level).upper()}
    snapshot = {}
    _put(snapshot, "interval", duration(options.get("snapshot_interval"), "snapshot_interval"))
    _put(snapshot, "retention", duration(options.get("retention"), "retention"))
    _put(config, "snapshot", snapshot or None)
    _put(config, "l0-retention", duration(options.get("l0_retention"), "l0_retention"))
    _put(config, "l0-retention-check-interval",
         duration(options.get("l0_retention_check_interval"), "l0_retention_check_interval"))
    levels = options.get("levels") or []
    _put(config, "levels", [{"interval": duration(value, "levels[%d]" % index)} for index, value in enumerate(levels)])
    _put(config, "sync-interval", duration(options.get("sync_interval"), "sync_interval"))
    _put(config, "validation-interval", duration(options.get("validation_interval"), "validation_interval"))
    seen = set()
    out_dbs = []
    for index, db in enumerate(dbs):
        field = "dbs[%d]" % index
        if not isinstance(db, dict):
            raise ConfigError("%s must be a dict with path and replica" % field)
        path = _absolute(db.get("path"), field + ".path")
        if path in seen:
            raise ConfigError("%s.path: %s is listed twice; Litestream replicates a database once" % (field, path))
        seen.add(path)
        entry = {"path": path}
        if db.get("meta_path"):
            entry["meta-path"] = _absolute(db["meta_path"], field + ".meta_path")
        _put(entry, "monitor-interval", duration(db.get("monitor_interval"), field + ".monitor_interval"))
        _put(entry, "checkpoint-interval", duration(db.get("checkpoint_interval"), field + ".checkpoint_interval"))
        _put(entry, "busy-timeout", duration(db.get("busy_timeout"), field + ".busy_timeout"))
        entry["replica"] = build_replica(db.get("replica"), field + ".replica")
        out_dbs.append(entry)
    config["dbs"] = out_dbs
    return config


# --- YAML rendering: a small deterministic emitter (block style; strings always double-quoted JSON,
# which is valid YAML), so the host needs no YAML library and the same options give the same bytes.

def _scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)


def _emit(value, indent, lines):
    pad = "  " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append("%s%s:" % (pad, key))
                _emit(item, indent + 1, lines)
            else:
                lines.append("%s%s: %s" % (pad, key, _scalar(item)))
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and item:
                sub = []
                _emit(item, indent + 1, sub)
                first = sub[0][len(pad) + 2:]
                lines.append("%s- %s" % (pad, first))
                lines.extend(sub[1:])
            else:
                lines.append("%s- %s" % (pad, _scalar(item)))


def render_yaml(document):
    lines = []
    _emit(document, 0, lines)
    return "\n".join(lines) + "\n"


def render(options):
    """Options -> (document, YAML text with the managed header)."""
    document = build_config(options)
    return document, HEADER + render_yaml(document)


# --- Credentials environment file (systemd EnvironmentFile syntax, also fine for `set -a; . FILE`).

def _env_value(value):
    text = str(value)
    if "\n" in text or "\r" in text or "\0" in text:
        raise ConfigError("credentials cannot contain newlines")
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`")


def render_env(access_key=None, secret_key=None, session_token=None, extra=None):
    """The environment file text, or None when no credential is given (the service then uses the
    instance role / default AWS chain)."""
    if bool(access_key) != bool(secret_key):
        raise ConfigError("give both access_key and secret_key, or neither (to use the instance role)")
    pairs = []
    if access_key:
        pairs += [("LITESTREAM_ACCESS_KEY_ID", access_key), ("LITESTREAM_SECRET_ACCESS_KEY", secret_key)]
    if session_token:
        if not access_key:
            raise ConfigError("session_token needs access_key and secret_key")
        pairs.append(("AWS_SESSION_TOKEN", session_token))
    for name in sorted(extra or {}):
        if not _ENV_NAME.match(name):
            raise ConfigError("environment variable name %r is not valid" % name)
        pairs.append((name, extra[name]))
    if not pairs:
        return None
    return HEADER + "".join("%s=%s\n" % (name, _env_value(value)) for name, value in pairs)


# --- Files.

def read_text(path):
    try:
        with open(path, "r") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        return ""  # not text: it will be replaced
    except IsADirectoryError:
        raise ConfigError("%s is a directory; give the path of the file to write" % path)


# --- Validation with the real binary.

def find_binary(binary):
    """Absolute path of the litestream binary, or None when it is not installed."""
    if not binary:
        return None
    if os.path.sep in binary:
        return binary if os.access(binary, os.X_OK) else None
    for directory in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/local/bin", "/usr/bin"]:
        candidate = os.path.join(directory, binary)
        if directory and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def validate_with_binary(binary, text, run):
    """Run `litestream databases -config COPY` on a private temporary copy of the rendered file.
    `run(argv, env)` -> (rc, stdout, stderr). Raises ConfigError with Litestream's own message on rejection."""
    handle, temp = tempfile.mkstemp(prefix="litestream-validate-", suffix=".yml")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        env = {key: value for key, value in os.environ.items() if key != "AWS_CA_BUNDLE"}
        try:
            rc, stdout, stderr = run([binary, "databases", "-config", temp], env)
        except OSError as exc:
            raise ToolError("cannot run %s: %s" % (binary, exc))
        if rc != 0:
            message = (stderr or stdout or "").strip().replace(temp, "<config>")
            raise ConfigError("litestream rejected the configuration: %s" % (message or "exit status %d" % rc),
                              validation_output=message)
        return stdout
    finally:
        os.unlink(temp)
