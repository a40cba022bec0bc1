"""The restore side of MongoDB: restore_mongo downloads a set to a staged file, checks it (sha256, then the
layout walk of layout.py with the name and metadata policy of format.py, document counts against the manifest)
before the server is touched, then restores the selected collections: a tar-layout set through pymongo
(collections, views, validators and indexes re-created from the checked metadata, documents inserted in
batches), an archive set through mongorestore with the exact namespaces checked here. Collections that exist and
hold documents are replaced only with `drop`; a failed tar-layout restore drops the collections it created."""

import contextlib
import json
import os
import tarfile
import tempfile

from ...core.errors import ConfigError, IntegrityError, RestoreError, ToolError
from ...core.streams import CHUNK
from ...pipeline.restore import fetch_to_file, find_set, set_result
from .clients import (DEFAULT_TIMEOUT_MS, HAS_PYMONGO, CodecOptions, RawBSONDocument, ToolReader, check_tools_version,
                      connect, json_util, pymongo, require_pymongo, scrubbed_tool_error, tools_version, which)
from .format import (DEFAULT_URI, EXTENSIONS, FORMAT_ARCHIVE, FORMAT_TAR, KIND, SYSTEM_DATABASES, Selection,
                     check_metadata, check_namespace, database_name_problem, matches, mongorestore_args, ns_pattern,
                     parse_restore_counts, redact_uri, scrub, split_uri, with_uri_option, write_tool_config)
from .layout import iter_bson, read_archive_prelude, read_tar_layout

INSERT_BATCH_DOCS = 1000
INSERT_BATCH_BYTES = 8 * 1024 * 1024


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
    with open(staged, "rb") as handle:
        layout = read_tar_layout(handle, "set %s" % set_id, json_util.loads, allow_javascript, stream=False)
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
            with ToolReader(argv, "mongorestore to %s" % redact_uri(uri)) as reader:
                while reader.read(CHUNK):
                    pass
                log = reader.full_log()
        except ToolError as exc:
            raise RestoreError(scrubbed_tool_error(exc, uri).msg)
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
