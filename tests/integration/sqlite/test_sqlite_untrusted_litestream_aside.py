"""roles/litestream restore tasks never move the live database over an earlier kept-aside copy (issue #16 item 6
for the Litestream path): the aside name had one-second resolution and `mv -f` replaced whatever had that name.

A fake `litestream` stands in for the binary (it writes a small SQLite database to the -o path): the test is about
the swap, which is the same for any replica. The test pre-creates every name the old scheme could have chosen
during the run and proves each is untouched afterwards."""

import datetime
import glob
import os
import sqlite3
import sys

FAKE = r'''#!%(python)s
import sqlite3, sys
args = sys.argv[1:]
if args[0] == "restore":
    out = args[args.index("-o") + 1]
    conn = sqlite3.connect(out)
    conn.execute("CREATE TABLE restored (v)")
    conn.execute("INSERT INTO restored VALUES ('from the replica')")
    conn.commit()
    conn.close()
'''

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


def table(path):
    conn = sqlite3.connect(str(path))
    try:
        return [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    finally:
        conn.close()


def test_restore_never_overwrites_a_kept_aside_copy(ansible, tmp_path):
    fake = tmp_path / "litestream"
    fake.write_text(FAKE % {"python": sys.executable})
    fake.chmod(0o755)
    db = tmp_path / "app.db"
    conn = sqlite3.connect(str(db))
    conn.execute("CREATE TABLE live (v)")
    conn.commit()
    conn.close()
    # earlier kept copies under every name the old one-second scheme could pick during the next two minutes
    start = datetime.datetime.utcnow()
    earlier = []
    for second in range(-2, 120):
        stamp = (start + datetime.timedelta(seconds=second)).strftime("%Y%m%dT%H%M%SZ")
        path = "%s.lifeboat-prev-%s" % (db, stamp)
        with open(path, "w") as handle:
            handle.write("earlier kept copy %s" % stamp)
        earlier.append(path)
    play = tmp_path / "restore.yml"
    play.write_text(RESTORE_PLAY)
    variables = {"litestream_bin": str(fake), "litestream_config_path": str(tmp_path / "litestream.yml"),
                 "litestream_env_file": str(tmp_path / "absent.env"), "litestream_manage_service": False,
                 "litestream_user": "root", "litestream_group": "root", "litestream_restore_db": str(db)}
    proc = ansible.playbook(str(play), variables)
    assert proc.returncode == 0, proc.stdout
    assert table(db) == ["restored"]
    for path in earlier:
        with open(path) as handle:
            assert handle.read().startswith("earlier kept copy"), path
    kept = [path for path in glob.glob(str(db) + ".lifeboat-prev-*") if path not in earlier]
    assert len(kept) == 1 and table(kept[0]) == ["live"]
    assert not os.path.exists(str(db) + ".lifeboat-restore")
