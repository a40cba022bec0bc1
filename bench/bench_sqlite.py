#!/usr/bin/env python3
"""SQLite backup: lifeboat's one pass (backup API -> zstd -> S3 multipart) against the shell recipe
operators use today (`sqlite3 .backup`, then `zstd`, then an upload), on the same database and the
same S3 endpoint (moto), in one run. Prints a markdown section.

Targets (issue 2): faster than the recipe, within 1.3x of the slowest single stage run alone, and
peak memory under 256 MB independent of database size.
"""

import argparse
import os
import platform
import subprocess
import sys
import time

from common import ENGINE_PATH, reset_moto, run_timed_rss, start_moto, table

UPLOAD = r"""
import sys, boto3
from boto3.s3.transfer import TransferConfig
client = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
client.upload_file(sys.argv[2], sys.argv[3], "recipe/" + sys.argv[2].rsplit("/", 1)[-1],
                   Config=TransferConfig(multipart_chunksize=16 * 1024 * 1024, max_concurrency=4))
"""

LIFEBOAT = r"""
import sys
sys.path.insert(0, sys.argv[1])
from engine.backup import run_backup
from engine.repository import Repository
from engine.sqlite import SqliteSource
s3 = dict(bucket=sys.argv[4], endpoint_url=sys.argv[3], region="us-east-1", access_key="testing", secret_key="testing")
result = run_backup(SqliteSource(sys.argv[2], tmp_dir=sys.argv[5], verify=sys.argv[6] == "1"),
                    Repository.from_options(s3=s3), "bench")
print(result["size"], result["manifest"]["raw_size"])
"""


def make_database(path, size_mb):
    """A WAL database of about size_mb with realistic, partly compressible rows (built in C by sqlite3)."""
    rows = int(size_mb * 1024 * 1024 / 175)
    sql = """
PRAGMA journal_mode=WAL;
CREATE TABLE events (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)
INSERT INTO events SELECT i, 1700000000 + i * 3, 'kind-' || (i %% 17),
  hex(randomblob(40)) || ' user ' || (i %% 1000) || ' did something ordinary at step ' || i FROM n;
PRAGMA wal_checkpoint(TRUNCATE);
""" % rows
    subprocess.run(["sqlite3", path], input=sql.encode(), check=True, stdout=subprocess.DEVNULL)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="database size (default 1024)")
    parser.add_argument("--workdir", default=os.path.join(os.path.dirname(__file__), "out", "sqlite"))
    parser.add_argument("--verify", action="store_true", help="also run integrity_check in the lifeboat run")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    db = os.path.join(args.workdir, "bench-%dmb.db" % args.size_mb)
    if not os.path.exists(db):
        started = time.monotonic()
        make_database(db, args.size_mb)
        print("built %s (%.0f MB) in %.0f s" % (db, os.path.getsize(db) / 1e6, time.monotonic() - started),
              file=sys.stderr)
    size = os.path.getsize(db)
    moto = start_moto(args.workdir)
    try:
        bucket = moto.new_bucket("bench")
        copy = os.path.join(args.workdir, "recipe-copy.db")
        for leftover in (copy, copy + ".zst"):
            if os.path.exists(leftover):
                os.remove(leftover)
        subprocess.run(["sync"], check=True)
        stage_backup = run_timed_rss("sqlite3 .backup", ["sqlite3", db, ".backup '%s'" % copy])
        stage_zstd = run_timed_rss("zstd", ["zstd", "-q", "-3", copy, "-o", copy + ".zst"])
        stage_upload = run_timed_rss("upload (boto3)", [sys.executable, "-c", UPLOAD, moto.url, copy + ".zst", bucket])
        stored_recipe = os.path.getsize(copy + ".zst")
        os.remove(copy)
        os.remove(copy + ".zst")
        reset_moto(moto)
        bucket = moto.new_bucket("bench")
        lifeboat = run_timed_rss("lifeboat", [sys.executable, "-c", LIFEBOAT, ENGINE_PATH, db, moto.url, bucket,
                                              args.workdir, "1" if args.verify else "0"])
        stored_lifeboat = int(lifeboat.output.split()[0])
    finally:
        moto.stop()

    stages = [stage_backup, stage_zstd, stage_upload]
    recipe = sum(s.seconds for s in stages)
    slowest = max(stages, key=lambda s: s.seconds)
    rows = [[s.label + " (alone)", "%.2f" % s.seconds, "%.0f" % s.peak_mib, ""] for s in stages]
    rows.append(["recipe total (sequential)", "%.2f" % recipe, "%.0f" % max(s.peak_mib for s in stages),
                 "%.1f MB" % (stored_recipe / 1e6)])
    rows.append(["**lifeboat sqlite_backup -> S3**", "**%.2f**" % lifeboat.seconds, "**%.0f**" % lifeboat.peak_mib,
                 "%.1f MB" % (stored_lifeboat / 1e6)])
    print("## SQLite backup to S3, %.2f GB database\n" % (size / 1e9))
    print("%s, %d cores, Python %s, zstd level 3 both sides, S3 = moto on 127.0.0.1.%s\n" % (
        platform.platform(terse=True), os.cpu_count(), platform.python_version(),
        " lifeboat ran integrity_check too." if args.verify else ""))
    print(table(rows, ["run", "seconds", "peak RSS MiB", "stored"]))
    print()
    print("- lifeboat / recipe: **%.2fx** (target < 1.0)" % (lifeboat.seconds / recipe))
    print("- lifeboat / slowest stage alone (%s): **%.2fx** (target <= 1.3)" % (slowest.label, lifeboat.seconds / slowest.seconds))
    print("- lifeboat peak RSS: **%.0f MiB** (target < 256)" % lifeboat.peak_mib)


if __name__ == "__main__":
    main()
