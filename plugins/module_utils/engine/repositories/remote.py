"""What the SFTP and FTP repositories share: 0600 secret files, remote roots, paths and URLs, and the checks
of host, port, user and timeout.

A remote root is absolute ('/srv/backups') or relative to the login directory ('backups', '.'); set locations are
shown as URLs (sftp://user@host:port/abs/path/ or .../~/relative/path/).
"""

import os
import posixpath
import stat

from ..core.errors import ConfigError

DEFAULT_TIMEOUT = 30


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
