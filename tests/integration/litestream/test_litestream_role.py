"""roles/litestream applied with ansible-playbook on this host (binary copied with install method `file`,
no systemd here so litestream_manage_service=false), then its restore tasks against the moto replica:
point in time, previous files kept aside, a failed restore leaving the live database alone."""

import datetime
import glob
import os
import sqlite3
import stat
import time

from litestream_support import litestream_env
from test_litestream_replication import L0, insert_batch, make_db, restore, rows

PLAY = """\
- name: Apply the litestream role
  hosts: localhost
  gather_facts: false
  roles:
    - role: lifeboat.backup.litestream
"""

RESTORE_PLAY = """\
- name: Restore a database with the litestream role
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Restore
      ansible.builtin.include_role:
        name: lifeboat.backup.litestream
        tasks_from: restore
"""


def role_vars(tmp_path, moto, bucket, db, litestream_bin):
    etc = tmp_path / "etc"
    return {
        "litestream_install_method": "file",
        "litestream_file_src": os.path.realpath(litestream_bin),
        "litestream_bin": str(tmp_path / "bin" / "litestream"),
        "litestream_create_user": False,
        "litestream_user": "root",
        "litestream_group": "root",
        "litestream_config_path": str(etc / "litestream.yml"),
        "litestream_env_file": str(etc / "litestream" / "litestream.env"),
        "litestream_unit_dir": str(tmp_path / "systemd"),
        "litestream_manage_service": False,
        "litestream_access_key": "testing",
        "litestream_secret_key": "testing",
        "litestream_dbs": [{"path": str(db), "replica": {
            "bucket": bucket, "path": "role/app", "endpoint": moto.url, "region": "us-east-1",
            "force_path_style": True}}],
    }


def write_play(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_role_installs_configures_and_restores_point_in_time(ansible, moto, bucket, tmp_path, replicator,
                                                             litestream_bin):
    for sub in ("etc", "bin", "systemd", "data"):
        (tmp_path / sub).mkdir()
    db = tmp_path / "data" / "app.db"
    variables = role_vars(tmp_path, moto, bucket, db, litestream_bin)
    play = write_play(tmp_path, "site.yml", PLAY)

    proc = ansible.playbook(play, variables)
    assert proc.returncode == 0, proc.stdout
    proc = ansible.playbook(play, variables)
    assert proc.returncode == 0 and "changed=0" in proc.stdout, proc.stdout
    assert "testing" not in open(variables["litestream_config_path"]).read()
    assert stat.S_IMODE(os.stat(variables["litestream_env_file"]).st_mode) == 0o600
    unit = (tmp_path / "systemd" / "litestream.service").read_text()
    for line in ("User=root", "ProtectSystem=strict", "NoNewPrivileges=true", "PrivateTmp=true",
                 "ReadWritePaths=%s" % (tmp_path / "data"),
                 "EnvironmentFile=-%s" % variables["litestream_env_file"],
                 "ExecStart=%s replicate -config %s" % (variables["litestream_bin"], variables["litestream_config_path"])):
        assert line in unit.splitlines(), (line, unit)
    assert unit.startswith("#") and "Ansible managed" in unit

    # replicate with the installed binary and the role's files, as the unit would
    config, env = variables["litestream_config_path"], litestream_env(variables["litestream_env_file"])
    l0 = L0(moto.client(), bucket, "role/app")
    conn = make_db(db)
    rep = replicator(config, env, binary=variables["litestream_bin"])
    l0.wait_new(set())
    before = l0.keys()
    insert_batch(conn, 1, 200)
    l0.wait_new(before)
    time.sleep(1.2)
    point = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    time.sleep(1.2)
    before = l0.keys()
    insert_batch(conn, 2, 100)
    l0.wait_new(before)
    conn.close()
    live = rows(db)
    assert len(live) == 300
    rep.stop()  # the role stops the service before the swap; here the test plays the service manager

    restore_play = write_play(tmp_path, "restore.yml", RESTORE_PLAY)
    no_ca = {"AWS_CA_BUNDLE": ""}  # this machine's CA bundle makes Litestream fail (see ENVIRONMENT.md)
    # a time before any replicated data: the restore fails and the live database is untouched
    proc = ansible.playbook(restore_play, dict(variables, litestream_restore_db=str(db),
                                               litestream_restore_timestamp="2001-01-01T00:00:00Z"), env=no_ca)
    assert proc.returncode != 0 and "The live database was not touched" in proc.stdout, proc.stdout
    assert "no matching backup files" in proc.stdout, proc.stdout
    assert rows(db) == live
    assert not glob.glob(str(db) + ".lifeboat-*")

    proc = ansible.playbook(restore_play, dict(variables, litestream_restore_db=str(db),
                                               litestream_restore_timestamp=point), env=no_ca)
    assert proc.returncode == 0, proc.stdout
    assert rows(db) == [row for row in live if row[1] == 1]
    kept = [path for path in glob.glob(str(db) + ".lifeboat-prev-*") if path[-4:] not in ("-wal", "-shm")]
    assert len(kept) == 1 and rows(kept[0]) == live  # the replaced database (with its WAL) is kept aside
    assert not os.path.exists(str(db) + ".lifeboat-restore")

    # replication resumes from the restored state: new writes reach the replica and restore on top of batch 1
    rep = replicator(config, env, binary=variables["litestream_bin"])
    conn = sqlite3.connect(str(db), isolation_level=None)
    time.sleep(2)
    before = l0.keys()
    insert_batch(conn, 3, 50)
    l0.wait_new(before)
    conn.close()
    time.sleep(1.5)
    rep.stop()
    out = tmp_path / "after.db"
    restore(variables["litestream_bin"], config, env, db, out)
    assert rows(out) == rows(db) and len(rows(out)) == 250
