"""MongoDB helpers without a server: URI redaction, namespace selection, the mongodump/mongorestore
argument lists and their log parsing, the tar stream of the mongodump directory layout, and BSON
file walking. Plain Python (stdlib only) so the unit tests need neither pymongo nor a server."""

import fnmatch
import json
import os
import re
import tarfile
import tempfile
import time

from .errors import ConfigError, IntegrityError

FORMAT_ARCHIVE = "archive"  # mongodump --archive stream
FORMAT_TAR = "tar-layout"  # tar of <db>/<coll>.bson + <db>/<coll>.metadata.json (mongodump --out layout)
EXTENSIONS = {FORMAT_ARCHIVE: "archive", FORMAT_TAR: "tar"}
SYSTEM_DATABASES = ("admin", "local", "config")
DEFAULT_URI = "mongodb://127.0.0.1:27017"
MIN_TOOLS_VERSION = (100, 3, 0)  # --config with `uri:` appeared in the Database Tools 100.3.0

BLOCK = 512
RECORD = 20 * BLOCK
MAX_BSON = 48 * 1024 * 1024  # a document is at most 16 MiB; anything larger is damage

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


# ---------------------------------------------------------------- tar stream of the directory layout


def escape_collection(name):
    """Collection name as a file name, as mongodump does it (% and / percent-escaped)."""
    return name.replace("%", "%25").replace("/", "%2F")


def unescape_collection(name):
    return name.replace("%2F", "/").replace("%2f", "/").replace("%25", "%")


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


def member_path(database, collection, suffix):
    return "%s/%s%s" % (database, escape_collection(collection), suffix)


def parse_member(name):
    """(database, collection, kind) for a layout member name; kind is 'bson' or 'metadata', else None."""
    name = name.lstrip("./")
    if "/" not in name:
        return None
    database, _sep, rest = name.partition("/")
    if "/" in rest:
        return None
    if rest.endswith(".metadata.json"):
        return database, unescape_collection(rest[:-len(".metadata.json")]), "metadata"
    if rest.endswith(".bson"):
        return database, unescape_collection(rest[:-len(".bson")]), "bson"
    return None


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
