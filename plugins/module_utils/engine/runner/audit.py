"""The runner's audit log: one JSON object per line in <state dir>/audit.jsonl, appended under a lock."""

import fcntl
import json
import os
import socket

from ..core.naming import format_time, utcnow

AUDIT_NAME = "audit.jsonl"
STATE_DIR_MODE = 0o700


def ensure_dir(path, mode=STATE_DIR_MODE):
    os.makedirs(path, mode=mode, exist_ok=True)
    return path


def entry(operation, job, status, set_id=None, duration_seconds=None, size=None, error=None, **extra):
    document = {
        "ts": format_time(utcnow()),
        "host": socket.gethostname(),
        "operation": operation,
        "job": job,
        "set": set_id,
        "status": status,
        "duration_seconds": round(duration_seconds, 3) if duration_seconds is not None else None,
        "bytes": size,
        "error": error,
    }
    document.update(extra)
    return document


def append(state_dir, document):
    """Append one line; the file is created 0600. Returns the path."""
    ensure_dir(state_dir)
    path = os.path.join(state_dir, AUDIT_NAME)
    line = (json.dumps(document, sort_keys=True, default=str) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
    finally:
        os.close(fd)
    return path


def read(state_dir):
    """Every entry of the audit log, oldest first (lines that do not parse are skipped)."""
    path = os.path.join(state_dir, AUDIT_NAME)
    entries = []
    try:
        with open(path, "r") as handle:
            for line in handle:
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    continue
    except FileNotFoundError:
        pass
    return entries
