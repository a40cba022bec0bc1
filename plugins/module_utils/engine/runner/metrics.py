"""Prometheus textfile-collector metrics for a job, written atomically to <metrics dir>/lifeboat_<job>.prom.

node_exporter (--collector.textfile.directory) exposes them; alert on
``time() - lifeboat_backup_last_success_timestamp_seconds > lifeboat_backup_rpo_seconds`` and on
``lifeboat_backup_last_status == 0``.

Where there is no textfile collector (a Kubernetes pod), LIFEBOAT_PUSHGATEWAY_URL sends the same gauges to a
Prometheus Pushgateway after each run and verify (push_backup, push_verify).
"""

import base64
import contextlib
import fcntl
import os
import re
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

METRICS = (
    ("lifeboat_backup_last_success_timestamp_seconds", "gauge",
     "Unix time the last successful backup of the job finished (0: never)."),
    ("lifeboat_backup_last_status", "gauge", "1 if the last backup run of the job succeeded, 0 if it failed."),
    ("lifeboat_backup_last_duration_seconds", "gauge", "Duration of the last backup run of the job."),
    ("lifeboat_backup_last_size_bytes", "gauge", "Stored bytes of the last successful backup set of the job."),
    ("lifeboat_backup_last_run_timestamp_seconds", "gauge", "Unix time the last backup run of the job ended."),
    ("lifeboat_backup_rpo_seconds", "gauge", "Recovery point objective of the job (from its job file)."),
    ("lifeboat_backup_rto_seconds", "gauge", "Recovery time objective of the job (from its job file)."),
    ("lifeboat_verify_last_success_timestamp_seconds", "gauge",
     "Unix time the last successful verify (test restore) of the job finished (0: never)."),
    ("lifeboat_verify_last_status", "gauge", "1 if the last verify of the job succeeded, 0 if it failed."),
    ("lifeboat_verify_restore_seconds", "gauge",
     "Wall time of the test restore of the last successful verify of the job (an RTO estimate)."),
    ("lifeboat_verify_objective_seconds", "gauge",
     "Longest time the job may go without a successful verify (its verify objective)."),
)
BACKUP_PREFIX = "lifeboat_backup_"
VERIFY_PREFIX = "lifeboat_verify_"
DEFAULT_VERIFY_OBJECTIVE = 8 * 24 * 3600
_LINE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{job="((?:[^"\\]|\\.)*)"\}\s+(\S+)')


def file_name(job):
    return "lifeboat_%s.prom" % job


def _label(value):
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value):
    if value is None:
        return None
    if float(value) == int(value):
        return "%d" % int(value)
    return "%.3f" % float(value)


def read_previous(path):
    """Metric name -> float from an existing file (unparsable lines ignored; {} when there is none)."""
    values = {}
    try:
        with open(path, "r") as handle:
            for line in handle:
                match = _LINE_RE.match(line.strip())
                if match:
                    try:
                        values[match.group(1)] = float(match.group(3))
                    except ValueError:
                        continue
    except (FileNotFoundError, NotADirectoryError):
        pass
    return values


def render(job, values, labels=True):
    """The text exposition of `values`; labels=False leaves out the job label (the Pushgateway's grouping key
    carries it, and it refuses a pushed label that repeats one of the key)."""
    lines = []
    for name, kind, text in METRICS:
        value = values.get(name)
        if value is None:
            continue
        lines.append("# HELP %s %s" % (name, text))
        lines.append("# TYPE %s %s" % (name, kind))
        if labels:
            lines.append('%s{job="%s"} %s' % (name, _label(job), _number(value)))
        else:
            lines.append("%s %s" % (name, _number(value)))
    return "\n".join(lines) + "\n"


def backup_values(ok, ended, duration, size=None, previous=None, rpo_seconds=None):
    """The metric values after a run; on failure the last success time and size carry over from `previous`."""
    previous = previous or {}
    values = {
        "lifeboat_backup_last_status": 1 if ok else 0,
        "lifeboat_backup_last_duration_seconds": round(duration or 0.0, 3),
        "lifeboat_backup_last_run_timestamp_seconds": round(ended, 3),
        "lifeboat_backup_rpo_seconds": rpo_seconds,
    }
    if ok:
        values["lifeboat_backup_last_success_timestamp_seconds"] = round(ended, 3)
        values["lifeboat_backup_last_size_bytes"] = size or 0
    else:
        values["lifeboat_backup_last_success_timestamp_seconds"] = previous.get(
            "lifeboat_backup_last_success_timestamp_seconds", 0)
        values["lifeboat_backup_last_size_bytes"] = previous.get("lifeboat_backup_last_size_bytes", 0)
    return values


def verify_values(ok, ended, restore_seconds=None, previous=None, objective_seconds=None):
    """The verify metric values after a verify; on failure the last success time and restore seconds carry over."""
    previous = previous or {}
    values = {"lifeboat_verify_last_status": 1 if ok else 0,
              "lifeboat_verify_objective_seconds": objective_seconds or DEFAULT_VERIFY_OBJECTIVE}
    if ok:
        values["lifeboat_verify_last_success_timestamp_seconds"] = round(ended, 3)
        values["lifeboat_verify_restore_seconds"] = round(restore_seconds or 0.0, 3)
    else:
        values["lifeboat_verify_last_success_timestamp_seconds"] = previous.get(
            "lifeboat_verify_last_success_timestamp_seconds", 0)
        if "lifeboat_verify_restore_seconds" in previous:
            values["lifeboat_verify_restore_seconds"] = previous["lifeboat_verify_restore_seconds"]
    return values


def _kept(previous, prefix):
    """The values of `previous` whose names start with `prefix` (the other command's metrics, kept as they were)."""
    return {name: value for name, value in previous.items() if name.startswith(prefix)}


def write_backup_metrics(metrics_dir, job, ok, ended, duration, size=None, rpo_seconds=None, rto_seconds=None,
                         verify_objective_seconds=None):
    """Write the job's .prom file atomically (temp file in the same directory, then rename), keeping the verify
    values a `lifeboat verify` wrote. Returns the path."""
    path = os.path.join(metrics_dir, file_name(job))
    with _rewriting(metrics_dir, job):
        previous = read_previous(path)
        values = _kept(previous, VERIFY_PREFIX)
        values.update(backup_values(ok, ended, duration, size, previous, rpo_seconds))
        values["lifeboat_backup_rto_seconds"] = rto_seconds
        if verify_objective_seconds:
            values["lifeboat_verify_objective_seconds"] = verify_objective_seconds
        return _write(metrics_dir, job, path, values)


def write_verify_metrics(metrics_dir, job, ok, ended, restore_seconds=None, objective_seconds=None, rpo_seconds=None,
                         rto_seconds=None):
    """Write the verify gauges into the job's .prom file, keeping the backup values a `lifeboat run` wrote (and
    refreshing the objectives from the job file). Returns the path."""
    path = os.path.join(metrics_dir, file_name(job))
    with _rewriting(metrics_dir, job):
        previous = read_previous(path)
        values = _kept(previous, BACKUP_PREFIX)
        values.update(verify_values(ok, ended, restore_seconds, previous, objective_seconds))
        if rpo_seconds is not None:
            values["lifeboat_backup_rpo_seconds"] = rpo_seconds
        values["lifeboat_backup_rto_seconds"] = rto_seconds
        return _write(metrics_dir, job, path, values)


@contextlib.contextmanager
def _rewriting(metrics_dir, job):
    """A backup and a verify of one job may end together: each holds an flock on the metrics directory itself for
    the milliseconds of its read-modify-write (never the backup lock, and no lock file beside the metrics), so
    neither writes back the other's old values."""
    del job  # one lock for the directory: writes are short
    fd = os.open(metrics_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write(metrics_dir, job, path, values):
    text = render(job, values)
    fd, temp = tempfile.mkstemp(prefix=".lifeboat_%s." % job, suffix=".prom.tmp", dir=metrics_dir)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)  # node_exporter usually runs as another user
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    return path


# --- Pushgateway ----------------------------------------------------------------------------------------------

PUSHGATEWAY_ENV = "LIFEBOAT_PUSHGATEWAY_URL"
PUSH_TIMEOUT = 10
# Carried over from the previous values after a failure: a pod has no previous file, so a push leaves them out and
# the Pushgateway keeps the last successful run's (a POST replaces only the gauges it names).
_CARRIED_OVER = ("lifeboat_backup_last_success_timestamp_seconds", "lifeboat_backup_last_size_bytes",
                 "lifeboat_verify_last_success_timestamp_seconds", "lifeboat_verify_restore_seconds")


def push_target(base_url, job):
    """(URL of the job's group, Authorization header or None) for the Pushgateway `base_url`.

    The group is /metrics/job/<job>: scraped without honor_labels, the series get exported_job="<job>" as the
    textfile collector's do, so the monitoring role's alerts and dashboard match both. Credentials in the URL
    (https://user:password@host) become a Basic header and are never logged."""
    parts = urllib.parse.urlsplit(base_url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("%s must be an http(s) URL such as http://pushgateway.monitoring:9091, not %r"
                         % (PUSHGATEWAY_ENV, _redacted(parts)))
    netloc = parts.hostname if ":" not in parts.hostname else "[%s]" % parts.hostname
    if parts.port:
        netloc += ":%d" % parts.port
    path = "%s/metrics/job/%s" % (parts.path.rstrip("/"), urllib.parse.quote(job, safe=""))
    url = urllib.parse.urlunsplit((parts.scheme, netloc, path, "", ""))
    auth = None
    if parts.username is not None:
        pair = "%s:%s" % (urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
        auth = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
    return url, auth


def _redacted(parts):
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def push(job, values, base_url, timeout=PUSH_TIMEOUT):
    """POST the gauges `values` of `job` to the Pushgateway; returns the group's URL. POST, not PUT: a PUT
    replaces every gauge of the group, so a verify would erase the backup's gauges and a backup the verify's.
    OSError or ValueError (with a message fit for a warning) when it fails."""
    url, auth = push_target(base_url, job)
    shown = url  # without the credentials
    body = render(job, values, labels=False).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
    if auth:
        request.add_header("Authorization", auth)
    try:
        with urllib.request.build_opener().open(request, timeout=timeout) as response:
            response.read(4096)
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode("utf-8", "replace").strip()
        raise OSError("the Pushgateway at %s answered HTTP %d%s" % (shown, exc.code, ": " + detail if detail else ""))
    except urllib.error.URLError as exc:
        raise OSError("cannot reach the Pushgateway at %s: %s" % (shown, exc.reason))
    except OSError as exc:  # timeouts, resets
        raise OSError("cannot push to the Pushgateway at %s: %s" % (shown, exc))
    return shown


def _push(job, values, console, environ):
    """Push when LIFEBOAT_PUSHGATEWAY_URL is set; a failure is a warning, never a failed run. True/False, or None
    when no Pushgateway is configured."""
    base_url = (environ if environ is not None else os.environ).get(PUSHGATEWAY_ENV)
    if not base_url:
        return None
    try:
        shown = push(job, {k: v for k, v in values.items() if v is not None}, base_url)
    except (OSError, ValueError) as exc:
        console.warn("metrics not pushed (the run's own result stands): %s" % exc)
        return False
    console.info("metrics pushed to %s" % shown)
    return True


def push_backup(name, job, ok, duration, size, console, environ=None):
    """After `lifeboat run`: the backup gauges of job file `job`, pushed if a Pushgateway is configured."""
    values = backup_values(ok, time.time(), duration, size, rpo_seconds=job.get("rpo_seconds"))
    values["lifeboat_backup_rto_seconds"] = job.get("rto_seconds")
    values["lifeboat_verify_objective_seconds"] = (job.get("verify_restore") or {}).get("objective")
    if not ok:
        values = {k: v for k, v in values.items() if k not in _CARRIED_OVER}
    return _push(name, values, console, environ)


def push_verify(name, job, ok, report, console, environ=None):
    """After `lifeboat verify`: the verify gauges (and the job's objectives), pushed if a Pushgateway is set."""
    settings = job.get("verify_restore") or {}
    values = verify_values(ok, time.time(), (report or {}).get("restore_seconds"),
                           objective_seconds=settings.get("objective"))
    values["lifeboat_backup_rpo_seconds"] = job.get("rpo_seconds")
    values["lifeboat_backup_rto_seconds"] = job.get("rto_seconds")
    if not ok:
        values = {k: v for k, v in values.items() if k not in _CARRIED_OVER}
    return _push(name, values, console, environ)
