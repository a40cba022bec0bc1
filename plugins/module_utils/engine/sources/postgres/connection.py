"""How lifeboat reaches a PostgreSQL server: module options turned into a libpq connection string (no
secrets) and a child environment (PGPASSWORD only there, never argv), the argument lists of psql, pg_dump,
pg_dumpall and pg_restore, quoting of identifiers, literals and conninfo values, and libpq/tool errors explained
as PostgresError (what failed, why, what to do). Connection options that are unset are not passed, so libpq's
environment (PGHOST, PGPORT, PGUSER, PGPASSFILE, PGSSLMODE...) applies exactly as it does for psql.
"""

import json
import os
import re

from ...core.errors import ConfigError, LifeboatError, ToolError
from ...core.process import run_tool
from .options import CONNECTION_KEYS, SSL_MODES

DEFAULT_CONNECT_TIMEOUT = "10"
MAX_IDENTIFIER = 63

# Module option name -> libpq connection keyword (all of them optional).
CONNECTION_OPTIONS = (
    ("login_host", "host"),
    ("login_port", "port"),
    ("login_user", "user"),
    ("ssl_mode", "sslmode"),
    ("ca_cert", "sslrootcert"),
    ("ssl_cert", "sslcert"),
    ("ssl_key", "sslkey"),
)
SECRET_PARAMS = ("password", "sslpassword")


class PostgresError(LifeboatError):
    """The server could not be reached or refused what was asked (login, missing database, privileges)."""


# ---------------------------------------------------------------- quoting and connection options

def quote_ident(name):
    return '"%s"' % name.replace('"', '""')


def quote_literal(text):
    """A string literal that means the same whatever standard_conforming_strings is (names from a set may hold
    backslashes)."""
    if "\\" in text:
        return "E'%s'" % text.replace("\\", "\\\\").replace("'", "''")
    return "'%s'" % text.replace("'", "''")


def conninfo_quote(value):
    """A libpq connection-string value: always single-quoted, with backslash and quote escaped."""
    return "'%s'" % str(value).replace("\\", "\\\\").replace("'", "\\'")


def tool_major(version_text):
    """'pg_dump (PostgreSQL) 15.18 (Debian ...)' -> 15 (and 9.6 -> 9)."""
    match = re.search(r"\b(\d+)(?:\.(\d+))?", version_text or "")
    return int(match.group(1)) if match else None


class Connection(object):
    """How to reach one server: module options -> libpq conninfo (no secrets) + child environment."""

    def __init__(self, login_host=None, login_port=None, login_user=None, login_password=None, login_unix_socket=None,
                 ssl_mode=None, ca_cert=None, ssl_cert=None, ssl_key=None, connect_params=None, pg_bin_dir=None,
                 maintenance_db=None, environ=None):
        if login_host and login_unix_socket:
            raise ConfigError("set either login_host (TCP) or login_unix_socket (a socket directory), not both")
        if ssl_mode and ssl_mode not in SSL_MODES:
            raise ConfigError("ssl_mode must be one of %s, not %r" % (", ".join(SSL_MODES), ssl_mode))
        params = dict(connect_params or {})
        for key in params:
            if key.lower() in SECRET_PARAMS:
                raise ConfigError("connect_params must not carry %s: use login_password (never logged) or a "
                                  "PGPASSFILE/.pgpass file" % key)
            if key.lower() == "dbname":
                raise ConfigError("connect_params must not carry dbname: use database")
        self.options = {}
        values = dict(login_host=login_unix_socket or login_host, login_port=login_port, login_user=login_user,
                      ssl_mode=ssl_mode, ca_cert=ca_cert, ssl_cert=ssl_cert, ssl_key=ssl_key)
        for option, keyword in CONNECTION_OPTIONS:
            if values[option] not in (None, ""):
                self.options[keyword] = str(values[option])
        for key, value in params.items():
            if value not in (None, ""):
                self.options[key] = str(value)
        self.password = login_password or None
        self.bin_dir = pg_bin_dir or None
        self.maintenance_db = maintenance_db or "postgres"
        self.environ = dict(os.environ if environ is None else environ)

    @classmethod
    def from_options(cls, options):
        return cls(**{key: options.get(key) for key in CONNECTION_KEYS})

    def conninfo(self, database=None):
        """Connection string with only the options that were set; libpq fills the rest from PG* variables."""
        items = sorted(self.options.items())
        if database:
            items = [("dbname", database)] + items
        return " ".join("%s=%s" % (key, conninfo_quote(value)) for key, value in items)

    def env(self):
        """Environment for a child tool: the caller's, plus PGPASSWORD when a password was given."""
        env = dict(self.environ)
        if self.password:
            env["PGPASSWORD"] = self.password
        if not env.get("PGCONNECT_TIMEOUT") and "connect_timeout" not in self.options:
            env["PGCONNECT_TIMEOUT"] = DEFAULT_CONNECT_TIMEOUT
        return env

    def tool(self, name):
        return os.path.join(self.bin_dir, name) if self.bin_dir else name

    def target(self):
        """host:port as libpq will resolve it, for messages (no secrets)."""
        host = self.options.get("host") or self.environ.get("PGHOST") or "the default local socket"
        port = self.options.get("port") or self.environ.get("PGPORT") or "5432"
        return "%s port %s" % (host, port)

    def user(self):
        return self.options.get("user") or self.environ.get("PGUSER") or None

    def describe(self, database):
        """Where the data came from, for the manifest (never a password)."""
        return {"database": database,
                "host": self.options.get("host") or self.environ.get("PGHOST") or None,
                "port": int(self.options.get("port") or self.environ.get("PGPORT") or 5432),
                "user": self.user()}

    # ---- argument lists (pure: unit-tested)

    def psql_argv(self, database, *extra, quiet=True):
        """psql in a script-friendly shape; `quiet=False` keeps the command tags (`COPY <n>`)."""
        return [self.tool("psql"), "-X", "-w"] + (["-q"] if quiet else []) + [
            "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.conninfo(database)] + list(extra)

    def dump_argv(self, database, snapshot=None, lock_wait_timeout=None, extra=()):
        # --compress=0: the pipeline compresses (zstd by default); compressing twice only costs CPU.
        argv = [self.tool("pg_dump"), "--format=custom", "--compress=0", "--no-password",
                "--dbname=%s" % self.conninfo(database)]
        if snapshot:
            argv.append("--snapshot=%s" % snapshot)
        if lock_wait_timeout:
            argv.append("--lock-wait-timeout=%ds" % lock_wait_timeout)
        return argv + list(extra)

    def globals_argv(self, role_passwords=True):
        argv = [self.tool("pg_dumpall"), "--globals-only", "--no-password", "--dbname=%s" % self.conninfo(),
                "--database=%s" % self.maintenance_db]
        if not role_passwords:
            argv.append("--no-role-passwords")
        return argv

    def restore_argv(self, database, jobs=1, clean=False, list_file=None, no_owner=False, input_file=None,
                     sections=()):
        argv = [self.tool("pg_restore"), "--exit-on-error", "--no-password", "--dbname=%s" % self.conninfo(database)]
        if jobs and jobs > 1:
            argv.append("--jobs=%d" % jobs)
        else:
            argv.append("--single-transaction")
        argv += ["--section=%s" % section for section in sections]
        if clean:
            argv += ["--clean", "--if-exists"]
        if no_owner:
            argv += ["--no-owner", "--no-acl"]
        if list_file:
            argv.append("--use-list=%s" % list_file)
        if input_file:
            argv.append(input_file)
        return argv

    def script_argv(self, list_file=None, sections=()):
        """pg_restore writing the archive it reads on stdin as an SQL script to stdout (no connection)."""
        argv = [self.tool("pg_restore"), "--file=-"] + ["--section=%s" % section for section in sections]
        if list_file:
            argv.append("--use-list=%s" % list_file)
        return argv

    def list_argv(self, input_file=None):
        argv = [self.tool("pg_restore"), "--list", "--verbose"]
        if input_file:
            argv.append(input_file)
        return argv

    # ---- running things

    def explain(self, stderr, database=None, doing="connect"):
        """A libpq/tool error turned into what failed, why and what to do."""
        return explain(stderr, self.target(), self.user(), database, doing)

    def query(self, sql, database=None, doing=None):
        """Run one SQL statement through psql; returns stdout text. Errors are explained."""
        database = database or self.maintenance_db
        try:
            return run_tool(self.psql_argv(database, "-c", sql), "psql", env=self.env(), timeout=600)
        except ToolError as exc:
            if "not installed" in exc.msg:
                raise
            raise self.explain(exc.msg, database, doing or "run a query")

    def query_json(self, sql, database=None, doing=None):
        text = self.query(sql, database, doing).strip()
        try:
            return json.loads(text) if text else None
        except ValueError:
            raise PostgresError("unexpected answer from psql for %s: %r" % (doing or "a query", text[:200]))

    def tool_version(self, name):
        text = run_tool([self.tool(name), "--version"], "checking the %s version" % name, timeout=60)
        return text.strip()


NO_FREE_SLOT = ("too many clients", "remaining connection slots are reserved", "too many connections for")
UNREACHABLE = ("connection refused", "could not connect", "no such file or directory", "could not translate host name",
               "timeout expired", "network is unreachable", "server closed the connection")


def explain(stderr, target, user, database, doing):
    text = (stderr or "").strip()
    low = text.lower()
    who = "user %s" % user if user else "the login user"
    if "password authentication failed" in low:
        return PostgresError("PostgreSQL at %s rejected the password of %s: check login_user and login_password "
                             "(or PGPASSWORD / PGPASSFILE / ~/.pgpass)" % (target, who))
    if "no password supplied" in low:
        return PostgresError("PostgreSQL at %s asks %s for a password but none was given: set login_password "
                             "(no_log) or provide a PGPASSFILE / ~/.pgpass entry" % (target, who))
    if "database" in low and "does not exist" in low:
        match = re.search(r'database "([^"]*)" does not exist', text)
        name = match.group(1) if match else database
        return PostgresError("database %s does not exist on PostgreSQL at %s: check database (psql -l lists them)"
                             % (name, target))
    if "role" in low and "does not exist" in low:
        return PostgresError("PostgreSQL at %s has no role for %s: check login_user (or PGUSER). A freshly installed "
                             "server has only the postgres role, which logs in by peer over the local socket: run the "
                             "task as the postgres OS user (become_user: postgres)" % (target, who))
    if "no pg_hba.conf entry" in low:
        return PostgresError("PostgreSQL at %s does not allow %s to connect from here (no pg_hba.conf entry): "
                             "add one on the server or connect another way" % (target, who))
    if "peer authentication failed" in low or "ident authentication failed" in low:
        return PostgresError("PostgreSQL at %s refused peer/ident login for %s: run the task as that OS user "
                             "(become_user) or log in over TCP with login_host and login_password" % (target, who))
    if lock_wait_expired(text):
        match = re.search(r"LOCK TABLE (\S+)", text)
        return PostgresError("%s of database %s on PostgreSQL at %s stayed locked by another session past "
                             "lock_wait_timeout, so nothing was dumped: find the session holding the lock (pg_locks "
                             "joined with pg_stat_activity) and let it finish, then run the backup again, or raise "
                             "lock_wait_timeout" % ("table %s" % match.group(1) if match else "a table", database, target))
    if no_free_slot(text):
        return PostgresError("PostgreSQL at %s turned away a connection of %s (%s): it has no free connection slot. "
                             "Wait for sessions to end, raise max_connections (or the CONNECTION LIMIT of the role "
                             "or database), or, for a restore, lower jobs (each job is one more session)"
                             % (target, who, first_error_line(text)))
    if any(p in low for p in UNREACHABLE) and ("connect" in low or "socket" in low):
        return PostgresError("cannot reach PostgreSQL at %s (%s): is the server running and listening there? "
                             "check login_host, login_port and login_unix_socket (or PGHOST / PGPORT)"
                             % (target, first_error_line(text)))
    if "permission denied" in low or "must be superuser" in low or "must be owner" in low:
        return PostgresError("PostgreSQL at %s refused to %s for %s: %s; grant the privilege or use another "
                             "login_user" % (target, doing, who, first_error_line(text)))
    return PostgresError("could not %s on PostgreSQL at %s: %s" % (doing, target, text[-1500:] or "no error output"))


def no_free_slot(text):
    """The server turned a login away for want of a connection slot (max_connections, or a role's or database's
    CONNECTION LIMIT): "sorry, too many clients already", "remaining connection slots are reserved for ...",
    "too many connections for role/database ..."."""
    low = text.lower()
    return any(marker in low for marker in NO_FREE_SLOT)


def lock_wait_expired(text):
    """A table lock was not granted in time: lock_timeout in a session (the row counts), or pg_dump's
    --lock-wait-timeout, which it applies as a statement_timeout on its LOCK TABLE statements."""
    return "due to lock timeout" in text or ("due to statement timeout" in text and "LOCK TABLE" in text)


def first_error_line(text):
    """The line of a tool's stderr that says what went wrong (its first ERROR/FATAL line), for messages."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "error" in line.lower() or "fatal" in line.lower():
            return line[:300]
    return lines[0][:300] if lines else text[:300]
