"""The bytes of a MongoDB set, read and written in one place: the tar stream of the mongodump directory layout
(``<db>/<collection>.bson`` and ``.metadata.json``, written by the built-in dumper), the framing of BSON
documents, and the ``mongodump --archive`` stream (its prelude and namespace blocks). mongo_restore and the test
restore of backup_verify walk a set with the same functions here, so both refuse exactly the same sets: every
member name, BSON length and terminator is checked, and every metadata file goes through the name and metadata
policy of format.py. Plain Python (stdlib only), so the parsers need neither pymongo nor a server."""

import json
import tarfile
import time

from ...core.errors import IntegrityError
from .format import check_metadata, check_names, database_name_problem

BLOCK = 512
RECORD = 20 * BLOCK
MAX_BSON = 16 * 1024 * 1024 + 16 * 1024  # the server's own ceiling (BSONObjMaxInternalSize): larger is damage
MAX_METADATA = 16 * 1024 * 1024
ARCHIVE_MAGIC = 0x8199E26D
ARCHIVE_TERMINATOR = 0xFFFFFFFF
_BSON_FIXED = {0x01: 8, 0x06: 0, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16,
               0x7F: 0, 0xFF: 0}


# ---------------------------------------------------------------- member names of the directory layout


def escape_collection(name):
    """Collection name as a file name, as mongodump does it (% and / percent-escaped)."""
    return name.replace("%", "%25").replace("/", "%2F")


def unescape_collection(name):
    return name.replace("%2F", "/").replace("%2f", "/").replace("%25", "%")


def member_path(database, collection, suffix):
    return "%s/%s%s" % (database, escape_collection(collection), suffix)


def parse_member(name):
    """(database, collection, kind) for a layout member name `<db>/<escaped coll>.bson|.metadata.json`; kind is
    'bson' or 'metadata', else None. No leading './' or '/', no other depth: a set's member names are taken
    exactly as the dumper writes them."""
    database, sep, rest = name.partition("/")
    if not sep or "/" in rest:
        return None
    for suffix, kind in ((".metadata.json", "metadata"), (".bson", "bson")):
        if rest.endswith(suffix) and len(rest) > len(suffix):
            return database, unescape_collection(rest[:-len(suffix)]), kind
    return None


# ---------------------------------------------------------------- writing the tar stream


def _header(name, size, directory=False, mtime=None):
    info = tarfile.TarInfo(name)
    info.size = 0 if directory else size
    info.mtime = int(mtime if mtime is not None else time.time())
    info.mode = 0o755 if directory else 0o644
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class TarStream(object):
    """Produces a POSIX (pax) tar stream member by member; a member's data may come from a file object,
    so memory stays bounded. Readable by tarfile, GNU tar and bsdtar."""

    def __init__(self):
        self.written = 0

    def _count(self, data):
        self.written += len(data)
        return data

    def directory(self, name):
        yield self._count(_header(name.rstrip("/") + "/", 0, directory=True))

    def member(self, name, size, chunks):
        """`chunks` yields exactly `size` bytes in total."""
        yield self._count(_header(name, size))
        seen = 0
        for chunk in chunks:
            seen += len(chunk)
            yield self._count(chunk)
        if seen != size:
            raise IntegrityError("tar member %s: %d bytes produced, %d announced" % (name, seen, size))
        if size % BLOCK:
            yield self._count(b"\0" * (BLOCK - size % BLOCK))

    def bytes_member(self, name, data):
        return self.member(name, len(data), [data] if data else [])

    def end(self):
        closing = b"\0" * (2 * BLOCK)
        total = self.written + len(closing)
        if total % RECORD:
            closing += b"\0" * (RECORD - total % RECORD)
        yield self._count(closing)


# ---------------------------------------------------------------- BSON framing


def iter_bson(handle, where):
    """Raw BSON documents (bytes) of a .bson file object, checking every length and terminator."""
    while True:
        head = handle.read(4)
        if not head:
            return
        if len(head) < 4:
            raise IntegrityError("%s ends inside a document length (truncated BSON)" % where)
        length = int.from_bytes(head, "little")
        if length < 5 or length > MAX_BSON:
            raise IntegrityError("%s holds a document of impossible length %d (damaged BSON)" % (where, length))
        body = handle.read(length - 4)
        if len(body) != length - 4 or body[-1:] != b"\0":
            raise IntegrityError("%s ends inside a document or a document is unterminated (damaged BSON)" % where)
        yield head + body


def _cstring(document, pos, end, where):
    """(text, position after its NUL) of the C string at `pos`, which must end before `end`."""
    stop = document.find(b"\0", pos, end)
    if stop < 0:
        raise IntegrityError("%s holds an unterminated BSON field name (damaged archive)" % where)
    return document[pos:stop].decode("utf-8", "replace"), stop + 1


def _int32(document, pos):
    return int.from_bytes(document[pos:pos + 4], "little", signed=True)


def bson_fields(document, where):
    """Top-level fields of one raw BSON document: strings, booleans and 32/64-bit integers decoded, every other
    element skipped by its size (the archive's header documents need no more)."""
    fields = {}
    pos, end = 4, len(document) - 1
    while pos < end:
        kind = document[pos]
        name, pos = _cstring(document, pos + 1, end, where)
        if kind in _BSON_FIXED:
            size = _BSON_FIXED[kind]
        elif kind in (0x02, 0x0D, 0x0E):  # string, JavaScript, symbol: int32 length + bytes (with NUL)
            size = 4 + _int32(document, pos)
        elif kind in (0x03, 0x04, 0x0F):  # document, array, code with scope: int32 total length
            size = _int32(document, pos)
        elif kind == 0x05:  # binary: int32 length, subtype, bytes
            size = 5 + _int32(document, pos)
        elif kind == 0x0B:  # regex: two C strings
            _pattern, after = _cstring(document, pos, end, where)
            _flags, after = _cstring(document, after, end, where)
            size = after - pos
        elif kind == 0x0C:  # DBPointer: string + 12 bytes
            size = 16 + _int32(document, pos)
        else:
            raise IntegrityError("%s holds a BSON element of unknown type 0x%02x (damaged archive)" % (where, kind))
        if size < 0 or pos + size > end:
            raise IntegrityError("%s holds a BSON element that runs past its document (damaged archive)" % where)
        raw = document[pos:pos + size]
        if kind == 0x02 and size >= 5:
            fields[name] = raw[4:-1].decode("utf-8", "replace")
        elif kind == 0x08:
            fields[name] = raw == b"\x01"
        elif kind in (0x10, 0x12):
            fields[name] = int.from_bytes(raw, "little", signed=True)
        pos += size
    return fields


# ---------------------------------------------------------------- mongodump --archive


class ExactReader(object):
    """Exact reads from a file object (a staged file, or the decoded set as a stream, whose reads may be short)."""

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


def read_document(stream, what):
    """The next BSON document of an archive (bytes), or None at a terminator (0xFFFFFFFF)."""
    head = stream.read(4)
    if len(head) < 4:
        raise IntegrityError("%s ends inside %s (truncated archive)" % (stream.where, what))
    length = int.from_bytes(head, "little")
    if length == ARCHIVE_TERMINATOR:
        return None
    if length < 5 or length > MAX_BSON:
        raise IntegrityError("%s holds a document of impossible length %d in %s (damaged archive)"
                             % (stream.where, length, what))
    body = stream.read(length - 4)
    if len(body) != length - 4 or body[-1:] != b"\0":
        raise IntegrityError("%s ends inside %s (truncated archive)" % (stream.where, what))
    return head + body


def read_archive_prelude(handle, where):
    """[(database, collection, type, metadata JSON text)] of a mongodump --archive file: its magic number, the
    header document, then one document per collection up to the terminator. Read before mongorestore runs, so
    the collection metadata of an archive is checked like a tar-layout set's. Only string fields count: a
    name or metadata of another BSON type reads as absent."""
    stream = handle if isinstance(handle, ExactReader) else ExactReader(handle, where)
    if int.from_bytes(stream.read(4).ljust(4, b"\0"), "little") != ARCHIVE_MAGIC:
        raise IntegrityError("%s is not a mongodump archive (wrong magic number); restore another set" % where)
    if read_document(stream, "the archive header") is None:
        raise IntegrityError("%s has no archive header (damaged archive)" % where)
    entries = []
    while True:
        raw = read_document(stream, "the collection metadata")
        if raw is None:
            return entries
        fields = dict((name, value) for name, value in bson_fields(raw, where).items() if isinstance(value, str))
        entries.append((fields.get("db"), fields.get("collection"), fields.get("type") or "collection",
                        fields.get("metadata") or ""))


def parse_archive(reader, where):
    """Documents per namespace of a mongodump --archive stream: the prelude as mongo_restore reads it
    (read_archive_prelude), then every namespace block, each document framed as in the prelude."""
    stream = ExactReader(reader, where)
    namespaces = {}
    for database, collection, kind, _metadata in read_archive_prelude(stream, where):
        if kind != "view":
            namespaces.setdefault("%s.%s" % (database, collection), 0)
    while True:
        head = stream.read(4)
        if not head:
            return namespaces
        if len(head) < 4:
            raise IntegrityError("%s ends inside a namespace header (truncated archive)" % where)
        length = int.from_bytes(head, "little")
        if length < 5 or length > MAX_BSON:
            raise IntegrityError("%s holds a namespace header of impossible length %d" % (where, length))
        header = head + stream.read(length - 4)
        if len(header) != length:
            raise IntegrityError("%s ends inside a namespace header (truncated archive)" % where)
        fields = bson_fields(header, where)
        namespace = "%s.%s" % (fields.get("db"), fields.get("collection"))
        if fields.get("EOF"):
            continue
        count = 0
        while read_document(stream, "the documents of %s" % namespace) is not None:
            count += 1
        namespaces[namespace] = namespaces.get(namespace, 0) + count


# ---------------------------------------------------------------- walking the tar layout


def read_tar_layout(handle, where, decode=json.loads, allow_javascript=False, stream=True):
    """Walk a tar-layout set: {namespace: {database, collection, metadata, member, count, creates}}, where `where`
    names the set in messages ("set <id>"). The set is untrusted even with a good sha256: every member must be a
    regular file or directory named exactly as the layout names them (no links, no '..', no other files), every
    name must be one MongoDB accepts and lifeboat restores (never system.*), metadata only what lifeboat
    re-creates (format.check_metadata), and every BSON document's framing is checked, so a bad set fails here,
    before a server is touched. Members are read in memory, never extracted to disk. `decode` turns a metadata
    file's text into a document (bson.json_util.loads for a restore, which creates what it describes; json.loads
    for a check); `stream` reads `handle` front to back only (tar mode "r|"), else it must be seekable ("r:")."""
    entries = {}

    def refuse(member, why):
        raise IntegrityError("%s holds tar member %r, which %s; nothing was changed: restore another set"
                             % (where, member.name, why))

    try:
        with tarfile.open(fileobj=handle, mode="r|" if stream else "r:", encoding="utf-8",
                          errors="surrogateescape") as tar:
            for member in tar:
                if member.isdir():
                    name = member.name[:-1] if member.name.endswith("/") else member.name
                    if database_name_problem(name):
                        refuse(member, "is not a database directory of the layout")
                    continue
                if not member.isfile():
                    refuse(member, "is not a regular file (links and devices are never part of a set)")
                parsed = parse_member(member.name)
                if parsed is None:
                    refuse(member, "is not <database>/<collection>.bson or .metadata.json")
                database, collection, kind = parsed
                check_names(database, collection, "tar member %r of %s" % (member.name, where))
                namespace = "%s.%s" % (database, collection)
                entry = entries.setdefault(namespace, {"database": database, "collection": collection,
                                                       "metadata": None, "member": None, "count": 0, "creates": {}})
                if entry["member" if kind == "bson" else "metadata"] is not None:
                    refuse(member, "appears twice")
                member_file = tar.extractfile(member)
                if kind == "metadata":
                    if member.size > MAX_METADATA:
                        refuse(member, "is larger than %d bytes" % MAX_METADATA)
                    try:
                        entry["metadata"] = decode(member_file.read(MAX_METADATA).decode("utf-8"))
                    except Exception as exc:  # pylint: disable=broad-except
                        # RecursionError too: nesting deeper than the JSON reader can follow is damage, not a bug
                        raise IntegrityError("%s in %s is not valid metadata JSON (%s: %s)"
                                             % (member.name, where, type(exc).__name__, str(exc)[:200]))
                    entry["creates"] = check_metadata(entry["metadata"], namespace, allow_javascript)
                else:
                    entry["member"] = member.name
                    entry["count"] = sum(1 for _doc in iter_bson(member_file, "%s in %s" % (member.name, where)))
    except tarfile.TarError as exc:
        raise IntegrityError("%s is not a readable tar stream (%s): the artifact is damaged; restore another set"
                             % (where, exc))
    for namespace, entry in entries.items():
        if entry["member"] and (entry["metadata"] or {}).get("type") == "view":
            raise IntegrityError("%s holds documents for %s, which its metadata calls a view; nothing was "
                                 "changed: restore another set" % (where, namespace))
    return entries


def parse_tar_layout(reader, where, allow_javascript=False):
    """Documents per collection ({namespace: count}) of a tar-layout set read as a stream, checked by
    read_tar_layout with the name and metadata policy of mongo_restore, so a verify alarms on a set the
    restore would refuse."""
    entries = read_tar_layout(reader, where, json.loads, allow_javascript)
    return dict((namespace, entry["count"]) for namespace, entry in entries.items() if entry["member"])
