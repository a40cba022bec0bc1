"""A real PostgreSQL 15 on 127.0.0.1 (free port), for the pg_dump_s3 / pg_restore_s3 tests and the benchmark.

initdb runs as the postgres OS user into a temporary directory. Authentication: trust on the local socket
(the tests' own admin work), scram-sha-256 over TCP, so the modules log in with a real password as the
role `lbuser` (CREATEDB, owner of the pgbench database).
"""

import os
import pwd
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from support.ports import free_port  # noqa: E402

PG_BIN = "/usr/lib/postgresql/15/bin"
USER = "lbuser"
PASSWORD = "Lb-s3cret-pw-7Hq9xZ"
SCALE = 2


class Postgres(object):
    def __init__(self):
        for tool in ("initdb", "pg_ctl", "psql", "pg_dump", "pg_restore", "pgbench"):
            if not os.path.exists(os.path.join(PG_BIN, tool)):
                raise RuntimeError("PostgreSQL 15 is not installed (%s/%s missing): apt-get install postgresql"
                                   % (PG_BIN, tool))
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("no postgres OS user: apt-get install postgresql")
        self.base = tempfile.mkdtemp(prefix="lifeboat-pg-")
        os.chmod(self.base, 0o755)
        shutil.chown(self.base, "postgres", "postgres")
        self.data = os.path.join(self.base, "data")
        self.socket_dir = self.base
        self.port = free_port()
        self.log = os.path.join(self.base, "server.log")
        try:
            self._as_postgres([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", "postgres", "-E", "UTF8",
                               "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"])
            self.start()
            self.sql("CREATE ROLE %s LOGIN CREATEDB PASSWORD '%s'" % (USER, PASSWORD))
        except BaseException:
            self.remove()
            raise

    def _as_postgres(self, argv):
        subprocess.run(["runuser", "-u", "postgres", "--"] + argv, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)

    def start(self):
        self._as_postgres([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-w", "-l", self.log, "-o",
                           "-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=%s -c fsync=off "
                           "-c full_page_writes=off" % (self.port, self.socket_dir), "start"])

    def stop(self):
        subprocess.run(["runuser", "-u", "postgres", "--", os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-w",
                        "-m", "fast", "stop"], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def remove(self):
        """Stop the server and delete its directory (data, socket, log)."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def admin_env(self):
        env = dict(os.environ, PGHOST=self.socket_dir, PGPORT=str(self.port), PGUSER="postgres")
        env.pop("PGPASSWORD", None)
        return env

    def sql(self, sql, database="postgres"):
        """Run SQL as the superuser over the socket; returns unaligned tuples-only output."""
        proc = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
                               "-d", database, "-c", sql], env=self.admin_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError("psql failed: %s" % proc.stderr)
        return proc.stdout.strip()

    def exists(self, database):
        return self.sql("SELECT count(*) FROM pg_database WHERE datname = '%s'" % database) == "1"

    def databases(self):
        return set(self.sql("SELECT datname FROM pg_database").split())

    def fingerprint(self, database):
        """Row counts and sums that must survive a dump and restore."""
        return self.sql(
            "SELECT json_build_object("
            "'accounts', (SELECT count(*) FROM pgbench_accounts), 'abalance', (SELECT sum(abalance) FROM pgbench_accounts),"
            "'branches', (SELECT count(*) FROM pgbench_branches), 'bbalance', (SELECT sum(bbalance) FROM pgbench_branches),"
            "'tellers', (SELECT count(*) FROM pgbench_tellers), 'history', (SELECT count(*) FROM pgbench_history))",
            database)

    def copy(self, source, target):
        self.sql("CREATE DATABASE %s TEMPLATE %s OWNER %s" % (target, source, USER))

    def drop(self, database):
        self.sql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % database)

    def login(self, **extra):
        """Module connection options: TCP with the password."""
        options = dict(login_host="127.0.0.1", login_port=self.port, login_user=USER, login_password=PASSWORD)
        options.update(extra)
        return options
