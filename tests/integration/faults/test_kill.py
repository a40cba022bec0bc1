"""The runner killed with SIGKILL in the middle of an upload and in the middle of a restore.

Nothing half-written may look complete, the live database stays as it was, and the next run works.
What SIGKILL leaves behind (it cannot be cleaned by the process that died): an in-progress S3 multipart
upload (removed by the bucket's AbortIncompleteMultipartUpload lifecycle rule), a local set directory
without a manifest (ignored by readers, removed by retention), and a restore staging file beside the
target (removed by the next restore of that target)."""

import os
import signal
import sqlite3
import time

from fault_helpers import MIB, count, digest, make_db, staging
from engine.pipeline.catalog import list_sets
from engine.repositories.repository import Repository

JOB = "app"


def wait_for(predicate, what, timeout=60.0, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process is not None and process.poll() is not None:
            raise AssertionError("the run ended (status %s) before %s:\n%s" % (
                process.returncode, what, process.stderr.read()))
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s" % what)


def kill(process):
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def test_sigkill_mid_upload_leaves_nothing_complete(runner, proxy, moto, s3, tmp_path):
    db = make_db(tmp_path / "app.db", rows=3000, blob=4096)  # about 12 MiB, incompressible
    live = digest(db)
    through_proxy = dict(s3, endpoint_url=proxy.url, multipart_chunk_size=5 * MIB, max_concurrency=1)
    dest = str(tmp_path / "repo")
    runner.write_job({"job": JOB, "kind": "sqlite", "path": db, "dest": dest, "s3": through_proxy,
                      "compression": "none"})
    proxy.add("UploadPart", "delay", times=None, seconds=120)  # the upload hangs in its first part

    process = runner.start("run", JOB)
    wait_for(lambda: proxy.statuses("CreateMultipartUpload") == [200], "the multipart upload to start",
             process=process)
    time.sleep(0.5)  # the first part is on the wire
    kill(process)
    proxy.clear()

    client = moto.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3["bucket"]).get("Contents", [])]
    assert keys == []  # neither data nor manifest: nothing in S3 looks like a set
    uploads = client.list_multipart_uploads(Bucket=s3["bucket"]).get("Uploads", [])
    assert len(uploads) == 1 and uploads[0]["Key"].endswith("/data.db")  # left for the lifecycle rule
    sets = list_sets(Repository.from_options(dest=dest, s3=s3), JOB)
    assert [s.status for s in sets] == ["incomplete"]  # the local directory has data but no manifest
    assert not os.path.exists(os.path.join(sets[0].stored["local"].location, "manifest.json"))
    assert digest(db) == live

    # The lock died with the process: the next run is not refused, and it completes.
    proc = runner("run", JOB)
    assert proc.returncode == 0, proc.stderr
    sets = list_sets(Repository.from_options(dest=dest, s3=s3), JOB)
    assert sorted(s.status for s in sets) == ["complete", "incomplete"]
    complete = [s for s in sets if s.status == "complete"][0]
    assert sorted(complete.complete_in()) == ["local", "s3"]

    target = tmp_path / "restored.db"
    proc = runner("restore", JOB, "--to", str(target))
    assert proc.returncode == 0, proc.stderr
    assert complete.set_id in proc.stderr and count(target) == 3000


def test_sigkill_mid_restore_keeps_live_db_and_next_restore_cleans_up(runner, proxy, moto, s3, tmp_path):
    db = make_db(tmp_path / "app.db", rows=1500, blob=4096)
    runner.write_job({"job": JOB, "kind": "sqlite", "path": db, "s3": dict(s3, endpoint_url=proxy.url),
                      "compression": "none"})
    proc = runner("run", JOB)
    assert proc.returncode == 0, proc.stderr

    conn_rows = count(db)
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO t (v) VALUES ('newer than the backup')")
    conn.commit()
    conn.close()
    live = digest(db)

    proxy.add("GetObject", "stall", after_bytes=2 * MIB, seconds=120)
    process = runner.start("restore", JOB)
    wait_for(lambda: any(os.path.getsize(os.path.join(str(tmp_path), n)) > 0 for n in staging(tmp_path)),
             "the staging file to be written", process=process)
    kill(process)
    proxy.clear()

    assert digest(db) == live and count(db) == conn_rows + 1  # the live database is untouched
    leftovers = staging(tmp_path)
    assert len(leftovers) == 1  # SIGKILL cannot be caught: its staging file stays until the next restore
    assert [n for n in os.listdir(str(tmp_path)) if ".lifeboat-prev-" in n] == []

    proc = runner("restore", JOB)
    assert proc.returncode == 0, proc.stderr
    assert count(db) == conn_rows
    assert staging(tmp_path) == []  # the stale staging file of the killed run is gone too
    entries = runner.audit()
    assert [(e["operation"], e["status"]) for e in entries] == [("run", "ok"), ("restore", "ok")]
