"""`lifeboat put-back` after a `lifeboat restore`, as installed on hosts (the runner zipapp): the restore keeps the
replaced data aside and reports it as `previous`; the put-back brings exactly that back (SQLite bytes and rows, a
real PostgreSQL database's rows after a safe_swap, a real Redis restarted on its previous RDB), removes the rejected
restore and refuses any other name."""

import json
import os
import sqlite3

import pytest

from support.suites import load_suite_module

CONTENT = "SELECT string_agg(note, ',' ORDER BY id) FROM notes"


@pytest.fixture(scope="module")
def postgres():
    pgserver = load_suite_module("runner_pgserver", "postgres/pgserver.py")
    server = pgserver.Postgres()
    server.user = pgserver.USER
    try:
        yield server
    finally:
        server.remove()


def result_of(proc):
    """The --json document on stdout."""
    return json.loads(proc.stdout)


def rows(path):
    conn = sqlite3.connect(str(path))
    try:
        return [row[0] for row in conn.execute("SELECT v FROM t ORDER BY rowid")]
    finally:
        conn.close()


def test_put_back_after_a_sqlite_restore_brings_the_replaced_database_back(lifeboat, tmp_path):
    db = tmp_path / "data" / "app.db"
    db.parent.mkdir()
    conn = sqlite3.connect(str(db))
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.execute("INSERT INTO t VALUES ('backed up')")
    conn.commit()
    conn.close()
    lifeboat.write_job({"job": "app", "kind": "sqlite", "path": str(db), "dest": str(tmp_path / "repo")})
    assert lifeboat("run", "app").returncode == 0
    conn = sqlite3.connect(str(db))
    conn.execute("INSERT INTO t VALUES ('written after the backup')")
    conn.commit()
    conn.close()
    live = db.read_bytes()
    restore = lifeboat("restore", "app", "--json")
    assert restore.returncode == 0, restore.stderr
    restored = result_of(restore)
    assert rows(db) == ["backed up"] and restored["restored_to"] == str(db)
    previous = restored["previous"]
    assert previous.startswith(str(db) + ".lifeboat-prev-")
    # a foreign name is refused with exit 2, and nothing moves
    refused = lifeboat("put-back", "app", "--previous", str(tmp_path / "data" / "other.db.lifeboat-prev-20261122T020000Z"),
                       "--json")
    assert refused.returncode == 2 and "is not the kept-aside copy" in result_of(refused)["error"]
    assert rows(db) == ["backed up"] and os.path.exists(previous)
    dry = lifeboat("put-back", "app", "--previous", previous, "--dry-run", "--json")
    assert dry.returncode == 0 and result_of(dry)["dry_run"] is True and rows(db) == ["backed up"]
    done = lifeboat("put-back", "app", "--previous", previous, "--json")
    assert done.returncode == 0, done.stderr
    result = result_of(done)
    assert (result["status"], result["restored_to"], result["previous"]) == ("ok", str(db), previous)
    assert db.read_bytes() == live
    assert rows(db) == ["backed up", "written after the backup"]
    assert sorted(os.listdir(str(db.parent))) == ["app.db"]
    assert [(e["operation"], e["status"]) for e in lifeboat.audit()][-3:] == [
        ("put-back", "failed"), ("put-back", "ok"), ("put-back", "ok")]
    # a second put-back finds nothing to put back: exit 1, the data stays
    again = lifeboat("put-back", "app", "--previous", previous, "--json")
    assert again.returncode == 1 and "is gone" in result_of(again)["error"]
    assert db.read_bytes() == live


def test_put_back_after_a_postgres_safe_swap_restore_swaps_the_replaced_database_back(lifeboat, postgres, tmp_path):
    postgres.drop("rbapp")
    postgres.sql("CREATE DATABASE rbapp OWNER %s" % postgres.user)
    postgres.sql("SET ROLE %s; CREATE TABLE notes (id serial PRIMARY KEY, note text); "
                 "INSERT INTO notes (note) VALUES ('old'), ('notes')" % postgres.user, "rbapp")
    lifeboat.write_job(dict(postgres.login(), job="rb", kind="postgres", database="rbapp", dest=str(tmp_path / "repo"),
                            restore={"safe_swap": True}))
    ran = lifeboat("run", "rb")
    assert ran.returncode == 0, ran.stderr
    postgres.sql("INSERT INTO notes (note) VALUES ('live')", "rbapp")
    restore = lifeboat("restore", "rb", "--json")
    assert restore.returncode == 0, restore.stderr
    previous = result_of(restore)["previous"]
    assert previous.startswith("rbapp_lbprev_") and postgres.sql(CONTENT, "rbapp") == "old,notes"
    assert postgres.sql(CONTENT, previous) == "old,notes,live"
    refused = lifeboat("put-back", "rb", "--previous", "postgres", "--json")
    assert refused.returncode == 2 and postgres.sql(CONTENT, "rbapp") == "old,notes"
    done = lifeboat("put-back", "rb", "--previous", previous, "--json")
    assert done.returncode == 0, done.stderr
    result = result_of(done)
    assert (result["status"], result["restored_to"], result["previous"]) == ("ok", "rbapp", previous)
    assert result["removed"] == [result["rejected"]] and result["rejected"].startswith("rbapp_lbfailed_")
    assert postgres.sql(CONTENT, "rbapp") == "old,notes,live"  # the live data, not the set's
    assert sorted(name for name in postgres.databases() if name.startswith("rbapp")) == ["rbapp"]
    postgres.drop("rbapp")


@pytest.fixture
def redis_server(tmp_path):
    suite = load_suite_module("runner_redis_conftest", "redis/conftest.py")
    server = suite.RedisServer(str(tmp_path / "redis"))
    yield server
    server.stop()


def redis_state(server):
    with server.client() as client:
        return client.execute("DBSIZE"), client.execute("GET", "k0")


def set_keys(server, count, value):
    with server.client() as client:
        client.execute("FLUSHALL")
        for index in range(count):
            client.execute("SET", "k%d" % index, value)


def test_put_back_after_a_redis_restore_restarts_redis_on_the_replaced_rdb(lifeboat, redis_server, tmp_path):
    set_keys(redis_server, 50, "old")
    lifeboat.write_job(dict(redis_server.options(), job="cache", kind="redis", dest=str(tmp_path / "repo"),
                            restore={"restart_command": redis_server.restart_command}))
    ran = lifeboat("run", "cache")
    assert ran.returncode == 0, ran.stderr
    set_keys(redis_server, 80, "live")
    restore = lifeboat("restore", "cache", "--json")
    assert restore.returncode == 0, restore.stderr
    previous = result_of(restore)["previous"]
    assert previous.startswith(redis_server.rdb + ".lifeboat-prev-") and redis_state(redis_server) == (50, b"old")
    # the target is the RDB the running server reports: a kept copy of another file is refused, nothing restarts
    refused = lifeboat("put-back", "cache", "--previous", str(tmp_path / "x.rdb.lifeboat-prev-20261122T020000Z"),
                       "--json")
    assert refused.returncode == 2 and "is not the kept-aside copy" in result_of(refused)["error"]
    done = lifeboat("put-back", "cache", "--previous", previous, "--json")
    assert done.returncode == 0, done.stderr
    result = result_of(done)
    assert (result["status"], result["restored_to"], result["previous"]) == ("ok", redis_server.rdb, previous)
    assert result["keys"] == {"db0": 80}
    assert redis_state(redis_server) == (80, b"live")  # Redis runs on the data from before the restore
    assert not os.path.exists(previous)
    assert redis_server.password not in done.stdout + done.stderr
