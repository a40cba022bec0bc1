"""MongoDB: `mongodump --archive` when the Database Tools are installed, else a built-in pymongo dumper
that writes the mongodump directory layout (<db>/<coll>.bson + <db>/<coll>.metadata.json) as a tar
stream. Restores pick the path matching the format the manifest records.

The connection URI never reaches argv or a manifest: the tools read it from a 0600 `--config` file,
pymongo keeps it in-process, and manifests and messages carry a redacted copy.
"""

import contextlib
import json
import os
import shutil
import tarfile
import tempfile

from ...core.errors import ConfigError, IntegrityError, RestoreError, SourceError, ToolError
from .format import (DEFAULT_URI, EXTENSIONS, FORMAT_ARCHIVE, FORMAT_TAR, MAX_METADATA, MIN_TOOLS_VERSION,
                           SYSTEM_DATABASES, Selection, TarStream, check_metadata, check_names, check_namespace,
                           database_name_problem, iter_bson, matches, member_path, mongodump_args, mongorestore_args,
                           ns_pattern, parse_dump_counts, parse_member, parse_restore_counts, parse_tools_version,
                           read_archive_prelude,
                           redact_uri, scrub, split_uri, with_uri_option, write_tool_config)
from ...core.process import ProcessReader, run_tool
from ...pipeline.restore import fetch_to_file, find_set, set_result
from ...core.streams import CHUNK, IterReader

try:
    import pymongo
    from bson import json_util
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument
    HAS_PYMONGO = True
except ImportError:
    pymongo = json_util = CodecOptions = RawBSONDocument = None
    HAS_PYMONGO = False

KIND = "mongo"
RESTORE_TARGET = "mongo_uri"  # what `lifeboat restore --to` sets (kinds.py)
METHODS = ("auto", "mongodump", "builtin")
SPOOL_MEMORY = 16 * 1024 * 1024  # per collection; beyond this the spool rolls over to a file in tmp_dir
INSERT_BATCH_DOCS = 1000
INSERT_BATCH_BYTES = 8 * 1024 * 1024
DEFAULT_TIMEOUT_MS = 5000


def require_pymongo(purpose):
    if not HAS_PYMONGO:
        raise ToolError("the Python package pymongo is not installed on this host (needed for %s): install it "
                        "(pip install pymongo, or apt-get install python3-pymongo)%s" % (
                            purpose, ", or install the MongoDB Database Tools (mongodump/mongorestore)"
                            if "dump" in purpose else ""))


def connect(uri, timeout_ms=DEFAULT_TIMEOUT_MS, purpose="connect"):
    """A MongoClient that answered `ping`; any failure is a SourceError with the redacted URI."""
    require_pymongo(purpose)
    split_uri(uri)
    where = redact_uri(uri)
    client = None
    try:
        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=int(timeout_ms), connectTimeoutMS=int(timeout_ms),
                                     appname="lifeboat")
        client.admin.command("ping")
        return client
    except Exception as exc:  # pylint: disable=broad-except
        if client is not None:
            client.close()
        # pymongo raises its own errors; an odd server can make the driver raise anything (KeyError...)
        kind = type(exc).__name__
        if pymongo is not None and isinstance(exc, pymongo.errors.OperationFailure):
            hint = "check the user, password and authSource in mongo_uri and the user's roles"
        elif pymongo is not None and isinstance(exc, pymongo.errors.ConfigurationError):
            hint = "fix mongo_uri"
        elif pymongo is not None and isinstance(exc, pymongo.errors.PyMongoError):
            hint = ("check that the server is running and reachable at that address, or raise "
                    "server_selection_timeout_ms")
        else:
            hint = ("the server's handshake or authentication failed: check the credentials in mongo_uri and that "
                    "the server supports them")
        raise SourceError("cannot %s MongoDB at %s: %s: %s; %s" % (
            purpose, where, kind, scrub(exc, uri) or "no detail", hint))


def which(tool):
    return shutil.which(tool)


def tools_version(binary):
    out = run_tool([binary, "--version"], "%s --version" % os.path.basename(binary), timeout=60)
    version = parse_tools_version(out)
    if version is None:
        raise ToolError("cannot read the version of %s (output: %s)" % (binary, out.strip()[:200]))
    return version


def check_tools_version(binary, version):
    if version < MIN_TOOLS_VERSION:
        raise ToolError("%s %s is too old: lifeboat passes the URI in a --config file, which needs the MongoDB "
                        "Database Tools %s or newer; upgrade them or use the built-in path (method: builtin)"
                        % (binary, ".".join(map(str, version)), ".".join(map(str, MIN_TOOLS_VERSION))))


class _ToolReader(ProcessReader):
    """ProcessReader that can hand back its whole log (mongodump/mongorestore log to stderr)."""

    def full_log(self):
        try:
            self._stderr.seek(0)
            return self._stderr.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""


def _scrubbed_tool_error(exc, uri):
    if isinstance(exc, ToolError):
        exc.msg = scrub(exc.msg, uri)
        exc.args = (exc.msg,)
    return exc


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


class MongoSource(object):
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
                reader = _ToolReader(argv, "mongodump of %s" % redact_uri(self.uri))
            except ToolError as exc:
                raise _scrubbed_tool_error(exc, self.uri)
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
            raise _scrubbed_tool_error(exc, self._uri)


# ====================================================================== restore


def _read_layout(path, where, allow_javascript=False):
    """Walk a staged tar-layout set: {namespace: {database, collection, metadata, member, count, creates}}.
    The set is untrusted even with a good sha256: every member must be a regular file or directory named exactly
    as the layout names them (no links, no '..', no other files), every name must be one MongoDB accepts and
    lifeboat restores (never system.*), metadata only what lifeboat re-creates, and every BSON document's
    framing is checked, so a bad set fails here, before the server is touched. Members are read in memory,
    never extracted to disk."""
    entries = {}

    def refuse(member, why):
        raise IntegrityError("set %s holds tar member %r, which %s; nothing was changed: restore another set"
                             % (where, member.name, why))

    try:
        with tarfile.open(path, "r:") as tar:
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
                check_names(database, collection, "tar member %r of set %s" % (member.name, where))
                namespace = "%s.%s" % (database, collection)
                entry = entries.setdefault(namespace, {"database": database, "collection": collection,
                                                       "metadata": None, "member": None, "count": 0, "creates": {}})
                if entry["member" if kind == "bson" else "metadata"] is not None:
                    refuse(member, "appears twice")
                handle = tar.extractfile(member)
                if kind == "metadata":
                    if member.size > MAX_METADATA:
                        refuse(member, "is larger than %d bytes" % MAX_METADATA)
                    try:
                        entry["metadata"] = json_util.loads(handle.read(MAX_METADATA).decode("utf-8"))
                    except Exception as exc:  # pylint: disable=broad-except
                        raise IntegrityError("%s in set %s is not valid metadata JSON (%s: %s)"
                                             % (member.name, where, type(exc).__name__, str(exc)[:200]))
                    entry["creates"] = check_metadata(entry["metadata"], namespace, allow_javascript)
                else:
                    entry["member"] = member.name
                    entry["count"] = sum(1 for _doc in iter_bson(handle, "%s in set %s" % (member.name, where)))
    except tarfile.TarError as exc:
        raise IntegrityError("set %s is not a readable tar stream (%s): the artifact is damaged; restore another "
                             "set" % (where, exc))
    for namespace, entry in entries.items():
        if entry["member"] and (entry["metadata"] or {}).get("type") == "view":
            raise IntegrityError("set %s holds documents for %s, which its metadata calls a view; nothing was "
                                 "changed: restore another set" % (where, namespace))
    return entries


def _check_counts(expected, actual, what, where):
    if expected is None:
        return
    wrong = {namespace: (count, actual.get(namespace)) for namespace, count in expected.items()
             if actual.get(namespace) != count}
    if wrong:
        raise IntegrityError("%s of set %s does not match the manifest's document counts (namespace: "
                             "(manifest, found)) %s; nothing was changed: restore another set" % (what, where, wrong))


def _targets(names, rename):
    out = {}
    for namespace in names:
        database, collection = namespace.split(".", 1)
        out[namespace] = "%s.%s" % ((rename or {}).get(database, database), collection)
    return out


def _select_restore(names, databases, collections, where, left_out=None):
    """The namespaces of a set to restore. admin, local and config are restored only when named exactly in
    `databases`: a set must not slip collections into them through a default or a glob. With a `left_out`
    list (mongodump archives of a whole instance hold admin.system.* and the like), system collections and
    those databases are left out and listed there instead of failing the restore."""
    selected = []
    for namespace in sorted(names):
        if left_out is not None:
            database, _sep, collection = namespace.partition(".")
            if collection.startswith("system.") or (database in SYSTEM_DATABASES and database not in databases):
                left_out.append(namespace)
                continue
        database = check_namespace(namespace, "set %s" % where)[0]
        if databases and not matches(databases, database):
            continue
        if collections and not matches(collections, namespace):
            continue
        if database in SYSTEM_DATABASES and database not in databases:
            raise IntegrityError("set %s holds %s, in the server's own database %s; nothing was changed: name %s "
                                 "exactly in databases to restore it, or select the other databases"
                                 % (where, namespace, database, database))
        selected.append(namespace)
    return selected


def _creations_warning(layout, selected, targets, where):
    """Views and validators are code-like definitions from the set: say which ones the restore creates."""
    made = []
    for namespace in selected:
        creates = layout[namespace].get("creates") or {}
        if "view_on" in creates:
            made.append("view %s on %s (%d pipeline stage(s))"
                        % (targets[namespace], creates["view_on"], creates["pipeline_stages"]))
        if creates.get("validator"):
            made.append("a document validator on %s" % targets[namespace])
    if not made:
        return []
    return ["set %s creates %s, as its metadata defines them: check they are what you expect" % (
        where, "; ".join(made))]


def restore_mongo(repository, job, uri=None, backup="latest", before=None, identity_file=None, databases=None,
                  collections=None, drop=False, rename=None, oplog_replay=None,
                  server_selection_timeout_ms=DEFAULT_TIMEOUT_MS, tmp_dir=None, allow_javascript=False,
                  check_mode=False):
    """Restore a set into the server at `uri`. The set is downloaded and checked (sha256, framing, document
    counts) before the server is touched; collections that exist and hold documents are replaced only with
    `drop`."""
    uri = uri or DEFAULT_URI
    split_uri(uri)
    databases = [str(name) for name in databases or []]
    collections = Selection(collections=collections).collections
    rename = dict((str(k), str(v)) for k, v in (rename or {}).items())
    for source, target in rename.items():
        if database_name_problem(source) or database_name_problem(target):
            raise ConfigError("rename maps database names to database names, such as {shop: shop_restored}; "
                              "%r: %r is not (%s)" % (source, target,
                                                      database_name_problem(source) or database_name_problem(target)))
    if tmp_dir and not os.path.isdir(tmp_dir):
        raise ConfigError("tmp_dir %s does not exist" % tmp_dir)
    backup_set = find_set(repository, job, KIND, backup, before)
    manifest = backup_set.manifest
    fmt = (manifest.get("source") or {}).get("format")
    if fmt not in (FORMAT_ARCHIVE, FORMAT_TAR):
        raise IntegrityError("set %s records an unknown MongoDB format %r; upgrade the collection" % (
            backup_set.set_id, fmt))
    result = {"backup": set_result(repository, job, backup_set), "restored_to": redact_uri(uri), "format": fmt}
    fd, staged = tempfile.mkstemp(prefix="lifeboat-mongo-restore-", suffix="." + EXTENSIONS[fmt], dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as handle:
            fetch_to_file(repository, job, backup_set, handle, identity_file)
        if fmt == FORMAT_TAR:
            result.update(_restore_tar(staged, manifest, uri, databases, collections, drop, rename,
                                       server_selection_timeout_ms, check_mode, backup_set.set_id, allow_javascript))
        else:
            result.update(_restore_archive(staged, manifest, uri, databases, collections, drop, rename, oplog_replay,
                                           server_selection_timeout_ms, tmp_dir, check_mode, backup_set.set_id,
                                           allow_javascript))
        return result
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged)


def _existing(client, target, uri):
    database, collection = target.split(".", 1)
    try:
        if collection not in client[database].list_collection_names():
            return None
        return client[database][collection].estimated_document_count()
    except Exception as exc:  # pylint: disable=broad-except
        raise RestoreError("cannot inspect %s on %s: %s" % (target, redact_uri(uri), scrub(exc, uri)))


def _refuse_existing(existing, drop):
    busy = dict((target, count) for target, count in existing.items() if count)
    if busy and not drop:
        raise RestoreError("target collection(s) already hold documents: %s; nothing was changed. Set drop: true "
                           "to replace them, or restore into another database with rename" % busy)


def _restore_tar(staged, manifest, uri, databases, collections, drop, rename, timeout_ms, check_mode, set_id,
                 allow_javascript=False):
    require_pymongo("restoring a MongoDB set in tar-layout format")
    layout = _read_layout(staged, set_id, allow_javascript)
    recorded = (manifest.get("verification") or {}).get("document_counts")
    actual = dict((ns, entry["count"]) for ns, entry in layout.items() if entry["member"])
    _check_counts(recorded, actual, "the stored data", set_id)
    if isinstance(recorded, dict) and set(actual) - set(recorded):
        raise IntegrityError("set %s holds collections its manifest does not list (%s); nothing was changed: "
                             "restore another set" % (set_id, ", ".join(sorted(set(actual) - set(recorded)))))
    selected = _select_restore(layout.keys(), databases, collections, set_id)
    if not selected:
        raise ConfigError("no collection of set %s matches databases %s / collections %s; the set holds %s"
                          % (set_id, databases, collections, ", ".join(sorted(layout)) or "nothing"))
    targets = _targets(selected, rename)
    warnings = _creations_warning(layout, selected, targets, set_id)
    client = connect(uri, timeout_ms, "restore to")
    try:
        existing = dict((targets[ns], _existing(client, targets[ns], uri)) for ns in selected)
        _refuse_existing(existing, drop)
        plan = [dict({"source": ns, "target": targets[ns], "documents": layout[ns]["count"],
                      "replaces": existing[targets[ns]] is not None}, **layout[ns]["creates"]) for ns in selected]
        if check_mode:
            return {"collections": plan, "method": "builtin", "warnings": warnings,
                    "verification": {"sha256": "ok", "document_counts": {targets[ns]: layout[ns]["count"] for ns in selected}}}
        done = []
        created = []
        try:
            with tarfile.open(staged, "r:") as tar:
                for namespace in selected:
                    target = targets[namespace]
                    if existing[target] is None:
                        created.append(target)
                    _restore_collection(client, tar, layout[namespace], target, drop and existing[target] is not None,
                                        uri, set_id)
                    done.append(target)
        except BaseException as exc:
            for target in created:
                if target not in done:
                    database, collection = target.split(".", 1)
                    with contextlib.suppress(Exception):
                        client[database].drop_collection(collection)
            if isinstance(exc, (RestoreError, IntegrityError)):
                exc.msg += "; completed before the failure: %s" % (", ".join(done) or "none")
                exc.args = (exc.msg,)
            raise
        counts, indexes = {}, {}
        for namespace in selected:
            target = targets[namespace]
            database, collection = target.split(".", 1)
            counts[target] = client[database][collection].count_documents({})
            indexes[target] = len(list(client[database][collection].list_indexes()))
        expected = dict((targets[ns], layout[ns]["count"]) for ns in selected if layout[ns]["member"])
        if any(counts.get(target) != count for target, count in expected.items()):
            raise RestoreError("restored collections hold %s documents but the set has %s: another writer was "
                               "active during the restore, or the server dropped writes" % (counts, expected))
        return {"collections": plan, "method": "builtin", "warnings": warnings,
                "verification": {"sha256": "ok", "document_counts": counts, "indexes": indexes}}
    finally:
        client.close()


def _restore_collection(client, tar, entry, target, drop, uri, set_id):
    database, collection = target.split(".", 1)
    db = client[database]
    metadata = entry["metadata"] or {}
    try:
        if drop:
            db.drop_collection(collection)
        options = dict(metadata.get("options") or {})
        if metadata.get("type") == "view":
            db.command("create", collection, **options)
            return
        if options:
            db.create_collection(collection, **options)
        if entry["member"]:
            handle = tar.extractfile(entry["member"])
            raw = db.get_collection(collection, codec_options=CodecOptions(document_class=RawBSONDocument))
            batch, size = [], 0
            for document in iter_bson(handle, "%s in set %s" % (entry["member"], set_id)):
                batch.append(RawBSONDocument(document))
                size += len(document)
                if len(batch) >= INSERT_BATCH_DOCS or size >= INSERT_BATCH_BYTES:
                    raw.insert_many(batch, ordered=True)
                    batch, size = [], 0
            if batch:
                raw.insert_many(batch, ordered=True)
        models = []
        for index in metadata.get("indexes") or []:
            if index.get("name") == "_id_":
                continue
            keys = list((index.get("key") or {}).items())
            extra = dict((key, value) for key, value in index.items() if key not in ("v", "key", "ns", "background"))
            models.append(pymongo.IndexModel(keys, **extra))
        if models:
            db[collection].create_indexes(models)
    except (RestoreError, IntegrityError):
        raise
    except Exception as exc:  # pylint: disable=broad-except
        namespace = entry["database"] + "." + entry["collection"]
        raise RestoreError("restoring %s into %s failed: %s" % (namespace, target, scrub(exc, uri)))


def _restore_archive(staged, manifest, uri, databases, collections, drop, rename, oplog_replay, timeout_ms, tmp_dir,
                     check_mode, set_id, allow_javascript=False):
    binary = which("mongorestore")
    if not binary:
        raise ToolError("mongorestore is not installed or not on PATH: this set was written by mongodump --archive "
                        "and needs the MongoDB Database Tools to restore; install them on this host")
    check_tools_version("mongorestore", tools_version(binary))
    recorded = (manifest.get("verification") or {}).get("document_counts") or {}
    if not isinstance(recorded, dict) or not recorded:
        raise IntegrityError("set %s records no namespaces (verification.document_counts); lifeboat restores only "
                             "the namespaces a set lists: restore another set" % set_id)
    with open(staged, "rb") as handle:
        prelude = read_archive_prelude(handle, "set %s" % set_id)
    metadata = {}
    for database, collection, kind, text in prelude:
        if not isinstance(database, str) or not isinstance(collection, str):
            raise IntegrityError("set %s has archive metadata without a database or collection name; nothing was "
                                 "changed: restore another set" % set_id)
        try:
            metadata["%s.%s" % (database, collection)] = (kind, json.loads(text) if text else {})
        except ValueError as exc:
            raise IntegrityError("set %s has archive metadata for %s.%s that is not JSON (%s); nothing was changed: "
                                 "restore another set" % (set_id, database, collection, exc))
    views = [ns for ns, (kind, _meta) in metadata.items() if kind == "view"]
    left_out = []
    selected = _select_restore(set(recorded) | set(views), databases, collections, set_id, left_out)
    if not selected:
        raise ConfigError("no collection of set %s matches databases %s / collections %s; the set holds %s"
                          % (set_id, databases, collections, ", ".join(sorted(recorded))))
    creates = {}
    for namespace in selected:  # the archive's own metadata, checked as a tar-layout set's is
        creates[namespace] = check_metadata(metadata.get(namespace, ("collection", {}))[1], namespace,
                                            allow_javascript)
    # mongorestore gets the exact namespaces, never "everything in the archive": an archive holding more than
    # its manifest lists (admin.system.users...) restores only what was checked here
    include = [ns_pattern(namespace) for namespace in selected]
    had_oplog = bool((manifest.get("source") or {}).get("oplog"))
    warnings = []
    if left_out:
        warnings.append("set %s also holds %s, which were not restored (system collections, and admin, local and "
                        "config unless named exactly in databases)" % (set_id, ", ".join(left_out)))
    if oplog_replay is None:
        # the set says it has an oplog; whether to apply it is never the set's decision
        oplog_replay = False
        if had_oplog:
            warnings.append("set %s holds an oplog, which was not replayed: set oplog_replay: true to apply it (its "
                            "entries may write to any namespace of the server)" % set_id)
    if oplog_replay and not had_oplog:
        raise ConfigError("oplog_replay needs a set dumped with oplog: true")
    if oplog_replay and (databases or collections or rename):
        raise ConfigError("oplog_replay restores the whole set: it cannot be combined with databases, collections "
                          "or rename")
    targets = _targets(selected, rename)
    layout = dict((ns, {"creates": creates[ns]}) for ns in selected)
    warnings += _creations_warning(layout, selected, targets, set_id)
    if HAS_PYMONGO:
        client = connect(uri, timeout_ms, "restore to")
        try:
            existing = dict((targets[ns], _existing(client, targets[ns], uri)) for ns in selected)
        finally:
            client.close()
        _refuse_existing(existing, drop)
    plan = [dict({"source": ns, "target": targets[ns], "documents": recorded.get(ns, 0)}, **creates[ns])
            for ns in selected]
    if check_mode:
        counts = dict((targets[ns], recorded[ns]) for ns in selected if ns in recorded)
        return {"collections": plan, "method": "mongorestore", "warnings": warnings,
                "verification": {"sha256": "ok", "document_counts": counts}}
    config = write_tool_config(with_uri_option(uri, "serverSelectionTimeoutMS", timeout_ms), tmp_dir)
    try:
        argv = mongorestore_args(config, staged, include, rename, drop, oplog_replay, binary=binary)
        try:
            with _ToolReader(argv, "mongorestore to %s" % redact_uri(uri)) as reader:
                while reader.read(CHUNK):
                    pass
                log = reader.full_log()
        except ToolError as exc:
            raise RestoreError(_scrubbed_tool_error(exc, uri).msg)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(config)
    restored = parse_restore_counts(log)
    failures = dict((ns, fails) for ns, (_docs, fails) in restored.items() if fails)
    if failures:
        raise RestoreError("mongorestore reported failed documents %s" % failures)
    counts = dict((ns, docs) for ns, (docs, _fails) in restored.items())
    expected = dict((targets[ns], recorded[ns]) for ns in selected if ns in recorded)
    if expected and counts != expected:
        raise RestoreError("mongorestore restored %s documents per collection but the manifest recorded %s"
                           % (counts, expected))
    return {"collections": plan, "method": "mongorestore", "warnings": warnings,
            "verification": {"sha256": "ok", "document_counts": counts}}


# ====================================================================== kind contract


def source_from_options(options):
    """Kind contract used by the runner: a Source from mongo_dump's option names."""
    return MongoSource(options.get("mongo_uri"), databases=options.get("databases"),
                       exclude_databases=options.get("exclude_databases"), collections=options.get("collections"),
                       exclude_collections=options.get("exclude_collections"), method=options.get("method") or "auto",
                       oplog=options.get("oplog", False),
                       server_selection_timeout_ms=options.get("server_selection_timeout_ms") or DEFAULT_TIMEOUT_MS,
                       tmp_dir=options.get("tmp_dir"), verify=options.get("verify", True))


def restore_from_options(repository, options, check_mode=False):
    """Kind contract used by the runner: restore with mongo_restore's option names; returns its result dict."""
    return restore_mongo(repository, options["job"], options.get("mongo_uri"), backup=options.get("backup", "latest"),
                         before=options.get("before"),
                         identity_file=(options.get("encryption") or {}).get("age_identity_file"),
                         databases=options.get("databases"), collections=options.get("collections"),
                         drop=options.get("drop", False), rename=options.get("rename"),
                         oplog_replay=options.get("oplog_replay"),
                         server_selection_timeout_ms=options.get("server_selection_timeout_ms") or DEFAULT_TIMEOUT_MS,
                         tmp_dir=options.get("tmp_dir"), allow_javascript=bool(options.get("allow_javascript")),
                         check_mode=check_mode)
