"""Undoing a safe_swap restore: lifeboat.backup.pg_put_back, and restore.yml calling it when the application
fails its health check after the swap."""

import os
import subprocess

import pytest

from engine.pipeline.backup import run_backup
from engine.core.errors import ConfigError, RestoreError
from engine.sources.postgres.connection import Connection
from engine.sources.postgres.dump import PostgresSource
from engine.sources.postgres.swap import put_back
from engine.repositories.repository import Repository
from support.ports import free_port

from pgserver import PG_BIN, USER

PLAYBOOKS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))), "playbooks")
CONTENT = "SELECT string_agg(note, ',' ORDER BY id) FROM notes"


def make_db(postgres, name, notes):
    postgres.drop(name)
    postgres.sql("CREATE DATABASE %s OWNER %s" % (name, USER))
    postgres.sql("SET ROLE %s; CREATE TABLE notes (id serial PRIMARY KEY, note text); INSERT INTO notes (note) "
                 "SELECT unnest(ARRAY[%s])" % (USER, ", ".join("'%s'" % note for note in notes)), name)


def side_databases(postgres, database):
    return sorted(name for name in postgres.databases() if name.startswith(database + "_lb"))


def restored_with_safe_swap(postgres, tmp_path, database):
    """`database` holds the live notes; a safe_swap restore puts a set of older notes in its place."""
    make_db(postgres, database, ["old", "notes"])
    dest = str(tmp_path / "repo")
    run_backup(PostgresSource(Connection(**postgres.login()), database), Repository.from_options(dest=dest), "pb")
    postgres.sql("INSERT INTO notes (note) VALUES ('live')", database)
    return dest


def test_restore_runbook_puts_the_replaced_database_back(ansible, postgres, tmp_path):
    dest = restored_with_safe_swap(postgres, tmp_path, "pbapp")
    job = {"job": "pb", "kind": "postgres", "database": "pbapp",
           "options": dict(postgres.login(), safe_swap=True),
           # nothing listens there: the health check fails after the swap
           "health_urls": ["http://127.0.0.1:%d/health" % free_port()], "health_retries": 1, "health_delay": 0}
    proc = ansible.playbook(os.path.join(PLAYBOOKS, "restore.yml"), {
        "lifeboat_repository": {"dest": dest}, "lifeboat_restore_jobs": [job]})
    assert proc.returncode != 0, proc.stdout
    assert "job pb: checking health failed" in proc.stdout
    assert "The previous data was put back at pbapp." in proc.stdout, proc.stdout
    assert postgres.sql(CONTENT, "pbapp") == "old,notes,live"  # the live data, not the set's
    assert side_databases(postgres, "pbapp") == []  # the rejected restore was dropped
    postgres.drop("pbapp")


def test_put_back_module_swaps_names_back_and_check_mode_changes_nothing(ansible, postgres, tmp_path):
    dest = restored_with_safe_swap(postgres, tmp_path, "pbmod")
    out = ansible.module("lifeboat.backup.pg_restore_s3",
                         dict(postgres.login(), job="pb", database="pbmod", dest=dest, safe_swap=True))
    assert not out.get("failed"), out
    previous = out["previous"]
    assert postgres.sql(CONTENT, "pbmod") == "old,notes"
    args = dict(postgres.login(), database="pbmod", previous=previous)
    checked = ansible.module("lifeboat.backup.pg_put_back", args, check=True)
    assert not checked.get("failed"), checked
    assert checked["changed"] and checked["rejected"].startswith("pbmod_lbfailed_")
    assert postgres.sql(CONTENT, "pbmod") == "old,notes" and side_databases(postgres, "pbmod") == [previous]
    done = ansible.module("lifeboat.backup.pg_put_back", dict(args, keep_rejected=True))
    assert not done.get("failed"), done
    assert postgres.sql(CONTENT, "pbmod") == "old,notes,live"
    assert side_databases(postgres, "pbmod") == [done["rejected"]] and not done["rejected_dropped"]
    assert postgres.sql(CONTENT, done["rejected"]) == "old,notes"  # kept for a look, as asked
    # a second run finds nothing to put back, and says so
    again = ansible.module("lifeboat.backup.pg_put_back", args)
    assert again.get("failed") and "nothing to put back" in again["msg"], again
    for name in ("pbmod", done["rejected"]):
        postgres.drop(name)


def test_put_back_refuses_names_it_did_not_make_and_waits_for_sessions(postgres):
    connection = Connection(**postgres.login())
    make_db(postgres, "pbref", ["live"])
    make_db(postgres, "pbref_lbprev_0a0b0c", ["previous"])
    make_db(postgres, "pbother", ["unrelated"])
    for wrong in ("pbother", "pbre_lbprev_0a0b0c", "pbref_lbprev_zz"):
        with pytest.raises(ConfigError, match="is not a database that a safe_swap restore of pbref kept"):
            put_back(connection, "pbref", wrong)
    holder = subprocess.Popen([os.path.join(PG_BIN, "psql"), "-X", "-q", "-d", "pbref"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, env=dict(postgres.admin_env(), PGUSER=USER))
    try:
        holder.stdin.write(b"SELECT 1;\n")
        holder.stdin.flush()
        postgres.sql("SELECT pg_sleep(0.3)")
        with pytest.raises(RestoreError, match="other session.*Nothing was renamed"):
            put_back(connection, "pbref", "pbref_lbprev_0a0b0c")
        assert postgres.sql(CONTENT, "pbref") == "live"
        result = put_back(connection, "pbref", "pbref_lbprev_0a0b0c", terminate_connections=True)
    finally:
        holder.stdin.close()
        holder.wait()
    assert result["rejected_dropped"] and postgres.sql(CONTENT, "pbref") == "previous"
    assert side_databases(postgres, "pbref") == []
    for name in ("pbref", "pbother"):
        postgres.drop(name)


def test_put_back_when_the_restored_database_is_gone_only_renames(postgres):
    make_db(postgres, "pbgone_lbprev_0d0e0f", ["previous"])
    postgres.drop("pbgone")
    result = put_back(Connection(**postgres.login()), "pbgone", "pbgone_lbprev_0d0e0f")
    assert result["rejected"] is None and not result["rejected_dropped"]
    assert postgres.sql(CONTENT, "pbgone") == "previous" and side_databases(postgres, "pbgone") == []
    postgres.drop("pbgone")
