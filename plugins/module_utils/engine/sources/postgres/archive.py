"""The set's data object and what is read from it. Data object: the pg_dump custom-format archive exactly as
pg_dump wrote it (``data.pgdump``), so ``zstd -d < data.pgdump.zst | pg_restore ...`` works by hand. With
``globals`` the set must still hold one data object, so it becomes a bundle (``data.pgbundle``): the line
``LIFEBOAT-PGBUNDLE 1 <n>\\n``, then the ``pg_dumpall --globals-only`` SQL (n bytes), then the archive. Globals are
small and taken first, so the bundle streams both ways and the archive is still one ``tail -c`` away; role password
hashes stay inside the (compressed, optionally encrypted) data object instead of the clear-text manifest. Here:
the bundle framing (ArchiveReader), ``pg_restore --list`` of an archive and its table of contents parsed into
entries, the selection of tables/schemas as a pg_restore list file, and inspect_set, the server-less check of a
set for backup_verify.
"""

import contextlib
import re

from ...core.errors import ConfigError, IntegrityError, LifeboatError
from ...core.process import ProcessReader
from ...core.streams import CHUNK, iter_chunks, report_spliced, splice_fd
from ...pipeline.restore import open_set
from .connection import Connection

KIND = "postgres"  # the kind recorded in a set's manifest, which a restore looks for
BUNDLE_MAGIC = b"LIFEBOAT-PGBUNDLE"
ARCHIVE_MAGIC = b"PGDMP"
MAX_GLOBALS = 64 * 1024 * 1024


def bundle_header(globals_sql):
    return b"%s 1 %d\n" % (BUNDLE_MAGIC, len(globals_sql))


class ArchiveReader(object):
    """Reads a decoded set: takes off the bundle header and globals (if any) and yields the archive bytes.
    `globals_sql` is known right after construction, before the archive is consumed."""

    def __init__(self, raw, where="the set"):
        self._raw = raw
        self._buffer = b""
        self.globals_sql = None
        self._fill(len(BUNDLE_MAGIC) + 32)
        if self._buffer.startswith(ARCHIVE_MAGIC):
            return
        if not self._buffer.startswith(BUNDLE_MAGIC):
            self._drain()
            raise IntegrityError("%s is not a pg_dump custom archive (it starts with %r, not PGDMP): wrong job or "
                                 "damaged data; restore another set" % (where, self._buffer[:16]))
        line_end = self._buffer.find(b"\n")
        match = re.match(br"^LIFEBOAT-PGBUNDLE 1 (\d+)$", self._buffer[:line_end]) if line_end > 0 else None
        if not match or int(match.group(1)) > MAX_GLOBALS:
            self._drain()
            raise IntegrityError("%s has a damaged bundle header; restore another set" % where)
        size = int(match.group(1))
        self._buffer = self._buffer[line_end + 1:]
        self._fill(size)
        if len(self._buffer) < size:
            self._drain()
            raise IntegrityError("%s ends inside its globals: the artifact is truncated; restore another set" % where)
        self.globals_sql, self._buffer = self._buffer[:size], self._buffer[size:]
        self._fill(len(ARCHIVE_MAGIC))
        if not self._buffer.startswith(ARCHIVE_MAGIC):
            self._drain()
            raise IntegrityError("%s holds no pg_dump archive after its globals; restore another set" % where)

    def _fill(self, size):
        while len(self._buffer) < size:
            chunk = self._raw.read(CHUNK)
            if not chunk:
                return
            self._buffer += chunk

    def _drain(self):
        """Read to the end so the sha256 check runs: a damaged artifact reports 'sha256 mismatch' first."""
        for _chunk in iter_chunks(self._raw):
            pass

    def read(self, size=CHUNK):
        if self._buffer:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
            return data
        return self._raw.read(size)

    def splice_fd(self):
        return None if self._buffer else splice_fd(self._raw)

    def spliced(self, count):
        report_spliced(self._raw, count)


@contextlib.contextmanager
def damage_reported_first(archive):
    """When a tool reading `archive` fails, read the rest of the set: a damaged artifact then reports its
    sha256 mismatch (raised at the end of the set) rather than the tool's symptom of it."""
    try:
        yield
    except IntegrityError:
        raise
    except LifeboatError:
        for _chunk in iter_chunks(archive):
            pass
        raise


def list_archive(connection, archive, where):
    """`pg_restore --list` of the archive being read."""
    with damage_reported_first(archive):
        with ProcessReader(connection.list_argv(), "pg_restore --list of %s" % where, stdin=archive) as proc:
            return b"".join(iter_chunks(proc)).decode("utf-8", "replace")


# ---------------------------------------------------------------- TOC selection (tables / schemas)

TOC_LINE = re.compile(r"^(\d+);\s+(\d+)\s+(\d+)\s+(.*)$")
DEPENDS = re.compile(r"^;\s+depends on:\s*(.*)$")
# Descriptions of TOC entries that can contain spaces (longest first).
DESCRIPTIONS = sorted([
    "TABLE DATA", "SEQUENCE OWNED BY", "SEQUENCE SET", "FK CONSTRAINT", "CHECK CONSTRAINT", "ROW SECURITY",
    "DEFAULT ACL", "MATERIALIZED VIEW DATA", "MATERIALIZED VIEW", "LARGE OBJECT", "BLOBS", "BLOB", "TEXT SEARCH",
    "FOREIGN TABLE", "EVENT TRIGGER", "FOREIGN DATA WRAPPER", "FOREIGN SERVER", "USER MAPPING", "INDEX ATTACH",
    "TABLE ATTACH", "ACCESS METHOD", "OPERATOR CLASS", "OPERATOR FAMILY", "SHELL TYPE", "PROCEDURAL LANGUAGE",
    "PUBLICATION TABLE", "PUBLICATION TABLES IN SCHEMA", "STATISTICS DATA",
], key=len, reverse=True)
RELATION_KINDS = ("TABLE", "SEQUENCE", "VIEW", "MATERIALIZED VIEW", "FOREIGN TABLE", "INDEX", "CONSTRAINT")


class TocEntry(object):
    __slots__ = ("dump_id", "line", "desc", "schema", "tag", "deps")

    def __init__(self, dump_id, line, desc, schema, tag):
        self.dump_id = dump_id
        self.line = line
        self.desc = desc
        self.schema = schema
        self.tag = tag
        self.deps = []

    @property
    def name(self):
        """The object's own name (for CONSTRAINT/TRIGGER/DEFAULT the tag starts with the table name)."""
        return self.tag.split(" ")[0] if self.tag else ""


def parse_toc(text):
    """Entries of `pg_restore --list --verbose` output, in archive order, with their dependencies."""
    entries = []
    for raw in text.splitlines():
        match = TOC_LINE.match(raw)
        if match:
            rest = match.group(4)
            desc = next((d for d in DESCRIPTIONS if rest.startswith(d + " ")), rest.split(" ")[0])
            remainder = rest[len(desc):].strip().split(" ")
            schema = remainder[0] if remainder else "-"
            tag = " ".join(remainder[1:-1]) if len(remainder) > 2 else (remainder[1] if len(remainder) > 1 else "")
            entries.append(TocEntry(int(match.group(1)), raw, desc, schema, tag))
            continue
        match = DEPENDS.match(raw)
        if match and entries:
            entries[-1].deps.extend(int(item) for item in match.group(1).split())
    return entries


def split_table(spec):
    """'schema.table' -> (schema, table); 'table' -> (None, table). Quotes are taken off."""
    spec = spec.strip()
    match = re.match(r'^(?:"((?:[^"]|"")+)"|([^."]+))\.(?:"((?:[^"]|"")+)"|([^"]+))$', spec)
    if match:
        schema = (match.group(1) or "").replace('""', '"') or match.group(2)
        table = (match.group(3) or "").replace('""', '"') or match.group(4)
        return schema, table
    if spec.startswith('"') and spec.endswith('"') and len(spec) > 1:
        return None, spec[1:-1].replace('""', '"')
    return None, spec


def select_entries(entries, tables=(), schemas=(), include_parents=True):
    """TOC ids to restore for the selected tables and schemas, plus what depends on them (data, indexes,
    constraints, triggers, owned sequences, defaults, comments, grants). Entries that also depend on an
    unselected table (e.g. a foreign key to it) are left out. With include_parents (a new database), the
    schemas and other non-relation objects the selection depends on are added too.
    Returns (ids, tables_selected as 'schema.table')."""
    by_id = {entry.dump_id: entry for entry in entries}
    wanted_tables = [split_table(spec) for spec in tables or ()]
    wanted_schemas = set(schemas or ())
    roots = set()
    table_roots = set()
    missing = []
    for schema, table in wanted_tables:
        found = [e for e in entries if e.desc in ("TABLE", "FOREIGN TABLE", "MATERIALIZED VIEW", "VIEW")
                 and e.tag == table and (schema is None or e.schema == schema)]
        if not found:
            missing.append(table if schema is None else "%s.%s" % (schema, table))
        roots.update(e.dump_id for e in found)
        table_roots.update(e.dump_id for e in found)
    for schema in wanted_schemas:
        found = [e for e in entries if e.schema == schema or (e.desc == "SCHEMA" and e.tag == schema)]
        if not found:
            missing.append("schema %s" % schema)
        roots.update(e.dump_id for e in found)
    if missing:
        raise ConfigError("not in this backup: %s; check tables / schemas (use schema.table for a table outside "
                          "the search path)" % ", ".join(sorted(missing)))
    selected = set(roots)
    changed = True
    while changed:
        changed = False
        for entry in entries:
            if entry.dump_id in selected or not entry.deps:
                continue
            if not any(dep in selected for dep in entry.deps):
                continue
            blocked = any(dep not in selected and dep in by_id and by_id[dep].desc in RELATION_KINDS + (
                "FK CONSTRAINT", "TABLE DATA") for dep in entry.deps)
            if blocked:
                continue
            selected.add(entry.dump_id)
            changed = True
    pruned = True
    while pruned:  # e.g. a foreign key of a selected schema's table to a table outside the selection
        pruned = False
        for dump_id in sorted(selected - table_roots):
            entry = by_id[dump_id]
            if any(dep not in selected and dep in by_id and by_id[dep].desc in RELATION_KINDS + (
                    "FK CONSTRAINT", "TABLE DATA") for dep in entry.deps):
                selected.discard(dump_id)
                pruned = True
    if include_parents:
        todo = list(selected)
        while todo:
            entry = by_id.get(todo.pop())
            for dep in entry.deps if entry else ():
                parent = by_id.get(dep)
                if parent and dep not in selected and parent.desc not in RELATION_KINDS + ("TABLE DATA",):
                    selected.add(dep)
                    todo.append(dep)
    chosen = sorted("%s.%s" % (by_id[i].schema, by_id[i].tag) for i in selected
                    if by_id[i].desc == "TABLE")
    return [e.dump_id for e in entries if e.dump_id in selected], chosen


def list_file_text(entries, ids):
    keep = set(ids)
    return "".join(entry.line + "\n" for entry in entries if entry.dump_id in keep)


# ---------------------------------------------------------------- backup_verify's server-less check

def inspect_set(repository, job, backup_set, identity_file=None, pg_bin_dir=None):
    """Server-less check of a set for backup_verify: the whole artifact is read (sha256 checked), and the
    archive's table of contents must be readable by pg_restore. Returns a small report."""
    connection = Connection(pg_bin_dir=pg_bin_dir)
    where = "set %s of job %s" % (backup_set.set_id, job)
    with open_set(repository, job, backup_set, identity_file) as reader:
        archive = ArchiveReader(reader, where)
        text = list_archive(connection, archive, where)
        for _chunk in iter_chunks(archive):
            pass
    entries = parse_toc(text)
    if not entries:
        raise IntegrityError("pg_restore lists no entries in %s: the archive is damaged; restore another set" % where)
    return {"archive": "ok", "toc_entries": len(entries),
            "tables": sum(1 for entry in entries if entry.desc == "TABLE"),
            "globals_bytes": len(archive.globals_sql) if archive.globals_sql is not None else None}
