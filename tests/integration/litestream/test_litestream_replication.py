"""litestream_config through ansible-playbook, then Litestream 0.5 for real against the moto S3 endpoint:
replicate, restore, point-in-time restore, and the commit-to-replica lag."""

import datetime
import grp
import os
import pwd
import sqlite3
import statistics
import stat
import subprocess
import time

from litestream_support import litestream_env

MODULE = "lifeboat.backup.litestream_config"
SECRET = "s3cr3t-Value-that-must-not-leak"


def config_args(tmp_path, moto, bucket, db, **extra):
    args = {
        "path": str(tmp_path / "etc" / "litestream.yml"),
        "env_file": str(tmp_path / "etc" / "litestream.env"),
        "access_key": "testing",
        "secret_key": "testing",
        "snapshot_interval": "1h",
        "retention": "168h",
        "dbs": [{"path": str(db), "replica": {
            "bucket": bucket, "path": "litestream/app", "endpoint": moto.url, "region": "us-east-1",
            "force_path_style": True, "sync_interval": "1s"}}],
    }
    args.update(extra)
    return args


def make_db(path):
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, batch INTEGER, v TEXT)")
    return conn


def insert_batch(conn, batch, rows):
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t (batch, v) VALUES (?, ?)", [(batch, "b%d-%d" % (batch, i)) for i in range(rows)])
    conn.execute("COMMIT")


def rows(path):
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute("SELECT id, batch, v FROM t ORDER BY id").fetchall()
    finally:
        conn.close()


class L0(object):
    """Level-0 LTX objects of the replica: Litestream uploads one per sync that carried changes."""

    def __init__(self, client, bucket, prefix):
        self.client, self.bucket, self.prefix = client, bucket, prefix + "/0000/"

    def keys(self):
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        return {obj["Key"] for page in pages for obj in page.get("Contents", [])}

    def wait_new(self, before, timeout=30.0, interval=0.02):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = self.keys() - before
            if new:
                return new
            time.sleep(interval)
        raise AssertionError("no new LTX file under s3://%s/%s within %.0f s" % (self.bucket, self.prefix, timeout))


def restore(litestream_bin, config, env, db, out, timestamp=None):
    argv = [litestream_bin, "restore", "-config", config, "-o", str(out)]
    if timestamp:
        argv += ["-timestamp", timestamp]
    proc = subprocess.run(argv + [str(db)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout
    return out


def test_config_module_idempotent_check_diff_and_secrets(ansible, moto, bucket, tmp_path):
    (tmp_path / "etc").mkdir()
    args = config_args(tmp_path, moto, bucket, tmp_path / "app.db", secret_key=SECRET)
    config, env_file = args["path"], args["env_file"]

    out = ansible.module(MODULE, args, check=True)
    assert not out.get("failed"), out
    assert out["changed"] and not os.path.exists(config) and not os.path.exists(env_file)

    out = ansible.module(MODULE, args)
    assert not out.get("failed"), out
    assert out["changed"] and out["config_changed"] and out["env_file_changed"]
    assert out["validated_with"] == "litestream"
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600
    text = open(config).read()
    assert SECRET not in text and "access-key" not in text and "secret" not in text
    assert SECRET in open(env_file).read()
    assert SECRET not in out["_output"]  # no_log: never in the play output
    # the file is what Litestream reads: it lists the database with an s3 replica
    proc = subprocess.run(["litestream", "databases", "-config", config], env=litestream_env(), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    assert proc.returncode == 0 and str(tmp_path / "app.db") in proc.stdout and "s3" in proc.stdout, proc.stdout

    out = ansible.module(MODULE, args)
    assert not out.get("failed"), out
    assert out["changed"] is False and out["config_changed"] is False and out["env_file_changed"] is False

    # a change in check mode reports changed (with a diff) and writes nothing
    changed = dict(args, retention="720h")
    proc = ansible.playbook(_diff_play(tmp_path, changed), check=True, extra_args=["--diff"])
    assert proc.returncode == 0 and "changed=1" in proc.stdout, proc.stdout
    assert '-  retention: "168h"' in proc.stdout and '+  retention: "720h"' in proc.stdout, proc.stdout
    assert SECRET not in proc.stdout
    assert open(config).read() == text

    # a wrong mode is corrected without rewriting the content
    os.chmod(config, 0o644)
    out = ansible.module(MODULE, args)
    assert out["changed"] and not out["config_changed"]
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o640

    # bad input fails with a reason and leaves the file alone
    out = ansible.module(MODULE, dict(args, retention="7d"))
    assert out["failed"] and "168h" in out["msg"], out
    out = ansible.module(MODULE, dict(args, env_file=None))
    assert out["failed"] and "env_file" in out["msg"], out
    assert open(config).read() == text


def test_config_module_file_attributes_as_copy(ansible, moto, bucket, tmp_path):
    """owner, group and mode behave as in ansible.builtin.copy (changed, check mode, --diff, idempotence);
    the env file stays 0600 whatever the file options say."""
    (tmp_path / "etc").mkdir()
    args = config_args(tmp_path, moto, bucket, tmp_path / "app.db", owner="nobody", group="nogroup", mode="0640",
                       validate=False, secret_key=SECRET)
    config, env_file = args["path"], args["env_file"]
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid

    def state(path):
        st = os.stat(path)
        return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)

    out = ansible.module(MODULE, args)
    assert not out.get("failed"), out
    assert out["changed"] and out["config_changed"] and out["env_file_changed"]
    assert state(config) == (nobody, nogroup, 0o640)
    assert state(env_file) == (os.geteuid(), os.getegid(), 0o600)  # the file options are the config file's only
    text, env_text = open(config).read(), open(env_file).read()

    out = ansible.module(MODULE, args)
    assert out["changed"] is False and out["attributes_changed"] is False, out
    # a symbolic mode that means the same is no change either, as in ansible.builtin.copy
    out = ansible.module(MODULE, dict(args, mode="u=rw,g=r,o="))
    assert out["changed"] is False, out

    # owner, group and mode drift: check mode reports it with a diff and changes nothing
    os.chown(config, 0, 0)
    os.chmod(config, 0o644)
    os.chmod(env_file, 0o644)
    proc = ansible.playbook(_diff_play(tmp_path, args), check=True, extra_args=["--diff"])
    assert proc.returncode == 0 and "changed=1" in proc.stdout, proc.stdout
    for line in ('-    "mode": "0644"', '+    "mode": "0640"', '-    "owner": 0', '+    "owner": %d' % nobody,
                 '-    "group": 0', '+    "group": %d' % nogroup, '+    "mode": "0600"'):
        assert line in proc.stdout, (line, proc.stdout)
    assert SECRET not in proc.stdout
    assert state(config) == (0, 0, 0o644) and state(env_file)[2] == 0o644
    out = ansible.module(MODULE, args, check=True)
    assert out["changed"] and out["attributes_changed"] and not out["config_changed"] and out["env_file_changed"]
    assert state(config) == (0, 0, 0o644)

    # the real run corrects them in place: content untouched, reported as changed
    inode = os.stat(config).st_ino
    out = ansible.module(MODULE, args)
    assert out["changed"] and out["attributes_changed"] and not out["config_changed"] and out["env_file_changed"]
    assert state(config) == (nobody, nogroup, 0o640) and state(env_file)[2] == 0o600
    assert os.stat(config).st_ino == inode and open(config).read() == text and open(env_file).read() == env_text
    out = ansible.module(MODULE, args)
    assert out["changed"] is False, out

    # new credentials: --diff says the env file changes, never what is in it
    proc = ansible.playbook(_diff_play(tmp_path, dict(args, secret_key=SECRET + "-new")), check=True,
                            extra_args=["--diff"])
    assert proc.returncode == 0 and "changed=1" in proc.stdout, proc.stdout
    assert "%s: content changed (not shown" % env_file in proc.stdout and SECRET not in proc.stdout, proc.stdout
    assert open(env_file).read() == env_text

    # a content change replaces the file and keeps the wanted attributes; a new env file is created 0600
    os.remove(env_file)
    out = ansible.module(MODULE, dict(args, retention="720h"))
    assert out["changed"] and out["config_changed"] and out["env_file_changed"]
    assert state(config) == (nobody, nogroup, 0o640) and state(env_file)[2] == 0o600
    assert 'retention: "720h"' in open(config).read() and open(env_file).read() == env_text
    assert sorted(os.listdir(str(tmp_path / "etc"))) == ["litestream.env", "litestream.yml"]  # no temp files left

    # an unknown owner fails with a reason
    out = ansible.module(MODULE, dict(args, owner="no-such-user-lifeboat"))
    assert out["failed"] and "no-such-user-lifeboat" in out["msg"], out


def _diff_play(tmp_path, args):
    import json
    play = tmp_path / "diff-play.yml"
    play.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: Config\n"
                    "      lifeboat.backup.litestream_config: %s\n" % json.dumps(args))
    return str(play)


def test_replicate_restore_point_in_time_and_lag(ansible, moto, bucket, tmp_path, replicator, litestream_bin):
    (tmp_path / "etc").mkdir()
    db = tmp_path / "app.db"
    args = config_args(tmp_path, moto, bucket, db)
    out = ansible.module(MODULE, args)
    assert not out.get("failed"), out
    config, env = args["path"], litestream_env(args["env_file"])
    l0 = L0(moto.client(), bucket, "litestream/app")

    conn = make_db(db)
    rep = replicator(config, env)
    first = l0.wait_new(set())  # initial snapshot + first LTX
    assert rep.process.poll() is None, rep.log()

    before = l0.keys() | first
    insert_batch(conn, 1, 500)
    l0.wait_new(before)
    time.sleep(1.2)
    point = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    time.sleep(1.2)
    before = l0.keys()
    insert_batch(conn, 2, 300)
    l0.wait_new(before)

    # commit-to-replica lag: one row per commit, time until a new L0 LTX object is listed in the bucket.
    # Nothing else writes, so the new object carries that commit (checked by the restore below).
    lags = []
    for i in range(5):
        before = l0.keys()
        conn.execute("INSERT INTO t (batch, v) VALUES (3, ?)", ("lag-%d" % i,))
        start = time.monotonic()
        l0.wait_new(before, interval=0.01)
        lags.append(time.monotonic() - start)
    print("\nlitestream commit-to-replica lag (sync-interval 1s, monitor-interval default 1s): "
          "median %.2f s, max %.2f s, samples %s" % (statistics.median(lags), max(lags),
                                                     ", ".join("%.2f" % lag for lag in lags)))
    assert max(lags) < 5, lags

    live = rows(db)
    assert len(live) == 805
    latest = restore(litestream_bin, config, env, db, tmp_path / "restored.db")
    assert rows(latest) == live
    assert sqlite3.connect(str(latest)).execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    at_point = restore(litestream_bin, config, env, db, tmp_path / "point.db", timestamp=point)
    got = rows(at_point)
    assert got == [row for row in live if row[1] == 1], "restore to %s did not return exactly batch 1" % point
    conn.close()
    rep.stop()
