"""SQLite backup side, and the SQLite file helpers the directory kind shares: the format's header and companion
files, a hardened read-only open for untrusted files with ``inspect`` (integrity_check, row counts), the online copy
through the backup API (``copy_snapshot``, WAL-safe, never a file copy), the naming and sweeping of scratch copies
that killed runs left behind, and ``SqliteSource``, which streams a checked snapshot to the pipeline."""

import contextlib
import fcntl
import os
import re
import sqlite3
import stat
import tempfile

from ...core.errors import ConfigError, SourceError
from ..protocol import Source

HEADER = b"SQLite format 3\x00"
COMPANIONS = ("-wal", "-journal", "-shm")


def _quote(name):
    return '"%s"' % name.replace('"', '""')


def file_uri(path, query=""):
    """A SQLite `file:` URI for `path` ('%', '?' and '#' escaped), with an optional query such as mode=ro."""
    escaped = path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    return "file:%s%s" % (escaped, "?" + query if query else "")


def _open_untrusted(path, immutable):
    """A read-only connection hardened as SQLite advises for databases from elsewhere ("Defense against the
    dark arts"): the schema may not call functions that are not innocuous, cell sizes are checked as pages are
    read, no memory map, no writes; defensive mode where Python exposes it (3.12+). Extensions stay disabled
    (Python never enables loading them unless asked)."""
    conn = sqlite3.connect(file_uri(path, "immutable=1" if immutable else "mode=ro"), uri=True)
    try:
        for pragma in ("trusted_schema=OFF", "cell_size_check=ON", "mmap_size=0", "query_only=ON"):
            conn.execute("PRAGMA " + pragma)
        if hasattr(conn, "setconfig") and hasattr(sqlite3, "SQLITE_DBCONFIG_DEFENSIVE"):
            conn.setconfig(sqlite3.SQLITE_DBCONFIG_DEFENSIVE, True)
    except BaseException:
        conn.close()
        raise
    return conn


def inspect(path, immutable=False):
    """integrity_check result and row counts per table of the database at `path`. The file may come from a
    backup set, so it is opened as untrusted and a file SQLite cannot read is a failed check, never an
    exception."""
    try:
        conn = _open_untrusted(path, immutable)
    except sqlite3.Error as exc:
        return {"integrity_check": "not a readable SQLite database (%s)" % exc, "row_counts": {}, "page_size": None}
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        counts = {}
        for table in tables:
            try:
                counts[table] = conn.execute("SELECT count(*) FROM %s" % _quote(table)).fetchone()[0]
            except (sqlite3.Error, ValueError):  # ValueError: a name holding NUL
                counts[table] = None  # e.g. a virtual table whose module is not loaded (or not innocuous) here
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    except sqlite3.Error as exc:  # malformed schema or pages: SQLite stops reading
        return {"integrity_check": "not a readable SQLite database (%s)" % exc, "row_counts": {}, "page_size": None}
    finally:
        conn.close()
    return {"integrity_check": "ok" if problems == ["ok"] else "; ".join(problems[:20]),
            "row_counts": counts, "page_size": page_size}


def check_header(path, what):
    if not os.path.exists(path):
        raise SourceError("SQLite database %s does not exist: check path (the %s)" % (path, what))
    if not os.path.isfile(path):
        raise SourceError("%s is not a regular file: path must name the SQLite database file" % path)
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(HEADER))
    except OSError as exc:
        raise SourceError("cannot read %s: %s; run as a user who may read it (become: true)" % (path, exc.strerror))
    if header != HEADER:
        raise SourceError("%s is not a SQLite database (its first bytes are not 'SQLite format 3'); check path"
                          % path)


def copy_snapshot(path, scratch, busy_timeout, read_only=False, hint=""):
    """Copy the live database at `path` into the private file `scratch` through the backup API: a
    consistent snapshot in WAL and rollback-journal modes. Returns the source's journal mode; raises
    SourceError saying what to do (disk full, lock held too long, damaged file). `hint` is appended to
    the generic failure message (e.g. "or exclude it" for a file inside a snapshotted directory)."""
    try:
        source = sqlite3.connect(file_uri(path, "mode=ro" if read_only else ""), uri=True, timeout=busy_timeout)
        try:
            journal_mode = source.execute("PRAGMA journal_mode").fetchone()[0]
            target = sqlite3.connect(scratch)
            try:
                # a private throwaway copy: no journal and no fsync (a crash just leaves a temp file)
                target.execute("PRAGMA journal_mode=OFF")
                target.execute("PRAGMA synchronous=OFF")
                source.backup(target)
            finally:
                target.close()
        finally:
            source.close()
    except sqlite3.DatabaseError as exc:
        if "disk is full" in str(exc):
            raise SourceError("SQLite backup of %s failed: no space left on device for the scratch copy in "
                              "%s (it needs about the size of the database); free space or set tmp_dir to "
                              "a larger filesystem, then run again" % (path, os.path.dirname(scratch)))
        if "locked" in str(exc) or "busy" in str(exc):
            raise SourceError("SQLite backup of %s failed: %s: another connection held a lock longer than "
                              "busy_timeout (%s s); nothing was written: run again later, or raise "
                              "busy_timeout" % (path, exc, busy_timeout))
        raise SourceError("SQLite backup of %s failed: %s (a locked database: retry later or raise "
                          "busy_timeout; a damaged one: run PRAGMA integrity_check%s)" % (path, exc, hint))
    except OSError as exc:
        raise SourceError("SQLite backup of %s failed writing the scratch copy in %s: %s; set tmp_dir to a "
                          "filesystem with room for the database" % (path, os.path.dirname(scratch), exc))
    return journal_mode


SCRATCH_PREFIX = "lifeboat-sqlite-"
# lifeboat-sqlite-<pid>-<process start, clock ticks since boot>-<mkstemp random>.db[-wal|-journal|-shm]
_SCRATCH_NAME = re.compile(r"^lifeboat-sqlite-([0-9]+)-([0-9]+)-[A-Za-z0-9_]+\.db(-wal|-journal|-shm)?$")


def process_start(pid):
    """Start time of process `pid` (field 22 of /proc/<pid>/stat, clock ticks since boot): with the pid it names
    one process for good, as pids are reused. 0 where /proc cannot say."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return 0


def run_alive(pid, start):
    """Whether the run that named a scratch file <pid>-<start> may still be running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, under another user
    current = process_start(pid)
    return not (start and current and current != start)  # a live pid with another start time is a reused pid


def scratch_prefix():
    return "%s%d-%d-" % (SCRATCH_PREFIX, os.getpid(), process_start(os.getpid()))


def sweep_dead_scratch(directory):
    """Remove the scratch snapshots (and their -wal/-journal/-shm) that killed backups (SIGKILL, OOM, power
    loss) left in `directory`. Only names this module makes are considered, only regular files of this user,
    and only when the run in the name is gone and nobody holds the file's flock (a live run holds it from
    creation to removal). Returns the removed paths."""
    removed = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return removed
    for name in names:
        match = _SCRATCH_NAME.match(name)
        if not match or run_alive(int(match.group(1)), int(match.group(2))):
            continue
        candidate = os.path.join(directory, name)
        try:
            fd = os.open(candidate, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue  # gone meanwhile, a symlink (never ours), or not readable
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # OSError when held: in use, left alone
            os.unlink(candidate)
            removed.append(candidate)
        except OSError:
            continue  # best effort: a later run tries again
        finally:
            os.close(fd)
    return removed


class SqliteSource(Source):
    kind = "sqlite"
    extension = "db"

    def __init__(self, path, tmp_dir=None, verify=True, busy_timeout=30.0):
        self.path = os.path.abspath(os.path.expanduser(path))
        self.tmp_dir = tmp_dir
        self.verify = verify
        self.busy_timeout = busy_timeout
        self._verification = {}
        self._journal_mode = None

    def check(self):
        check_header(self.path, "database to back up")
        if self.tmp_dir and not os.path.isdir(self.tmp_dir):
            raise ConfigError("tmp_dir %s does not exist" % self.tmp_dir)

    def describe(self):
        description = {"path": self.path}
        if self._journal_mode:
            description["journal_mode"] = self._journal_mode
        return description

    def tools(self):
        return {"sqlite": sqlite3.sqlite_version}

    def verification(self):
        return dict(self._verification)

    @contextlib.contextmanager
    def open(self):
        """Snapshot through the backup API into a private scratch file (the only consistent way to read
        a live WAL database), check it, then stream it. Writers are held off only during the local copy.
        The scratch file is named after this process and flocked while it exists, so a later run can tell it
        from the leftovers of killed runs, which it removes first."""
        sweep_dead_scratch(self.tmp_dir or tempfile.gettempdir())
        fd, scratch = tempfile.mkstemp(prefix=scratch_prefix(), suffix=".db", dir=self.tmp_dir)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held until the file is gone (the fd closes last, below)
            self._journal_mode = copy_snapshot(self.path, scratch, self.busy_timeout)
            if self.verify:
                self._verification = inspect(scratch, immutable=True)
                if self._verification["integrity_check"] != "ok":
                    raise SourceError("SQLite database %s fails integrity_check (%s); the backup was not written. "
                                      "Repair the database, or set verify: false to store it anyway"
                                      % (self.path, self._verification["integrity_check"]))
            with open(scratch, "rb") as handle:
                yield handle
        finally:
            for suffix in ("",) + COMPANIONS:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(scratch + suffix)
            os.close(fd)
