"""sources/postgres/load.py: pg_restore's data script cut at row boundaries and dealt to several sessions (fake psql
processes that record what they were sent; the real thing runs in tests/integration/postgres)."""

import os
import random
import re
import sys

import pytest

from engine.sources.postgres import load as postgres_load
from engine.core.errors import RestoreError
from engine.sources.postgres.load import LINE_THEN_END_MARK, ParallelCopyLoad, find_end_of_rows

# A stand-in for psql: records its stdin in <dir>/<pid>; "FAIL-NOW" in the input makes it fail at once,
# like psql with ON_ERROR_STOP on a bad row.
FAKE_PSQL = r"""
import os, sys
out = os.path.join(sys.argv[1], str(os.getpid()))
with open(out, "wb") as handle:
    while True:
        chunk = sys.stdin.buffer.read(65536)
        if not chunk:
            break
        handle.write(chunk)
        if b"FAIL-NOW" in chunk:
            sys.stderr.write("ERROR:  invalid input syntax for type integer: \"FAIL-NOW\"\n")
            sys.exit(3)
# psql's command tags: COPY <rows> for each block it was sent
text = open(out, "rb").read()
for part in text.split(b" FROM stdin;\n")[1:]:
    sys.stdout.write("SET\n\nCOPY %d\n" % len(part.split(b"\\.\n", 1)[0].splitlines()))
"""

PREAMBLE = (b"--\n-- PostgreSQL database dump\n--\n\n\\restrict k3y\n\nSET statement_timeout = 0;\n"
            b"SET client_encoding = 'UTF8';\nSELECT pg_catalog.set_config('search_path', '', false);\n\n")
BIG = b"COPY public.big (id, note) FROM stdin;\n"
SMALL = b"COPY public.small (id) FROM stdin;\n"


def rows(count, width):
    # COPY text format: tabs, escaped backslashes and newlines inside values, lines of varied length
    return [b"%d\tline \\\\ with \\n escapes %s" % (index, b"x" * (index * 7919 % width)) for index in range(count)]


def script(big_rows, small_rows):
    return (PREAMBLE + b"--\n-- Data for Name: big; Type: TABLE DATA\n--\n\n" + BIG + b"\n".join(big_rows) + b"\n\\.\n\n\n"
            + b"SELECT pg_catalog.setval('public.big_id_seq', 42, true);\n\n" + SMALL
            + b"".join(row + b"\n" for row in small_rows) + b"\\.\n\n\\unrestrict k3y\n\n")


class ChoppedReader(object):
    """Gives the script back in pieces of random size (never what was asked), like a pipe does."""

    def __init__(self, data, seed=7):
        self._data = data
        self._pos = 0
        self._random = random.Random(seed)

    def read(self, size):
        piece = self._random.choice([1, 2, 3, 5, 4096, 65537, size])
        data = self._data[self._pos:self._pos + min(piece, size)]
        self._pos += len(data)
        return data


def recorded(directory):
    return [open(os.path.join(directory, name), "rb").read() for name in sorted(os.listdir(directory))]


def blocks(text, copy_line):
    """Row lists of each COPY block for `copy_line` in one session's input."""
    found = []
    for part in text.split(copy_line)[1:]:
        body = part.split(b"\\.\n", 1)[0]
        found.append(body.splitlines())
    return found


def make_load(tmp_path, jobs, events):
    out = tmp_path / "sessions"
    out.mkdir(exist_ok=True)

    def before_data():
        events.append(("pre-data", len(os.listdir(str(out)))))
    return ParallelCopyLoad([sys.executable, "-c", FAKE_PSQL, str(out)], dict(os.environ), jobs, before_data), out


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_rows_are_dealt_at_row_boundaries_and_statements_stay_in_order(tmp_path, monkeypatch, jobs):
    monkeypatch.setattr(postgres_load, "DEAL", 64 * 1024)  # several slices from a small script
    big, small = rows(6000, 300), rows(3, 10)
    events = []
    load, out = make_load(tmp_path, jobs, events)
    load.run(ChoppedReader(script(big, small)))
    assert events == [("pre-data", 0)]  # the schema came first, before any session started
    sessions = recorded(str(out))
    assert len(sessions) == jobs
    dealt = [row for text in sessions for block in blocks(text, BIG) for row in block]
    assert sorted(dealt) == sorted(big)  # every row exactly once, none cut or merged
    assert sorted(row for text in sessions for block in blocks(text, SMALL) for row in block) == sorted(small)
    if jobs > 1:
        assert all(blocks(text, BIG) for text in sessions)  # the big table really loaded in every session
    first = [text for text in sessions if b"setval" in text]
    assert len(first) == 1 and first[0].index(BIG) < first[0].index(b"setval")
    keys = set()
    for text in sessions:
        # every session reads rows with the dump's settings, under psql's \restrict with a key of ours: the
        # script's own \restrict / \unrestrict lines and its comments never reach psql
        assert re.match(rb"\\restrict [0-9a-f]{48}\n", text), text[:80]
        keys.add(text.split(b"\n", 1)[0])
        assert b"k3y" not in text and b"--" not in text and text.count(b"\\restrict") == 1
        assert b"SET client_encoding = 'UTF8';\n" in text and text.index(b"client_encoding") < text.find(b"COPY")
        assert text.count(b"\\.\n") == text.count(b"COPY ")
    assert load.rows_bytes == sum(len(row) + 1 for row in big + small)
    assert load.row_counts() == {"public.big": 6000, "public.small": 3}


def test_the_end_of_rows_search_finds_what_a_plain_search_finds():
    generator = random.Random(11)
    alphabet = [b"a", b"\n", b"\\", b".", b"\t"]
    for _case in range(20000):
        buf = b"".join(generator.choice(alphabet) for _byte in range(generator.randint(0, 40)))
        pos = generator.randint(0, len(buf))
        end = generator.randint(pos, len(buf))
        assert find_end_of_rows(buf, pos, end) == buf.find(LINE_THEN_END_MARK, pos, end), (buf, pos, end)
    # more backslashes than it hops over one by one (bytea rows): the rest is searched as a pattern
    escaped = b"".join(b"%d\t\\\\x0a0b\\\\x0c\n" % index for index in range(500))
    for tail in (b"\\.\n", b"\\\\.\n", b""):
        buf = escaped + tail
        assert find_end_of_rows(buf, 0, len(buf)) == buf.find(LINE_THEN_END_MARK)


def test_row_counts_come_from_the_copy_tags_per_table(tmp_path):
    load, _out = make_load(tmp_path, 2, [])
    empty = b'COPY "My Schema"."Odd ""name""" (id) FROM stdin;\n\\.\n'
    load.run(ChoppedReader(script(rows(2000, 100), rows(5, 5)) + empty))
    assert load.row_counts() == {"public.big": 2000, "public.small": 5, 'My Schema.Odd "name"': 0}


def test_table_names_are_unquoted_like_the_manifest_names_them():
    assert postgres_load.table_of(b"COPY public.accounts (aid) FROM stdin;\n") == "public.accounts"
    assert postgres_load.table_of(b'COPY "Sales"."a.b" (x) FROM stdin;\n') == "Sales.a.b"
    assert postgres_load.table_of(b'COPY public."user" (x) FROM stdin;\n') == "public.user"
    assert postgres_load.table_of("COPY s.\"ünï\" (x) FROM stdin;\n".encode("utf-8")) == "s.ünï"


def test_a_script_without_rows_still_gets_its_schema_and_statements(tmp_path):
    events = []
    load, out = make_load(tmp_path, 2, events)
    text = PREAMBLE + b"SELECT pg_catalog.setval('public.s', 1, false);\n"
    load.run(ChoppedReader(text))
    assert events == [("pre-data", 0)]
    sessions = recorded(str(out))
    assert sum(b"setval" in session for session in sessions) == 1


def test_a_failing_session_fails_the_load_with_its_message(tmp_path):
    load, _out = make_load(tmp_path, 2, [])
    big = rows(3000, 300)
    big[2500] = b"FAIL-NOW\tx"
    with pytest.raises(RestoreError) as raised:
        load.run(ChoppedReader(script(big, [])))
    assert "session" in raised.value.msg and 'invalid input syntax for type integer: "FAIL-NOW"' in raised.value.msg


def test_a_script_that_ends_inside_rows_is_refused(tmp_path):
    load, _out = make_load(tmp_path, 2, [])
    text = script(rows(100, 50), [])
    with pytest.raises(RestoreError) as raised:
        load.run(ChoppedReader(text[:text.index(b"\\.\n")]))
    assert "ended inside the rows of COPY public.big" in raised.value.msg


def test_sessions_share_one_key_drawn_for_the_run(tmp_path):
    load, out = make_load(tmp_path, 3, [])
    load.run(ChoppedReader(script(rows(3000, 200), rows(2, 5))))
    keys = {text.split(b"\n", 1)[0] for text in recorded(str(out))}
    (tmp_path / "again").mkdir()
    load2, out2 = make_load(tmp_path / "again", 1, [])
    load2.run(ChoppedReader(script(rows(10, 5), [])))
    assert len(keys) == 1 and keys.isdisjoint(text.split(b"\n", 1)[0] for text in recorded(str(out2)))


CRAFTED = [
    # a meta-command between blocks (a crafted SEQUENCE SET entry), with and without pg_restore's \restrict
    (b"SELECT pg_catalog.setval('public.s', 1, true);\n\\! touch pwned\n", "not one the parallel load passes"),
    (b"\\unrestrict `touch pwned`\n", "not one the parallel load passes"),
    (b"\\unrestrict k3y\n\\! touch pwned\n", "not one the parallel load passes"),
    (b"SELECT 1; \\! touch pwned\n", "not one the parallel load passes"),
    (b"SET client_encoding = 'SJIS';\n", "client-only encoding SJIS"),
    (b"SELECT pg_catalog.set_config('client_encoding', 'SJIS', false);\n", "not one the parallel load passes"),
    (b"COPY public.small (id) FROM stdin; \\! touch pwned\n1\n\\.\n", "not one the parallel load passes"),
    (b"copy public.small (id) from stdin;\n1\n\\.\n", "not one the parallel load passes"),
    # rows that psql would end early (\. + CR + LF), then read as commands
    (SMALL + b"1\n\\.\r\n\\! touch pwned\n2\n\\.\n", "starts with \\. but is not the end of the rows"),
    (SMALL + b"\\.\r\n\\! touch pwned\n\\.\n", "starts with \\. but is not the end of the rows"),
    # a NUL byte: psql reads lines as C strings and would see another line structure
    (SMALL + b"1\x00x\n\\.\n", "NUL byte"),
]


@pytest.mark.parametrize("crafted,message", CRAFTED)
def test_nothing_but_known_lines_and_rows_reaches_psql(tmp_path, crafted, message):
    load, out = make_load(tmp_path, 2, [])
    text = script(rows(50, 20), rows(2, 5)).replace(b"\n\\unrestrict k3y\n", b"\n" + crafted + b"\\unrestrict k3y\n")
    assert crafted in text
    with pytest.raises(RestoreError) as raised:
        load.run(ChoppedReader(text))
    assert message in raised.value.msg and "jobs: 1" in raised.value.msg, raised.value.msg
    sent = b"".join(recorded(str(out)))
    assert b"pwned" not in sent and b"SJIS" not in sent


def test_non_ascii_names_reach_psql_spelt_in_ascii(tmp_path):
    load, out = make_load(tmp_path, 2, [])
    copy = 'COPY public."tëst" (id, "cöl ""q""") FROM stdin;\n'.encode("utf-8")
    setval = "SELECT pg_catalog.setval('public.\"tëst_id_seq\"', 2, true);\n".encode("utf-8")
    load.run(ChoppedReader(PREAMBLE + copy + b"1\tx\n\\.\n" + setval))
    sent = b"".join(recorded(str(out)))
    assert re.search(rb"[\x80-\xff]", sent) is None
    assert b'COPY public.U&"t\\00ebst" (id, U&"c\\00f6l ""q""") FROM stdin;\n' in sent
    assert (b"SELECT pg_catalog.setval(pg_catalog.convert_from(pg_catalog.decode('%s', 'hex'), 'UTF8'), 2, true);"
            % 'public."tëst_id_seq"'.encode("utf-8").hex().encode()) in sent
    assert load.row_counts() == {"public.tëst": 1}
