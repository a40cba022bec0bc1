"""PostgreSQL: pg_dump (custom format) streamed into a set, and pg_restore into a new database, an existing
one (clean, in one transaction) or a side database swapped in by name after verification.

Everything talks to the server through libpq tools (psql, pg_dump, pg_dumpall, pg_restore) run as argument
lists. Connection options that are unset are simply not passed, so libpq's environment (PGHOST, PGPORT,
PGUSER, PGPASSFILE, PGSSLMODE...) applies exactly as it does for psql. A password given as an option reaches
the tools only as PGPASSWORD in the child's environment: never argv, never the manifest.

Data object: the pg_dump custom-format archive exactly as pg_dump wrote it (``data.pgdump``), so
``zstd -d < data.pgdump.zst | pg_restore ...`` works by hand. With ``globals`` the set must still hold one
data object, so it becomes a bundle (``data.pgbundle``): the line ``LIFEBOAT-PGBUNDLE 1 <n>\\n``, then the
``pg_dumpall --globals-only`` SQL (n bytes), then the archive. Globals are small and taken first, so the
bundle streams both ways and the archive is still one ``tail -c`` away; role password hashes stay inside
the (compressed, optionally encrypted) data object instead of the clear-text manifest. The manifest records
the globals' sha256 (``source.globals_sha256``), so a restore can check them before they touch the cluster
without reading the whole set first.

A set is untrusted input (postgres_script): its globals reach psql only after they were checked to hold
nothing but what pg_dumpall writes, under psql's \\restrict; with jobs > 1, pg_restore's script of the
archive reaches psql only line by line in shapes pg_restore writes. With jobs 1 the archive goes to
pg_restore alone, which sends SQL to the server and has no meta-commands.

Row counts in the manifest are exact and come from the snapshot pg_dump used: a REPEATABLE READ transaction
in a psql session exports its snapshot (pg_export_snapshot), pg_dump runs with --snapshot, and the counts
are taken in that same transaction while pg_dump streams.
"""

import contextlib
import hashlib
import json
import os
import re
import secrets
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

from ...core.errors import ConfigError, IntegrityError, LifeboatError, RestoreError, SourceError, ToolError
from .load import ParallelCopyLoad
from .script import check_globals, globals_input, new_key, require_restrict
from ...core.process import ProcessReader, missing_tool_error, run_tool
from ...pipeline.restore import find_set, open_set, set_result
from ...core.streams import CHUNK, iter_chunks, report_spliced, splice_fd, write_all

KIND = "postgres"
BUNDLE_MAGIC = b"LIFEBOAT-PGBUNDLE"
ARCHIVE_MAGIC = b"PGDMP"
MAX_GLOBALS = 64 * 1024 * 1024
SSL_MODES = ("allow", "disable", "prefer", "require", "verify-ca", "verify-full")
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

# Schemas that hold users' tables: not information_schema, and no name starting pg_ (reserved for the system:
# pg_catalog, pg_toast, pg_temp_N...). `n` is pg_namespace.
USER_SCHEMAS = "n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'"

ROW_COUNTS_SQL = ("""
SELECT coalesce(json_object_agg(n.nspname || '.' || c.relname,
    (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname),
                                         false, true, '')))[1]::text::bigint), '{}'::json)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND """ + USER_SCHEMAS + """
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.deptype = 'e')
""").strip()

# Run after ROW_COUNTS_SQL in the snapshot session: tables whose storage was replaced after the snapshot (ALTER
# TABLE that rewrites, TRUNCATE, VACUUM FULL, CLUSTER), with every ancestor whose count(*) takes in theirs. Such a
# change waits for pg_dump's lock, so the dump holds the rows as of the snapshot; but a count that ran after it
# read the new storage through the old snapshot and may have found none. pg_class as the snapshot saw it against
# pg_relation_filenode(), which reads the current catalog.
REWRITTEN_SQL = ("""
WITH RECURSIVE moved(oid) AS (
    SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND """ + USER_SCHEMAS + """
      AND c.relfilenode IS DISTINCT FROM pg_relation_filenode(c.oid)
  UNION
    SELECT i.inhparent FROM pg_inherits i JOIN moved m ON i.inhrelid = m.oid)
SELECT coalesce(json_agg(n.nspname || '.' || c.relname ORDER BY n.nspname, c.relname), '[]'::json)
FROM moved m JOIN pg_class c ON c.oid = m.oid JOIN pg_namespace n ON n.oid = c.relnamespace
""").strip()
REWRITTEN_REASON = ("its storage, or a partition's or child table's, was replaced by another session (ALTER TABLE, "
                    "TRUNCATE, VACUUM FULL or CLUSTER) while the dump ran; a count in the dump's snapshot reads the "
                    "new storage and can find no rows, so none is recorded. The dump holds the rows as of the "
                    "snapshot")

# Appended to ROW_COUNTS_SQL after a parallel load: count only what the COPY tags cannot tell (a parent's
# count(*) includes its children's rows) and the tables the load did not report (their names go in %s).
COUNT_ONLY_PARENTS_AND = """
  AND (c.relkind = 'p' OR EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid)
       OR NOT (n.nspname || '.' || c.relname) = ANY (ARRAY[%s]::text[]))"""

# ANALYZE of every table and materialized view outside the system schemas, one by one in one session. A bare
# ANALYZE also walks the catalogs, which a restore did not change, and for a non-superuser it logs a WARNING on
# the server for each shared catalog it has to skip (about fifty a restore). Partitions are covered by their
# parent, which recurses into them; foreign tables are left out, as a bare ANALYZE leaves them.
ANALYZE_USER_TABLES_SQL = ("""
DO $lifeboat$
DECLARE
    relation text;
BEGIN
    FOR relation IN
        SELECT format('%I.%I', n.nspname, c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'm', 'p') AND NOT c.relispartition AND """ + USER_SCHEMAS + """
        ORDER BY 1
    LOOP
        EXECUTE 'ANALYZE ' || relation;
    END LOOP;
END
$lifeboat$
""").strip()

SERVER_SQL = """
SELECT json_build_object('server_version', current_setting('server_version'),
                         'server_version_num', current_setting('server_version_num')::int,
                         'user', current_user, 'database', current_database(),
                         'encoding', pg_encoding_to_char(d.encoding), 'collate', d.datcollate, 'ctype', d.datctype)
FROM pg_database d WHERE d.datname = current_database()
""".strip()


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
        return cls(**{key: options.get(key) for key in (
            "login_host", "login_port", "login_user", "login_password", "login_unix_socket", "ssl_mode", "ca_cert",
            "ssl_cert", "ssl_key", "connect_params", "pg_bin_dir", "maintenance_db")})

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
                             % (target, who, _first_line(text)))
    if any(p in low for p in UNREACHABLE) and ("connect" in low or "socket" in low):
        return PostgresError("cannot reach PostgreSQL at %s (%s): is the server running and listening there? "
                             "check login_host, login_port and login_unix_socket (or PGHOST / PGPORT)"
                             % (target, _first_line(text)))
    if "permission denied" in low or "must be superuser" in low or "must be owner" in low:
        return PostgresError("PostgreSQL at %s refused to %s for %s: %s; grant the privilege or use another "
                             "login_user" % (target, doing, who, _first_line(text)))
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


def _first_line(text):
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "error" in line.lower() or "fatal" in line.lower():
            return line[:300]
    return lines[0][:300] if lines else text[:300]


# ---------------------------------------------------------------- bundle framing

def bundle_header(globals_sql):
    return b"%s 1 %d\n" % (BUNDLE_MAGIC, len(globals_sql))


class ArchiveReader(object):
    """Reads a decoded set: takes off the bundle header and globals (if any) and yields the archive bytes.
    `globals_sql` is known right after construction, before the archive is consumed."""

    def __init__(self, raw, where="the set"):
        self._raw = raw
        self._buffer = b""
        self.globals_sql = None
        self._fill(len(BUNDLE_MAGIC) + 32)
        if self._buffer.startswith(ARCHIVE_MAGIC):
            return
        if not self._buffer.startswith(BUNDLE_MAGIC):
            self._drain()
            raise IntegrityError("%s is not a pg_dump custom archive (it starts with %r, not PGDMP): wrong job or "
                                 "damaged data; restore another set" % (where, self._buffer[:16]))
        line_end = self._buffer.find(b"\n")
        match = re.match(br"^LIFEBOAT-PGBUNDLE 1 (\d+)$", self._buffer[:line_end]) if line_end > 0 else None
        if not match or int(match.group(1)) > MAX_GLOBALS:
            self._drain()
            raise IntegrityError("%s has a damaged bundle header; restore another set" % where)
        size = int(match.group(1))
        self._buffer = self._buffer[line_end + 1:]
        self._fill(size)
        if len(self._buffer) < size:
            self._drain()
            raise IntegrityError("%s ends inside its globals: the artifact is truncated; restore another set" % where)
        self.globals_sql, self._buffer = self._buffer[:size], self._buffer[size:]
        self._fill(len(ARCHIVE_MAGIC))
        if not self._buffer.startswith(ARCHIVE_MAGIC):
            self._drain()
            raise IntegrityError("%s holds no pg_dump archive after its globals; restore another set" % where)

    def _fill(self, size):
        while len(self._buffer) < size:
            chunk = self._raw.read(CHUNK)
            if not chunk:
                return
            self._buffer += chunk

    def _drain(self):
        """Read to the end so the sha256 check runs: a damaged artifact reports 'sha256 mismatch' first."""
        for _chunk in iter_chunks(self._raw):
            pass

    def read(self, size=CHUNK):
        if self._buffer:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
            return data
        return self._raw.read(size)

    def splice_fd(self):
        return None if self._buffer else splice_fd(self._raw)

    def spliced(self, count):
        report_spliced(self._raw, count)


class _ConcatReader(object):
    def __init__(self, head, tail):
        self._head = head
        self._tail = tail

    def read(self, size=CHUNK):
        if self._head:
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._tail.read(size)

    def splice_fd(self):
        return None if self._head else splice_fd(self._tail)

    def spliced(self, count):
        report_spliced(self._tail, count)


@contextlib.contextmanager
def damage_reported_first(archive):
    """When a tool reading `archive` fails, read the rest of the set: a damaged artifact then reports its
    sha256 mismatch (raised at the end of the set) rather than the tool's symptom of it."""
    try:
        yield
    except IntegrityError:
        raise
    except LifeboatError:
        for _chunk in iter_chunks(archive):
            pass
        raise


def list_archive(connection, archive, where):
    """`pg_restore --list` of the archive being read."""
    with damage_reported_first(archive):
        with ProcessReader(connection.list_argv(), "pg_restore --list of %s" % where, stdin=archive) as proc:
            return b"".join(iter_chunks(proc)).decode("utf-8", "replace")


class _HeadStager(object):
    """Passes the archive through and writes each chunk to `handle` (unbuffered) before handing it on, until
    `stop()`: the file then holds at least what the next stage has read. pg_restore reads an archive's
    whole table of contents before it writes anything, so once its output has begun the head staged so
    far is enough for the schema steps (pre-data, post-data), which need no data blocks."""

    def __init__(self, reader, handle):
        self._reader = reader
        self._handle = handle
        self._staging = True

    def stop(self):
        self._staging = False

    def read(self, size=CHUNK):
        data = self._reader.read(size)
        if self._staging:
            write_all(self._handle, data)
        return data

    def splice_fd(self):
        return None if self._staging else splice_fd(self._reader)

    def spliced(self, count):
        report_spliced(self._reader, count)


# ---------------------------------------------------------------- backup source

class SnapshotSession(object):
    """A psql session holding a REPEATABLE READ transaction whose snapshot pg_dump imports."""

    def __init__(self, connection, database, lock_timeout=None):
        self.connection = connection
        self.database = database
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(connection.psql_argv(database), stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=self._stderr, env=connection.env(),
                                          close_fds=True)
        except FileNotFoundError:
            self._stderr.close()
            raise missing_tool_error(connection.tool("psql"), "the PostgreSQL snapshot session")
        # lock_timeout: the row counts wait for table locks no longer than pg_dump does
        self.snapshot = self._ask("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\n%sSELECT pg_export_snapshot();"
                                  % ("SET LOCAL lock_timeout = '%ds';\n" % lock_timeout if lock_timeout else ""),
                                  "export a snapshot")

    def _send(self, sql):
        try:
            self._proc.stdin.write(sql.encode("utf-8") + b"\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # psql died; the read below reports why

    def _ask(self, sql, doing):
        self._send(sql)
        return self._answer(doing)

    def _answer(self, doing):
        line = self._proc.stdout.readline()
        if not line:
            self._proc.wait()
            raise self.connection.explain(self._stderr_text(), self.database, doing)
        return line.decode("utf-8", "replace").strip()

    def _stderr_text(self):
        try:
            self._stderr.seek(0)
            return self._stderr.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def start_counts(self):
        """Counts run in the exporting transaction (its snapshot) while pg_dump streams; read with read_counts().

        Sent only once pg_dump has written its first bytes: pg_dump locks every table before it writes anything,
        so the counts never hold a lock pg_dump still has to take. Sent earlier, a migration asking for a table
        between the two would queue behind the counts and pg_dump behind the migration, while the counts'
        transaction waits for pg_dump: a deadlock the server cannot see, as one side of it is lifeboat."""
        self._send(ROW_COUNTS_SQL + ";")

    def read_counts(self):
        """({'schema.table': rows}, {'schema.table': why it is left out}) once the counts have run."""
        try:
            text = self._answer("count rows")
        except PostgresError:
            gone = re.search(r'relation "([^"]+)" does not exist', self._stderr_text())
            if gone:
                raise PostgresError(
                    "table %s of database %s was dropped or renamed by another session while the dump ran, so its "
                    "rows could not be counted in the dump's snapshot and the set was not kept: run the backup again "
                    "(or set verify: false to skip the counts)" % (gone.group(1), self.database))
            raise
        try:
            counts = {key: int(value) for key, value in sorted(json.loads(text).items())}
        except (ValueError, AttributeError, TypeError):
            raise PostgresError("unexpected row count answer from psql: %r" % text[:200])
        text = self._ask(REWRITTEN_SQL + ";", "look for tables rewritten while the dump ran")
        try:
            rewritten = json.loads(text)
        except ValueError:
            raise PostgresError("unexpected answer from psql: %r" % text[:200])
        skipped = {name: REWRITTEN_REASON for name in rewritten if name in counts}
        return {key: value for key, value in counts.items() if key not in skipped}, skipped

    def commit(self):
        self._send("COMMIT;")
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        code = self._proc.wait()
        if code != 0:
            raise PostgresError("the snapshot session (psql) ended with status %s: %s" % (
                code, _first_line(self._stderr_text()) or "no error output"))

    def close(self):
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout, self._stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.close()


class PostgresSource(object):
    kind = KIND

    def __init__(self, connection, database, include_globals=False, verify=True, role_passwords=True,
                 lock_wait_timeout=None):
        if not database:
            raise ConfigError("database is required: the name of the database to dump")
        if lock_wait_timeout is not None and (isinstance(lock_wait_timeout, bool) or not isinstance(
                lock_wait_timeout, int) or lock_wait_timeout < 1):
            raise ConfigError("lock_wait_timeout must be a whole number of seconds, 1 or more, not %r"
                              % (lock_wait_timeout,))
        self.lock_wait_timeout = lock_wait_timeout
        self.connection = connection
        self.database = database
        self.include_globals = include_globals
        self.role_passwords = role_passwords
        self.verify = verify
        self.extension = "pgbundle" if include_globals else "pgdump"
        self._server = None
        self._tools = {}
        self._verification = {}
        self._globals_size = None
        self._globals_sha256 = None

    def check(self):
        """Reach the server, log in, find the database, and make sure pg_dump can dump that server."""
        for name in ("psql", "pg_dump") + (("pg_dumpall",) if self.include_globals else ()):
            self._tools[name] = self.connection.tool_version(name)
        self._server = self.connection.query_json(SERVER_SQL, self.database, "connect")
        server_major = self._server["server_version_num"] // 10000
        dump_major = tool_major(self._tools["pg_dump"])
        if dump_major is not None and server_major >= 10 and dump_major < server_major:
            raise SourceError("%s cannot dump PostgreSQL %s at %s: install pg_dump %d or newer (Debian: "
                              "postgresql-client-%d) and point pg_bin_dir at it" % (
                                  self._tools["pg_dump"], self._server["server_version"], self.connection.target(),
                                  server_major, server_major))

    def describe(self):
        description = self.connection.describe(self.database)
        description["format"] = "bundle" if self.include_globals else "custom"
        if self._server:
            for key in ("server_version", "encoding", "collate", "ctype"):
                description[key] = self._server[key]
            description["user"] = self._server["user"]
        if self._globals_size is not None:
            description["globals_bytes"] = self._globals_size
            description["globals_sha256"] = self._globals_sha256
        return description

    def tools(self):
        tools = dict(self._tools)
        if self._server:
            tools["postgresql_server"] = self._server["server_version"]
        return tools

    def verification(self):
        return dict(self._verification)

    def _globals(self):
        try:
            return run_tool(self.connection.globals_argv(self.role_passwords), "pg_dumpall --globals-only",
                            env=self.connection.env(), timeout=600).encode("utf-8")
        except ToolError as exc:
            if "not installed" in exc.msg:
                raise
            error = self.connection.explain(exc.msg, self.connection.maintenance_db, "dump the globals (roles, "
                                            "tablespaces)")
            if "pg_authid" in exc.msg:
                error = PostgresError("%s; reading role passwords needs a superuser: log in as one, or set "
                                      "globals_role_passwords: false" % error.msg)
            raise error

    @contextlib.contextmanager
    def open(self):
        if self._server is None:
            self.check()
        head = b""
        if self.include_globals:
            globals_sql = self._globals()
            self._globals_size = len(globals_sql)
            self._globals_sha256 = hashlib.sha256(globals_sql).hexdigest()
            head = bundle_header(globals_sql) + globals_sql
        session = SnapshotSession(self.connection, self.database, self.lock_wait_timeout)
        try:
            dump = ProcessReader(self.connection.dump_argv(self.database, session.snapshot, self.lock_wait_timeout),
                                 "pg_dump of database %s" % self.database, env=self.connection.env(), buffered=False)
            with dump:
                archive = _CheckedArchive(dump, self.database, session.start_counts if self.verify else None)
                try:
                    yield _ConcatReader(head, archive)
                except ToolError as exc:
                    if lock_wait_expired(exc.msg):
                        raise self.connection.explain(exc.msg, self.database, "dump database %s" % self.database)
                    raise
            # Only reached when the whole stream was consumed and pg_dump exited 0.
            if dump.returncode is None:
                raise PostgresError("pg_dump output of %s was not read to its end" % self.database)
            if self.verify:
                counts, skipped = session.read_counts()
                self._verification = {"row_counts": counts,
                                      "row_counts_method": "exact count(*) in the snapshot pg_dump used",
                                      "snapshot": session.snapshot}
                if skipped:
                    self._verification["row_counts_skipped"] = skipped
            session.commit()
        finally:
            session.close()


class _CheckedArchive(object):
    """pg_dump's stdout: the first bytes must be a custom archive, and `on_start` is called once they have come
    (pg_dump has locked every table by then); exit status is checked by ProcessReader."""

    def __init__(self, reader, database, on_start=None):
        self._reader = reader
        self._database = database
        self._on_start = on_start
        self._first = True

    def read(self, size=CHUNK):
        data = self._reader.read(size)
        if self._first:
            self._first = False
            while len(data) < len(ARCHIVE_MAGIC):
                more = self._reader.read(size)
                if not more:
                    break
                data += more
            if not data.startswith(ARCHIVE_MAGIC):
                raise ToolError("pg_dump of %s did not write a custom-format archive (it %s)" % (
                    self._database, "starts with %r" % data[:16] if data else "wrote nothing"))
            if self._on_start is not None:
                self._on_start()
        return data

    def splice_fd(self):
        return None if self._first else splice_fd(self._reader)


# ---------------------------------------------------------------- TOC selection (tables / schemas)

TOC_LINE = re.compile(r"^(\d+);\s+(\d+)\s+(\d+)\s+(.*)$")
DEPENDS = re.compile(r"^;\s+depends on:\s*(.*)$")
# Descriptions of TOC entries that can contain spaces (longest first).
DESCRIPTIONS = sorted([
    "TABLE DATA", "SEQUENCE OWNED BY", "SEQUENCE SET", "FK CONSTRAINT", "CHECK CONSTRAINT", "ROW SECURITY",
    "DEFAULT ACL", "MATERIALIZED VIEW DATA", "MATERIALIZED VIEW", "LARGE OBJECT", "BLOBS", "BLOB", "TEXT SEARCH",
    "FOREIGN TABLE", "EVENT TRIGGER", "FOREIGN DATA WRAPPER", "FOREIGN SERVER", "USER MAPPING", "INDEX ATTACH",
    "TABLE ATTACH", "ACCESS METHOD", "OPERATOR CLASS", "OPERATOR FAMILY", "SHELL TYPE", "PROCEDURAL LANGUAGE",
    "PUBLICATION TABLE", "PUBLICATION TABLES IN SCHEMA", "STATISTICS DATA",
], key=len, reverse=True)
RELATION_KINDS = ("TABLE", "SEQUENCE", "VIEW", "MATERIALIZED VIEW", "FOREIGN TABLE", "INDEX", "CONSTRAINT")


class TocEntry(object):
    __slots__ = ("dump_id", "line", "desc", "schema", "tag", "deps")

    def __init__(self, dump_id, line, desc, schema, tag):
        self.dump_id = dump_id
        self.line = line
        self.desc = desc
        self.schema = schema
        self.tag = tag
        self.deps = []

    @property
    def name(self):
        """The object's own name (for CONSTRAINT/TRIGGER/DEFAULT the tag starts with the table name)."""
        return self.tag.split(" ")[0] if self.tag else ""


def parse_toc(text):
    """Entries of `pg_restore --list --verbose` output, in archive order, with their dependencies."""
    entries = []
    for raw in text.splitlines():
        match = TOC_LINE.match(raw)
        if match:
            rest = match.group(4)
            desc = next((d for d in DESCRIPTIONS if rest.startswith(d + " ")), rest.split(" ")[0])
            remainder = rest[len(desc):].strip().split(" ")
            schema = remainder[0] if remainder else "-"
            tag = " ".join(remainder[1:-1]) if len(remainder) > 2 else (remainder[1] if len(remainder) > 1 else "")
            entries.append(TocEntry(int(match.group(1)), raw, desc, schema, tag))
            continue
        match = DEPENDS.match(raw)
        if match and entries:
            entries[-1].deps.extend(int(item) for item in match.group(1).split())
    return entries


def split_table(spec):
    """'schema.table' -> (schema, table); 'table' -> (None, table). Quotes are taken off."""
    spec = spec.strip()
    match = re.match(r'^(?:"((?:[^"]|"")+)"|([^."]+))\.(?:"((?:[^"]|"")+)"|([^"]+))$', spec)
    if match:
        schema = (match.group(1) or "").replace('""', '"') or match.group(2)
        table = (match.group(3) or "").replace('""', '"') or match.group(4)
        return schema, table
    if spec.startswith('"') and spec.endswith('"') and len(spec) > 1:
        return None, spec[1:-1].replace('""', '"')
    return None, spec


def select_entries(entries, tables=(), schemas=(), include_parents=True):
    """TOC ids to restore for the selected tables and schemas, plus what depends on them (data, indexes,
    constraints, triggers, owned sequences, defaults, comments, grants). Entries that also depend on an
    unselected table (e.g. a foreign key to it) are left out. With include_parents (a new database), the
    schemas and other non-relation objects the selection depends on are added too.
    Returns (ids, tables_selected as 'schema.table')."""
    by_id = {entry.dump_id: entry for entry in entries}
    wanted_tables = [split_table(spec) for spec in tables or ()]
    wanted_schemas = set(schemas or ())
    roots = set()
    table_roots = set()
    missing = []
    for schema, table in wanted_tables:
        found = [e for e in entries if e.desc in ("TABLE", "FOREIGN TABLE", "MATERIALIZED VIEW", "VIEW")
                 and e.tag == table and (schema is None or e.schema == schema)]
        if not found:
            missing.append(table if schema is None else "%s.%s" % (schema, table))
        roots.update(e.dump_id for e in found)
        table_roots.update(e.dump_id for e in found)
    for schema in wanted_schemas:
        found = [e for e in entries if e.schema == schema or (e.desc == "SCHEMA" and e.tag == schema)]
        if not found:
            missing.append("schema %s" % schema)
        roots.update(e.dump_id for e in found)
    if missing:
        raise ConfigError("not in this backup: %s; check tables / schemas (use schema.table for a table outside "
                          "the search path)" % ", ".join(sorted(missing)))
    selected = set(roots)
    changed = True
    while changed:
        changed = False
        for entry in entries:
            if entry.dump_id in selected or not entry.deps:
                continue
            if not any(dep in selected for dep in entry.deps):
                continue
            blocked = any(dep not in selected and dep in by_id and by_id[dep].desc in RELATION_KINDS + (
                "FK CONSTRAINT", "TABLE DATA") for dep in entry.deps)
            if blocked:
                continue
            selected.add(entry.dump_id)
            changed = True
    pruned = True
    while pruned:  # e.g. a foreign key of a selected schema's table to a table outside the selection
        pruned = False
        for dump_id in sorted(selected - table_roots):
            entry = by_id[dump_id]
            if any(dep not in selected and dep in by_id and by_id[dep].desc in RELATION_KINDS + (
                    "FK CONSTRAINT", "TABLE DATA") for dep in entry.deps):
                selected.discard(dump_id)
                pruned = True
    if include_parents:
        todo = list(selected)
        while todo:
            entry = by_id.get(todo.pop())
            for dep in entry.deps if entry else ():
                parent = by_id.get(dep)
                if parent and dep not in selected and parent.desc not in RELATION_KINDS + ("TABLE DATA",):
                    selected.add(dep)
                    todo.append(dep)
    chosen = sorted("%s.%s" % (by_id[i].schema, by_id[i].tag) for i in selected
                    if by_id[i].desc == "TABLE")
    return [e.dump_id for e in entries if e.dump_id in selected], chosen


def list_file_text(entries, ids):
    keep = set(ids)
    return "".join(entry.line + "\n" for entry in entries if entry.dump_id in keep)


# ---------------------------------------------------------------- restore

def side_name(database, label):
    suffix = "_lb%s_%s" % (label, secrets.token_hex(3))
    base = database.encode("utf-8")[:MAX_IDENTIFIER - len(suffix)].decode("utf-8", "ignore")
    return base + suffix


def create_database_sql(database, encoding=None, locale_c=False):
    sql = "CREATE DATABASE %s TEMPLATE template0" % quote_ident(database)
    if encoding:
        sql += " ENCODING %s" % quote_literal(encoding)
    if locale_c:
        sql += " LOCALE 'C'"
    return sql


class PostgresRestore(object):
    """One restore run. Modes: create (database missing), clean (existing, one transaction),
    safe_swap (side database, verified, then renamed in one transaction)."""

    def __init__(self, repository, connection, job, database, backup="latest", before=None, identity_file=None,
                 clean=False, safe_swap=False, tables=None, schemas=None, jobs=1, tmp_dir=None, keep_previous=True,
                 terminate_connections=False, no_owner=False, restore_globals=False, verify=True, analyze=True):
        if not database:
            raise ConfigError("database is required: the database to restore into")
        if jobs is None or int(jobs) < 1:
            raise ConfigError("jobs must be 1 or more, not %r" % (jobs,))
        if safe_swap and clean:
            raise ConfigError("choose clean: true or safe_swap: true, not both")
        if safe_swap and (tables or schemas):
            raise ConfigError("safe_swap replaces the whole database, so it cannot restore only some tables or "
                              "schemas: use clean: true with tables/schemas, or drop tables/schemas")
        if tmp_dir and not os.path.isdir(tmp_dir):
            raise ConfigError("tmp_dir %s does not exist" % tmp_dir)
        self.repository = repository
        self.connection = connection
        self.job = job
        self.database = database
        self.backup = backup or "latest"
        self.before = before
        self.identity_file = identity_file
        self.clean = clean
        self.safe_swap = safe_swap
        self.tables = list(tables or [])
        self.schemas = list(schemas or [])
        self.jobs = int(jobs)
        self.tmp_dir = tmp_dir
        self.keep_previous = keep_previous
        self.terminate_connections = terminate_connections
        self.no_owner = no_owner
        self.restore_globals = restore_globals
        self.verify = verify
        self.analyze = analyze
        self.backup_set = None
        self.created = []  # databases this run created (dropped again on failure)

    # ---- helpers

    def _open(self):
        return open_set(self.repository, self.job, self.backup_set, self.identity_file)

    def _where(self):
        return "set %s of job %s" % (self.backup_set.set_id, self.job)

    def _verify_stored(self):
        """Read the whole set once (sha256, decryption, decompression) without touching any database."""
        with self._open() as reader:
            archive = ArchiveReader(reader, self._where())
            for _chunk in iter_chunks(archive):
                pass
            return archive.globals_sql

    def _toc(self):
        with self._open() as reader:
            text = list_archive(self.connection, ArchiveReader(reader, self._where()), self._where())
        return parse_toc(text)

    def _create(self, name):
        source = self.backup_set.manifest.get("source") or {}
        encoding = source.get("encoding")
        try:
            self.connection.query(create_database_sql(name, encoding), doing="create database %s" % name)
        except PostgresError as exc:
            if "does not match locale" not in exc.msg and "incompatible with the locale" not in exc.msg:
                raise
            self.connection.query(create_database_sql(name, encoding, locale_c=True),
                                  doing="create database %s" % name)
        self.created.append(name)

    def _drop(self, name):
        with contextlib.suppress(LifeboatError):
            self.connection.query("DROP DATABASE IF EXISTS %s" % quote_ident(name), doing="drop database %s" % name)

    def _checked_globals(self, globals_sql):
        if not globals_sql:
            raise ConfigError("%s has no globals (it was made without globals: true); set restore_globals: false"
                              % self._where())
        return check_globals(globals_sql, self._where())

    def _read_globals(self):
        """The set's globals, checked against the sha256 its manifest records for them, before anything of the
        set touches the cluster. A set made before that digest was recorded is read whole first (its sha256
        checked), as clean mode does. Returns the globals SQL."""
        recorded = (self.backup_set.manifest.get("source") or {}).get("globals_sha256")
        if recorded is None:
            return self._verify_stored()
        if not (isinstance(recorded, str) and re.match(r"^[0-9a-f]{64}$", recorded)):
            raise IntegrityError("the manifest of %s has a malformed globals_sha256 (%r): the manifest is damaged; "
                                 "nothing was changed, restore another set" % (self._where(), recorded))
        with self._open() as reader:
            globals_sql = ArchiveReader(reader, self._where()).globals_sql
        actual = hashlib.sha256(globals_sql or b"").hexdigest()
        if actual != recorded:
            raise IntegrityError("sha256 mismatch for the globals of %s: they do not hash to the sha256 the manifest "
                                 "records for them; the artifact is corrupted: nothing was changed, restore another "
                                 "set (backup: <id>)" % self._where())
        return globals_sql

    def _apply_globals(self, globals_sql):
        text = self._checked_globals(globals_sql)
        try:
            proc = subprocess.run(self.connection.psql_argv(self.connection.maintenance_db, "-v", "ON_ERROR_STOP=0",
                                                            "-f", "-"),
                                  input=globals_input(text, new_key()), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=self.connection.env(), check=False, timeout=600)
        except FileNotFoundError:
            raise missing_tool_error(self.connection.tool("psql"), "restoring globals")
        errors = [line for line in proc.stderr.decode("utf-8", "replace").splitlines()
                  if ("ERROR:" in line and "already exists" not in line) or "backslash commands are restricted" in line]
        if proc.returncode != 0 and not errors:
            raise self.connection.explain(proc.stderr.decode("utf-8", "replace"), self.connection.maintenance_db,
                                          "restore globals")
        if errors:
            raise RestoreError("restoring the globals (roles, tablespaces) of %s failed: %s; no database was "
                               "changed. Log in as a superuser, or set restore_globals: false"
                               % (self._where(), "; ".join(errors[:5])))
        return {"applied": True, "bytes": len(globals_sql)}

    def _pg_restore(self, database, list_file=None, clean=False):
        """Stream the set into one pg_restore (one transaction) for `database`."""
        argv = self.connection.restore_argv(database, jobs=1, clean=clean, list_file=list_file,
                                            no_owner=self.no_owner)
        purpose = "pg_restore of %s into database %s" % (self._where(), database)
        with self._open() as reader:
            archive = ArchiveReader(reader, self._where())
            with damage_reported_first(archive):
                self._run_restore(ProcessReader(argv, purpose, stdin=archive, env=self.connection.env()), database)
            # pg_restore may stop before the end (a selection): read the rest so the sha256 check runs.
            for _chunk in iter_chunks(archive):
                pass

    def _pg_restore_staged(self, database, list_file, staged, section, jobs=1):
        """pg_restore of one section from the staged archive: pre-data in one transaction (the archive may
        still be arriving, but its table of contents is in), or post-data (indexes, constraints, triggers)
        with `jobs` sessions once the set is verified. Neither needs the data offsets a piped dump lacks."""
        argv = self.connection.restore_argv(database, jobs=jobs, list_file=list_file, no_owner=self.no_owner,
                                            input_file=staged, sections=(section,))
        purpose = "pg_restore --section=%s%s of %s into database %s" % (
            section, " --jobs=%d" % jobs if jobs > 1 else "", self._where(), database)
        self._run_restore(ProcessReader(argv, purpose, env=self.connection.env()), database)

    def _load_parallel(self, database, list_file, staged, handle):
        """The rows through `jobs` sessions (postgres_load). The archive's head is staged on the way; once
        pg_restore's script reaches the data, staging stops and the schema (pre-data) is restored from it."""
        argv = self.connection.script_argv(list_file=list_file, sections=("data",))
        purpose = "pg_restore --section=data of %s (as a script)" % self._where()
        with self._open() as reader:
            archive = _HeadStager(ArchiveReader(reader, self._where()), handle)

            def pre_data():
                archive.stop()
                self._pg_restore_staged(database, list_file, staged, "pre-data")
            load = ParallelCopyLoad(self.connection.psql_argv(database, quiet=False), self.connection.env(), self.jobs,
                                    before_data=pre_data, what="%s into database %s" % (self._where(), database))
            with damage_reported_first(archive):
                with ProcessReader(argv, purpose, stdin=archive, env=self.connection.env()) as script:
                    try:
                        load.run(script)
                    except ToolError as exc:
                        raise self._restore_failure(exc, script.stderr_tail(), database)
                    except RestoreError as exc:
                        if no_free_slot(exc.msg):
                            explained = self.connection.explain(exc.msg, database, "start a parallel load session")
                            raise RestoreError(explained.msg)
                        raise
            for _chunk in iter_chunks(archive):
                pass
        return load.row_counts()

    def _run_restore(self, proc, database):
        with proc:
            try:
                for _chunk in iter_chunks(proc):
                    pass
            except ToolError as exc:
                raise self._restore_failure(exc, proc.stderr_tail(), database)

    def _restore_failure(self, exc, tail, database):
        """A failed pg_restore explained: unreachable server, missing roles, or its own last words."""
        if "not installed" in exc.msg:
            return exc
        if "could not execute query" not in tail and "connection to server" in tail:
            return self.connection.explain(tail, database, "connect for pg_restore")
        hint = ""
        if re.search(r'role "[^"]*" does not exist', tail):
            hint = " (the dump's owners/grantees are missing here: restore_globals: true brings the roles " \
                   "when the set has globals, or no_owner: true skips ownership and grants)"
        return RestoreError("pg_restore into database %s failed: %s%s" % (database, tail[-1500:] or exc.msg, hint))

    def _staging_file(self):
        """A private (0600) file for the archive's head (its table of contents), read by the pre-data and
        post-data steps."""
        fd, path = tempfile.mkstemp(prefix="lifeboat-pgrestore-", suffix=".pgdump", dir=self.tmp_dir)
        return path, os.fdopen(fd, "wb", buffering=0)

    def _restore_data(self, target, list_file, mode, check=None):
        """pg_restore into `target`: streamed in one transaction (jobs 1), or, with jobs, the rows loaded by
        `jobs` sessions, then post-data with `jobs` sessions from the staged head of the archive.
        `check(loaded)` (row counts) runs once the data is in; with jobs, beside the index builds and given the
        rows each COPY reported. Returns its result."""
        check = check or (lambda loaded=None: None)
        if self.jobs <= 1:
            self._pg_restore(target, list_file=list_file, clean=(mode == "clean"))
            return check()
        staged, handle = self._staging_file()
        try:
            try:
                with handle:
                    loaded = self._load_parallel(target, list_file, staged, handle)
            except OSError as exc:
                raise RestoreError("staging the head of the archive of %s in %s failed (%s); set tmp_dir to a "
                                   "writable directory with room for the table of contents, or jobs: 1" % (
                                       self._where(), os.path.dirname(staged), exc.strerror or exc))
            with ThreadPoolExecutor(max_workers=1) as pool:
                checked = pool.submit(check, loaded)
                self._pg_restore_staged(target, list_file, staged, "post-data", jobs=self.jobs)
                return checked.result()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged)

    def _counts(self, database, tables=None, loaded=None):
        """Row counts of the restored tables against the manifest's. `loaded` ({'schema.table': rows} that the
        server reported for each COPY of a parallel load) spares the count(*) scans: only partitioned and
        inheritance parents, whose count(*) includes their children's rows, and tables the load did not see,
        are counted."""
        sql, method = ROW_COUNTS_SQL, "count(*) of every table"
        if loaded is not None:
            sql = ROW_COUNTS_SQL + COUNT_ONLY_PARENTS_AND % ", ".join(quote_literal(name) for name in sorted(loaded))
            method = "rows reported by each COPY of the load (count(*) for partitioned and inheritance parents)"
        counted = self.connection.query_json(sql, database, "count rows in %s" % database) or {}
        counts = dict(loaded or {})
        counts.update((key, int(value)) for key, value in counted.items())
        expected = (self.backup_set.manifest.get("verification") or {}).get("row_counts")
        if expected is None:
            return {"row_counts": counts, "row_counts_checked": False, "row_counts_method": method}
        if tables is not None:
            expected = {key: value for key, value in expected.items() if key in tables}
        mismatches = {key: {"expected": value, "restored": counts.get(key)} for key, value in expected.items()
                      if counts.get(key) != value}
        return {"row_counts": {key: counts.get(key) for key in sorted(expected)}, "row_counts_checked": True,
                "row_counts_method": method,
                "mismatches": mismatches}

    def _analyze(self, database, tables, result):
        """ANALYZE what was restored, so the planner has statistics before the first query (pg_restore leaves
        none, and autovacuum may take minutes to notice a loaded table). It runs after the post-data step, so
        expression indexes get theirs too. The data is in and verified by then: a failure is a warning."""
        if tables is not None and not tables:
            return False
        sql = ANALYZE_USER_TABLES_SQL
        if tables:
            # 'schema.table' as select_entries names them: the schema is up to the first dot
            sql = "ANALYZE " + ", ".join("%s.%s" % tuple(quote_ident(part) for part in name.partition(".")[::2])
                                         for name in tables)
        try:
            self.connection.query(sql, database, doing="analyze database %s" % database)
        except LifeboatError as exc:
            result.setdefault("warnings", []).append(
                "ANALYZE of database %s failed (%s): the data is restored and verified, but the planner has no "
                "statistics until autovacuum analyzes the tables; run ANALYZE there" % (database, exc.msg))
            return False
        return True

    # ---- the run

    def run(self, check_mode=False):
        server, restore_tool = self._look_up()
        result = {"backup": set_result(self.repository, self.job, self.backup_set), "restored_to": self.database,
                  "previous": None}
        if not server["exists"]:
            mode = "create"
        elif self.safe_swap:
            mode = "safe_swap"
        elif self.clean:
            mode = "clean"
        else:
            raise RestoreError("database %s already exists on PostgreSQL at %s and would be overwritten: set "
                               "clean: true (drop and recreate the dumped objects in one transaction) or safe_swap: "
                               "true (restore beside it, verify, then swap names), or restore into another database"
                               % (self.database, self.connection.target()))
        if mode == "clean" and self.jobs > 1:
            raise ConfigError("jobs > 1 cannot restore into the existing database %s in one transaction, so a "
                              "failure could leave it half-restored: use safe_swap: true for a parallel restore "
                              "into an existing database, or jobs: 1" % self.database)
        if self.restore_globals and self.backup_set.manifest.get("source", {}).get("format") != "bundle":
            raise ConfigError("%s has no globals (it was made without globals: true); set restore_globals: false"
                              % self._where())
        result["mode"] = mode
        result["server_version"] = server["server_version"]
        result["pg_restore_version"] = restore_tool
        if check_mode:
            globals_sql = self._verify_stored()
            if self.restore_globals:
                self._checked_globals(globals_sql)
            result["verification"] = {"sha256": "ok"}
            return result

        list_file = None
        target = self.database if mode != "safe_swap" else side_name(self.database, "new")
        try:
            # Nothing of the set touches the cluster before it is verified: clean mode reads the whole set first
            # (the live database is changed in place); the globals (cluster-wide, live) are checked against their
            # own sha256 first. The data of create and safe_swap goes into a database this run created, which is
            # dropped again when the set's sha256 does not match at its end.
            if mode == "clean":
                globals_sql = self._verify_stored()
            elif self.restore_globals:
                globals_sql = self._read_globals()
            if self.restore_globals:
                result["globals"] = self._apply_globals(globals_sql)
            selected_tables = None
            if self.tables or self.schemas:
                entries = self._toc()
                ids, selected_tables = select_entries(entries, self.tables, self.schemas,
                                                      include_parents=(mode == "create"))
                fd, list_file = tempfile.mkstemp(prefix="lifeboat-pgrestore-", suffix=".list", dir=self.tmp_dir)
                with os.fdopen(fd, "w") as handle:
                    handle.write(list_file_text(entries, ids))
                result["tables"] = selected_tables
            if mode in ("create", "safe_swap"):
                self._create(target)

            def check(loaded=None):
                return self._counts(target, selected_tables, loaded) if self.verify else None
            try:
                counts = self._restore_data(target, list_file, mode, check=check)
            except IntegrityError as exc:
                if result.get("globals") and mode != "clean":
                    exc.msg = exc.msg.replace("nothing was changed", "no database was changed") + (
                        "; the set's globals (roles, tablespaces) had been applied before the damage was found, "
                        "after they matched the sha256 the manifest records for them")
                    exc.args = (exc.msg,)
                raise
            except RestoreError as exc:
                exc.msg += {"create": "; the new database %s was dropped again" % target,
                            "clean": "; the restore ran in one transaction, so %s is as it was" % target,
                            "safe_swap": "; the restored copy was dropped and %s was not touched" % self.database}[mode]
                exc.args = (exc.msg,)
                raise
            verification = {"sha256": "ok"}
            if self.verify:
                verification.update(counts)
                if verification.get("mismatches") and mode != "clean":
                    raise IntegrityError("restored copy of %s in database %s has row counts that differ from the "
                                         "manifest: %s; %s" % (
                                             self._where(), target, json.dumps(verification["mismatches"],
                                                                               sort_keys=True),
                                             "the live database was not touched" if mode == "safe_swap"
                                             else "the new database was dropped"))
            result["verification"] = verification
            if self.analyze:
                result["analyzed"] = self._analyze(target, selected_tables, result)
            if mode == "safe_swap":
                result["previous"] = self._swap(target)
            self.created = []
            return result
        finally:
            for name in self.created:
                self._drop(name)
            if list_file:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(list_file)

    def _look_up(self):
        """Find the set, reach the server and check pg_restore side by side (a cold S3 client and a psql login
        take about as long as each other). A missing set is reported first, as when they ran in turn.
        Returns ({'server_version', 'exists'}, pg_restore's version)."""
        sql = "SELECT json_build_object('server_version', current_setting('server_version'), 'exists', EXISTS (" \
              "SELECT 1 FROM pg_database WHERE datname = %s))" % quote_literal(self.database)
        with ThreadPoolExecutor(max_workers=3) as pool:
            located = pool.submit(find_set, self.repository, self.job, KIND, self.backup, self.before)
            restore_tool = pool.submit(self.connection.tool_version, "pg_restore")
            # set text reaches psql for the globals and the parallel load: only a psql that knows \restrict
            psql = pool.submit(self.connection.tool_version, "psql") if (
                self.restore_globals or self.jobs > 1) else None
            try:
                server, failure = self.connection.query_json(sql, doing="connect"), None
            except LifeboatError as exc:
                server, failure = None, exc
            self.backup_set = located.result()
            if failure is not None:
                raise failure
            if psql is not None:
                require_restrict(psql.result(), "restoring globals" if self.restore_globals else
                                 "the parallel load (jobs > 1)")
            return server, restore_tool.result()

    def _swap(self, side):
        """Rename live -> previous and side -> live in one transaction: all or nothing."""
        live = self.database
        previous = side_name(live, "prev")
        owner = self.connection.query(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s" % quote_literal(live),
            doing="look up the owner of %s" % live).strip()
        if owner and owner != self.connection.query("SELECT current_user", doing="connect").strip():
            self.connection.query("ALTER DATABASE %s OWNER TO %s" % (quote_ident(side), quote_ident(owner)),
                                  doing="give the restored copy the owner of %s (%s)" % (live, owner))
        swap_names(self.connection, live, previous, side, self.terminate_connections,
                   "The restored copy was dropped; %s is unchanged" % live, on_swapped=self._swapped)
        if not self.keep_previous:
            self._drop(previous)
            return None
        return previous

    def _swapped(self):
        self.created = []  # the side database is live now


def other_sessions(connection, database):
    text = connection.query("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
                            % quote_literal(database), doing="list sessions")
    return int(text.strip() or 0)


def swap_names(connection, live, live_renamed, incoming, terminate_connections, unchanged, on_swapped=None):
    """ALTER DATABASE live RENAME TO live_renamed and incoming RENAME TO live, in one transaction: all or
    nothing. Other sessions on `live` block a rename: with terminate_connections new connections are refused
    and the sessions ended first, otherwise nothing is renamed. `unchanged` ends the error messages (the state
    the operator finds); `on_swapped()` runs as soon as the names are swapped."""
    sessions = other_sessions(connection, live)
    if sessions and not terminate_connections:
        raise RestoreError("database %s has %d other session(s), so it cannot be renamed: stop the application "
                           "or set terminate_connections: true. %s" % (live, sessions, unchanged))
    if sessions:
        connection.query("ALTER DATABASE %s ALLOW_CONNECTIONS false" % quote_ident(live),
                         doing="block new connections to %s" % live)
    try:
        if sessions:
            connection.query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s "
                             "AND pid <> pg_backend_pid()" % quote_literal(live), doing="end sessions on %s" % live)
        connection.query("BEGIN; ALTER DATABASE %s RENAME TO %s; ALTER DATABASE %s RENAME TO %s; COMMIT;" % (
            quote_ident(live), quote_ident(live_renamed), quote_ident(incoming), quote_ident(live)),
            doing="swap %s with %s" % (live, incoming))
    except LifeboatError as exc:
        if sessions:
            with contextlib.suppress(LifeboatError):
                connection.query("ALTER DATABASE %s ALLOW_CONNECTIONS true" % quote_ident(live))
        raise RestoreError("swapping %s in for %s failed (%s). %s" % (incoming, live, exc.msg, unchanged))
    if on_swapped:
        on_swapped()
    if sessions:
        with contextlib.suppress(LifeboatError):
            connection.query("ALTER DATABASE %s ALLOW_CONNECTIONS true" % quote_ident(live_renamed))


def put_back(connection, database, previous, terminate_connections=False, keep_rejected=False, check_mode=False):
    """Undo a safe_swap restore: `previous` (the database it replaced and kept, <database>_lbprev_<hex>) takes
    the name back in one transaction; the restored database is renamed <database>_lbfailed_<hex> and then
    dropped, unless keep_rejected. Returns {'database', 'previous', 'rejected', 'rejected_dropped', 'changed'}."""
    match = re.match(r"^(.*)_lbprev_[0-9a-f]{6}$", previous or "")
    base = match.group(1) if match else None
    if base is None or not (base == database or (database.startswith(base) and len(previous.encode("utf-8"))
                                                 > MAX_IDENTIFIER - 4)):  # side_name shortened a long name
        raise ConfigError("previous %r is not a database that a safe_swap restore of %s kept (those are named "
                          "%s_lbprev_<hex>, as pg_restore_s3 returns them in `previous`)" % (
                              previous, database, database))
    found = connection.query_json(
        "SELECT json_build_object('live', EXISTS (SELECT 1 FROM pg_database WHERE datname = %s), 'previous', "
        "EXISTS (SELECT 1 FROM pg_database WHERE datname = %s))" % (quote_literal(database), quote_literal(previous)),
        doing="connect")
    if not found["previous"]:
        raise RestoreError("database %s does not exist, so there is nothing to put back (was it put back or "
                           "dropped already?); %s is unchanged" % (previous, database))
    rejected = side_name(database, "failed") if found["live"] else None
    result = {"database": database, "previous": previous, "rejected": rejected, "rejected_dropped": False,
              "changed": True}
    if check_mode:
        return result
    if rejected:
        swap_names(connection, database, rejected, previous, terminate_connections,
                   "Nothing was renamed: %s is still the restored database and %s the one it replaced" % (
                       database, previous))
        if not keep_rejected:
            try:
                connection.query("DROP DATABASE %s" % quote_ident(rejected), doing="drop the rejected restore %s"
                                 % rejected)
                result["rejected_dropped"] = True
            except LifeboatError as exc:  # the put-back itself is done
                result["warnings"] = ["%s is back; dropping the rejected restore %s failed (%s): drop it by hand"
                                      % (database, rejected, exc.msg)]
    else:  # the restored database is gone already: the previous one only takes its name back
        connection.query("ALTER DATABASE %s RENAME TO %s" % (quote_ident(previous), quote_ident(database)),
                         doing="rename %s to %s" % (previous, database))
    return result


# ---------------------------------------------------------------- kind contract

RESTORE_TARGET = "database"


def inspect_set(repository, job, backup_set, identity_file=None, pg_bin_dir=None):
    """Server-less check of a set for backup_verify: the whole artifact is read (sha256 checked), and the
    archive's table of contents must be readable by pg_restore. Returns a small report."""
    connection = Connection(pg_bin_dir=pg_bin_dir)
    where = "set %s of job %s" % (backup_set.set_id, job)
    with open_set(repository, job, backup_set, identity_file) as reader:
        archive = ArchiveReader(reader, where)
        text = list_archive(connection, archive, where)
        for _chunk in iter_chunks(archive):
            pass
    entries = parse_toc(text)
    if not entries:
        raise IntegrityError("pg_restore lists no entries in %s: the archive is damaged; restore another set" % where)
    return {"archive": "ok", "toc_entries": len(entries),
            "tables": sum(1 for entry in entries if entry.desc == "TABLE"),
            "globals_bytes": len(archive.globals_sql) if archive.globals_sql is not None else None}


def source_from_options(options):
    """Kind contract used by the runner: a Source from module option names."""
    return PostgresSource(Connection.from_options(options), options.get("database"),
                          include_globals=options.get("globals", False), verify=options.get("verify", True),
                          role_passwords=options.get("globals_role_passwords", True),
                          lock_wait_timeout=options.get("lock_wait_timeout"))


def restore_from_options(repository, options, check_mode=False):
    """Kind contract used by the runner: restore with module option names; returns the module's result dict."""
    restore = PostgresRestore(
        repository, Connection.from_options(options), options["job"], options.get("database"),
        backup=options.get("backup", "latest"), before=options.get("before"),
        identity_file=(options.get("encryption") or {}).get("age_identity_file"),
        clean=options.get("clean", False), safe_swap=options.get("safe_swap", False), tables=options.get("tables"),
        schemas=options.get("schemas"), jobs=options.get("jobs") or 1, tmp_dir=options.get("tmp_dir"),
        keep_previous=options.get("keep_previous", True),
        terminate_connections=options.get("terminate_connections", False), no_owner=options.get("no_owner", False),
        restore_globals=options.get("restore_globals", False), verify=options.get("verify", True),
        analyze=options.get("analyze", True))
    return restore.run(check_mode=check_mode)
