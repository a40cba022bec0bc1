"""manifest.json: the document written last into every set; its presence means the set is complete."""

import json
import socket

from .errors import IntegrityError
from .naming import format_time

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "id", "job", "kind", "data", "started", "finished", "size", "raw_size", "sha256", "compression")
ENGINE_VERSION = "0.1.0"


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
    """Parse and check a manifest; `where` names it in errors (a path or an s3:// URL)."""
    try:
        document = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError("manifest %s is corrupted (not valid JSON: %s); restore another set "
                             "(backup: <id>) or run a new backup" % (where, exc))
    if not isinstance(document, dict):
        raise IntegrityError("manifest %s is corrupted (not a JSON object)" % where)
    missing = [key for key in REQUIRED_KEYS if key not in document]
    if missing:
        raise IntegrityError("manifest %s is incomplete (missing %s); restore another set" % (where, ", ".join(missing)))
    if document["format"] != FORMAT_VERSION:
        raise IntegrityError("manifest %s has format %r; this lifeboat reads format %d: upgrade the collection"
                             % (where, document["format"], FORMAT_VERSION))
    return document
