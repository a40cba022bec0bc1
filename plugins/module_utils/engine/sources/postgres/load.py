"""Parallel data load for pg_restore_s3 with jobs > 1: the rows of one table go through several sessions.

`pg_restore -j` gives each table to one session, and it needs a seekable archive with data offsets, which
a piped pg_dump never writes; most databases hold the bulk of their rows in one or two tables, so it loads
on one core whatever `jobs` says. Here pg_restore turns the archive's data section into a script
(`pg_restore --file=- --section=data`) and the COPY blocks in it are cut at row boundaries and dealt to
`jobs` psql sessions in slices of about 1 MiB, so one table loads on every core the server has.

The script holds a preamble (SET lines that fix client_encoding and friends), then COPY blocks, sequence
values and large objects. Every session starts with psql's \\restrict under a key of ours and the preamble's
settings, so it reads rows exactly as pg_restore would send them. Everything that is not a COPY row
(sequence values, large objects) goes to the first session, in order. A COPY block is
`COPY <table> (<columns>) FROM stdin;`, one row per line, and the line `\\.`; a row can never be that line
(the text format escapes backslashes), so cutting at newlines is exact.

The script is made by pg_restore from the set's archive, which may be crafted: a row or a sequence value
may carry text meant for psql. So no line of it reaches psql unless script.DataScript knows its
shape (comments and pg_restore's own \\restrict lines are not sent at all), a row that psql would take as
the end of its block (`\\.` followed by anything but a newline) or a NUL byte (psql reads lines as C
strings) fails the load, and every session is restricted (see script.py).

The sessions start only once `before_data` (the pre-data step: tables, types, sequences) has run, which
happens when the script reaches its first COPY block: by then pg_restore has read the whole table of
contents. Each session commits on its own, so this is only used for a database the restore created
(a new database or a safe_swap side copy), which is dropped again when anything fails.
"""

import contextlib
import re
import subprocess
import tempfile

from ...core.errors import RestoreError
from .script import DataScript, new_key, restrict_line
from ...core.process import missing_tool_error
from ...core.streams import CHUNK, widen_pipe, write_all

COPY_TAG = re.compile(rb"^COPY (\d+)$", re.M)
COPY_TABLE = re.compile(rb'^COPY (?:ONLY )?((?:"(?:[^"]|"")+"|[^".\s]+)\.(?:"(?:[^"]|"")+"|[^".\s]+)) ')
IDENTIFIER = re.compile(rb'"((?:[^"]|"")+)"|([^".]+)')
END_OF_DATA = b"\\.\n"
LINE_THEN_END_MARK = b"\n\\."  # psql ends a block at a line `\.` + newline, or `\.` + CR + newline
BACKSLASH_HOPS = 64  # backslashes checked one by one in a range before a plain search of the rest
DEAL = 1024 * 1024  # rows go to the sessions in slices of about this many bytes
MAX_PENDING_STATEMENTS = 4 * 1024 * 1024  # script text held before the sessions start (large objects, no tables)
STDERR_TAIL = 2000


def table_of(copy_line):
    """'COPY public."Order" (...) FROM stdin;' -> 'public.Order' (the form the manifest's row counts use)."""
    match = COPY_TABLE.match(copy_line)
    if not match:
        return None
    parts = [(quoted.replace(b'""', b'"') if quoted else plain)
             for quoted, plain in IDENTIFIER.findall(match.group(1))]
    return b".".join(parts).decode("utf-8", "replace")


def find_end_of_rows(buf, pos, end):
    """Index of the first b"\\n\\." in buf[pos:end], or -1: the newline before a line that starts with `\\.`,
    which in pg_restore's script is the end of a block's rows (the caller checks that a newline follows).

    Same answer as buf.find(LINE_THEN_END_MARK, pos, end), found faster: every match holds a backslash,
    and backslashes are rare in COPY rows (the text format writes them only in escapes), so memchr hops
    from one to the next. The byte-pattern search, this module's largest CPU cost on rows without
    backslashes, runs only where they are common (bytea, escaped text)."""
    hit = buf.find(b"\\", pos + 1, end)
    for _hop in range(BACKSLASH_HOPS):
        if hit < 0:
            return -1
        if buf[hit - 1] == 0x0A and buf.startswith(b".", hit + 1, end):
            return hit - 1
        hit = buf.find(b"\\", hit + 1, end)
    return -1 if hit < 0 else buf.find(LINE_THEN_END_MARK, hit - 1, end)


class CopySession(object):
    """One psql reading a script on its stdin; its output (the `COPY <n>` tags) and stderr are kept."""

    def __init__(self, argv, env, number):
        self.number = number
        self.copying = None  # the COPY line of the block this session is inside of
        self.blocks = []  # the COPY lines of every block it was sent, in order
        self._stdout = tempfile.TemporaryFile()
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=self._stdout,
                                          stderr=self._stderr, env=env, close_fds=True, bufsize=0)
        except FileNotFoundError:
            self._stdout.close()
            self._stderr.close()
            raise missing_tool_error(argv[0], "the parallel data load")
        widen_pipe(self._proc.stdin.fileno())

    def write(self, data):
        write_all(self._proc.stdin, data)

    def rows(self, copy_line, pieces, header=None):
        """Rows of the block `copy_line` (as the script has it); `header` is the COPY line psql is sent."""
        if self.copying != copy_line:
            self.write(header or copy_line)
            self.copying = copy_line
            self.blocks.append(copy_line)
        for piece in pieces:
            self.write(piece)

    def end_block(self):
        if self.copying is not None:
            self.write(END_OF_DATA)
            self.copying = None

    def finish(self):
        """Close stdin and wait: 0 when every statement succeeded (psql runs with ON_ERROR_STOP)."""
        with contextlib.suppress(OSError):
            self._proc.stdin.close()
        return self._proc.wait()

    def copied(self):
        """Rows the server reported for each block this session sent (psql prints `COPY <n>` per COPY),
        as [(copy line, rows)], or None when the tags do not pair up with the blocks."""
        try:
            self._stdout.seek(0)
            tags = COPY_TAG.findall(self._stdout.read())
        except (OSError, ValueError):
            return None
        if len(tags) != len(self.blocks):
            return None
        return [(line, int(rows)) for line, rows in zip(self.blocks, tags)]

    def error(self):
        try:
            self._stderr.seek(0)
            text = self._stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            text = ""
        return text[-STDERR_TAIL:]

    def close(self):
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        for stream in (self._proc.stdin, self._stdout, self._stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.close()


class ParallelCopyLoad(object):
    """Reads pg_restore's data script and runs it through `jobs` psql sessions (see the module docstring).

    `psql_argv` must connect to the target database with ON_ERROR_STOP; `before_data()` runs once, before
    any session starts."""

    def __init__(self, psql_argv, env, jobs, before_data, what="the data"):
        self._script = DataScript(what)
        self._argv = list(psql_argv)
        self._env = env
        self._jobs = max(1, int(jobs))
        self._before_data = before_data
        self._what = what
        self._sessions = []
        self._held = []  # (kind, text) of the script lines seen before the sessions started
        self._held_size = 0
        self._turn = 0
        self._copy_line = None  # the COPY line of the block being read
        self._copy_header = None  # that line as psql is sent it (see DataScript)
        self._pending = []  # rows of that block not dealt yet
        self._pending_size = 0
        self._blocks_seen = []
        self._row_counts = None
        self.rows_bytes = 0

    # ---- sessions

    def _start(self):
        if self._sessions:
            return
        self._before_data()
        # A key drawn now, after the set's archive was read this far; the script's own \restrict lines were
        # dropped, and none of its lines can be a meta-command (DataScript), \unrestrict included.
        restrict = restrict_line(new_key())
        settings = b"".join(text for kind, text in self._held if kind == "setting")
        for number in range(self._jobs):
            self._sessions.append(CopySession(self._argv, self._env, number))
        self._send(self._sessions[0], restrict + b"".join(text for _kind, text in self._held))
        for session in self._sessions[1:]:
            self._send(session, restrict + settings)
        self._held = []

    def _send(self, session, data):
        try:
            session.write(data)
        except (BrokenPipeError, ValueError):
            raise self._failure(session)

    def _failure(self, session):
        session.finish()
        return RestoreError("loading %s failed in session %d of %d (psql): %s" % (
            self._what, session.number + 1, len(self._sessions), session.error() or "it ended without a message"))

    def _statement(self, line):
        kind, text = self._script.classify(line)
        if kind == "skip":
            return
        if kind == "copy":  # only the block start in _feed may begin a COPY: its rows must be cut here
            self._script.refuse(line, "a COPY that is not a block of the script")
        if self._sessions:
            self._send(self._sessions[0], text)
            return
        self._held.append((kind, text))
        self._held_size += len(text)
        if self._held_size > MAX_PENDING_STATEMENTS:
            self._start()

    def _rows(self, buf, start, end):
        """Rows buf[start:end] (whole lines) held for dealing, cut into slices of about DEAL bytes."""
        view = memoryview(buf)
        while start < end:
            room = DEAL - self._pending_size
            cut = end if end - start <= room else buf.find(b"\n", start + max(room, 1) - 1, end) + 1
            self._pending.append(view[start:cut])
            self._pending_size += cut - start
            start = cut
            if self._pending_size >= DEAL:
                self._deal()

    def _deal(self):
        """The rows held (views into the chunks read, not copies) to the next session in turn."""
        if not self._pending:
            return
        session = self._sessions[self._turn]
        self._turn = (self._turn + 1) % len(self._sessions)
        self.rows_bytes += self._pending_size
        pieces, self._pending, self._pending_size = self._pending, [], 0
        try:
            session.rows(self._copy_line, pieces, self._copy_header)
        except (BrokenPipeError, ValueError):
            raise self._failure(session)

    def _end_block(self):
        for session in self._sessions:
            try:
                session.end_block()
            except (BrokenPipeError, ValueError):
                raise self._failure(session)

    def row_counts(self):
        """{'schema.table': rows} as the server reported them for every COPY block of the script (blocks
        without rows count 0), or None when a session's output cannot be paired with what it was sent
        (or the load did not finish)."""
        return self._row_counts

    def _reported_counts(self):
        counts = {}
        for line in self._blocks_seen:
            name = table_of(line)
            if name is None:
                return None
            counts.setdefault(name, 0)
        for session in self._sessions:
            copied = session.copied()
            if copied is None:
                return None
            for line, rows in copied:
                counts[table_of(line)] += rows
        return counts

    # ---- the script

    def run(self, script):
        """Read the whole script from `script` (a reader, e.g. pg_restore's stdout), load it, wait for every
        session. Raises RestoreError naming the session's error when one fails."""
        try:
            self._run(script)
            self._start()  # a script without COPY blocks still gets its pre-data step and statements
            failed = [session for session in self._sessions if session.finish() != 0]
            if failed:
                raise self._failure(failed[0])
            self._row_counts = self._reported_counts()
        finally:
            for session in self._sessions:
                session.close()

    def _run(self, script):
        carry = []  # the start of a line that goes on in the next chunk
        while True:
            chunk = script.read(CHUNK)
            if not chunk:
                break
            if b"\0" in chunk:  # psql would cut the line there, and then see row ends where this module sees none
                raise RestoreError("pg_restore's data script of %s holds a NUL byte, which pg_dump never writes "
                                   "there: the set's archive was damaged or crafted; refused, and the new "
                                   "database is dropped again. jobs: 1 restores with pg_restore alone, without "
                                   "psql" % self._what)
            last = chunk.rfind(b"\n")
            if last < 0:  # a line longer than a chunk (a large value)
                carry.append(chunk)
                continue
            start = 0
            if carry:
                start = chunk.find(b"\n") + 1
                line = b"".join(carry) + chunk[:start]
                carry = []
                self._feed(line, 0, len(line))
            self._feed(chunk, start, last + 1)
            if last + 1 < len(chunk):
                carry.append(chunk[last + 1:])
        if self._copy_line is not None:
            raise RestoreError("the data script of %s ended inside the rows of %s: the archive is damaged; restore "
                               "another set" % (self._what, self._copy_line.decode("utf-8", "replace").strip()))
        if carry:
            self._statement(b"".join(carry))

    def _feed(self, buf, pos, end):
        """Whole lines buf[pos:end] (pos at a line start, buf[end - 1] a newline), without copying rows."""
        while pos < end:
            if self._copy_line is None:
                newline = buf.find(b"\n", pos, end)
                line = buf[pos:newline + 1]
                pos = newline + 1
                if line.startswith(b"COPY "):
                    kind, header = self._script.classify(line)
                    if kind != "copy":
                        self._script.refuse(line)
                    self._start()
                    self._copy_line, self._copy_header = line, header
                    self._blocks_seen.append(line)
                else:
                    self._statement(line)
                continue
            if buf.startswith(b"\\.", pos, end):
                rows_end = pos
            else:
                mark = find_end_of_rows(buf, pos, end)
                rows_end = mark + 1 if mark >= 0 else end
            if rows_end < end and not buf.startswith(END_OF_DATA, rows_end, end):
                raise RestoreError(
                    "a row of %s in the data of %s starts with \\. but is not the end of the rows: psql would end the "
                    "block there and read what follows as commands. The set's archive was damaged or crafted; "
                    "refused, and the new database is dropped again. jobs: 1 restores with pg_restore alone, "
                    "without psql" % (self._copy_line.decode("utf-8", "replace").strip(), self._what))
            if rows_end > pos:
                self._rows(buf, pos, rows_end)
            if rows_end == end:
                return  # the block goes on in the next chunk
            self._deal()
            self._end_block()
            self._copy_line = self._copy_header = None
            pos = rows_end + len(END_OF_DATA)
