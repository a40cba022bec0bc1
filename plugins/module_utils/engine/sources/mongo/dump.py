"""The backup side of MongoDB: MongoSource dumps with `mongodump --archive` when the Database Tools are
installed and the selection is one mongodump run can express, else with the built-in pymongo dumper, which writes
the mongodump directory layout (<db>/<coll>.bson + <db>/<coll>.metadata.json) as a tar stream (layout.TarStream),
spooling each collection so memory stays bounded. The connection URI never reaches argv or a manifest: the tools
read it from a 0600 `--config` file, pymongo keeps it in-process, and manifests and messages carry a redacted
copy. Document counts per collection go to the manifest for the restore and verify to check."""

import contextlib
import os
import tempfile

from ...core.errors import ConfigError, SourceError, ToolError
from ...core.streams import CHUNK, IterReader
from ..protocol import Source
from .clients import (DEFAULT_TIMEOUT_MS, HAS_PYMONGO, CodecOptions, RawBSONDocument, ToolReader, check_tools_version,
                      connect, json_util, pymongo, scrubbed_tool_error, tools_version, which)
from .format import (DEFAULT_URI, EXTENSIONS, FORMAT_ARCHIVE, FORMAT_TAR, KIND, Selection, mongodump_args,
                     parse_dump_counts, redact_uri, scrub, split_uri, with_uri_option, write_tool_config)
from .layout import TarStream, member_path

METHODS = ("auto", "mongodump", "builtin")
SPOOL_MEMORY = 16 * 1024 * 1024  # per collection; beyond this the spool rolls over to a file in tmp_dir


def _metadata_document(name, kind, options, info, indexes):
    document = {"indexes": indexes, "collectionName": name, "type": kind, "options": options or {}}
    uuid = (info or {}).get("uuid")
    if uuid is not None:
        text = uuid.hex if hasattr(uuid, "hex") and not isinstance(uuid, (bytes, str)) else None
        if text is None and hasattr(uuid, "as_uuid"):
            try:
                text = uuid.as_uuid().hex
            except Exception:  # pylint: disable=broad-except
                text = None
        if text is None and isinstance(uuid, str):
            text = uuid.replace("-", "")
        if text and len(text) == 32 and text.strip("0"):
            document["uuid"] = text.lower()
    return document


class MongoSource(Source):
    kind = KIND

    def __init__(self, uri=None, databases=None, exclude_databases=None, collections=None, exclude_collections=None,
                 method="auto", oplog=False, server_selection_timeout_ms=DEFAULT_TIMEOUT_MS, tmp_dir=None,
                 verify=True):
        self.uri = uri or DEFAULT_URI
        self.selection = Selection(databases, exclude_databases, collections, exclude_collections)
        if method not in METHODS:
            raise ConfigError("method must be one of %s, not %r" % (", ".join(METHODS), method))
        self.method = method
        self.oplog = bool(oplog)
        self.timeout_ms = int(server_selection_timeout_ms or DEFAULT_TIMEOUT_MS)
        self.tmp_dir = tmp_dir
        self.verify = verify
        self._resolved = None
        self._reason = None
        self._plan = None  # builtin: [(database, [(name, type, options, info)])]
        self._tools = {}
        self._verification = {}
        self._mongodump = None

    # -- method ---------------------------------------------------------------

    def _resolve(self):
        if self._resolved:
            return self._resolved
        self._mongodump = which("mongodump")
        expressible, why = True, None
        try:
            mongodump_args("CONFIG", self.selection, self.oplog)
        except ConfigError as exc:
            expressible, why = False, exc.msg
        if self.method == "mongodump":
            if not self._mongodump:
                raise ToolError("mongodump is not installed or not on PATH (method: mongodump): install the MongoDB "
                                "Database Tools, or use method: auto or builtin")
            if not expressible:
                raise ConfigError(why)
            self._resolved = "mongodump"
        elif self.method == "builtin":
            self._resolved = "builtin"
        elif self._mongodump and expressible:
            self._resolved = "mongodump"
        else:
            self._resolved = "builtin"
            self._reason = "mongodump not installed" if not self._mongodump else why
        if self._resolved == "builtin" and self.oplog:
            raise ConfigError("oplog needs mongodump (the built-in dumper has no oplog capture): install the MongoDB "
                              "Database Tools or set oplog: false")
        return self._resolved

    @property
    def format(self):
        return FORMAT_ARCHIVE if self._resolve() == "mongodump" else FORMAT_TAR

    @property
    def extension(self):
        return EXTENSIONS[self.format]

    # -- protocol -------------------------------------------------------------

    def check(self):
        split_uri(self.uri)
        if self.tmp_dir and not os.path.isdir(self.tmp_dir):
            raise ConfigError("tmp_dir %s does not exist" % self.tmp_dir)
        if self._resolve() == "mongodump":
            version = tools_version(self._mongodump)
            check_tools_version("mongodump", version)
            self._tools["mongodump"] = ".".join(map(str, version))
            if HAS_PYMONGO:  # fail fast with the driver's message; without pymongo mongodump reports it
                connect(self.uri, self.timeout_ms, "back up").close()
            return
        client = connect(self.uri, self.timeout_ms, "back up")
        try:
            self._plan = self._select(client)
            try:
                self._tools["mongodb"] = client.server_info().get("version") or "unknown"
            except Exception:  # pylint: disable=broad-except
                self._tools["mongodb"] = "unknown"
        finally:
            client.close()
        self._tools["pymongo"] = pymongo.version

    def _select(self, client):
        where = redact_uri(self.uri)
        try:
            names = sorted(client.list_database_names())
            plan = []
            for database in names:
                if not self.selection.database_wanted(database):
                    continue
                entries = []
                for info in client[database].list_collections():
                    name = info["name"]
                    if not self.selection.collection_wanted(database, name):
                        continue
                    entries.append((name, info.get("type", "collection"), info.get("options") or {},
                                    info.get("info") or {}))
                if entries:
                    plan.append((database, sorted(entries, key=lambda entry: entry[0])))
        except Exception as exc:  # pylint: disable=broad-except
            raise SourceError("cannot list databases and collections of %s: %s; the user needs the "
                              "listDatabases privilege (role backup)" % (where, scrub(exc, self.uri)))
        missing = [name for name in self.selection.databases
                   if not any(ch in name for ch in "*?[") and name not in names]
        if missing:
            raise SourceError("database(s) %s not found on %s (it has %s): check databases"
                              % (", ".join(missing), where, ", ".join(names) or "none"))
        if not plan:
            raise SourceError("nothing to back up on %s: no collection matches the selection %s"
                              % (where, self.selection.describe()))
        return plan

    def describe(self):
        description = {"uri": redact_uri(self.uri), "method": self._resolve(), "format": self.format,
                       "oplog": self.oplog}
        description.update(self.selection.describe())
        if self._reason:
            description["method_reason"] = self._reason
        if self._plan is not None:
            description["namespaces"] = ["%s.%s" % (db, entry[0]) for db, entries in self._plan for entry in entries]
        if self.format == FORMAT_TAR:
            description["layout"] = "tar of <db>/<collection>.bson and <db>/<collection>.metadata.json"
        return description

    def tools(self):
        return dict(self._tools)

    def verification(self):
        return dict(self._verification)

    @contextlib.contextmanager
    def open(self):
        if self._resolve() == "mongodump":
            with self._open_mongodump() as reader:
                yield reader
        else:
            with self._open_builtin() as reader:
                yield reader

    # -- mongodump ------------------------------------------------------------

    @contextlib.contextmanager
    def _open_mongodump(self):
        uri = with_uri_option(self.uri, "serverSelectionTimeoutMS", self.timeout_ms)
        config = write_tool_config(uri, self.tmp_dir)
        try:
            argv = mongodump_args(config, self.selection, self.oplog, binary=self._mongodump or "mongodump")
            try:
                reader = ToolReader(argv, "mongodump of %s" % redact_uri(self.uri))
            except ToolError as exc:
                raise scrubbed_tool_error(exc, self.uri)
            with reader:
                yield _ScrubbingReader(reader, self.uri)
                log = reader.full_log()
            counts = parse_dump_counts(log)
            self._verification = {"document_counts": counts, "documents": sum(counts.values()),
                                  "collections": len(counts)}
            if self.oplog:
                self._verification["oplog"] = True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(config)

    # -- built-in dumper ------------------------------------------------------

    @contextlib.contextmanager
    def _open_builtin(self):
        if self._plan is None:
            self.check()
        client = connect(self.uri, self.timeout_ms, "back up")
        try:
            yield IterReader(self._tar_chunks(client))
        finally:
            client.close()

    def _tar_chunks(self, client):
        tar = TarStream()
        counts = {}
        indexes = {}
        raw_options = CodecOptions(document_class=RawBSONDocument)
        for database, entries in self._plan:
            yield from tar.directory(database)
            for name, kind, options, info in entries:
                namespace = "%s.%s" % (database, name)
                collection = client[database].get_collection(name, codec_options=raw_options)
                try:
                    index_list = [] if kind == "view" else [
                        _plain(index) for index in client[database][name].list_indexes()]
                except Exception as exc:  # pylint: disable=broad-except
                    raise SourceError("cannot list the indexes of %s: %s" % (namespace, scrub(exc, self.uri)))
                metadata = json_util.dumps(_metadata_document(name, kind, options, info, index_list),
                                           json_options=json_util.CANONICAL_JSON_OPTIONS).encode("utf-8")
                yield from tar.bytes_member(member_path(database, name, ".metadata.json"), metadata)
                if kind == "view":
                    continue  # mongodump writes views as metadata only
                spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY, dir=self.tmp_dir)
                try:
                    count = 0
                    try:
                        for document in collection.find({}, batch_size=1000):
                            spool.write(document.raw)
                            count += 1
                    except Exception as exc:  # pylint: disable=broad-except
                        raise SourceError("reading %s from %s failed after %d documents: %s; the backup was not "
                                          "written" % (namespace, redact_uri(self.uri), count, scrub(exc, self.uri)))
                    size = spool.tell()
                    spool.seek(0)
                    yield from tar.member(member_path(database, name, ".bson"), size, _file_chunks(spool))
                finally:
                    spool.close()
                counts[namespace] = count
                indexes[namespace] = len(index_list)
        yield from tar.end()
        self._verification = {"document_counts": counts, "documents": sum(counts.values()),
                              "collections": len(counts), "indexes": indexes}


def _plain(value):
    """SON and friends to plain dicts, preserving order (index keys are ordered)."""
    if isinstance(value, dict):
        return dict((key, _plain(item)) for key, item in value.items())
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _file_chunks(handle, size=CHUNK):
    while True:
        chunk = handle.read(size)
        if not chunk:
            return
        yield chunk


class _ScrubbingReader(object):
    """Passes a tool's output through; a ToolError raised at EOF has the URI's secrets removed."""

    def __init__(self, reader, uri):
        self._reader = reader
        self._uri = uri

    def read(self, size=CHUNK):
        try:
            return self._reader.read(size)
        except ToolError as exc:
            raise scrubbed_tool_error(exc, self._uri)
