"""FTP / explicit FTPS repository (stdlib ftplib): sets at <path>/<job>/<set id>/, manifest written last.

The data object is uploaded to its final name inside the set directory through one STOR data connection
(chunks are sent as they come: bounded memory), the manifest is uploaded to a temporary name and then
renamed (RNFR/RNTO) to manifest.json, so it appears at once and only after the data is complete.

Every writer and reader has its own control connection (FTP allows one transfer per control connection);
listings, manifests and deletions share one, serialised by a lock.

The helpers for 0600 secret files, remote paths and connection options, and the steps of writing a set
(RemoteSetWriter), live in remote.py (shared with SFTP).
"""

import datetime
import ftplib
import io
import os
import posixpath
import socket
import ssl
import threading

from ..core import manifest as manifest_mod
from ..core.errors import ConfigError, NotFoundError, SinkError
from ..core.naming import DATA_PREFIX, MANIFEST_NAME, UTC, is_set_id, set_member, validate_job
from .remote import RemoteSetWriter, join_path, normalise_path, read_password_file, remote_url, validate_common
from .store import Store, StoredSet

MIB = 1024 * 1024


class _ReusingFTPTLS(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control connection's TLS session (vsftpd, ProFTPD and
    FileZilla Server require it by default; others accept it)."""

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            session = getattr(self.sock, "session", None)
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
        return conn, size


class _ManifestTooLarge(Exception):
    """Raised from a RETR callback once a manifest passes manifest.MAX_BYTES, to stop reading it."""


def _code(exc):
    return str(exc)[:3]


def _close_data(conn):
    if conn is None:
        return
    try:
        if isinstance(conn, ssl.SSLSocket):
            conn.unwrap()
    except (OSError, ValueError):
        pass
    try:
        conn.close()
    except OSError:
        pass


class FtpSetWriter(RemoteSetWriter):
    """A set written over its own control connection: the data object through one STOR data connection."""

    label = "FTP"

    def open_session(self):
        return self.repo.connect()

    def close_session(self):
        ftp, self.session = self.session, None
        if ftp is None:
            return
        try:
            ftp.quit()
        except Exception:  # pylint: disable=broad-except
            ftp.close()

    def make_set_dir(self):
        self.session.mkd(self.set_dir)

    def open_data(self):
        self.session.voidcmd("TYPE I")
        return self.session.transfercmd("STOR " + self.data_path)

    def send(self, chunk):
        self.stream.sendall(chunk)

    def finish_data(self, stream):
        _close_data(stream)
        self.session.voidresp()  # 226: the server has the whole data object
        try:
            return self.session.size(self.data_path)
        except ftplib.error_perm:
            return None  # SIZE is optional (RFC 3659); the manifest's sha256 still guards restores

    def cancel_data(self, stream):
        _close_data(stream)
        try:
            self.session.voidresp()  # 226 or 426 for the cut transfer
        except Exception:  # pylint: disable=broad-except
            self.close_session()

    def put_file(self, path, data):
        self.session.storbinary("STOR " + path, io.BytesIO(data))

    def rename(self, source, target):
        self.session.rename(source, target)


class FtpReader(object):
    """The data object as a stream over its own connection (RETR), bounded memory."""

    def __init__(self, repo, path):
        self.repo = repo
        self.path = path
        self._ftp = repo.connect()
        self._conn = None
        try:
            self._ftp.voidcmd("TYPE I")
            self._conn = self._ftp.transfercmd("RETR " + path)
        except ftplib.error_perm as exc:
            self.close()
            if _code(exc) == "550":
                raise NotFoundError("data object %s is missing on %s" % (path, repo.describe()))
            raise SinkError(repo.explain(exc, "download %s from" % path))
        except Exception as exc:  # pylint: disable=broad-except
            self.close()
            raise SinkError(repo.explain(exc, "download %s from" % path))
        self._done = False

    def read(self, size=MIB):
        if self._done:
            return b""
        try:
            data = self._conn.recv(size)
            if data:
                return data
            conn, self._conn = self._conn, None
            _close_data(conn)
            self._ftp.voidresp()
        except Exception as exc:  # pylint: disable=broad-except
            raise SinkError(self.repo.explain(exc, "download %s from" % self.path))
        self._done = True
        return b""

    def close(self):
        conn, self._conn = getattr(self, "_conn", None), None
        _close_data(conn)
        ftp, self._ftp = self._ftp, None
        if ftp is not None:
            try:
                ftp.close()
            except OSError:
                pass


class FtpRepository(Store):
    """Implements Store on an FTP or explicit FTPS server (ftplib)."""

    name = "ftp"

    def __init__(self, host=None, path=None, user=None, password_file=None, port=21, tls=True, tls_verify=True,
                 ca_file=None, timeout=None):
        self.port, self.timeout = validate_common("ftp", host, port, user, timeout)
        self.host = host
        self.user = user
        self.root = normalise_path(path, "ftp.path")
        self.tls = True if tls is None else bool(tls)
        self.tls_verify = True if tls_verify is None else bool(tls_verify)
        if ca_file and not os.path.isfile(ca_file):
            raise ConfigError("ftp.ca_file %s does not exist" % ca_file)
        if ca_file and not self.tls:
            raise ConfigError("ftp.ca_file needs ftp.tls: true")
        self.ca_file = ca_file
        if not password_file:
            raise ConfigError("ftp.password_file is required: the path of a 0600 file holding the password of "
                              "ftp.user")
        self._password = read_password_file(password_file, "ftp.password_file")
        self._lock = threading.RLock()
        self._control = None

    # -- connections --

    def describe(self):
        return remote_url("ftps" if self.tls else "ftp", self.user, self.host, self.port, self.root)

    def explain(self, exc, action):
        where = self.describe()
        if isinstance(exc, ssl.SSLCertVerificationError):
            return ("the TLS certificate of FTP server %s:%d cannot be verified while trying to %s %s (%s): give "
                    "its CA certificate in ftp.ca_file, or fix the server certificate; ftp.tls_verify: false turns "
                    "the check off (not recommended)" % (self.host, self.port, action, where,
                                                         getattr(exc, "verify_message", exc)))
        if isinstance(exc, ssl.SSLError):
            return "TLS with FTP server %s:%d failed while trying to %s %s: %s" % (self.host, self.port, action,
                                                                                   where, exc)
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return ("FTP server %s:%d did not answer within %gs while trying to %s %s; check the server and the "
                    "network (passive mode ports must be open), or raise ftp.timeout"
                    % (self.host, self.port, self.timeout, action, where))
        if isinstance(exc, ftplib.error_perm):
            code = _code(exc)
            if code == "530":
                return ("FTP server %s:%d refused the login of %s (%s): check ftp.user and the password in "
                        "ftp.password_file" % (self.host, self.port, self.user, str(exc).strip()))
            if code == "550":
                return ("FTP server refused to %s %s: %s; check that ftp.path exists or may be created and that "
                        "%s may write there" % (action, where, str(exc).strip(), self.user))
            return "FTP server refused to %s %s: %s" % (action, where, str(exc).strip())
        if isinstance(exc, ftplib.Error):
            return "FTP server error while trying to %s %s: %s" % (action, where, str(exc).strip())
        if isinstance(exc, (EOFError, ConnectionError)):
            return ("the connection to FTP server %s:%d was lost while trying to %s %s (%s); check the server, "
                    "then run again" % (self.host, self.port, action, where, exc or type(exc).__name__))
        if isinstance(exc, OSError):
            return ("FTP server %s:%d is unreachable while trying to %s %s (%s); check ftp.host, ftp.port and the "
                    "firewall, then run again" % (self.host, self.port, action, where, exc))
        return "FTP failed to %s %s: %s" % (action, where, exc)

    def _ssl_context(self):
        if self.tls_verify:
            return ssl.create_default_context(cafile=self.ca_file)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    def connect(self):
        """A new logged-in control connection in binary, passive mode; SinkError on any failure."""
        ftp = _ReusingFTPTLS(context=self._ssl_context(), timeout=self.timeout) if self.tls \
            else ftplib.FTP(timeout=self.timeout)
        try:
            ftp.connect(self.host, self.port)
        except Exception as exc:  # pylint: disable=broad-except
            ftp.close()
            raise SinkError(self.explain(exc, "connect to"))
        try:
            if self.tls:
                try:
                    ftp.auth()
                except ftplib.error_perm as exc:
                    raise SinkError("FTP server %s:%d does not offer explicit TLS (AUTH TLS: %s): enable FTPS on the "
                                    "server; only on a trusted network set ftp.tls: false (the password and the "
                                    "backups would cross it in clear)" % (self.host, self.port, str(exc).strip()))
            ftp.login(self.user, self._password)
            if self.tls:
                ftp.prot_p()
            ftp.set_pasv(True)
            ftp.voidcmd("TYPE I")
        except SinkError:
            ftp.close()
            raise
        except Exception as exc:  # pylint: disable=broad-except
            ftp.close()
            raise SinkError(self.explain(exc, "log in to"))
        return ftp

    def _with_control(self, action, function):
        """Run function(ftp) on the shared control connection; reconnect once if it went stale."""
        with self._lock:
            for attempt in (1, 2):
                if self._control is None:
                    self._control = self.connect()
                try:
                    return function(self._control)
                except (EOFError, ConnectionError, ftplib.error_temp, socket.timeout) as exc:
                    stale, self._control = self._control, None
                    try:
                        stale.close()
                    except OSError:
                        pass
                    if attempt == 2 or (isinstance(exc, ftplib.error_temp) and _code(exc) != "421"):
                        raise SinkError(self.explain(exc, action))
                except (SinkError, NotFoundError):
                    raise
                except Exception as exc:  # pylint: disable=broad-except
                    raise SinkError(self.explain(exc, action))
        return None

    def close(self):
        with self._lock:
            ftp, self._control = self._control, None
            if ftp is not None:
                try:
                    ftp.quit()
                except Exception:  # pylint: disable=broad-except
                    ftp.close()

    # -- directory helpers (on a given connection) --

    def _exists_dir(self, ftp, path):
        here = ftp.pwd()
        try:
            ftp.cwd(path)
        except ftplib.error_perm:
            return False
        ftp.cwd(here)
        return True

    def make_dirs(self, ftp, path):
        """mkdir -p: create each missing component of `path`."""
        if path in (".", "/") or self._exists_dir(ftp, path):
            return
        parts = path.split("/")
        current = "/" if path.startswith("/") else ""
        for part in parts:
            if not part:
                continue
            current = posixpath.join(current, part) if current else part
            try:
                ftp.mkd(current)
            except ftplib.error_perm as exc:
                if not self._exists_dir(ftp, current):
                    raise SinkError("FTP server refused to create directory %s: %s; create ftp.path on the server "
                                    "or grant %s write access" % (current, str(exc).strip(), self.user))

    def _entries(self, ftp, path):
        """{name: {"type": "dir"|"file"|None, "size": int|None, "modify": datetime|None}}; None if missing."""
        try:
            facts = list(ftp.mlsd(path, facts=["type", "size", "modify"]))
        except ftplib.error_perm as exc:
            if _code(exc) == "550":
                return None
            if _code(exc) not in ("500", "501", "502", "504"):
                raise
            return self._entries_without_mlsd(ftp, path)
        finally:
            ftp.voidcmd("TYPE I")  # listings switch to ASCII; SIZE and transfers need binary
        entries = {}
        for name, fact in facts:
            kind = (fact.get("type") or "").lower()
            if kind in ("cdir", "pdir") or name in (".", ".."):
                continue
            entries[name] = {"type": "dir" if kind == "dir" else "file",
                             "size": int(fact["size"]) if fact.get("size", "").isdigit() else None,
                             "modify": _parse_modify(fact.get("modify"))}
        return entries

    def _entries_without_mlsd(self, ftp, path):
        """For servers without MLSD (vsftpd): NLST, then SIZE/MDTM per file."""
        if not self._exists_dir(ftp, path):
            return None
        try:
            names = ftp.nlst(path)
        except ftplib.error_perm as exc:
            if _code(exc) in ("450", "550"):
                return {}
            raise
        finally:
            ftp.voidcmd("TYPE I")  # listings switch to ASCII; SIZE (refused in ASCII by some servers) needs binary
        entries = {}
        for name in names:
            base = posixpath.basename(name.rstrip("/"))
            if base in (".", "..", ""):
                continue
            full = join_path(path, base)
            try:
                size = ftp.size(full)
            except ftplib.error_perm:
                size = None
            modify = None
            try:
                modify = _parse_modify(ftp.voidcmd("MDTM " + full)[4:].strip())
            except ftplib.error_perm:
                pass
            entries[base] = {"type": "file" if size is not None else "dir", "size": size, "modify": modify}
        return entries

    def remove_dir(self, ftp, path):
        """Remove a set directory: the manifest first, so a half-removed set never looks complete."""
        entries = self._entries(ftp, path)
        if entries is None:
            return
        names = sorted(entries, key=lambda n: n != MANIFEST_NAME)
        for name in names:
            try:
                ftp.delete(join_path(path, name))
            except ftplib.error_perm as exc:
                if _code(exc) != "550":
                    raise
        ftp.rmd(path)

    # -- repository interface --

    def set_location(self, job, set_id):
        return remote_url("ftps" if self.tls else "ftp", self.user, self.host, self.port, self.root, job, set_id)

    def preflight(self):
        def probe(ftp):
            if self.root not in (".", "/") and not self._exists_dir(ftp, self.root):
                parent = posixpath.dirname(self.root) or "."
                if parent not in (".", "/") and not self._exists_dir(ftp, parent):
                    raise SinkError("ftp.path %s does not exist on %s:%d and neither does its parent %s: create it "
                                    "on the server" % (self.root, self.host, self.port, parent))
        self._with_control("reach", probe)

    def begin_set(self, job, set_id, data_name):
        return FtpSetWriter(self, job, set_id, data_name)

    def list_sets(self, job):
        job_dir = join_path(self.root, validate_job(job))

        def listing(ftp):
            top = self._entries(ftp, job_dir)
            found = []
            for set_id, info in sorted((top or {}).items()):
                if not is_set_id(set_id) or info["type"] != "dir":
                    continue
                files = self._entries(ftp, join_path(job_dir, set_id)) or {}
                data = sorted(n for n in files if n.startswith(DATA_PREFIX))
                times = [f["modify"] for f in files.values() if f["modify"] is not None]
                if info["modify"] is not None:
                    times.append(info["modify"])
                found.append(StoredSet(set_id, MANIFEST_NAME in files, data[0] if data else None,
                                       files[data[0]]["size"] if data else None, max(times) if times else None,
                                       self.set_location(job, set_id)))
            return found
        return self._with_control("list", listing)

    def read_manifest(self, job, set_id):
        path = join_path(self.root, *set_member(job, set_id, MANIFEST_NAME))

        def fetch(ftp):
            buffer = bytearray()

            def collect(chunk):
                buffer.extend(chunk)
                if len(buffer) > manifest_mod.MAX_BYTES:
                    raise _ManifestTooLarge()
            try:
                ftp.retrbinary("RETR " + path, collect)
            except _ManifestTooLarge:
                # a writer's oversized "manifest" is cut off at the bound (loads refuses it). The transfer was
                # abandoned mid-way, so this control connection is out of step: drop it, the next call reconnects.
                self._control = None
                ftp.close()
            except ftplib.error_perm as exc:
                if _code(exc) == "550":
                    raise NotFoundError("set %s of job %s has no manifest in %s (incomplete set)"
                                        % (set_id, job, self.describe()))
                raise
            return bytes(buffer)
        raw = self._with_control("read a manifest from", fetch)
        return manifest_mod.loads(raw, self.set_location(job, set_id) + MANIFEST_NAME)

    def open_data(self, job, set_id, data_name):
        return FtpReader(self, join_path(self.root, *set_member(job, set_id, data_name)))

    def delete_set(self, job, set_id):
        path = join_path(self.root, *set_member(job, set_id, MANIFEST_NAME)[:2])
        self._with_control("remove set %s from" % set_id, lambda ftp: self.remove_dir(ftp, path))


def _parse_modify(text):
    """MLSD 'modify' / MDTM time (YYYYMMDDHHMMSS[.sss], UTC) as an aware datetime, or None."""
    if not text:
        return None
    try:
        return datetime.datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
