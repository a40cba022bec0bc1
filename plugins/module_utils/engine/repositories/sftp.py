"""SFTP repository (paramiko): sets at <path>/<job>/<set id>/, manifest written last by rename.

The data object is written to its final name inside the set directory with pipelined SFTP writes (bounded
memory: the SSH channel window limits what is in flight); after the server has acknowledged every write and
its size matches, the manifest is written to a temporary name and renamed (posix-rename@openssh.com) to
manifest.json. Reads stream in windows of pipelined requests (bounded memory).

The server's host key is checked against sftp.known_hosts_file (default: ~/.ssh/known_hosts and
/etc/ssh/ssh_known_hosts, as ssh does) or against a pinned sftp.host_key_fingerprint (SHA256:...); an
unknown or changed key is refused. Credentials come from 0600 files only (key_file, password_file).
"""

import base64
import datetime
import errno
import hashlib
import os
import re
import socket
import stat
import threading

from ..core import manifest as manifest_mod
from ..core.errors import ConfigError, NotFoundError, SinkError
from ..core.naming import DATA_PREFIX, MANIFEST_NAME, UTC, is_set_id, set_member, validate_job
from .remote import (RemoteSetWriter, check_private_file, join_path, normalise_path, read_password_file,
                     remote_url, validate_common)
from .store import Store, StoredSet

try:
    import paramiko
    HAS_PARAMIKO = True
except ImportError:
    paramiko = None
    HAS_PARAMIKO = False

MIB = 1024 * 1024
BLOCK = 32768  # the largest SFTP read request every server accepts
WINDOW = 128  # read requests in flight per window: 4 MiB
FINGERPRINT_RE = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}=?$")
SYSTEM_KNOWN_HOSTS = ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")


def fingerprint(key):
    """OpenSSH's SHA256 fingerprint of a host key, e.g. SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


class SftpSetWriter(RemoteSetWriter):
    """A set written over its own SFTP session: the data object with pipelined writes, mode 0600."""

    label = "SFTP"

    def open_session(self):
        return self.repo.open_client()

    def close_session(self):
        client, self.session = self.session, None
        if client is not None:
            try:
                client.close()
            except Exception:  # pylint: disable=broad-except
                pass

    def session_usable(self):
        return not self.session.get_channel().closed

    def make_set_dir(self):
        self.session.mkdir(self.set_dir, 0o700)

    def open_data(self):
        handle = self.session.open(self.data_path, "wbx")
        self.stream = handle  # closed by abort should what follows fail
        handle.chmod(0o600)
        handle.set_pipelined(True)
        return handle

    def send(self, chunk):
        self.stream.write(chunk)

    def finish_data(self, stream):
        stream.close()  # waits for the acknowledgement of every pipelined write
        return self.session.stat(self.data_path).st_size

    def cancel_data(self, stream):
        try:
            stream.close()
        except Exception:  # pylint: disable=broad-except
            pass

    def put_file(self, path, data):
        with self.session.open(path, "wb") as handle:
            handle.chmod(0o600)
            handle.write(data)

    def rename(self, source, target):
        try:
            self.session.posix_rename(source, target)
        except IOError as exc:
            if "unsupported" not in str(exc).lower():
                raise
            self.session.rename(source, target)  # no OpenSSH extension: plain rename (the target does not exist)


class SftpReader(object):
    """The data object as a stream: windows of pipelined read requests, bounded memory."""

    def __init__(self, repo, client, handle, size, path):
        self.repo = repo
        self.path = path
        self._client = client
        self._file = handle
        self._size = size
        self._blocks = self._generate()
        self._pending = b""

    def _generate(self):
        offset = 0
        while offset < self._size:
            end = min(self._size, offset + WINDOW * BLOCK)
            chunks = [(start, min(BLOCK, end - start)) for start in range(offset, end, BLOCK)]
            for data in self._file.readv(chunks):
                if data:
                    yield data
            offset = end

    def read(self, size=MIB):
        if not self._pending:
            try:
                self._pending = next(self._blocks)
            except StopIteration:
                return b""
            except Exception as exc:  # pylint: disable=broad-except
                raise SinkError(self.repo.explain(exc, "download %s from" % self.path))
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def close(self):
        for thing in (self._file, self._client):
            try:
                thing.close()
            except Exception:  # pylint: disable=broad-except
                pass


class SftpRepository(Store):
    """Implements Store on an SFTP server (paramiko)."""

    name = "sftp"

    def __init__(self, host=None, path=None, user=None, port=22, key_file=None, password_file=None,
                 known_hosts_file=None, host_key_fingerprint=None, timeout=None):
        if not HAS_PARAMIKO:
            raise ConfigError("the sftp option needs the Python package paramiko on this host: pip install paramiko "
                              "(or the OS package python3-paramiko)")
        self.port, self.timeout = validate_common("sftp", host, port, user, timeout)
        self.host = host
        self.user = user
        self.root = normalise_path(path, "sftp.path")
        if not key_file and not password_file:
            raise ConfigError("sftp needs key_file (a private key) or password_file (a 0600 file holding the "
                              "password of sftp.user), or both")
        self.key_file = check_private_file(key_file, "sftp.key_file") if key_file else None
        self._password = read_password_file(password_file, "sftp.password_file") if password_file else None
        if known_hosts_file and host_key_fingerprint:
            raise ConfigError("set either sftp.known_hosts_file or sftp.host_key_fingerprint, not both")
        if host_key_fingerprint and not FINGERPRINT_RE.match(host_key_fingerprint):
            raise ConfigError("sftp.host_key_fingerprint %r is not an OpenSSH SHA256 fingerprint such as "
                              "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8 (ssh-keygen -lf HOSTKEY.pub on "
                              "the server prints it; MD5 fingerprints are not accepted)" % host_key_fingerprint)
        self.host_key_fingerprint = host_key_fingerprint
        if known_hosts_file and not os.path.isfile(known_hosts_file):
            raise ConfigError("sftp.known_hosts_file %s does not exist: create it with ssh-keyscan -p %d %s after "
                              "checking the key, or fix the path" % (known_hosts_file, self.port, host))
        self.known_hosts_file = known_hosts_file
        self._lock = threading.RLock()
        self._transport = None
        self._control = None

    # -- connection --

    def describe(self):
        return remote_url("sftp", self.user, self.host, self.port, self.root)

    def explain(self, exc, action):
        where = self.describe()
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return ("SFTP server %s:%d did not answer within %gs while trying to %s %s; check the server and the "
                    "network, or raise sftp.timeout" % (self.host, self.port, self.timeout, action, where))
        if isinstance(exc, IOError) and getattr(exc, "errno", None) in (errno.EACCES, errno.EPERM):
            return ("SFTP server refused to %s %s: permission denied (%s); check that %s may write sftp.path"
                    % (action, where, exc, self.user))
        if isinstance(exc, IOError) and getattr(exc, "errno", None) == errno.ENOENT:
            return ("SFTP server cannot %s %s: no such file or directory (%s); check sftp.path"
                    % (action, where, getattr(exc, "filename", None) or exc))
        if action == "connect to" and isinstance(exc, OSError):
            return ("SFTP server %s:%d is unreachable (%s); check sftp.host, sftp.port and the firewall, then run "
                    "again" % (self.host, self.port, exc))
        if isinstance(exc, (EOFError, ConnectionError)) or (HAS_PARAMIKO and isinstance(exc, paramiko.SSHException)) \
                or (isinstance(exc, OSError) and not getattr(exc, "filename", None) and exc.errno is None):
            return ("the SSH connection to %s:%d was lost while trying to %s %s (%s); check the server, then run "
                    "again" % (self.host, self.port, action, where, exc or type(exc).__name__))
        return "SFTP failed to %s %s: %s" % (action, where, exc)

    def _known_keys(self):
        """Host keys of this host:port from the known_hosts file(s): {key type: key}."""
        name = self.host if self.port == 22 else "[%s]:%d" % (self.host, self.port)
        files = [self.known_hosts_file] if self.known_hosts_file else \
            [os.path.expanduser(p) for p in SYSTEM_KNOWN_HOSTS]
        found = {}
        for path in files:
            if not os.path.isfile(path):
                continue
            try:
                keys = paramiko.HostKeys(path)
            except Exception as exc:  # pylint: disable=broad-except
                raise ConfigError("cannot read known hosts file %s: %s" % (path, exc))
            entry = keys.lookup(name)
            if entry:
                for key_type in entry.keys():
                    found.setdefault(key_type, entry[key_type])
        return found, name, files

    def _check_host_key(self, key, known, name, files):
        offered = fingerprint(key)
        if self.host_key_fingerprint:
            if offered.rstrip("=") != self.host_key_fingerprint.rstrip("="):
                raise SinkError("HOST KEY MISMATCH: %s offered %s key %s, but sftp.host_key_fingerprint pins %s; "
                                "refusing to connect (someone may be intercepting the connection, or the server "
                                "was rebuilt: check it out of band, then update the pin)"
                                % (name, key.get_name(), offered, self.host_key_fingerprint))
            return
        known_key = known.get(key.get_name())
        if known_key is not None:
            if known_key.asbytes() != key.asbytes():
                raise SinkError("HOST KEY MISMATCH: %s offered %s key %s, which differs from the key recorded in %s; "
                                "refusing to connect (someone may be intercepting the connection, or the server "
                                "was rebuilt: check it out of band, then replace the entry)"
                                % (name, key.get_name(), offered, " or ".join(files)))
            return
        raise SinkError("the SSH host key of %s (%s %s) is not known: refusing to connect. Check it out of band "
                        "(on the server: ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub), then pin it with "
                        "sftp.host_key_fingerprint: %s, or add it to sftp.known_hosts_file (for example with "
                        "ssh-keyscan -p %d %s >> FILE); searched: %s"
                        % (name, key.get_name(), offered, _key_file_type(key.get_name()), offered, self.port,
                           self.host, ", ".join(files) if not self.host_key_fingerprint else "-"))

    def _load_key(self):
        try:
            if hasattr(paramiko.PKey, "from_path"):
                return paramiko.PKey.from_path(self.key_file)
            last = None
            for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
                try:
                    return cls.from_private_key_file(self.key_file)
                except paramiko.PasswordRequiredException:
                    raise
                except paramiko.SSHException as exc:
                    last = exc
            raise last
        except paramiko.PasswordRequiredException:
            raise ConfigError("sftp.key_file %s is protected by a passphrase: lifeboat runs unattended, so use a key "
                              "without a passphrase, kept in a 0600 file and restricted on the server (e.g. an "
                              "sftp-only user)" % self.key_file)
        except (paramiko.SSHException, ValueError, TypeError, UnicodeDecodeError, OSError) as exc:
            raise ConfigError("sftp.key_file %s is not a private key paramiko can read (%s): use an OpenSSH "
                              "ed25519, ECDSA or RSA key" % (self.key_file, exc))

    def _connect(self):
        known, name, files = ({}, None, []) if self.host_key_fingerprint else self._known_keys()
        name = name or (self.host if self.port == 22 else "[%s]:%d" % (self.host, self.port))
        pkey = self._load_key() if self.key_file else None
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise SinkError(self.explain(exc, "connect to"))
        transport = paramiko.Transport(sock)
        try:
            transport.banner_timeout = self.timeout
            transport.handshake_timeout = self.timeout
            transport.auth_timeout = self.timeout
            if known:
                options = transport.get_security_options()
                preferred = []
                for key_type in known:
                    preferred += ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] if key_type == "ssh-rsa" else [key_type]
                preferred = [t for t in preferred if t in options.key_types]
                options.key_types = preferred + [t for t in options.key_types if t not in preferred]
            try:
                transport.start_client(timeout=self.timeout)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise SinkError("SSH handshake with %s:%d failed (%s): is it an SSH server? check sftp.host and "
                                "sftp.port" % (self.host, self.port, exc))
            self._check_host_key(transport.get_remote_server_key(), known, name, files)
            self._authenticate(transport, pkey)
        except BaseException:
            transport.close()
            raise
        return transport

    def _authenticate(self, transport, pkey):
        failures = []
        if pkey is not None:
            try:
                transport.auth_publickey(self.user, pkey)
            except paramiko.BadAuthenticationType as exc:
                failures.append("key refused: the server allows only %s" % ", ".join(exc.allowed_types))
            except paramiko.AuthenticationException as exc:
                failures.append("key %s refused (%s)" % (self.key_file, exc))
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise SinkError(self.explain(exc, "log in to"))
        if not transport.is_authenticated() and self._password is not None:
            try:
                transport.auth_password(self.user, self._password)
            except paramiko.BadAuthenticationType as exc:
                failures.append("password refused: the server allows only %s" % ", ".join(exc.allowed_types))
            except paramiko.AuthenticationException as exc:
                failures.append("password refused (%s)" % exc)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise SinkError(self.explain(exc, "log in to"))
        if not transport.is_authenticated():
            raise SinkError("SFTP server %s:%d refused the login of %s: %s; check sftp.user, the key in "
                            "sftp.key_file (its public key in the user's authorized_keys) and the password in "
                            "sftp.password_file" % (self.host, self.port, self.user, "; ".join(failures)
                                                    or "authentication incomplete"))

    def _live_transport(self):
        with self._lock:
            if self._transport is None or not self._transport.is_active():
                self._control = None
                self._transport = self._connect()
            return self._transport

    def open_client(self):
        """A new SFTP session on the (shared) SSH connection: writers and readers each get their own."""
        transport = self._live_transport()
        try:
            client = paramiko.SFTPClient.from_transport(transport)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise SinkError("SFTP server %s:%d has no sftp subsystem for %s (%s): enable 'Subsystem sftp "
                            "internal-sftp' in sshd_config" % (self.host, self.port, self.user, exc))
        if client is None:
            raise SinkError("SFTP server %s:%d refused to start the sftp subsystem for %s: enable 'Subsystem sftp "
                            "internal-sftp' in sshd_config" % (self.host, self.port, self.user))
        client.get_channel().settimeout(self.timeout)
        return client

    def _with_control(self, action, function):
        """Run function(client) on the shared SFTP session (serialised); reconnect once if it went stale."""
        with self._lock:
            for attempt in (1, 2):
                if self._control is None or self._control.get_channel().closed or \
                        self._transport is None or not self._transport.is_active():
                    self._control = self.open_client()
                try:
                    return function(self._control)
                except (ConfigError, SinkError, NotFoundError):
                    raise
                except (EOFError, paramiko.SSHException, socket.timeout) as exc:
                    self._control = None
                    if attempt == 2:
                        raise SinkError(self.explain(exc, action))
                except Exception as exc:  # pylint: disable=broad-except
                    raise SinkError(self.explain(exc, action))
        return None

    def close(self):
        with self._lock:
            transport, self._transport, self._control = self._transport, None, None
            if transport is not None:
                transport.close()

    # -- directory helpers (on a given SFTP session) --

    def _stat(self, client, path):
        try:
            return client.stat(path)
        except IOError as exc:
            if getattr(exc, "errno", None) == errno.ENOENT:
                return None
            raise

    def make_dirs(self, client, path):
        """mkdir -p with mode 0700 for what it creates."""
        if path in (".", "/"):
            return
        st = self._stat(client, path)
        if st is not None:
            if not stat.S_ISDIR(st.st_mode or 0):
                raise SinkError("%s on %s:%d is not a directory: fix sftp.path" % (path, self.host, self.port))
            return
        parent = os.path.dirname(path.rstrip("/")) or ("/" if path.startswith("/") else ".")
        self.make_dirs(client, parent)
        try:
            client.mkdir(path, 0o700)
        except IOError:
            if self._stat(client, path) is None:
                raise

    def remove_dir(self, client, path):
        """Remove a set directory: the manifest first, so a half-removed set never looks complete."""
        try:
            names = client.listdir(path)
        except IOError as exc:
            if getattr(exc, "errno", None) == errno.ENOENT:
                return
            raise
        for name in sorted(names, key=lambda n: n != MANIFEST_NAME):
            try:
                client.remove(join_path(path, name))
            except IOError as exc:
                if getattr(exc, "errno", None) != errno.ENOENT:
                    raise
        client.rmdir(path)

    # -- repository interface --

    def set_location(self, job, set_id):
        return remote_url("sftp", self.user, self.host, self.port, self.root, job, set_id)

    def preflight(self):
        def probe(client):
            st = self._stat(client, self.root)
            if st is not None and not stat.S_ISDIR(st.st_mode or 0):
                raise SinkError("sftp.path %s on %s:%d is not a directory" % (self.root, self.host, self.port))
        self._with_control("reach", probe)

    def begin_set(self, job, set_id, data_name):
        return SftpSetWriter(self, job, set_id, data_name)

    def list_sets(self, job):
        job_dir = join_path(self.root, validate_job(job))

        def listing(client):
            try:
                top = client.listdir_attr(job_dir)
            except IOError as exc:
                if getattr(exc, "errno", None) == errno.ENOENT:
                    return []
                raise
            found = []
            for entry in top:
                if not (is_set_id(entry.filename) and stat.S_ISDIR(entry.st_mode or 0)):
                    continue
                try:
                    files = {f.filename: f for f in client.listdir_attr(join_path(job_dir, entry.filename))}
                except IOError as exc:
                    if getattr(exc, "errno", None) == errno.ENOENT:
                        continue  # removed while listing
                    raise
                data = sorted(n for n in files if n.startswith(DATA_PREFIX))
                times = [f.st_mtime for f in files.values() if f.st_mtime is not None]
                if entry.st_mtime is not None:
                    times.append(entry.st_mtime)
                found.append(StoredSet(entry.filename, MANIFEST_NAME in files, data[0] if data else None,
                                       files[data[0]].st_size if data else None,
                                       datetime.datetime.fromtimestamp(max(times), UTC) if times else None,
                                       self.set_location(job, entry.filename)))
            return found
        return self._with_control("list", listing)

    def read_manifest(self, job, set_id):
        path = join_path(self.root, *set_member(job, set_id, MANIFEST_NAME))

        def fetch(client):
            try:
                with client.open(path, "rb") as handle:
                    return handle.read(manifest_mod.MAX_BYTES + 1)
            except IOError as exc:
                if getattr(exc, "errno", None) == errno.ENOENT:
                    raise NotFoundError("set %s of job %s has no manifest in %s (incomplete set)"
                                        % (set_id, job, self.describe()))
                raise
        raw = self._with_control("read a manifest from", fetch)
        return manifest_mod.loads(raw, self.set_location(job, set_id) + MANIFEST_NAME)

    def open_data(self, job, set_id, data_name):
        path = join_path(self.root, *set_member(job, set_id, data_name))
        client = self.open_client()
        try:
            handle = client.open(path, "rb")
            size = handle.stat().st_size
        except Exception as exc:  # pylint: disable=broad-except
            client.close()
            if isinstance(exc, IOError) and getattr(exc, "errno", None) == errno.ENOENT:
                raise NotFoundError("set %s: data object %s is missing on %s" % (set_id, path, self.describe()))
            raise SinkError(self.explain(exc, "download %s from" % path))
        return SftpReader(self, client, handle, size, path)

    def delete_set(self, job, set_id):
        path = join_path(self.root, *set_member(job, set_id, MANIFEST_NAME)[:2])
        self._with_control("remove set %s from" % set_id, lambda client: self.remove_dir(client, path))


def _key_file_type(name):
    return {"ssh-ed25519": "ed25519", "ssh-rsa": "rsa", "ssh-dss": "dsa"}.get(
        name, "ecdsa" if name.startswith("ecdsa") else name)
