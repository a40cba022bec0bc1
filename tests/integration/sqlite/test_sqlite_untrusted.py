"""SQLite files from a set are opened as untrusted databases (issue #16, DESIGN.md "Trust boundary").

Each test builds its crafted database itself and stores it as a complete set with the right sha256 (through the
engine's own backup path), so only the restore's checks stand between it and the live data."""

import hashlib
import os
import sqlite3
import sys
import tarfile

import pytest

from engine.sources.sqlite import snapshot as engine_sqlite
from engine.pipeline.backup import run_backup
from engine.sources.directory.restore import restore_directory
from engine.sources.sqlite.restore import restore_sqlite
from engine.core.errors import IntegrityError
from engine.repositories.repository import Repository

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sqlite_helpers import count, make_database  # noqa: E402
from support.crafted_sets import BytesSource, crafted_set, member  # noqa: E402


def digest(path):
    return hashlib.sha256(open(str(path), "rb").read()).hexdigest()


def malformed_schema(tmp_path):
    """A real SQLite file whose schema SQLite refuses to parse (written through writable_schema)."""
    path = tmp_path / "malformed.db"
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE TABLE t (a)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("UPDATE sqlite_master SET sql = 'CREATE TABLE t (a CHECK (' WHERE name = 't'")
    conn.commit()
    conn.close()
    return path.read_bytes()


@pytest.fixture
def live(tmp_path):
    db = make_database(tmp_path / "app.db", rows=300, journal_mode="delete")
    return db, digest(db)


@pytest.mark.parametrize("payload", ["not a database", "malformed schema"])
def test_unreadable_database_in_a_set_is_an_integrity_error_and_the_live_file_stays(tmp_path, live, payload):
    """Before: sqlite3.DatabaseError escaped the restore ('unexpected ... this is a bug', with a traceback)."""
    data = b"SQLite format 3\x00" + b"\xa5" * 8000 if payload == "not a database" else malformed_schema(tmp_path)
    repository = Repository.from_options(dest=str(tmp_path / "repo"))
    run_backup(BytesSource("sqlite", "db", data), repository, "crafted")
    db, before = live
    with pytest.raises(IntegrityError) as caught:
        restore_sqlite(repository, "crafted", str(db))
    assert "not a readable SQLite database" in caught.value.msg and "live database was not touched" in caught.value.msg
    assert digest(db) == before and count(db) == 300
    assert sorted(name for name in os.listdir(str(tmp_path)) if "app.db" in name) == ["app.db"]


def test_untrusted_connection_is_hardened(tmp_path, monkeypatch):
    """Every database of a set is read with trusted_schema off, cell size checks, no mmap and no writes."""
    db = make_database(tmp_path / "x.db", rows=10, journal_mode="delete")
    seen = {}
    real = engine_sqlite._open_untrusted

    def spy(path, immutable):
        conn = real(path, immutable)
        seen.update({pragma: conn.execute("PRAGMA %s" % pragma).fetchone()[0]
                     for pragma in ("trusted_schema", "cell_size_check", "mmap_size", "query_only")})
        return conn

    monkeypatch.setattr(engine_sqlite, "_open_untrusted", spy)
    assert engine_sqlite.inspect(str(db), immutable=True)["row_counts"] == {"events": 10, "users": 500}
    assert seen == {"trusted_schema": 0, "cell_size_check": 1, "mmap_size": 0, "query_only": 1}


def test_table_names_from_the_set_are_quoted_in_row_counts(tmp_path, live):
    """A table named like SQL is counted as a name, never run as SQL (held before this change too)."""
    path = tmp_path / "odd.db"
    conn = sqlite3.connect(str(path))
    name = 'x" ; DROP TABLE keep; --'
    conn.execute('CREATE TABLE "%s" (a)' % name.replace('"', '""'))
    conn.execute("CREATE TABLE keep (a)")
    conn.execute("INSERT INTO keep VALUES (1)")
    conn.commit()
    conn.close()
    assert engine_sqlite.inspect(str(path), immutable=True)["row_counts"] == {name: 0, "keep": 1}


def test_unreadable_sqlite_file_in_a_directory_set_is_an_integrity_error(tmp_path):
    repository = crafted_set(tmp_path / "repo", [member(".", kind=tarfile.DIRTYPE),
                                                 member("app.db", b"SQLite format 3\x00" + b"\xa5" * 8000)],
                             verification={"sqlite": {"app.db": {"integrity_check": "ok", "row_counts": {}}}})
    target = tmp_path / "live"
    target.mkdir()
    (target / "keep").write_text("live data")
    with pytest.raises(IntegrityError) as caught:
        restore_directory(repository, "crafted", str(target))
    assert "not a readable SQLite database" in caught.value.msg
    assert os.listdir(str(target)) == ["keep"]
