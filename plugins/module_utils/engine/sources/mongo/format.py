"""MongoDB without a server or a set: the kind's names and formats, URI redaction (the URI's secrets never
reach argv, manifests or messages), which databases and collections a selection covers, the mongodump and
mongorestore argument lists and their log parsing, and the policy for names and collection metadata read from a
set (what lifeboat restores, what it refuses). The bytes of a set are walked in layout.py. Plain Python (stdlib
only) so the unit tests need neither pymongo nor a server."""

import fnmatch
import json
import os
import re
import tempfile
from urllib.parse import quote

from ...core.errors import ConfigError, IntegrityError

KIND = "mongo"
FORMAT_ARCHIVE = "archive"  # mongodump --archive stream
FORMAT_TAR = "tar-layout"  # tar of <db>/<coll>.bson + <db>/<coll>.metadata.json (mongodump --out layout)
EXTENSIONS = {FORMAT_ARCHIVE: "archive", FORMAT_TAR: "tar"}
SYSTEM_DATABASES = ("admin", "local", "config")
DEFAULT_URI = "mongodb://127.0.0.1:27017"
MIN_TOOLS_VERSION = (100, 3, 0)  # --config with `uri:` appeared in the Database Tools 100.3.0

_SECRET_PARAMS = ("password", "authmechanismproperties", "tlscertificatekeyfilepassword", "sslpemkeypassword",
                  "token", "secret")


# ---------------------------------------------------------------- URIs


def split_uri(uri):
    """(scheme, userinfo or None, rest) of a mongodb:// or mongodb+srv:// URI."""
    match = re.match(r"^(mongodb(?:\+srv)?://)(.*)$", uri or "")
    if not match:
        raise ConfigError("mongo_uri must start with mongodb:// or mongodb+srv:// (for example "
                          "mongodb://backup@db1.example.com:27017/?authSource=admin)")
    scheme, rest = match.groups()
    head, sep, query = rest.partition("?")
    at = head.rfind("@")
    if at < 0:
        return scheme, None, rest
    return scheme, head[:at], head[at + 1:] + sep + query


PASSWORD_ENV = "LIFEBOAT_MONGO_PASSWORD"


def with_env_password(uri, environ):
    """`uri` with the password of its user taken from the environment (PASSWORD_ENV) when the URI names a user
    and no password, as libpq's PGPASSWORD and redis-cli's REDISCLI_AUTH do: so a job file (or a Kubernetes
    Secret holding one) never needs the password. A password in the URI wins; a URI without a user is unchanged."""
    password = (environ or {}).get(PASSWORD_ENV)
    if not password or not uri:
        return uri
    scheme, userinfo, rest = split_uri(uri)
    if not userinfo or ":" in userinfo:
        return uri
    return "%s%s:%s@%s" % (scheme, userinfo, quote(password, safe=""), rest)


def redact_uri(uri):
    """The URI without password and secret query options: safe for manifests, messages and logs."""
    scheme, userinfo, rest = split_uri(uri)
    user = ""
    if userinfo is not None:
        user = userinfo.split(":", 1)[0] + "@"
    host, sep, query = rest.partition("?")
    if query:
        kept = []
        for item in query.split("&"):
            key = item.split("=", 1)[0]
            if any(word in key.lower() for word in _SECRET_PARAMS):
                kept.append(key + "=REDACTED")
            else:
                kept.append(item)
        query = "&".join(kept)
    return scheme + user + host + sep + query


def uri_secrets(uri):
    """Strings that must never appear in output: the password (raw and decoded) and the full URI."""
    secrets = [uri]
    try:
        _scheme, userinfo, _rest = split_uri(uri)
    except ConfigError:
        return secrets
    if userinfo and ":" in userinfo:
        password = userinfo.split(":", 1)[1]
        if password:
            secrets.append(password)
            try:
                from urllib.parse import unquote
                secrets.append(unquote(password))
            except ImportError:  # pragma: no cover - Python 2 is not supported anyway
                pass
    return [secret for secret in secrets if secret]


def scrub(text, uri):
    """Replace every secret of `uri` in `text` (error messages of drivers and tools)."""
    text = str(text)
    for secret in sorted(uri_secrets(uri), key=len, reverse=True):
        if secret == uri:
            try:
                text = text.replace(secret, redact_uri(uri))
            except ConfigError:
                text = text.replace(secret, "<mongo_uri>")
        else:
            text = text.replace(secret, "REDACTED")
    return text


def with_uri_option(uri, key, value):
    """Add `key=value` to the URI's query unless the URI already sets it (case-insensitive)."""
    scheme, userinfo, rest = split_uri(uri)
    host, _sep, query = rest.partition("?")
    items = [item for item in query.split("&") if item]
    if any(item.split("=", 1)[0].lower() == key.lower() for item in items):
        return uri
    if "/" not in host:
        host += "/"
    items.append("%s=%s" % (key, value))
    return scheme + (userinfo + "@" if userinfo is not None else "") + host + "?" + "&".join(items)


def write_tool_config(uri, tmp_dir=None):
    """A 0600 YAML file `uri: ...` for `mongodump/mongorestore --config` (keeps the URI off argv)."""
    fd, path = tempfile.mkstemp(prefix="lifeboat-mongo-", suffix=".yaml", dir=tmp_dir)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            # a JSON string is a valid YAML double-quoted scalar
            handle.write("uri: %s\n" % json.dumps(uri))
    except BaseException:
        try:
            os.unlink(path)
        except OSError:
            pass
        raise
    return path


# ---------------------------------------------------------------- selection


def check_patterns(patterns, option):
    out = []
    for pattern in patterns or []:
        pattern = str(pattern).strip()
        if "." not in pattern or pattern.startswith(".") or pattern.endswith("."):
            raise ConfigError("%s entries are namespaces <database>.<collection> (glob * allowed), such as "
                              "shop.orders or shop.*; %r is not" % (option, pattern))
        out.append(pattern)
    return out


def matches(patterns, name):
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def is_glob(text):
    return any(char in text for char in "*?[")


class Selection(object):
    """Which databases and collections a dump (or restore) covers."""

    def __init__(self, databases=None, exclude_databases=None, collections=None, exclude_collections=None):
        self.databases = [str(name) for name in databases or []]
        self.exclude_databases = [str(name) for name in exclude_databases or []]
        self.collections = check_patterns(collections, "collections")
        self.exclude_collections = check_patterns(exclude_collections, "exclude_collections")

    def database_wanted(self, name):
        if matches(self.exclude_databases, name):
            return False
        if self.databases:
            return matches(self.databases, name)
        if self.collections:
            return any(fnmatch.fnmatchcase(name, pattern.split(".", 1)[0]) for pattern in self.collections)
        return name not in SYSTEM_DATABASES

    def collection_wanted(self, database, name):
        if name.startswith("system."):
            return False
        namespace = "%s.%s" % (database, name)
        if self.collections and not matches(self.collections, namespace):
            return False
        return not matches(self.exclude_collections, namespace)

    def describe(self):
        return {"databases": self.databases, "exclude_databases": self.exclude_databases,
                "collections": self.collections, "exclude_collections": self.exclude_collections}

    def empty(self):
        return not (self.databases or self.exclude_databases or self.collections or self.exclude_collections)


# ---------------------------------------------------------------- mongodump / mongorestore


def parse_tools_version(text):
    match = re.search(r"version:?\s*r?(\d+)\.(\d+)\.(\d+)", text or "")
    return tuple(int(part) for part in match.groups()) if match else None


def mongodump_args(config_file, selection, oplog=False, binary="mongodump"):
    """The mongodump argument list for `selection`, or ConfigError when one mongodump run cannot express it."""
    argv = [binary, "--config=%s" % config_file, "--archive"]
    database = None
    if selection.exclude_databases:
        raise ConfigError("mongodump cannot exclude databases (exclude_databases); use method: builtin")
    if len(selection.databases) > 1 or any(is_glob(name) for name in selection.databases):
        raise ConfigError("mongodump dumps one database or all of them, not %s; use method: builtin"
                          % ", ".join(selection.databases))
    if selection.databases:
        database = selection.databases[0]
    collection = None
    if selection.collections:
        if len(selection.collections) > 1 or is_glob(selection.collections[0]):
            raise ConfigError("mongodump dumps one collection or a whole database, not %s; use method: builtin"
                              % ", ".join(selection.collections))
        db_name, collection = selection.collections[0].split(".", 1)
        if database not in (None, db_name):
            raise ConfigError("collection %s is not in database %s" % (selection.collections[0], database))
        database = db_name
    excludes = []
    for pattern in selection.exclude_collections:
        db_name, name = pattern.split(".", 1)
        if database is None or db_name != database or collection:
            raise ConfigError("mongodump excludes collections only within the one database dumped (databases: "
                              "[%s]); use method: builtin for %s" % (db_name, pattern))
        if name.endswith("*") and not is_glob(name[:-1]):
            excludes.append("--excludeCollectionsWithPrefix=%s" % name[:-1])
        elif is_glob(name):
            raise ConfigError("mongodump cannot exclude %s (only exact names and prefix*); use method: builtin"
                              % pattern)
        else:
            excludes.append("--excludeCollection=%s" % name)
    if database is not None:
        if oplog:
            raise ConfigError("oplog needs a dump of the whole instance (mongodump --oplog cannot be combined "
                              "with databases or collections)")
        argv.append("--db=%s" % database)
    if collection is not None:
        argv.append("--collection=%s" % collection)
    argv += excludes
    if oplog:
        argv.append("--oplog")
    return argv


def mongorestore_args(config_file, archive, include=None, rename=None, drop=False, oplog_replay=False,
                      binary="mongorestore"):
    """The mongorestore argument list reading `archive` (a staged, verified file)."""
    argv = [binary, "--config=%s" % config_file, "--archive=%s" % archive, "--stopOnError"]
    for pattern in include or []:
        argv.append("--nsInclude=%s" % pattern)
    # belt and braces beside the exact --nsInclude list: users, roles, stored JavaScript are never restored
    argv.append("--nsExclude=*.system.*")
    for source, target in sorted((rename or {}).items()):
        argv += ["--nsFrom=%s.*" % source, "--nsTo=%s.*" % target]
    if drop:
        argv.append("--drop")
    if oplog_replay:
        argv.append("--oplogReplay")
    return argv


_DUMPED = re.compile(r"done dumping (\S+) \((\d+) documents?\)")
_RESTORED = re.compile(r"finished restoring (\S+) \((\d+) documents?, (\d+) failures?\)")


def parse_dump_counts(log):
    return {namespace: int(count) for namespace, count in _DUMPED.findall(log or "")}


def parse_restore_counts(log):
    """{namespace: (documents, failures)} from mongorestore's log."""
    return {namespace: (int(docs), int(fails)) for namespace, docs, fails in _RESTORED.findall(log or "")}


def ns_pattern(namespace):
    """A namespace as an exact mongorestore --nsInclude pattern (its '*' and '\\' escaped)."""
    return namespace.replace("\\", "\\\\").replace("*", "\\*")


# ---------------------------------------------------------------- names and metadata read from a set

_DATABASE_FORBIDDEN = set('/\\. "$*<>:|?\0')
MAX_DATABASE_BYTES = 63
MAX_NAMESPACE_BYTES = 255
# collection options lifeboat re-creates; anything else in a set's metadata is refused (engine configuration
# strings, encryption settings, options of future servers it cannot judge)
COLLECTION_OPTIONS = frozenset(("capped", "size", "max", "validator", "validationLevel", "validationAction",
                                "collation", "viewOn", "pipeline", "timeseries", "expireAfterSeconds",
                                "clusteredIndex", "changeStreamPreAndPostImages"))
INDEX_OPTIONS = frozenset(("v", "key", "name", "ns", "background", "unique", "sparse", "expireAfterSeconds",
                           "partialFilterExpression", "collation", "weights", "default_language", "language_override",
                           "textIndexVersion", "2dsphereIndexVersion", "bits", "min", "max", "hidden",
                           "wildcardProjection", "bucketSize", "prepareUnique", "clustered"))
METADATA_KEYS = frozenset(("indexes", "collectionName", "type", "options", "uuid"))
COLLECTION_TYPES = ("collection", "view", "timeseries")
JAVASCRIPT_OPERATORS = frozenset(("$where", "$function", "$accumulator", "$code"))  # $code: extended JSON Code


def database_name_problem(name):
    """Why `name` is not a database name MongoDB accepts (None when it is)."""
    if not isinstance(name, str) or not name:
        return "empty"
    if len(name.encode("utf-8")) > MAX_DATABASE_BYTES:
        return "longer than %d bytes" % MAX_DATABASE_BYTES
    bad = sorted(set(name) & _DATABASE_FORBIDDEN)
    if bad:
        return "holds %s" % ", ".join(repr(char) for char in bad)
    return None


def collection_name_problem(database, name):
    """Why `name` may not be restored as a collection of `database` (None when it may): system collections
    (users, roles, JavaScript, profiles...) are never written from a set."""
    if not isinstance(name, str) or not name:
        return "empty"
    if "\0" in name or "$" in name:
        return "holds '$' or NUL"
    if name.startswith("system."):
        return "a system collection"
    if len(("%s.%s" % (database, name)).encode("utf-8")) > MAX_NAMESPACE_BYTES:
        return "namespace longer than %d bytes" % MAX_NAMESPACE_BYTES
    return None


def check_namespace(namespace, where):
    """(database, collection) of a namespace read from a set, or IntegrityError."""
    if not isinstance(namespace, str) or "." not in namespace:
        raise IntegrityError("%s names %r, which is not a namespace <database>.<collection>; nothing was changed: "
                             "restore another set" % (where, namespace))
    return check_names(*namespace.split(".", 1), where=where)


def check_names(database, collection, where):
    """(database, collection) when both may be restored, or IntegrityError naming the problem."""
    problem = database_name_problem(database)
    if problem:
        raise IntegrityError("%s names database %r, which is not a valid database name (%s); nothing was changed: "
                             "restore another set" % (where, database, problem))
    problem = collection_name_problem(database, collection)
    if problem:
        raise IntegrityError("%s names collection %r of %s, which lifeboat never restores (%s); nothing was "
                             "changed: restore another set" % (where, collection, database, problem))
    return database, collection


def _javascript_in(value):
    """The first server-side JavaScript found in a decoded metadata value: an operator ($where, $function,
    $accumulator) or a BSON Code value; None when there is none. Iterative, so nesting cannot exhaust the stack."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if key in JAVASCRIPT_OPERATORS:
                    return key
                pending.append(inner)
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
        elif type(item).__name__ == "Code":  # bson.code.Code ($code in extended JSON)
            return "a JavaScript code value"
    return None


def check_metadata(metadata, namespace, allow_javascript=False):
    """Validate one `<coll>.metadata.json` read from a set, before anything touches the server. Returns what it
    would create beyond documents and indexes: {"view_on", "pipeline_stages", "validator"}; IntegrityError for
    options lifeboat does not re-create and, unless `allow_javascript`, for server-side JavaScript."""
    where = "metadata of %s" % namespace
    database, collection = namespace.split(".", 1)

    def refuse(why):
        raise IntegrityError("%s in the set %s; nothing was changed: restore another set" % (where, why))

    if not isinstance(metadata, dict):
        refuse("is not a JSON object")
    unknown = sorted(set(metadata) - METADATA_KEYS)
    if unknown:
        refuse("holds keys lifeboat does not write (%s)" % ", ".join(unknown))
    if metadata.get("collectionName", collection) != collection:
        refuse("names another collection (%r)" % metadata.get("collectionName"))
    kind = metadata.get("type", "collection")
    if kind not in COLLECTION_TYPES:
        refuse("has type %r (expected one of %s)" % (kind, ", ".join(COLLECTION_TYPES)))
    options = metadata.get("options") or {}
    if not isinstance(options, dict):
        refuse("has options that are not an object")
    unknown = sorted(set(options) - COLLECTION_OPTIONS)
    if unknown:
        refuse("carries collection options lifeboat does not restore (%s)" % ", ".join(unknown))
    indexes = metadata.get("indexes") or []
    if not isinstance(indexes, list):
        refuse("has indexes that are not a list")
    for index in indexes:
        if not isinstance(index, dict) or not isinstance(index.get("key"), dict) or not index["key"]:
            refuse("has an index without a key document")
        unknown = sorted(set(index) - INDEX_OPTIONS)
        if unknown:
            refuse("has index options lifeboat does not restore (%s)" % ", ".join(unknown))
        if not isinstance(index.get("name", ""), str):
            refuse("has an index whose name is not a string")
    view_on = options.get("viewOn")
    if (kind == "view") != (view_on is not None):
        refuse("is a view without viewOn, or has viewOn without being a view")
    summary = {}
    if view_on is not None:
        pipeline = options.get("pipeline", [])
        if not isinstance(view_on, str) or collection_name_problem(database, view_on) \
                or not isinstance(pipeline, list):
            refuse("defines a view on %r with a pipeline that is not a list of stages" % (view_on,))
        summary["view_on"] = "%s.%s" % (database, view_on)
        summary["pipeline_stages"] = len(pipeline)
    elif "pipeline" in options:
        refuse("has a pipeline but is not a view")
    if options.get("validator"):
        summary["validator"] = True
    javascript = _javascript_in([options, indexes])
    if javascript and not allow_javascript:
        refuse("holds server-side JavaScript (%s), which the server would run: set allow_javascript: true "
               "only for a set you trust" % javascript)
    return summary
