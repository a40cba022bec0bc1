"""Test restore of a MongoDB set: the archive parsed end to end, without a server, and the documents per
collection compared with the manifest's ``verification.document_counts``.

* tar layout (the built-in dumper): every member must be a directory or ``<db>/<collection>.bson`` /
  ``.metadata.json`` (engine/mongo_format.py); each BSON document's length and terminator are checked
  (iter_bson) and each metadata file must be a JSON object.
* mongodump ``--archive``: the magic number, the header and collection metadata documents (read as mongo_restore
  reads them), then the namespace blocks, each document framed the same way, counted per namespace (the
  namespace headers are read with a minimal BSON reader below).

The set is read once, as a stream; its sha256 is compared at the end, before the counts are judged. Nothing of
it is written anywhere or sent to a server.
"""

import json
import struct
import tarfile

from . import format as layout
from ...core.errors import IntegrityError, LifeboatError
from ...pipeline.restore import open_set
from ...core.streams import iter_chunks

TERMINATOR = 0xFFFFFFFF
MAX_METADATA = 16 * 1024 * 1024


class _Stream(object):
    """Exact reads from a file object (the decoded set)."""

    def __init__(self, reader, where):
        self.reader = reader
        self.where = where

    def read(self, count):
        data = b""
        while len(data) < count:
            chunk = self.reader.read(count - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def exact(self, count, what):
        data = self.read(count)
        if len(data) != count:
            raise IntegrityError("%s ends inside %s (truncated archive)" % (self.where, what))
        return data


# ---------------------------------------------------------------- minimal BSON (header documents only)

_FIXED = {0x01: 8, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16, 0x7F: 0, 0xFF: 0}


def _cstring(data, pos, where):
    end = data.find(b"\0", pos)
    if end < 0:
        raise IntegrityError("%s holds an unterminated BSON name" % where)
    return data[pos:end].decode("utf-8", "replace"), end + 1


def bson_fields(document, where):
    """Top-level fields of one BSON document: strings, booleans and integers decoded, others skipped."""
    fields = {}
    pos, end = 4, len(document) - 1
    while pos < end:
        kind = document[pos]
        name, pos = _cstring(document, pos + 1, where)
        if kind in _FIXED:
            size = _FIXED[kind]
            raw = document[pos:pos + size]
            if kind == 0x08:
                fields[name] = raw == b"\x01"
            elif kind == 0x10:
                fields[name] = struct.unpack("<i", raw)[0]
            elif kind == 0x12:
                fields[name] = struct.unpack("<q", raw)[0]
        elif kind in (0x02, 0x0D, 0x0E):  # string, JavaScript, symbol: int32 length + bytes (with NUL)
            size = 4 + struct.unpack("<i", document[pos:pos + 4])[0]
            if kind == 0x02:
                fields[name] = document[pos + 4:pos + size - 1].decode("utf-8", "replace")
        elif kind in (0x03, 0x04, 0x0F):  # document, array, code with scope: int32 total length
            size = struct.unpack("<i", document[pos:pos + 4])[0]
        elif kind == 0x05:  # binary: int32 length, subtype, bytes
            size = 5 + struct.unpack("<i", document[pos:pos + 4])[0]
        elif kind == 0x0B:  # regex: two cstrings
            _pattern, after = _cstring(document, pos, where)
            _flags, after = _cstring(document, after, where)
            size = after - pos
        elif kind == 0x0C:  # DBPointer: string + 12 bytes
            size = 4 + struct.unpack("<i", document[pos:pos + 4])[0] + 12
        else:
            raise IntegrityError("%s holds a BSON element of unknown type 0x%02x" % (where, kind))
        if size < 0 or pos + size > end:
            raise IntegrityError("%s holds a BSON element that runs past its document" % where)
        pos += size
    return fields


def _document_or_end(stream, what):
    """The next BSON document of an archive, or None at a terminator (0xFFFFFFFF)."""
    head = stream.exact(4, what)
    length = struct.unpack("<I", head)[0]
    if length == TERMINATOR:
        return None
    if length < 5 or length > layout.MAX_BSON:
        raise IntegrityError("%s holds a document of impossible length %d in %s (damaged archive)"
                             % (stream.where, length, what))
    body = stream.exact(length - 4, what)
    if body[-1:] != b"\0":
        raise IntegrityError("%s holds an unterminated document in %s (damaged archive)" % (stream.where, what))
    return head + body


def parse_archive(reader, where):
    """Documents per namespace of a mongodump --archive stream: the prelude as mongo_restore reads it
    (mongo_format.read_archive_prelude), then every namespace block."""
    stream = _Stream(reader, where)
    namespaces = {}
    for database, collection, kind, _metadata in layout.read_archive_prelude(stream, where):
        if kind != "view":
            namespaces.setdefault("%s.%s" % (database, collection), 0)
    while True:
        head = stream.read(4)
        if not head:
            return namespaces
        if len(head) < 4:
            raise IntegrityError("%s ends inside a namespace header (truncated archive)" % where)
        length = struct.unpack("<I", head)[0]
        if length < 5 or length > layout.MAX_BSON:
            raise IntegrityError("%s holds a namespace header of impossible length %d" % (where, length))
        header = head + stream.exact(length - 4, "a namespace header")
        fields = bson_fields(header, where)
        namespace = "%s.%s" % (fields.get("db"), fields.get("collection"))
        if fields.get("EOF"):
            continue
        count = 0
        while _document_or_end(stream, "the documents of %s" % namespace) is not None:
            count += 1
        namespaces[namespace] = namespaces.get(namespace, 0) + count


def parse_tar_layout(reader, where, allow_javascript=False):
    """Documents per namespace of the built-in dumper's tar layout (bson files), checking every member with the
    name and metadata policy of mongo_restore, so a verify alarms on a set the restore would refuse."""
    counts = {}
    try:
        tar = tarfile.open(fileobj=reader, mode="r|", encoding="utf-8", errors="surrogateescape")
        for member in tar:
            if member.isdir():
                continue
            parsed = layout.parse_member(member.name) if member.isfile() else None
            if parsed is None:
                raise IntegrityError("%s holds %r, which is not part of the mongodump layout (<db>/<collection>.bson "
                                     "or .metadata.json)" % (where, member.name))
            database, collection, kind = parsed
            layout.check_names(database, collection, "tar member %r of %s" % (member.name, where))
            handle = tar.extractfile(member)
            if kind == "metadata":
                raw = handle.read(MAX_METADATA + 1)
                try:
                    document = json.loads(raw.decode("utf-8"))
                except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than json can read
                    raise IntegrityError("%s in %s is not valid metadata JSON (%s)"
                                         % (member.name, where, type(exc).__name__))
                if len(raw) > MAX_METADATA or not isinstance(document, dict):
                    raise IntegrityError("%s in %s is not a metadata document" % (member.name, where))
                layout.check_metadata(document, "%s.%s" % (database, collection), allow_javascript)
                continue
            namespace = "%s.%s" % (database, collection)
            counts[namespace] = sum(1 for _doc in layout.iter_bson(handle, "%s in %s" % (member.name, where)))
    except tarfile.TarError as exc:
        raise IntegrityError("%s is not a readable tar stream (%s)" % (where, exc))
    return counts


def _drain(reader):
    """After a parse failure: read to the end so a damaged artifact reports its sha256 mismatch instead."""
    try:
        for _chunk in iter_chunks(reader):
            pass
    except IntegrityError as exc:
        if "sha256 mismatch" in exc.msg:
            raise
    except LifeboatError:
        pass


def test_restore(repository, job, backup_set, identity_file, scratch_dir, options):
    manifest = backup_set.manifest
    where = "set %s of job %s" % (backup_set.set_id, job)
    fmt = (manifest.get("source") or {}).get("format")
    if fmt not in (layout.FORMAT_TAR, layout.FORMAT_ARCHIVE):
        raise IntegrityError("%s records an unknown MongoDB format %r; upgrade the collection" % (where, fmt))
    with open_set(repository, job, backup_set, identity_file) as reader:
        try:
            if fmt == layout.FORMAT_TAR:
                counts = parse_tar_layout(reader, where, bool((options or {}).get("allow_javascript")))
            else:
                counts = parse_archive(reader, where)
        except IntegrityError:
            _drain(reader)
            raise
        for _chunk in iter_chunks(reader):
            pass  # the end of the set: the sha256 is compared there, before the counts are judged
    report = {"document_counts": counts, "format": fmt}
    expected = (manifest.get("verification") or {}).get("document_counts")
    if expected is None:
        report["checked"] = {"document_counts": "not recorded in the manifest (made with verify: false)"}
        return report
    if not isinstance(expected, dict):
        raise IntegrityError("the manifest of %s is corrupted (verification.document_counts is not a count per "
                             "collection)" % where, report=report)
    report["checked"] = {"document_counts": {"expected": expected, "actual": counts}}
    wrong = {ns: (expected.get(ns), counts.get(ns)) for ns in sorted(set(expected) | set(counts))
             if expected.get(ns) != counts.get(ns)}
    report["document_counts_match"] = not wrong
    if wrong:
        raise IntegrityError("%s does not hold the documents its manifest recorded (collection: expected / found) %s; "
                             "do not rely on this set" % (where, ", ".join(
                                 "%s: %s / %s" % (ns, pair[0] if pair[0] is not None else "absent",
                                                  pair[1] if pair[1] is not None else "absent")
                                 for ns, pair in wrong.items())), report=report)
    return report
