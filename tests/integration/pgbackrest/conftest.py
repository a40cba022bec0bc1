"""Fixtures for the pgBackRest role tests: an HTTPS moto endpoint and a real PostgreSQL 15.

pgBackRest only talks HTTPS to S3, so moto runs with --ssl (self-signed, verify-tls off in the test)
through moto_tls.py, which adds the TLS close_notify pgBackRest needs. PostgreSQL starts with WAL
archiving off and includes a conf.d directory, so the role's drop-in and its restart path are exercised.
Both servers listen on 127.0.0.1 on free ports and are stopped at teardown.
"""

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from support.ports import free_port, wait_for_port  # noqa: E402

PG_BIN = "/usr/lib/postgresql/15/bin"
PGBACKREST = "/usr/bin/pgbackrest"
REGION = "us-east-1"


def _require_tools():
    for path, fix in ((os.path.join(PG_BIN, "initdb"), "apt-get install -y postgresql"),
                      (PGBACKREST, "apt-get install -y pgbackrest"),
                      ("/usr/bin/psql", "apt-get install -y postgresql-client"),
                      ("/usr/bin/flock", "apt-get install -y util-linux")):
        if not os.path.exists(path):
            raise RuntimeError("%s is missing: %s" % (path, fix))
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError("no postgres OS user: apt-get install -y postgresql")


class MotoTLS(object):
    def __init__(self, log_path):
        self.port = free_port()
        self.url = "https://127.0.0.1:%d" % self.port
        self._log = open(log_path, "wb")
        env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_DEFAULT_REGION=REGION)
        self.process = subprocess.Popen([sys.executable, os.path.join(HERE, "moto_tls.py"), "-H", "127.0.0.1",
                                         "-p", str(self.port), "--ssl"],
                                        stdout=self._log, stderr=subprocess.STDOUT, env=env)
        wait_for_port(self.port, process=self.process)

    def client(self):
        import boto3
        import urllib3
        urllib3.disable_warnings()
        return boto3.client("s3", endpoint_url=self.url, region_name=REGION, verify=False,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def new_bucket(self):
        name = "pgbr-%s" % uuid.uuid4().hex[:12]
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


class Cluster(object):
    """PostgreSQL 15 in a temporary directory, run with pg_ctl as the postgres user."""

    def __init__(self):
        _require_tools()
        self.base = tempfile.mkdtemp(prefix="lifeboat-pgbr-")
        os.chmod(self.base, 0o755)
        shutil.chown(self.base, "postgres", "postgres")
        self.data = os.path.join(self.base, "data")
        self.conf_d = os.path.join(self.base, "conf.d")
        os.mkdir(self.conf_d)
        shutil.chown(self.conf_d, "postgres", "postgres")
        self.port = free_port()
        self.log = os.path.join(self.base, "server.log")
        self.as_postgres([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", "postgres", "-E", "UTF8",
                          "--auth=trust", "--no-sync"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as handle:
            handle.write("listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"
                         "fsync = off\narchive_mode = off\ninclude_dir = '%s'\n"
                         % (self.port, self.base, self.conf_d))
        self.start()

    def as_postgres(self, argv, check=True):
        return subprocess.run(["runuser", "-u", "postgres", "--"] + argv, check=check, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)

    def pg_ctl(self, action):
        """The argv the role runs (as root) to stop or start this cluster."""
        argv = ["runuser", "-u", "postgres", "--", os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-w",
                "-t", "120", "-l", self.log]
        return argv + (["-m", "fast", "stop"] if action == "stop" else ["start"])

    def start(self):
        subprocess.run(self.pg_ctl("start"), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self):
        subprocess.run(self.pg_ctl("stop"), check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def sql(self, sql, database="postgres"):
        env = dict(os.environ, PGHOST=self.base, PGPORT=str(self.port), PGUSER="postgres")
        proc = subprocess.run(["/usr/bin/psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", database,
                               "-c", sql], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              check=False)
        if proc.returncode != 0:
            raise RuntimeError("psql failed: %s" % proc.stderr)
        return proc.stdout.strip()

    def server_log(self):
        try:
            with open(self.log) as handle:
                return handle.read()[-4000:]
        except OSError:
            return ""


@pytest.fixture(scope="module")
def moto_tls(tmp_path_factory):
    server = MotoTLS(str(tmp_path_factory.mktemp("moto-tls") / "moto.log"))
    yield server
    server.stop()


@pytest.fixture
def cluster():
    server = Cluster()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.base, ignore_errors=True)
