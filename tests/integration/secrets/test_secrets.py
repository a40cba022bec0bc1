"""No secret in any command line, Ansible output (-vvv), log, audit entry or manifest; files holding one are 0600.

Runs: pg_dump_s3 + pg_restore_s3 (login_password, s3.secret_key), redis_backup (redis_password),
mongo_dump (credentials in mongo_uri; nx-27017 has no authentication, so the run fails: the failure path
must be as clean), sqlite_backup/restore with s3.secret_key, and the lifeboat runner with a job file
holding an S3 secret key.
"""

import json
import os
import sqlite3
import subprocess
import sys

from support.runner import install_runner
from secret_helpers import (MONGO_SECRET, PG_SECRET, S3_ACCESS, S3_SECRET, Watch, assert_absent, manifests,
                            run_steps, s3_manifests, watch_dirs)

ALL = [S3_SECRET, S3_ACCESS, PG_SECRET, MONGO_SECRET]


def test_postgres_dump_and_restore(ansible, pg_server, moto, secret_s3, tmp_path):
    dest = str(tmp_path / "repo")
    login = pg_server.login()
    assert login["login_password"] == PG_SECRET
    steps = [
        ("lifeboat.backup.pg_dump_s3", dict(login, job="shop", database="shop", s3=secret_s3, dest=dest)),
        ("lifeboat.backup.pg_restore_s3", dict(login, job="shop", database="shop_copy", s3=secret_s3)),
    ]
    with watch_dirs(ansible, dest) as watch:
        outs, output = run_steps(ansible, steps)
    assert not outs[0].get("failed"), outs[0]
    assert not outs[1].get("failed"), outs[1]
    assert pg_server.sql("SELECT count(*) FROM orders", "shop_copy") == "300"
    watch.assert_clean()
    assert_absent(ALL, output=output, dump_result=outs[0]["_raw"], restore_result=outs[1]["_raw"],
                  manifests=manifests(dest), s3_manifests=s3_manifests(moto, secret_s3["bucket"]),
                  server_log=open(pg_server.log).read())
    assert "login_password" in output  # -vvv shows the invocation, with the value hidden


def test_redis_backup(ansible, redis_server, moto, secret_s3, tmp_path):
    secret = redis_server.password
    with redis_server.client() as client:
        client.execute("SET", "k", "v")
    dest = str(tmp_path / "repo")
    steps = [("lifeboat.backup.redis_backup", dict(redis_server.options(), job="cache", s3=secret_s3, dest=dest))]
    with Watch(ALL + [secret], dirs=[ansible.workdir, dest], shallow_dirs=["/tmp"], ignore=["/vars-"]) as watch:
        outs, output = run_steps(ansible, steps)
    assert not outs[0].get("failed"), outs[0]
    watch.assert_clean()
    assert_absent(ALL + [secret], output=output, result=outs[0]["_raw"], manifests=manifests(dest),
                  s3_manifests=s3_manifests(moto, secret_s3["bucket"]))


def test_mongo_uri_credentials(ansible, nx, moto, secret_s3, tmp_path):
    client = nx.client()
    client.shop.items.insert_many([{"n": i} for i in range(20)])
    client.close()
    uri = "mongodb://lbuser:%s@127.0.0.1:%d/?authSource=admin" % (MONGO_SECRET, nx.port)
    dest = str(tmp_path / "repo")
    steps = [("lifeboat.backup.mongo_dump", dict(job="docs", mongo_uri=uri, s3=secret_s3, dest=dest)),
             ("lifeboat.backup.mongo_dump", dict(job="docs", mongo_uri=uri, s3=secret_s3, dest=dest,
                                                 method="builtin", server_selection_timeout_ms=2000))]
    with watch_dirs(ansible, dest) as watch:
        outs, output = run_steps(ansible, steps)
    for out in outs:
        # nx-27017 has no authentication: the run fails at the handshake, and says so without the password.
        assert out.get("failed") and "lbuser@127.0.0.1" in out["msg"], out
    watch.assert_clean()
    assert_absent(ALL, output=output, results=[o["_raw"] for o in outs], manifests=manifests(dest))
    assert not os.path.exists(os.path.join(dest, "docs")) or os.listdir(os.path.join(dest, "docs")) == []


def test_sqlite_with_s3_secret_key(ansible, moto, secret_s3, tmp_path):
    db = str(tmp_path / "app.db")
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (v)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.close()
    steps = [("lifeboat.backup.sqlite_backup", dict(job="app", path=db, s3=secret_s3)),
             ("lifeboat.backup.sqlite_restore", dict(job="app", path=str(tmp_path / "copy.db"), s3=secret_s3)),
             ("lifeboat.backup.backup_catalog", dict(job="app", s3=secret_s3)),
             # a wrong endpoint: the failure message names the endpoint, not the key
             ("lifeboat.backup.sqlite_backup", dict(job="app", path=db, s3=dict(secret_s3, bucket="missing-bucket")))]
    with watch_dirs(ansible) as watch:
        outs, output = run_steps(ansible, steps)
    assert [bool(o.get("failed")) for o in outs] == [False, False, False, True], outs
    watch.assert_clean()
    assert_absent(ALL, output=output, results=[o["_raw"] for o in outs],
                  s3_manifests=s3_manifests(moto, secret_s3["bucket"]))


def test_runner_job_file_audit_and_logs(moto, secret_s3, tmp_path):
    lib = tmp_path / "lib"
    runner = install_runner(lib)
    config, state, dest = tmp_path / "etc", tmp_path / "state", str(tmp_path / "repo")
    (config / "jobs").mkdir(parents=True)
    db = str(tmp_path / "app.db")
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (v)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.close()
    watch = Watch(ALL, dirs=[str(config), str(state), dest], shallow_dirs=["/tmp"])  # files written from here on
    job_file = config / "jobs" / "app.json"
    fd = os.open(str(job_file), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"job": "app", "kind": "sqlite", "path": db, "dest": dest, "s3": secret_s3}, handle)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIFEBOAT_", "AWS_"))}

    def lifeboat(*args):
        return subprocess.run([sys.executable, runner, "--config-dir", str(config),
                               "--state-dir", str(state)] + list(args), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=120, check=False)

    with watch:
        runs = [lifeboat("run", "app"), lifeboat("list", "app", "--json"), lifeboat("verify", "app"),
                lifeboat("restore", "app", "--to", str(tmp_path / "copy.db"), "--json")]
    assert [p.returncode for p in runs] == [0, 0, 0, 0], [p.stderr for p in runs]
    watch.assert_clean()
    assert watch.files == {str(job_file): 0o600}  # the only file holding the secret is the job file, 0600
    audit = (state / "audit.jsonl").read_text()
    assert len(audit.splitlines()) == 3
    assert_absent(ALL, stdout=[p.stdout for p in runs], stderr=[p.stderr for p in runs], audit=audit,
                  manifests=manifests(dest), s3_manifests=s3_manifests(moto, secret_s3["bucket"]))
    assert oct(os.stat(str(state / "audit.jsonl")).st_mode & 0o777) == "0o600"

    # A job file with secrets that others may read is refused, and the message does not quote the secret.
    os.chmod(str(job_file), 0o644)
    refused = lifeboat("run", "app")
    assert refused.returncode == 2 and "chmod 0600" in refused.stderr and "s3.secret_key" in refused.stderr
    assert_absent(ALL, stderr=refused.stderr)


def test_the_watch_sees_what_it_looks_for(tmp_path):
    """Control: a secret in a command line and in a world-readable file is caught, so a clean run means something."""
    leaky = tmp_path / "leaky.conf"
    with Watch([S3_SECRET], dirs=[str(tmp_path)]) as watch:
        subprocess.run([sys.executable, "-c", "import time; time.sleep(0.5)", S3_SECRET], check=True)
        leaky.write_text("secret_key = %s\n" % S3_SECRET)
        os.chmod(str(leaky), 0o644)
    assert any(S3_SECRET in line for _pid, line in watch.cmdline_hits)
    assert watch.exposed() == {str(leaky): "0o644"}
