"""The previous database kept aside by sqlite_restore is never overwritten (issue #16 item 6): aside names are
unique even within one second, and they are taken with link()/O_EXCL, so a name already in use (another restore's
copy, a file someone left) is passed over, never written to. Real sqlite3, a local repository, the engine."""

import datetime
import os
import sqlite3

import pytest

from engine.core import files
from engine.pipeline.backup import run_backup
from engine.repositories.local import LocalRepository
from engine.repositories.repository import Repository
from engine.sources.sqlite.restore import restore_sqlite
from engine.sources.sqlite.snapshot import SqliteSource

NOON = datetime.datetime(2026, 11, 22, 12, 0, 0, tzinfo=datetime.timezone.utc)
STAMP = "20261122T120000Z"


def make_db(path, rows, label):
    if os.path.exists(str(path)):
        os.unlink(str(path))
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [("%s %d" % (label, i),) for i in range(rows)])
    conn.commit()
    conn.close()


def rows(path):
    conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return [row[0] for row in conn.execute("SELECT v FROM t ORDER BY rowid")]
    finally:
        conn.close()


def backup_of(tmp_path, repository, rows_count, label):
    source = tmp_path / ("source-%s.db" % label)
    make_db(source, rows_count, label)
    return run_backup(SqliteSource(str(source)), repository, "app")["id"]


def read(path):
    with open(str(path), "rb") as handle:
        return handle.read()


def test_two_restores_in_one_second_keep_two_distinct_copies(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "utcnow", lambda: NOON)  # both restores within the same second, for certain
    repository = Repository([LocalRepository(str(tmp_path / "repo"))])
    first_set = backup_of(tmp_path, repository, 3, "first-set")
    second_set = backup_of(tmp_path, repository, 5, "second-set")
    target = tmp_path / "app.db"
    make_db(target, 7, "live before")

    first = restore_sqlite(repository, "app", str(target), backup=first_set)
    second = restore_sqlite(repository, "app", str(target), backup=second_set)

    assert first["previous"] != second["previous"]
    assert first["previous"].startswith(str(target) + ".lifeboat-prev-" + STAMP + "-")
    assert second["previous"].startswith(str(target) + ".lifeboat-prev-" + STAMP + "-")
    # The first copy still holds the live database as it was before any restore; the second the first set.
    assert rows(first["previous"]) == ["live before %d" % i for i in range(7)]
    assert rows(second["previous"]) == ["first-set %d" % i for i in range(3)]
    assert rows(target) == ["second-set %d" % i for i in range(5)]
    # Both are read back as copies of the target (redis_put_back and the runbooks rely on it).
    assert files.kept_for(first["previous"]) == files.kept_for(second["previous"]) == str(target)


class Draws(object):
    """secrets.token_hex for files.aside_name: these suffixes in turn."""

    def __init__(self, *suffixes):
        self.suffixes = list(suffixes)

    def token_hex(self, _size):
        return self.suffixes.pop(0)


def test_a_file_at_the_would_be_aside_name_is_never_overwritten(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "utcnow", lambda: NOON)
    monkeypatch.setattr(files, "secrets", Draws("deadbeef", "deadbeef", "0badc0de", "cafef00d"), raising=False)
    repository = Repository([LocalRepository(str(tmp_path / "repo"))])
    set_id = backup_of(tmp_path, repository, 3, "set")
    target = tmp_path / "app.db"
    make_db(target, 7, "live before")
    with open(str(target) + "-shm", "wb") as handle:
        handle.write(b"\0" * 32768)  # a companion: kept aside under the same name + -shm
    # Files already at the names a restore in this second could choose: the name without a suffix (what
    # earlier versions used), a whole candidate, and only the companion of another candidate.
    precious = {
        str(target) + ".lifeboat-prev-" + STAMP: b"an older kept copy, not ours to overwrite",
        str(target) + ".lifeboat-prev-" + STAMP + "-deadbeef": b"another restore's copy",
        str(target) + ".lifeboat-prev-" + STAMP + "-0badc0de-shm": b"a companion of another copy",
    }
    for path, content in precious.items():
        with open(path, "wb") as handle:
            handle.write(content)

    result = restore_sqlite(repository, "app", str(target), backup=set_id)

    for path, content in precious.items():
        assert read(path) == content, path
    assert not os.path.exists(str(target) + ".lifeboat-prev-" + STAMP + "-0badc0de")  # given up whole
    assert result["previous"] == str(target) + ".lifeboat-prev-" + STAMP + "-cafef00d"
    assert rows(result["previous"]) == ["live before %d" % i for i in range(7)]
    assert read(result["previous"] + "-shm") == b"\0" * 32768
    assert rows(target) == ["set %d" % i for i in range(3)]


def test_keep_aside_never_replaces_and_kept_for_reads_old_and_new_names(tmp_path):
    original = tmp_path / "app.db"
    original.write_bytes(b"live")
    kept = tmp_path / "app.db.lifeboat-prev-20261122T120000Z-00c0ffee"
    kept.write_bytes(b"kept before")
    with pytest.raises(FileExistsError):
        files.keep_aside(str(original), str(kept))
    assert kept.read_bytes() == b"kept before"
    assert files.kept_for(str(kept)) == str(original)
    assert files.kept_for(str(original) + ".lifeboat-prev-20261122T120000Z") == str(original)  # older name
    assert files.kept_for(files.aside_name(str(original))) == str(original)
    assert files.kept_for(str(original) + ".lifeboat-prev-x/../../etc") is None
    assert files.kept_for(str(original)) is None
