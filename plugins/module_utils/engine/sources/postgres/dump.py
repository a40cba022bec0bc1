"""The backup side of the kind: PostgresSource streams pg_dump's custom-format archive (behind the globals
bundle header when globals are taken) into a set. Row counts in the manifest are exact and come from the
snapshot pg_dump used: a REPEATABLE READ transaction in a psql session (SnapshotSession) exports its snapshot
(pg_export_snapshot), pg_dump runs with --snapshot, and the counts are taken in that same transaction while
pg_dump streams, once pg_dump has written its first bytes (and so holds its table locks).
"""

import contextlib
import hashlib
import json
import re
import subprocess
import tempfile

from ...core.errors import ConfigError, SourceError, ToolError
from ...core.process import ProcessReader, missing_tool_error, run_tool
from ...core.streams import CHUNK, report_spliced, splice_fd
from ..protocol import Source
from .archive import ARCHIVE_MAGIC, KIND, bundle_header
from .connection import PostgresError, first_error_line, lock_wait_expired, tool_major
from .queries import REWRITTEN_REASON, REWRITTEN_SQL, ROW_COUNTS_SQL, SERVER_SQL


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
                code, first_error_line(self._stderr_text()) or "no error output"))

    def close(self):
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout, self._stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.close()


class PostgresSource(Source):
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
