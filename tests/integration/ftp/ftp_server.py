"""A real FTP server (pyftpdlib, explicit FTPS with a self-signed certificate) on 127.0.0.1, a free port.

Runs as its own process (so a test can kill it mid-transfer). Needs the pip packages pyftpdlib and pyopenssl
and the openssl CLI (for the certificate).
"""

import os
import secrets
import shutil
import subprocess
import sys
import tempfile

from support.ports import free_port, wait_for_port

SERVER = r"""
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
from pyftpdlib.servers import FTPServer

port, user, password_file, home, certfile, keyfile, tls, mlsd = sys.argv[1:9]
with open(password_file) as handle:
    password = handle.read().rstrip("\n")
authorizer = DummyAuthorizer()
authorizer.add_user(user, password, home, perm="elradfmwMT")
base = TLS_FTPHandler if tls == "tls" else FTPHandler


class Handler(base):
    pass


if tls == "tls":
    Handler.certfile = certfile
    Handler.keyfile = keyfile
    Handler.tls_control_required = True
    Handler.tls_data_required = True
if mlsd == "no-mlsd":  # behave like vsftpd: no MLSD/MLST
    Handler.proto_cmds = {k: v for k, v in base.proto_cmds.items() if k not in ("MLSD", "MLST")}
Handler.authorizer = authorizer
Handler.passive_ports = None
Handler.banner = "lifeboat test ftpd"
server = FTPServer(("127.0.0.1", int(port)), Handler)
server.max_cons = 64
server.serve_forever(handle_exit=True)
"""


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


class FtpServer(object):
    def __init__(self, tls=True, mlsd=True):
        try:
            import pyftpdlib  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
            if tls:
                import OpenSSL  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
        except ImportError as exc:
            raise RuntimeError("the FTP tests need pyftpdlib and pyopenssl: pip install pyftpdlib pyopenssl (%s)"
                               % exc)
        if not shutil.which("openssl"):
            raise RuntimeError("the openssl CLI is missing: apt-get install -y openssl")
        self.base = tempfile.mkdtemp(prefix="lifeboat-ftp-")
        self.tls = tls
        self.mlsd = mlsd
        self.user = "backup"
        self.password = "pw-" + secrets.token_hex(8)
        self.home = os.path.join(self.base, "home")
        os.mkdir(self.home)
        self.client_dir = os.path.join(self.base, "client")
        os.mkdir(self.client_dir, 0o700)
        self.password_file = _write_private(os.path.join(self.client_dir, "password"), self.password + "\n")
        self.certfile = os.path.join(self.base, "cert.pem")
        self.keyfile = os.path.join(self.base, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-keyout", self.keyfile, "-out", self.certfile, "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.process = None
        self.log = os.path.join(self.base, "ftpd.log")
        self.start()

    def start(self):
        self.port = free_port()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SERVER, str(self.port), self.user, self.password_file, self.home,
                 self.certfile, self.keyfile, "tls" if self.tls else "plain", "mlsd" if self.mlsd else "no-mlsd"],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        wait_for_port(self.port, process=self.process)

    def path(self, *names):
        return os.path.join(self.home, *names)

    def options(self, path="backups", **extra):
        """The module option `ftp` for this server (explicit FTPS, certificate checked against ca_file)."""
        options = {"host": "127.0.0.1", "port": self.port, "user": self.user, "path": path,
                   "password_file": self.password_file}
        if self.tls:
            options["ca_file"] = self.certfile
        else:
            options["tls"] = False
        options.update(extra)
        return {k: v for k, v in options.items() if v is not None}

    def kill(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def log_text(self):
        try:
            with open(self.log, errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""

    def stop(self):
        self.kill()
        shutil.rmtree(self.base, ignore_errors=True)
