"""What the SFTP and FTP repositories share: 0600 secret files, remote roots, paths and URLs, the checks of
host, port, user and timeout, and the steps of writing a set (RemoteSetWriter).

A remote root is absolute ('/srv/backups') or relative to the login directory ('backups', '.'); set locations are
shown as URLs (sftp://user@host:port/abs/path/ or .../~/relative/path/).
"""

import os
import posixpath
import stat

from ..core.errors import ConfigError, SinkError
from ..core.naming import MANIFEST_NAME
from .store import SetWriter

DEFAULT_TIMEOUT = 30
TEMP_MANIFEST = "." + MANIFEST_NAME + ".tmp"


def check_private_file(path, option):
    """Refuse a secret file that is missing, not a regular file, or open to group/others."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError("%s %s does not exist: create it (mode 0600) or fix the path" % (option, path))
    except OSError as exc:
        raise ConfigError("cannot read %s %s: %s" % (option, path, exc.strerror))
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError("%s %s is not a regular file" % (option, path))
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise ConfigError("%s %s is accessible by group or others (mode %04o): refusing to use a secret others "
                          "can read or change; chmod 0600 %s" % (option, path, mode, path))
    return path


def read_password_file(path, option):
    """The password in a 0600 file: its content without one trailing newline."""
    check_private_file(path, option)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ConfigError("cannot read %s %s: %s" % (option, path, exc.strerror))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("%s %s is not UTF-8 text" % (option, path))
    if text.endswith("\n"):
        text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
    if not text:
        raise ConfigError("%s %s is empty: write the password into it (one line, mode 0600)" % (option, path))
    return text


def normalise_path(path, option):
    """A remote root: absolute ('/srv/backups') or relative to the login directory ('backups', '.')."""
    if not isinstance(path, str) or not path.strip():
        raise ConfigError("%s is required: the directory on the server that holds the jobs' sets" % option)
    path = path.strip()
    parts = [p for p in path.split("/") if p and p != "."]
    if ".." in parts:
        raise ConfigError("%s %r must not contain '..' segments" % (option, path))
    if path.startswith("/"):
        return "/" + "/".join(parts)
    return "/".join(parts) or "."


def join_path(root, *names):
    if root == ".":
        return "/".join(names) if names else "."
    return posixpath.join(root, *names)


def remote_url(scheme, user, host, port, root, *names):
    """sftp://user@host:port/abs/path/ or sftp://user@host:port/~/relative/path/ (a set location ends in /)."""
    hostpart = "[%s]" % host if ":" in host else host
    if root.startswith("/"):
        path = posixpath.join(root, *names)
    else:
        path = "/~/" + "/".join(([] if root == "." else [root]) + list(names))
    if names:
        path = path.rstrip("/") + "/"
    return "%s://%s@%s:%d%s" % (scheme, user, hostpart, port, path)


def validate_common(scheme, host, port, user, timeout):
    if not host or not isinstance(host, str):
        raise ConfigError("%s.host is required when %s is set" % (scheme, scheme))
    if not user or not isinstance(user, str):
        raise ConfigError("%s.user is required when %s is set" % (scheme, scheme))
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise ConfigError("%s.port must be a TCP port number, not %r" % (scheme, port))
    if not 1 <= port <= 65535:
        raise ConfigError("%s.port must be between 1 and 65535, not %d" % (scheme, port))
    try:
        timeout = float(timeout if timeout is not None else DEFAULT_TIMEOUT)
    except (TypeError, ValueError):
        raise ConfigError("%s.timeout must be a number of seconds, not %r" % (scheme, timeout))
    if timeout <= 0:
        raise ConfigError("%s.timeout must be more than 0 seconds" % scheme)
    return port, timeout


class RemoteSetWriter(SetWriter):
    """A set written to a remote server over its own connection: the set directory made (a fresh set id, so it
    must not exist), the data object streamed to its final name, then on commit its size checked against what
    was sent and the manifest written to a temporary name and renamed to manifest.json, last. abort removes the
    set directory (best effort, on a new connection when the old one is gone).

    Subclasses implement the transport (the methods below that raise NotImplementedError), on `self.session`
    (the connection) and `self.stream` (the open data object); each step raises what the transport raises and
    this class turns it into SinkError through repo.explain. `repo` (the store) provides root,
    make_dirs(session, path), remove_dir(session, path), describe() and explain(exc, action)."""

    # The server's kind in messages ("SFTP", "FTP").
    label = None

    def __init__(self, repo, job, set_id, data_name):
        self.repo = repo
        self.set_dir = join_path(repo.root, job, set_id)
        self.data_path = join_path(self.set_dir, data_name)
        self.bytes = 0
        self.session = None
        self.stream = None
        self.made_dir = False
        try:
            self.session = self.open_session()
            repo.make_dirs(self.session, join_path(repo.root, job))
            self.make_set_dir()
            self.made_dir = True
            self.stream = self.open_data()
        except (ConfigError, SinkError):
            self.abort()
            raise
        except Exception as exc:  # pylint: disable=broad-except
            self.abort()
            raise SinkError(repo.explain(exc, "start the upload of %s to" % self.data_path))

    # -- the transport --

    def open_session(self):
        """A new logged-in connection to the server."""
        raise NotImplementedError

    def close_session(self):
        """Close `self.session` (a no-op when None) and set it to None; never raises."""
        raise NotImplementedError

    def session_usable(self):
        """Whether `self.session` (not None) can still carry commands after an abort of the data transfer."""
        return True

    def make_set_dir(self):
        """Create the set directory `self.set_dir`, failing if it exists."""
        raise NotImplementedError

    def open_data(self):
        """Open the data object `self.data_path` for writing; returns what send writes to."""
        raise NotImplementedError

    def send(self, chunk):
        """Write `chunk` to `self.stream`."""
        raise NotImplementedError

    def finish_data(self, stream):
        """Close the data object, waiting until the server has all of it; returns the size it stored, or None
        when the server cannot say."""
        raise NotImplementedError

    def cancel_data(self, stream):
        """Cut the data transfer short (abort); never raises (may close the session)."""
        raise NotImplementedError

    def put_file(self, path, data):
        """Write `data` (bytes) to a new file `path` (mode 0600 where the protocol can set it)."""
        raise NotImplementedError

    def rename(self, source, target):
        """Rename `source` to `target` (which does not exist)."""
        raise NotImplementedError

    # -- SetWriter --

    def write(self, chunk):
        try:
            self.send(chunk)
        except Exception as exc:  # pylint: disable=broad-except
            raise SinkError(self.repo.explain(exc, "upload %s to" % self.data_path))
        self.bytes += len(chunk)

    def commit(self, manifest_bytes):
        try:
            stream, self.stream = self.stream, None
            stored = self.finish_data(stream)
            if stored is not None and stored != self.bytes:
                raise SinkError("%s server %s stored %d bytes of %s but %d were sent: refusing to mark the set "
                                "complete" % (self.label, self.repo.describe(), stored, self.data_path, self.bytes))
            temp = join_path(self.set_dir, TEMP_MANIFEST)
            self.put_file(temp, manifest_bytes)
            self.rename(temp, join_path(self.set_dir, MANIFEST_NAME))
        except SinkError:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            raise SinkError(self.repo.explain(exc, "complete set %s on" % self.set_dir))
        self.close_session()

    def abort(self):
        """Stop the upload and remove the set directory: nothing half-written is left to look like a set."""
        stream, self.stream = self.stream, None
        if stream is not None:
            self.cancel_data(stream)
        if self.made_dir:
            try:
                if self.session is None or not self.session_usable():
                    self.close_session()
                    self.session = self.open_session()
                self.repo.remove_dir(self.session, self.set_dir)
            except Exception:  # pylint: disable=broad-except
                pass  # best effort: without a manifest the leftover is ignored, retention removes it later
        self.close_session()
