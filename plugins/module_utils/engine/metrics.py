"""Prometheus textfile-collector metrics for a job, written atomically to <metrics dir>/lifeboat_<job>.prom.

node_exporter (--collector.textfile.directory) exposes them; alert on
``time() - lifeboat_backup_last_success_timestamp_seconds > lifeboat_backup_rpo_seconds`` and on
``lifeboat_backup_last_status == 0``.
"""

import os
import re
import tempfile

METRICS = (
    ("lifeboat_backup_last_success_timestamp_seconds", "gauge",
     "Unix time the last successful backup of the job finished (0: never)."),
    ("lifeboat_backup_last_status", "gauge", "1 if the last backup run of the job succeeded, 0 if it failed."),
    ("lifeboat_backup_last_duration_seconds", "gauge", "Duration of the last backup run of the job."),
    ("lifeboat_backup_last_size_bytes", "gauge", "Stored bytes of the last successful backup set of the job."),
    ("lifeboat_backup_last_run_timestamp_seconds", "gauge", "Unix time the last backup run of the job ended."),
    ("lifeboat_backup_rpo_seconds", "gauge", "Recovery point objective of the job (from its job file)."),
)
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


def render(job, values):
    lines = []
    for name, kind, text in METRICS:
        value = values.get(name)
        if value is None:
            continue
        lines.append("# HELP %s %s" % (name, text))
        lines.append("# TYPE %s %s" % (name, kind))
        lines.append('%s{job="%s"} %s' % (name, _label(job), _number(value)))
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


def write_backup_metrics(metrics_dir, job, ok, ended, duration, size=None, rpo_seconds=None):
    """Write the job's .prom file atomically (temp file in the same directory, then rename). Returns the path."""
    path = os.path.join(metrics_dir, file_name(job))
    values = backup_values(ok, ended, duration, size, read_previous(path), rpo_seconds)
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
