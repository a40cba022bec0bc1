"""FTP/FTPS repository end to end against a real FTP server (pyftpdlib, explicit TLS) on 127.0.0.1: modules
through ansible-playbook, interrupted uploads through the engine, refusals, and the no-MLSD fallback."""

import contextlib
import hashlib
import json
import os
import sqlite3
import time

import pytest

from engine.pipeline.backup import run_backup
from engine.pipeline.catalog import COMPLETE, INCOMPLETE, list_sets, locate
from engine.core.errors import SinkError, SourceError
from engine.repositories.repository import Repository
from engine.pipeline.restore import fetch_to_file
from engine.pipeline.retention import apply_retention
from engine.core.streams import IterReader
from ftp_server import FtpServer
from support.oversized_manifest import JOB, OVERSIZED, assert_refused_within_bound, plant_set

MIB = 1024 * 1024


def make_database(path, rows):
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
    rows = (("event %08d %s" % (i, "x" * 100),) for i in range(rows))
    conn.executemany("INSERT INTO events (payload) VALUES (?)", rows)
    conn.commit()
    conn.close()


def add_rows(path, rows):
    conn = sqlite3.connect(str(path))
    conn.executemany("INSERT INTO events (payload) VALUES (?)", (("later %d" % i,) for i in range(rows)))
    conn.commit()
    conn.close()


def count(path):
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        conn.close()


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def tree(path):
    if not os.path.exists(path):
        return None
    return sorted(os.path.relpath(os.path.join(d, f), path) for d, _dirs, files in os.walk(path) for f in files)


def test_backup_catalog_restore_retention(ansible, ftpd, tmp_path):
    db = tmp_path / "app.db"
    make_database(db, 2000)
    ftp = ftpd.options(path="backups")
    backups = []
    for _step in range(3):
        out = ansible.module("lifeboat.backup.sqlite_backup", {"job": "app", "ftp": ftp, "path": str(db)})
        assert not out.get("failed"), out.get("msg", out)
        backups.append(out["backup"])
        add_rows(db, 10)
    rows = count(db) - 10

    latest = backups[-1]
    assert latest["location"] == {"ftp": "ftps://backup@127.0.0.1:%d/~/backups/app/%s/" % (ftpd.port, latest["id"])}
    set_dir = ftpd.path("backups", "app", latest["id"])
    assert sorted(os.listdir(set_dir)) == sorted([latest["manifest"]["data"], "manifest.json"])
    with open(os.path.join(set_dir, "manifest.json")) as handle:
        manifest = json.load(handle)
    assert manifest == latest["manifest"]
    data = os.path.join(set_dir, manifest["data"])
    assert sha256(data) == manifest["sha256"]
    assert os.path.getsize(data) == manifest["size"]
    assert manifest["verification"]["row_counts"]["events"] == rows

    out = ansible.module("lifeboat.backup.backup_catalog", {"job": "app", "ftp": ftp})
    assert not out.get("failed"), out.get("msg", out)
    assert [s["id"] for s in out["sets"]] == [b["id"] for b in reversed(backups)]
    assert all(s["status"] == "complete" and s["complete_in"] == ["ftp"] for s in out["sets"])

    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(str(db) + suffix):
            os.remove(str(db) + suffix)
    out = ansible.module("lifeboat.backup.sqlite_restore", {"job": "app", "ftp": ftp, "path": str(db)})
    assert not out.get("failed"), out.get("msg", out)
    assert out["backup"]["id"] == latest["id"]
    assert count(db) == rows

    out = ansible.module("lifeboat.backup.backup_retention", {"job": "app", "ftp": ftp, "keep_last": 2})
    assert not out.get("failed"), out.get("msg", out)
    assert [s["id"] for s in out["removed"]] == [backups[0]["id"]]
    assert sorted(os.listdir(ftpd.path("backups", "app"))) == sorted(b["id"] for b in backups[1:])


@pytest.mark.parametrize("case", ["wrong_password", "readable_password_file", "untrusted_certificate"])
def test_refusals_are_clear_and_write_nothing(ansible, ftpd, tmp_path, case):
    db = tmp_path / "app.db"
    make_database(db, 100)
    options = ftpd.options(path=case)
    if case == "wrong_password":
        wrong = tmp_path / "wrong-password"
        wrong.write_text("not the password\n")
        wrong.chmod(0o600)
        options["password_file"] = str(wrong)
        expected = ["refused the login of backup", "ftp.password_file"]
    elif case == "readable_password_file":
        readable = tmp_path / "password"
        readable.write_text(ftpd.password + "\n")
        readable.chmod(0o640)
        options["password_file"] = str(readable)
        expected = ["ftp.password_file", "mode 0640", "chmod 0600"]
    else:
        del options["ca_file"]  # the self-signed certificate is not in the system store
        expected = ["TLS certificate", "cannot be verified", "ftp.ca_file"]
    out = ansible.module("lifeboat.backup.sqlite_backup", {"job": "app", "ftp": options, "path": str(db)})
    assert out.get("failed"), out
    for text in expected:
        assert text in out["msg"], out["msg"]
    assert "Traceback" not in out["msg"]
    assert ftpd.password not in out["_output"]
    assert tree(ftpd.path(case)) is None


def test_plain_server_refused_when_tls_is_expected(plain_ftpd):
    repository = Repository.from_options(ftp=plain_ftpd.options(path="notls", tls=True))
    with pytest.raises(SinkError) as caught:
        run_backup(ChunkSource(1), repository, "app", compression="none")
    assert "does not offer explicit TLS" in caught.value.msg
    assert tree(plain_ftpd.path("notls")) is None


class ChunkSource(object):
    """`chunks` MiB of incompressible data; `during(n)` runs before chunk n is produced."""

    kind = "test"
    extension = "bin"

    def __init__(self, chunks, during=None):
        self.chunks = chunks
        self.during = during

    def check(self):
        pass

    def describe(self):
        return {"test": True}

    def tools(self):
        return {}

    def verification(self):
        return {}

    @contextlib.contextmanager
    def open(self):
        def produce():
            for number in range(self.chunks):
                if self.during:
                    self.during(number)
                yield os.urandom(MIB)
        yield IterReader(produce())


def test_source_failing_midway_leaves_no_set(ftpd):
    def fail(number):
        if number == 3:
            raise SourceError("the source broke after 3 MiB")
    with pytest.raises(SourceError):
        run_backup(ChunkSource(8, fail), Repository.from_options(ftp=ftpd.options(path="fails")), "app",
                   compression="none")
    assert tree(ftpd.path("fails", "app")) == []


def test_server_stopped_mid_upload_leaves_no_manifest_and_retention_cleans_up():
    server = FtpServer()
    try:
        repository = Repository.from_options(ftp=server.options(path="stopped"))
        good = run_backup(ChunkSource(1), repository, "app", compression="none")

        def stop(number):
            if number == 4:
                time.sleep(0.2)
                server.kill()
        with pytest.raises(SinkError) as caught:
            run_backup(ChunkSource(64, stop), repository, "app", compression="none")
        assert "FTP server 127.0.0.1:%d" % server.port in caught.value.msg, caught.value.msg
        partial = [d for d in os.listdir(server.path("stopped", "app")) if d != good["id"]]
        assert len(partial) == 1
        assert os.listdir(server.path("stopped", "app", partial[0])) == ["data.bin"]  # cut short, no manifest
        assert os.path.getsize(server.path("stopped", "app", partial[0], "data.bin")) < 64 * MIB

        server.start()  # back (on a new port): the partial set is incomplete, restores ignore it
        repository = Repository.from_options(ftp=server.options(path="stopped"))
        sets = {s.set_id: s for s in list_sets(repository, "app")}
        assert sets[partial[0]].status == INCOMPLETE and sets[good["id"]].status == COMPLETE
        assert locate(repository, "app").set_id == good["id"]
        result = apply_retention(repository, "app", {"keep_last": 1, "incomplete_grace": "0s"})
        assert [e["id"] for e in result["removed"]] == [partial[0]]
        assert os.listdir(server.path("stopped", "app")) == [good["id"]]
    finally:
        server.stop()


def test_server_without_mlsd_and_tls_round_trip(plain_ftpd, tmp_path):
    """vsftpd-like server (no MLSD): listing falls back to NLST/SIZE/MDTM; plain FTP when tls is false."""
    repository = Repository.from_options(ftp=plain_ftpd.options(path="/sets"))
    first = run_backup(ChunkSource(2), repository, "app", compression="none")
    second = run_backup(ChunkSource(5), repository, "app", compression="zstd")
    sets = list_sets(repository, "app")
    assert [s.set_id for s in sets] == [second["id"], first["id"]]
    assert all(s.status == COMPLETE for s in sets)
    stored = sets[0].stored["ftp"]
    assert stored.size == second["size"] and stored.modified is not None
    assert stored.location == "ftp://backup@127.0.0.1:%d/sets/app/%s/" % (plain_ftpd.port, second["id"])
    with open(str(tmp_path / "out"), "wb") as handle:
        assert fetch_to_file(repository, "app", sets[0], handle) == 5 * MIB
    result = apply_retention(repository, "app", {"keep_last": 1})
    assert [e["id"] for e in result["removed"]] == [first["id"]]
    assert os.listdir(plain_ftpd.path("sets", "app")) == [second["id"]]


def test_oversized_manifest_is_read_up_to_the_bound_and_the_connection_recovers(ftpd):
    """The RETR is cut off one byte past the bound; the control connection it left mid-transfer is dropped, so the
    catalog's next commands (and another set's manifest) still work."""
    repository = Repository.from_options(ftp=ftpd.options(path="oversized"))
    good = plant_set(repository)
    planted = plant_set(repository)
    with open(os.path.join(ftpd.path("oversized", JOB, planted), "manifest.json"), "wb") as handle:
        handle.write(OVERSIZED)
    assert_refused_within_bound(repository, planted)
    assert repository.stores[0].read_manifest(JOB, good)["id"] == good
