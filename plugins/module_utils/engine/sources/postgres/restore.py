"""The restore side of the kind: PostgresRestore runs pg_restore into a new database, an existing one (clean,
in one transaction) or a side database swapped in by name after verification, then checks the row counts
against the manifest and analyzes. A set is untrusted input (script.py): nothing of it touches the cluster
before it is verified; its globals reach psql only after they were checked to hold nothing but what pg_dumpall
writes, under psql's \\restrict; with jobs > 1, pg_restore's script of the archive reaches psql only line by line
in shapes pg_restore writes (load.py). With jobs 1 the archive goes to pg_restore alone, which sends SQL to the
server and has no meta-commands.
"""

import contextlib
import hashlib
import json
import os
import re
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

from ...core.errors import ConfigError, IntegrityError, LifeboatError, RestoreError, ToolError
from ...core.process import ProcessReader, missing_tool_error
from ...core.streams import CHUNK, iter_chunks, report_spliced, splice_fd, write_all
from ...pipeline.restore import find_set, open_set, set_result
from .archive import (KIND, ArchiveReader, damage_reported_first, list_archive, list_file_text, parse_toc,
                      select_entries)
from .connection import PostgresError, no_free_slot, quote_ident, quote_literal
from .load import ParallelCopyLoad
from .queries import ANALYZE_USER_TABLES_SQL, COUNT_ONLY_PARENTS_AND, ROW_COUNTS_SQL
from .script import check_globals, globals_input, new_key, require_restrict
from .swap import side_name, swap_names


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
        """The rows through `jobs` sessions (load.py). The archive's head is staged on the way; once
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
