"""The two clients lifeboat drives to reach MongoDB: the pymongo driver (imported when installed; connect()
returns a client that answered ping, or a SourceError naming the redacted URI) and the MongoDB Database Tools
(mongodump/mongorestore: found on PATH, their version checked, their output read by ToolReader and their errors
scrubbed of the URI's secrets). The dump and the restore both use these; nothing here reads a set."""

import os
import shutil

from ...core.errors import SourceError, ToolError
from ...core.process import ProcessReader, run_tool
from .format import MIN_TOOLS_VERSION, parse_tools_version, redact_uri, scrub, split_uri

try:
    import pymongo
    from bson import json_util
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument
    HAS_PYMONGO = True
except ImportError:
    pymongo = json_util = CodecOptions = RawBSONDocument = None
    HAS_PYMONGO = False


# json_util, CodecOptions and RawBSONDocument are imported here once, with the driver, for dump.py and restore.py
__all__ = ["DEFAULT_TIMEOUT_MS", "HAS_PYMONGO", "CodecOptions", "RawBSONDocument", "ToolReader", "check_tools_version",
           "connect", "json_util", "pymongo", "require_pymongo", "scrubbed_tool_error", "tools_version", "which"]

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


class ToolReader(ProcessReader):
    """ProcessReader that can hand back its whole log (mongodump/mongorestore log to stderr)."""

    def full_log(self):
        try:
            self._stderr.seek(0)
            return self._stderr.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""


def scrubbed_tool_error(exc, uri):
    if isinstance(exc, ToolError):
        exc.msg = scrub(exc.msg, uri)
        exc.args = (exc.msg,)
    return exc
