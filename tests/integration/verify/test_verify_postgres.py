"""PostgreSQL test restore: a full restore into a scratch database (dropped afterwards, also on failure), with row
counts against the manifest; the cheap --list mode; a set whose row counts disagree with its manifest fails."""

import datetime
import os
import subprocess
import time

import pytest

from engine.sources.postgres import kind as pg_kind
from engine.sources.postgres import verify as pg_verify
from engine.core.errors import IntegrityError
from engine.core.naming import utcnow
from engine.pipeline.verify import verify_set
from support.suites import load_suite_module

from conftest import decoded, forged, store

JOB = "shop"


def scratch_databases(server):
    return server.sql("SELECT datname FROM pg_database WHERE datname LIKE 'lifeboat\\_verify\\_%'").split()


def backup_shop(server, repo):
    source = pg_kind.source_from_options(dict(server.login(), database="shop"))
    return store(repo, JOB, source)


def test_full_test_restore_of_a_good_set_checks_row_counts_and_drops_the_scratch_database(postgres, tmp_path):
    repository, backup = backup_shop(postgres, tmp_path / "repo")
    assert backup["manifest"]["verification"]["row_counts"] == {"public.customers": 40, "public.orders": 300}
    result = verify_set(repository, JOB, scratch_dir=str(tmp_path), options={"postgres": postgres.login()})
    report = result["verification"]
    assert report["status"] == "ok" and report["mode"] == "full" and report["test_restore"] == "ok"
    assert report["row_counts"] == {"public.customers": 40, "public.orders": 300} and report["row_counts_match"]
    assert report["checked"]["row_counts"]["actual"] == {"public.customers": 40, "public.orders": 300}
    assert report["scratch_database"].startswith("lifeboat_verify_shop_") and report["scratch_database_dropped"]
    assert report["globals_applied"] is False
    assert isinstance(report["restore_seconds"], float) and report["restore_seconds"] > 0
    assert scratch_databases(postgres) == []
    assert list(tmp_path.glob("lifeboat-verify-*")) == []  # the staged archive is gone


def test_row_counts_that_disagree_with_the_manifest_fail_and_the_scratch_database_is_dropped(postgres, tmp_path):
    repository, _backup = backup_shop(postgres, tmp_path / "repo")
    data, manifest = decoded(repository, JOB)
    # the same archive (its sha256 right), served with a manifest that promises other row counts
    forged_repository = forged(tmp_path / "forged", JOB, manifest, data, verification={
        "row_counts": {"public.customers": 40, "public.orders": 301}})[0]
    with pytest.raises(IntegrityError) as info:
        verify_set(forged_repository, JOB, scratch_dir=str(tmp_path), options={"postgres": postgres.login()})
    assert "public.orders: 301 / 300" in info.value.msg and "scratch database was dropped" in info.value.msg
    report = info.value.details["verification"]
    assert report["status"] == "failed" and report["row_counts_match"] is False
    assert report["scratch_database_dropped"] is True
    assert scratch_databases(postgres) == []


def test_skipped_row_counts_are_not_compared(postgres, tmp_path):
    repository, _backup = backup_shop(postgres, tmp_path / "repo")
    data, manifest = decoded(repository, JOB)
    forged_repository = forged(tmp_path / "forged", JOB, manifest, data, verification={
        "row_counts": {"public.customers": 40}, "row_counts_skipped": {"public.orders": "rewritten"}})[0]
    report = verify_set(forged_repository, JOB, scratch_dir=str(tmp_path),
                        options={"postgres": postgres.login()})["verification"]
    assert report["status"] == "ok" and report["checked"]["row_counts_skipped"] == ["public.orders"]


def test_an_archive_that_pg_restore_refuses_fails_and_leaves_no_database(postgres, tmp_path):
    repository, _backup = backup_shop(postgres, tmp_path / "repo")
    data, manifest = decoded(repository, JOB)
    cut = data[:len(data) * 2 // 3]  # a truncated archive, stored with its own (right) sha256
    forged_repository = forged(tmp_path / "forged", JOB, manifest, cut)[0]
    with pytest.raises(IntegrityError) as info:
        verify_set(forged_repository, JOB, scratch_dir=str(tmp_path), options={"postgres": postgres.login()})
    assert "does not restore" in info.value.msg or "row counts" in info.value.msg
    assert scratch_databases(postgres) == []


def test_list_mode_reads_the_table_of_contents_only(postgres, tmp_path):
    repository, _backup = backup_shop(postgres, tmp_path / "repo")
    report = verify_set(repository, JOB, options={"mode": "list"})["verification"]
    assert report["status"] == "ok" and report["mode"] == "list" and report["tables"] == 2
    assert report["test_restore"].startswith("skipped: mode list reads the archive's table of contents")
    assert "scratch_database" not in report


@pytest.mark.parametrize("check", [False, True])
def test_the_module_restores_into_a_scratch_database_on_the_login_server(ansible, postgres, tmp_path, check):
    backup_shop(postgres, tmp_path / "repo")
    args = dict(postgres.login(), job=JOB, dest=str(tmp_path / "repo"), scratch_dir=str(tmp_path))
    out = ansible.module("lifeboat.backup.backup_verify", args, check=check)
    assert not out.get("failed"), out.get("msg")
    assert out["changed"] is False
    report = out["verification"]
    assert report["mode"] == "full" and report["row_counts_match"] is True and report["restore_seconds"] > 0
    assert report["checked"]["row_counts"]["expected"] == {"public.customers": 40, "public.orders": 300}
    assert scratch_databases(postgres) == []
    assert "Lb-s3cret" not in out["_output"]  # the login password never shows


def test_a_full_verify_drops_the_scratch_databases_killed_verifies_left_and_nothing_else(postgres, tmp_path):
    """A verify killed outright leaves its scratch database. The next full verify of that server drops those older
    than any verify can run (STALE_AFTER, from the time in the name) that nobody is connected to; a recent one (a
    verify running now), one in use, one of another owner and any other name stay."""
    old = utcnow() - pg_verify.STALE_AFTER - datetime.timedelta(minutes=5)
    stale = pg_verify.scratch_database_name("shop", now=old)
    in_use = pg_verify.scratch_database_name("other", now=old)
    foreign = pg_verify.scratch_database_name("foreign", now=old)
    recent = pg_verify.scratch_database_name("shop", now=utcnow() - pg_verify.STALE_AFTER + datetime.timedelta(hours=1))
    legacy = "lifeboat_verify_shop_cafebabe"  # the name before the time was in it: never guessed at
    kept = [in_use, foreign, recent, legacy]
    for name in [stale, in_use, recent, legacy]:
        postgres.sql("CREATE DATABASE %s OWNER lbuser" % name)
    postgres.sql("CREATE DATABASE %s" % foreign)  # owned by postgres: the verify's login cannot drop it
    psql = os.path.join(load_suite_module("verify_pgserver", "postgres/pgserver.py").PG_BIN, "psql")
    sleeper = subprocess.Popen([psql, "-X", "-d", in_use, "-c", "SELECT pg_sleep(120)"], env=postgres.admin_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while postgres.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = '%s'" % in_use) == "0":
            assert time.monotonic() < deadline, "the session holding %s did not start" % in_use
            time.sleep(0.1)
        repository, _backup = backup_shop(postgres, tmp_path / "repo")
        result = verify_set(repository, JOB, scratch_dir=str(tmp_path), options={"postgres": postgres.login()})
        report = result["verification"]
        assert report["status"] == "ok" and report["swept_scratch_databases"] == [stale]
        assert sorted(scratch_databases(postgres)) == sorted(kept)
        assert any(foreign in warning and "drop it by hand" in warning for warning in report["warnings"])
    finally:
        sleeper.kill()
        sleeper.wait()
        for name in [stale] + kept:
            postgres.drop(name)
    assert scratch_databases(postgres) == []
