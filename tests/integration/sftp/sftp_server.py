"""A real OpenSSH sshd (sftp subsystem internal-sftp) on 127.0.0.1, a free port, for a throwaway user.

Needs root (it creates the user with useradd and removes it at stop()) and the Debian package openssh-server.
"""

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time

from support.ports import free_port, wait_for_port

SSHD = "/usr/sbin/sshd"


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def _descendants(pid):
    """Process ids whose ancestry leads to `pid` (sshd's per-connection children)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
    found = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        for child, parent in parents.items():
            if parent == current and child not in found:
                found.append(child)
                frontier.append(child)
    return found


class SshServer(object):
    def __init__(self):
        if os.geteuid() != 0:
            raise RuntimeError("the SFTP tests start sshd and create a user: run them as root")
        if not os.path.exists(SSHD):
            raise RuntimeError("%s is missing: apt-get install -y openssh-server (CI installs it)" % SSHD)
        self.base = tempfile.mkdtemp(prefix="lifeboat-sftp-")
        os.chmod(self.base, 0o755)
        self.user = "lbsftp%s" % secrets.token_hex(3)
        self.password = "pw-" + secrets.token_hex(8)
        self.home = os.path.join(self.base, "home")
        self.process = None
        subprocess.run(["useradd", "-M", "-d", self.home, "-s", "/bin/sh", self.user], check=True)
        try:
            self._setup()
        except BaseException:
            self.stop()
            raise

    def _setup(self):
        os.mkdir(self.home, 0o755)
        entry = pwd.getpwnam(self.user)
        os.chown(self.home, entry.pw_uid, entry.pw_gid)
        subprocess.run(["chpasswd"], input="%s:%s\n" % (self.user, self.password), text=True, check=True)
        self.client_dir = os.path.join(self.base, "client")
        os.mkdir(self.client_dir, 0o700)
        self.host_key = os.path.join(self.base, "ssh_host_ed25519_key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.host_key], check=True)
        self.key_file = os.path.join(self.client_dir, "id_ed25519")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key_file], check=True)
        self.authorized_keys = os.path.join(self.base, "authorized_keys")
        shutil.copy(self.key_file + ".pub", self.authorized_keys)
        os.chmod(self.authorized_keys, 0o644)
        self.password_file = _write_private(os.path.join(self.client_dir, "password"), self.password + "\n")
        self.port = free_port()
        with open(self.host_key + ".pub") as handle:
            key_type, key_b64 = handle.read().split()[:2]
        self.known_hosts = os.path.join(self.client_dir, "known_hosts")
        with open(self.known_hosts, "w") as handle:
            handle.write("[127.0.0.1]:%d %s %s\n" % (self.port, key_type, key_b64))
        out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", self.host_key + ".pub"], check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        self.fingerprint = out.split()[1]
        self.config = os.path.join(self.base, "sshd_config")
        with open(self.config, "w") as handle:
            handle.write("\n".join([
                "Port %d" % self.port,
                "ListenAddress 127.0.0.1",
                "HostKey %s" % self.host_key,
                "PidFile %s" % os.path.join(self.base, "sshd.pid"),
                "AuthorizedKeysFile %s" % self.authorized_keys,
                "Subsystem sftp internal-sftp",
                "UsePAM no",
                "StrictModes no",
                "PubkeyAuthentication yes",
                "PasswordAuthentication yes",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin no",
                "AllowUsers %s" % self.user,
                "MaxStartups 50",
                "LogLevel VERBOSE",
                "",
            ]))
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        self.log = os.path.join(self.base, "sshd.log")
        subprocess.run([SSHD, "-t", "-f", self.config], check=True)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", self.config], stdout=log, stderr=log,
                                            stdin=subprocess.DEVNULL)
        wait_for_port(self.port, process=self.process)

    def path(self, *names):
        """A path on the server (the same filesystem: the tests look at the server's side directly)."""
        return os.path.join(self.home, *names)

    def options(self, path="backups", **extra):
        """The module option `sftp` for this server: key auth, pinned by known_hosts."""
        options = {"host": "127.0.0.1", "port": self.port, "user": self.user, "path": path,
                   "key_file": self.key_file, "known_hosts_file": self.known_hosts}
        options.update(extra)
        return {k: v for k, v in options.items() if v is not None}

    def kill_sessions(self):
        """Cut every open SFTP session (the per-connection sshd processes), keeping the listener."""
        for pid in _descendants(self.process.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def log_text(self):
        try:
            with open(self.log, errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""

    def stop(self):
        if self.process is not None:
            self.kill_sessions()
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        time.sleep(0.05)
        subprocess.run(["userdel", self.user], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.base, ignore_errors=True)
