"""SQLite backup and restore: lifeboat against the shell recipe operators use today (`sqlite3 .backup`,
then `zstd`, then an upload), restic (to the same S3) and borgmatic (a `sqlite3 .backup` hook, local borg repository),
on the same database in one run. Prints a markdown section.

Targets (issue 2): faster than the recipe, within 1.3x of the slowest single stage run alone, and
peak memory under 256 MB independent of database size.
"""

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time

from common import (ENGINE_PATH, SKIPPED, median_run, peer_versions, process_cpu, require_peers, reset_moto,
                    start_moto, table, timed)

BOTO = r"""
import sys, boto3
from boto3.s3.transfer import TransferConfig
client = boto3.client("s3", endpoint_url=sys.argv[2], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
config = TransferConfig(multipart_chunksize=16 * 1024 * 1024, max_concurrency=4)
if sys.argv[1] == "up":
    client.upload_file(sys.argv[3], sys.argv[4], "recipe/data.db.zst", Config=config)
else:
    client.download_file(sys.argv[4], "recipe/data.db.zst", sys.argv[3], Config=config)
"""

LIFEBOAT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from engine.pipeline.backup import run_backup
from engine.repositories.repository import Repository
from engine.sources.sqlite.kind import SqliteSource, restore_sqlite
options = json.loads(sys.argv[3])
repository = Repository.from_options(dest=options.get("dest"), s3=options.get("s3"))
if sys.argv[2] == "backup":
    result = run_backup(SqliteSource(options["path"], tmp_dir=options["tmp"], verify=options["verify"]),
                        repository, "bench", threads=options.get("threads", 0))
    print(result["size"])
else:
    restore_sqlite(repository, "bench", options["path"], keep_previous=False)
"""

BORGMATIC = """
location:
    source_directories:
        - {snapshot_dir}
    repositories:
        - {repo}
storage:
    compression: zstd,3
hooks:
    before_backup:
        - sqlite3 {db} ".backup '{snapshot_dir}/app.db'"
    after_backup:
        - rm -f {snapshot_dir}/app.db
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


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _dirs, files in os.walk(path) for f in files)


def s3_bytes(moto, bucket, prefix=""):
    pages = moto.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sum(o["Size"] for page in pages for o in page.get("Contents", []))


def fresh(*paths):
    for path in paths:
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def lifeboat(label, mode, options):
    import json
    return timed(label, [sys.executable, "-c", LIFEBOAT, ENGINE_PATH, mode, json.dumps(options)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="database size (default 1024)")
    parser.add_argument("--workdir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "sqlite"))
    parser.add_argument("--no-peers", action="store_true",
                        help="leave restic and borgmatic out (their rows then say so); by default they must be installed")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is shown (default 3)")
    args = parser.parse_args()
    peers = require_peers(args.no_peers)  # before the database is built: a missing peer fails at once
    work = args.workdir
    os.makedirs(work, exist_ok=True)
    db = os.path.join(work, "bench-%dmb.db" % args.size_mb)
    if not os.path.exists(db):
        started = time.monotonic()
        make_database(db, args.size_mb)
        print("built %s (%.0f MB) in %.0f s" % (db, os.path.getsize(db) / 1e6, time.monotonic() - started),
              file=sys.stderr)
    size = os.path.getsize(db)
    copy, zst, restored = (os.path.join(work, n) for n in ("recipe-copy.db", "recipe-copy.db.zst", "restored.db"))
    moto = start_moto(work)
    rows_backup, rows_restore, stored = [], [], {}
    try:
        # The recipe, stage by stage (each stage alone is also the recipe's step). Every figure is the median of
        # --repeat runs.
        repeat = args.repeat
        bucket = moto.new_bucket("bench")

        def stage_backup():
            fresh(copy)
            subprocess.run(["sync"], check=True)
            return timed("sqlite3 .backup", ["sqlite3", db, ".backup '%s'" % copy])

        def stage_zstd():
            fresh(zst)
            return timed("zstd -3", ["zstd", "-q", "-3", copy, "-o", zst])

        stages = [median_run(stage_backup, repeat), median_run(stage_zstd, repeat),
                  median_run(lambda: timed("upload (boto3)", [sys.executable, "-c", BOTO, "up", moto.url, zst, bucket]),
                             repeat)]
        stored["recipe"] = os.path.getsize(zst)
        fresh(copy, zst)

        def recipe_download():
            fresh(zst, restored)
            down = timed("download (boto3)", [sys.executable, "-c", BOTO, "down", moto.url, zst, bucket])
            unzstd = timed("zstd -d", ["zstd", "-q", "-d", zst, "-o", restored])
            down.seconds += unzstd.seconds
            down.tree_mib = max(down.tree_mib, unzstd.tree_mib)
            return down
        recipe_restore_run = median_run(recipe_download, repeat)
        recipe_restore = recipe_restore_run.seconds
        fresh(zst, restored)

        reset_moto(moto)
        bucket = moto.new_bucket("bench")
        s3 = dict(bucket=bucket, endpoint_url=moto.url, region="us-east-1", access_key="testing", secret_key="testing")

        def lifeboat_s3():
            moto_before = process_cpu(moto.process.pid)
            run = lifeboat("lifeboat -> S3", "backup", dict(path=db, tmp=work, verify=False, s3=s3))
            run.moto_cpu = process_cpu(moto.process.pid) - moto_before
            return run
        lb_s3 = median_run(lifeboat_s3, repeat)
        stored["lifeboat"] = int(lb_s3.output.split()[0])
        lb_s3_single = median_run(lambda: lifeboat("lifeboat -> S3 (compression_threads 1)", "backup",
                                                   dict(path=db, tmp=work, verify=False, s3=s3, threads=1)), repeat)
        lb_s3_verify = median_run(lambda: lifeboat("lifeboat -> S3 (with integrity_check)", "backup",
                                                   dict(path=db, tmp=work, verify=True, s3=s3)), repeat)

        def lifeboat_restore():
            fresh(restored)
            return lifeboat("lifeboat restore <- S3", "restore", dict(path=restored, s3=s3))
        lb_restore = median_run(lifeboat_restore, repeat)
        fresh(restored)
        local_repo = os.path.join(work, "lifeboat-repo")

        def lifeboat_local():
            fresh(local_repo)
            return lifeboat("lifeboat -> local dir", "backup", dict(path=db, tmp=work, verify=False, dest=local_repo))
        lb_local = median_run(lifeboat_local, repeat)
        fresh(local_repo)

        recipe_total = sum(s.seconds for s in stages)
        slowest = max(stages, key=lambda s: s.seconds)
        for stage in stages:
            rows_backup.append([stage.label + " (recipe stage alone)", "%.2f" % stage.seconds, "%.0f" % stage.peak_mib, ""])
        rows_backup.append(["recipe: .backup, zstd, upload (sequential)", "%.2f" % recipe_total,
                            "%.0f" % max(s.peak_mib for s in stages), "%.1f" % (stored["recipe"] / 1e6)])
        rows_backup.append(["**lifeboat sqlite_backup -> S3**", "**%.2f**" % lb_s3.seconds, "**%.0f**" % lb_s3.peak_mib,
                            "%.1f" % (stored["lifeboat"] / 1e6)])
        rows_backup.append(["lifeboat -> S3, compression_threads 1 (zstd on one core, as the recipe)",
                            "%.2f" % lb_s3_single.seconds, "%.0f" % lb_s3_single.peak_mib, ""])
        rows_backup.append(["lifeboat -> S3, verify on (integrity_check + row counts)", "%.2f" % lb_s3_verify.seconds,
                            "%.0f" % lb_s3_verify.peak_mib, ""])
        rows_backup.append(["lifeboat -> local directory", "%.2f" % lb_local.seconds, "%.0f" % lb_local.peak_mib, ""])
        rows_restore.append(["recipe: download, zstd -d", "%.2f" % recipe_restore, "%.0f" % recipe_restore_run.peak_mib])
        rows_restore.append(["**lifeboat sqlite_restore <- S3** (sha256, integrity_check, atomic swap)",
                             "**%.2f**" % lb_restore.seconds, "**%.0f**" % lb_restore.peak_mib])

        if peers:
            env = dict(os.environ, RESTIC_PASSWORD="bench-only", AWS_ACCESS_KEY_ID="testing",
                       AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
            repo = "s3:%s/%s/restic" % (moto.url, bucket)
            subprocess.run(["restic", "-q", "-r", repo, "init"], env=env, check=True, stdout=subprocess.DEVNULL)
            snap = timed("sqlite3 .backup", ["sqlite3", db, ".backup '%s'" % copy])
            restic = timed("restic backup", ["restic", "-q", "-r", repo, "--compression", "auto", "backup", copy],
                           env=env)
            fresh(copy)
            stored["restic"] = s3_bytes(moto, bucket, "restic/")
            rows_backup.append(["restic -> S3 (.backup then restic backup)", "%.2f" % (snap.seconds + restic.seconds),
                                "%.0f" % max(snap.peak_mib, restic.peak_mib), "%.1f" % (stored["restic"] / 1e6)])
            target = os.path.join(work, "restic-restore")
            fresh(target)
            restic_restore = timed(
                "restic restore", ["restic", "-q", "-r", repo, "restore", "latest", "--target", target], env=env)
            fresh(target)
            rows_restore.append(["restic restore <- S3", "%.2f" % restic_restore.seconds, "%.0f" % restic_restore.peak_mib])

            borg_repo, borg_base = os.path.join(work, "borg-repo"), os.path.join(work, "borg-base")
            snapshot_dir, extract_dir = os.path.join(work, "borg-snapshot"), os.path.join(work, "borg-extract")
            fresh(borg_repo, borg_base, snapshot_dir, extract_dir)
            for directory in (borg_base, snapshot_dir, extract_dir):
                os.makedirs(directory)
            config = os.path.join(work, "borgmatic.yaml")
            with open(config, "w") as handle:
                handle.write(BORGMATIC.format(repo=borg_repo, snapshot_dir=snapshot_dir, db=db))
            benv = dict(os.environ, BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes", BORG_BASE_DIR=borg_base)
            subprocess.run(["borg", "init", "--encryption=none", borg_repo], env=benv, check=True)
            quiet = ["--syslog-verbosity", "-1"]
            borgmatic = timed("borgmatic create", ["borgmatic", "-c", config] + quiet + ["create"], env=benv)
            stored["borgmatic"] = du(borg_repo)
            rows_backup.append(["borgmatic (before_backup: sqlite3 .backup) -> local borg repo",
                                "%.2f" % borgmatic.seconds, "%.0f" % borgmatic.peak_mib,
                                "%.1f" % (stored["borgmatic"] / 1e6)])
            borg_restore = timed("borgmatic extract", ["borgmatic", "-c", config] + quiet + [
                "extract", "--archive", "latest", "--destination", extract_dir], env=benv)
            rows_restore.append(["borgmatic extract <- local borg repo", "%.2f" % borg_restore.seconds,
                                 "%.0f" % borg_restore.peak_mib])
            fresh(borg_repo, borg_base, snapshot_dir, extract_dir)
        else:
            rows_backup += [["restic -> S3 (.backup then restic backup)", SKIPPED, "", ""],
                            ["borgmatic (before_backup: sqlite3 .backup) -> local borg repo", SKIPPED, "", ""]]
            rows_restore += [["restic restore <- S3", SKIPPED, ""], ["borgmatic extract <- local borg repo", SKIPPED, ""]]
    finally:
        moto.stop()

    print("## SQLite, %.2f GB database\n" % (size / 1e9))
    print("%s, %d cores, Python %s. zstd level 3 everywhere; S3 is moto on 127.0.0.1 (its own CPU cost is part "
          "of every S3 figure). Seconds are the median of %d runs (peer tools: one run). Peak RSS is the whole "
          "process tree (the tool and its children), sampled from /proc. Peers: %s.\n" % (
              platform.platform(terse=True), os.cpu_count(), platform.python_version(), args.repeat,
              peer_versions() if peers else "left out (--no-peers)"))
    print("### Backup\n")
    print(table(rows_backup, ["run", "seconds", "peak RSS MiB", "stored MB"]))
    print("\n### Restore\n")
    print(table(rows_restore, ["run", "seconds", "peak RSS MiB"]))
    print()
    print("- lifeboat / recipe (backup to S3): **%.2fx** (target < 1.0)" % (lb_s3.seconds / recipe_total))
    print("- lifeboat / slowest recipe stage alone (%s): **%.2fx** (target <= 1.3)"
          % (slowest.label, lb_s3.seconds / slowest.seconds))
    print("- CPU of that lifeboat -> S3 run: %.1f s in lifeboat and its zstd, %.1f s in moto: %.1f CPU-seconds for "
          "%d cores, so no schedule of the work finishes in under %.1f s"
          % (lb_s3.cpu, lb_s3.moto_cpu, lb_s3.cpu + lb_s3.moto_cpu, os.cpu_count(),
             (lb_s3.cpu + lb_s3.moto_cpu) / os.cpu_count()))
    zstd_stage = stages[1]
    print("- lifeboat -> local directory / zstd stage alone (no S3 server on the cores): **%.2fx**"
          % (lb_local.seconds / zstd_stage.seconds))
    print("- spread of the %d runs behind each median: lifeboat -> S3 %.2f-%.2f s, upload alone %.2f-%.2f s"
          % (args.repeat, lb_s3.spread[0], lb_s3.spread[1], stages[2].spread[0], stages[2].spread[1]))
    print("- lifeboat peak RSS: **%.0f MiB** backup, **%.0f MiB** restore (target < 256)"
          % (lb_s3.peak_mib, lb_restore.peak_mib))
    print("- lifeboat restore / recipe restore: **%.2fx** (lifeboat also checks sha256 and integrity and swaps atomically)"
          % (lb_restore.seconds / recipe_restore))


if __name__ == "__main__":
    main()
