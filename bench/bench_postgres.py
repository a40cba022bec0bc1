"""PostgreSQL: lifeboat pg_dump_s3 (pg_dump -> zstd -> S3 multipart, row counts in the dump's snapshot) against
the usual recipe `pg_dump -Fc | upload from stdin` (boto3 upload_fileobj), restic (pg_dump piped in, same S3)
and borgmatic (its postgresql hook, local borg repository), same database, same S3 (moto);
then restore: lifeboat with jobs 2 (download, verify, rows loaded by 2 sessions, post-data with 2 sessions) and
jobs 1 (one streamed pg_restore) against the recipe's restore (the archive it uploaded, downloaded and piped into
pg_restore) and against a plain pg_restore (and -j 2) of an archive already on local disk. Before every restore the
server is checkpointed, so no run pays for the previous run's dirty pages. Prints a markdown section with wall
times, ratios and peak memory.

Peak memory: /proc is polled every 50 ms and the RSS of the process and all its descendants (pg_dump, psql,
pg_restore, zstd...) is summed; the table shows the largest sum seen. (wait4's ru_maxrss is not used: on Linux it
counts the forked Python parent's pages before exec, which hides the tools' own figures.)
"""

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time

from common import ENGINE_PATH, REPO, SKIPPED, median_run, peer_versions, require_peers, start_moto, table, timed

FIXTURE = os.path.join(REPO, "tests", "integration", "postgres", "pgserver.py")

UPLOAD = r"""
import sys, boto3
from boto3.s3.transfer import TransferConfig
client = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
client.upload_fileobj(sys.stdin.buffer, sys.argv[2], "recipe/bench.pgdump",
                      Config=TransferConfig(multipart_chunksize=16 * 1024 * 1024, max_concurrency=4))
"""

DOWNLOAD = r"""
import sys, boto3
client = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
client.download_fileobj(sys.argv[2], "recipe/bench.pgdump", sys.stdout.buffer)
"""

LIFEBOAT_DUMP = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from engine.pipeline.backup import run_backup
from engine.sources.postgres.kind import source_from_options
from engine.repositories.repository import Repository
options = json.loads(sys.argv[2])
s3 = dict(bucket=sys.argv[3], endpoint_url=sys.argv[4], region="us-east-1", access_key="testing", secret_key="testing")
result = run_backup(source_from_options(dict(options, database="bench")), Repository.from_options(s3=s3), "bench")
print(result["size"], result["manifest"]["raw_size"])
"""

LIFEBOAT_RESTORE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from engine.sources.postgres.kind import restore_from_options
from engine.repositories.repository import Repository
options = json.loads(sys.argv[2])
s3 = dict(bucket=sys.argv[3], endpoint_url=sys.argv[4], region="us-east-1", access_key="testing", secret_key="testing")
result = restore_from_options(Repository.from_options(s3=s3), dict(options, job="bench", database="restored",
                                                                  jobs=int(sys.argv[5]), tmp_dir=sys.argv[6]))
print(result["verification"]["row_counts_checked"], not result["verification"]["mismatches"])
"""


def load_fixture():
    spec = importlib.util.spec_from_file_location("pg_fixture", FIXTURE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BORGMATIC = """
location:
    source_directories: []
    repositories:
        - {repo}
storage:
    compression: zstd,3
hooks:
    postgresql_databases:
        - name: bench
          hostname: 127.0.0.1
          port: {port}
          username: {user}
          password: {password}
"""


PEER_LABELS = ("restic: pg_dump -Fc piped to restic backup --stdin -> S3",
               "restic: createdb + restic dump piped to pg_restore <- S3",
               "borgmatic (postgresql hook) -> local borg repo",
               "borgmatic restore (pg_restore --clean into bench) <- local")


def peer_runs(pg_bin, server, fixture, moto, tcp_env, workdir):
    """restic (pg_dump piped in, to the same S3) and borgmatic (its postgresql hook, local borg repository),
    backup and restore, as operators set them up for this job."""
    runs = []
    bucket = moto.new_bucket("pgrestic")
    env = dict(tcp_env, RESTIC_PASSWORD="bench-only", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION="us-east-1")
    repo = "s3:%s/%s/restic" % (moto.url, bucket)
    subprocess.run(["restic", "-q", "-r", repo, "init"], env=env, check=True, stdout=subprocess.DEVNULL)
    runs.append(timed(PEER_LABELS[0],
                      [os.path.join(pg_bin, "pg_dump"), "-Fc", "bench"], env=env,
                      pipe_to=["restic", "-q", "-r", repo, "backup", "--stdin", "--stdin-filename", "bench.pgdump"]))
    server.drop("restored")
    create = timed("createdb", [os.path.join(pg_bin, "createdb"), "restored"], env=tcp_env)
    run = timed(PEER_LABELS[1],
                ["restic", "-q", "-r", repo, "dump", "latest", "/bench.pgdump"], env=env,
                pipe_to=[os.path.join(pg_bin, "pg_restore"), "--exit-on-error", "-d", "restored"])
    run.seconds += create.seconds
    runs.append(run)

    borg_repo, borg_base = os.path.join(workdir, "borg-repo"), os.path.join(workdir, "borg-base")
    for path in (borg_repo, borg_base):
        shutil.rmtree(path, ignore_errors=True)
    os.makedirs(borg_base)
    config = os.path.join(workdir, "borgmatic.yaml")
    with open(config, "w") as handle:
        handle.write(BORGMATIC.format(repo=borg_repo, port=server.port, user=fixture.USER, password=fixture.PASSWORD))
    benv = dict(tcp_env, BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes", BORG_BASE_DIR=borg_base)
    subprocess.run(["borg", "init", "--encryption=none", borg_repo], env=benv, check=True)
    quiet = ["--syslog-verbosity", "-1"]
    runs.append(timed(PEER_LABELS[2], ["borgmatic", "-c", config] + quiet + ["create"],
                      env=benv))
    runs.append(timed(PEER_LABELS[3],
                      ["borgmatic", "-c", config] + quiet + ["restore", "--archive", "latest"], env=benv))
    shutil.rmtree(borg_repo, ignore_errors=True)
    shutil.rmtree(borg_base, ignore_errors=True)
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale (default 70, about 1 GB; 5 for a check)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is shown (default 3)")
    parser.add_argument("--workdir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out",
                                                          "postgres"))
    parser.add_argument("--no-peers", action="store_true",
                        help="leave restic and borgmatic out (their rows then say so); by default they must be installed")
    args = parser.parse_args()
    with_peers = require_peers(args.no_peers)  # before the database is built: a missing peer fails at once
    os.makedirs(args.workdir, exist_ok=True)
    fixture = load_fixture()
    pg_bin = fixture.PG_BIN
    server = fixture.Postgres()
    moto = None
    try:
        env = dict(server.admin_env(), PGUSER=fixture.USER)
        server.sql("CREATE DATABASE bench OWNER %s" % fixture.USER)
        started = time.monotonic()
        subprocess.run([os.path.join(pg_bin, "pgbench"), "-i", "-q", "-s", str(args.scale), "bench"], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        db_size = int(server.sql("SELECT pg_database_size('bench')"))
        print("pgbench -i -s %d: %.2f GB in %.0f s" % (args.scale, db_size / 1e9, time.monotonic() - started),
              file=sys.stderr)
        moto = start_moto(args.workdir)
        options = server.login()
        options_json = json.dumps(options)
        tcp_env = dict(os.environ, PGPASSWORD=fixture.PASSWORD, PGHOST="127.0.0.1", PGPORT=str(server.port),
                       PGUSER=fixture.USER)

        repeat = args.repeat
        recipe_bucket, bucket = moto.new_bucket("pgrecipe"), moto.new_bucket("pglifeboat")
        dumps = [[], []]
        for _index in range(max(1, repeat)):  # interleaved, like the restores below
            dumps[0].append(timed("pg_dump -Fc piped to upload_fileobj",
                                  [os.path.join(pg_bin, "pg_dump"), "-Fc", "bench"],
                                  env=tcp_env, pipe_to=[sys.executable, "-c", UPLOAD, moto.url, recipe_bucket]))
            dumps[1].append(timed("lifeboat pg_dump_s3", [sys.executable, "-c", LIFEBOAT_DUMP, ENGINE_PATH,
                                                          options_json, bucket, moto.url]))
        recipe, lifeboat = [median_run(iter(runs).__next__, len(runs)) for runs in dumps]
        recipe_size = moto.client().head_object(Bucket=recipe_bucket, Key="recipe/bench.pgdump")["ContentLength"]
        stored, raw = (int(x) for x in lifeboat.output.split())

        archive = os.path.join(args.workdir, "plain.pgdump")
        subprocess.run([os.path.join(pg_bin, "pg_dump"), "-Fc", "-f", archive, "bench"], env=tcp_env, check=True)

        def fresh_target():
            server.drop("restored")
            server.sql("CHECKPOINT")

        def plain_restore(jobs):
            fresh_target()
            # createdb is part of the plain recipe too (lifeboat creates the database inside its timing)
            create = timed("createdb", [os.path.join(pg_bin, "createdb"), "restored"], env=tcp_env)
            argv = [os.path.join(pg_bin, "pg_restore"), "--exit-on-error", "-d", "restored", archive]
            if jobs > 1:
                argv[1:1] = ["-j", str(jobs)]
            run = timed("createdb + plain pg_restore%s (local file)" % (" -j %d" % jobs if jobs > 1 else ""), argv,
                        env=tcp_env)
            run.seconds += create.seconds
            return run

        def recipe_restore():
            """The restore half of the recipe: the archive it uploaded, downloaded and piped into pg_restore."""
            fresh_target()
            create = timed("createdb", [os.path.join(pg_bin, "createdb"), "restored"], env=tcp_env)
            run = timed("createdb + download piped to pg_restore (the recipe's restore)",
                        [sys.executable, "-c", DOWNLOAD, moto.url, recipe_bucket], env=tcp_env,
                        pipe_to=[os.path.join(pg_bin, "pg_restore"), "--exit-on-error", "-d", "restored"])
            run.seconds += create.seconds
            return run

        def lifeboat_restore(jobs):
            fresh_target()
            scratch = os.path.join(args.workdir, "scratch")
            os.makedirs(scratch, exist_ok=True)
            run = timed("lifeboat pg_restore_s3 jobs %d (from S3)" % jobs,
                        [sys.executable, "-c", LIFEBOAT_RESTORE, ENGINE_PATH, options_json, bucket, moto.url,
                         str(jobs), scratch])
            if run.output.split() != ["True", "True"]:
                raise SystemExit("lifeboat restore did not verify: %r" % run.output)
            shutil.rmtree(scratch)
            return run

        # interleaved so that a slow spell of the machine does not land on one side only
        restores = [[], [], [], [], []]
        for _index in range(max(1, repeat)):
            for slot, make in enumerate((recipe_restore, lambda: plain_restore(1), lambda: plain_restore(2),
                                         lambda: lifeboat_restore(2), lambda: lifeboat_restore(1))):
                restores[slot].append(make())
        restores = [median_run(iter(runs).__next__, len(runs)) for runs in restores]
        os.remove(archive)
        peers = peer_runs(pg_bin, server, fixture, moto, tcp_env, args.workdir) if with_peers else []
    finally:
        if moto:
            moto.stop()
        server.remove()

    rows = [[r.label, "%.2f" % r.seconds, "%.0f" % r.tree_mib] for r in [recipe, lifeboat] + restores]
    rows += [[r.label, "%.2f" % r.seconds, "%.0f" % r.tree_mib] for r in peers]
    if not with_peers:
        rows += [[label, SKIPPED, ""] for label in PEER_LABELS]
    print("## PostgreSQL dump to S3 and restore, pgbench scale %d (%.2f GB database)\n" % (args.scale, db_size / 1e9))
    print("%s, %d cores, Python %s, PostgreSQL 15, S3 = moto on 127.0.0.1. lifeboat: pg_dump --compress=0 then zstd "
          "level 3, exact row counts in the dump's snapshot; recipe: pg_dump's built-in zlib. Seconds are the median "
          "of %d runs (peer tools: one run); dumps and restores of each kind are interleaved. Peers: %s.\n" % (
              platform.platform(terse=True), os.cpu_count(), platform.python_version(), args.repeat,
              peer_versions() if with_peers else "left out (--no-peers)"))
    print(table(rows, ["run", "seconds", "peak RSS MiB (process tree)"]))
    print()
    print("- stored: lifeboat %.1f MB (raw archive %.1f MB), recipe %.1f MB"
          % (stored / 1e6, raw / 1e6, recipe_size / 1e6))
    print("- dump: lifeboat / recipe = **%.2fx** (spread of the runs: lifeboat %.2f-%.2f s, recipe %.2f-%.2f s)" % (
        lifeboat.seconds / recipe.seconds, lifeboat.spread[0], lifeboat.spread[1], recipe.spread[0], recipe.spread[1]))
    recipe_back, plain, plain_j2, lb_j2, lb_j1 = restores
    print("- restore from S3: lifeboat jobs 2 / the recipe's restore (download piped to pg_restore) = **%.2fx**; "
          "lifeboat jobs 1 / the recipe's restore = **%.2fx**" % (
              lb_j2.seconds / recipe_back.seconds, lb_j1.seconds / recipe_back.seconds))
    print("- against an archive already on local disk: lifeboat jobs 2 / plain pg_restore = **%.2fx**; lifeboat jobs 2 "
          "/ plain pg_restore -j 2 = **%.2fx**; lifeboat jobs 1 (streamed) / plain pg_restore = **%.2fx**" % (
              lb_j2.seconds / plain.seconds, lb_j2.seconds / plain_j2.seconds, lb_j1.seconds / plain.seconds))
    print("- spread of the runs: lifeboat jobs 2 %.2f-%.2f s, the recipe's restore %.2f-%.2f s, plain pg_restore "
          "%.2f-%.2f s" % (lb_j2.spread + recipe_back.spread + plain.spread))


if __name__ == "__main__":
    main()
