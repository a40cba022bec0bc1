"""playbooks/restore.yml end to end: stop the app, restore, start it, health check; put the previous data back
when the set is corrupt or the restored data fails the health check."""

import hashlib
import os

import pytest

from runbook_helpers import change_db, make_app_db, make_backup, rows


def backup(_ansible, module, args):
    kind = {"lifeboat.backup.sqlite_backup": "sqlite", "lifeboat.backup.dir_snapshot": "directory"}[module]
    return make_backup(kind, args["job"], args["dest"], args["path"])


def tree(path):
    """{relative path: sha256} of the regular files below path, SQLite files excluded (their bytes may differ)."""
    found = {}
    for root, _dirs, files in os.walk(str(path)):
        for name in files:
            full = os.path.join(root, name)
            if name.endswith((".db", ".db-wal", ".db-shm")):
                continue
            found[os.path.relpath(full, str(path))] = hashlib.sha256(open(full, "rb").read()).hexdigest()
    return found


def contents(path):
    """{relative path: sha256} of path (a file) or of every regular file below it (a directory), SQLite databases
    included; the -wal/-shm a reader of a WAL database may create are left out."""
    if os.path.isfile(str(path)):
        return {".": hashlib.sha256(open(str(path), "rb").read()).hexdigest()}
    found = {}
    for root, _dirs, files in os.walk(str(path)):
        for name in files:
            if not name.endswith(("-wal", "-shm")):
                full = os.path.join(root, name)
                found[os.path.relpath(full, str(path))] = hashlib.sha256(open(full, "rb").read()).hexdigest()
    return found


def leftovers(directory):
    return sorted(n for n in os.listdir(str(directory)) if ".lifeboat-" in n)


def sqlite_job(app, path, **extra):
    job = {"job": "app-db", "kind": "sqlite", "path": str(path), "stop_command": app.stop_command,
           "start_command": app.start_command, "health_urls": [app.health_url], "health_retries": 2,
           "health_delay": 1}
    job.update(extra)
    return job


def test_happy_path_sqlite_and_directory(ansible, tmp_path, app_factory, playbooks):
    live = tmp_path / "live"
    (live / "uploads" / "a").mkdir(parents=True)
    db = make_app_db(live / "app.db", rows=100)
    (live / "uploads" / "a" / "one.txt").write_text("one\n")
    (live / "uploads" / "two.bin").write_bytes(os.urandom(5000))
    repo = str(tmp_path / "repo")
    db_set = backup(ansible, "lifeboat.backup.sqlite_backup", {"job": "app-db", "dest": repo, "path": db})
    dir_set = backup(ansible, "lifeboat.backup.dir_snapshot", {"job": "uploads", "dest": repo,
                                                               "path": str(live / "uploads")})
    expected_tree = tree(live / "uploads")

    # After the backup: new rows, a changed file, a new file. The app runs.
    change_db(db, add_rows=25)
    (live / "uploads" / "a" / "one.txt").write_text("changed\n")
    (live / "uploads" / "three.txt").write_text("new\n")
    app = app_factory(db)
    app.start()
    assert app.get("/rows") == (200, "125")

    proc = ansible.playbook(os.path.join(playbooks, "restore.yml"), {
        "lifeboat_repository": {"dest": repo},
        "lifeboat_restore_jobs": [
            sqlite_job(app, db, mode="0640"),
            {"job": "uploads", "kind": "directory", "path": str(live / "uploads")},
        ],
    })
    assert proc.returncode == 0, proc.stdout
    assert rows(db) == 100
    assert oct(os.stat(db).st_mode & 0o777) == "0o640"
    assert app.running() and app.get("/rows") == (200, "100")  # started again, on the restored data
    assert app.get("/health")[0] == 200
    assert tree(live / "uploads") == expected_tree
    assert "app-db               sqlite    restored    set %s" % db_set["id"] in proc.stdout
    assert "uploads              directory restored    set %s" % dir_set["id"] in proc.stdout
    # The previous data is kept aside, nothing else is left behind.
    kept = leftovers(live)
    assert len([n for n in kept if n.startswith("app.db.lifeboat-prev-") and not n.endswith(("-wal", "-shm"))]) == 1
    assert len([n for n in kept if n.startswith("uploads.lifeboat-prev-")]) == 1
    assert not [n for n in kept if "lifeboat-restore" in n or "lifeboat-failed" in n]


def test_corrupted_set_leaves_live_data_and_restarts_the_service(ansible, tmp_path, app_factory, playbooks):
    db = make_app_db(tmp_path / "app.db", rows=100)
    repo = str(tmp_path / "repo")
    db_set = backup(ansible, "lifeboat.backup.sqlite_backup", {"job": "app-db", "dest": repo, "path": db})
    data = os.path.join(db_set["location"]["local"], db_set["manifest"]["data"])
    with open(data, "r+b") as handle:  # flip bytes in the middle of the stored object
        handle.seek(os.path.getsize(data) // 2)
        chunk = handle.read(16)
        handle.seek(os.path.getsize(data) // 2)
        handle.write(bytes(b ^ 0xFF for b in chunk))
    change_db(db, add_rows=7)
    app = app_factory(db)
    app.start()
    first_pid = app.pid()

    later = tmp_path / "later"
    later.mkdir()
    (later / "keep.txt").write_text("untouched\n")
    proc = ansible.playbook(os.path.join(playbooks, "restore.yml"), {
        "lifeboat_repository": {"dest": repo},
        "lifeboat_restore_jobs": [sqlite_job(app, db), {"job": "later", "kind": "directory", "path": str(later)}]})
    assert proc.returncode != 0, proc.stdout
    assert "later: not restored (an earlier job failed)" in proc.stdout  # jobs after a failure are not run
    assert os.listdir(str(later)) == ["keep.txt"]
    assert "job app-db: restoring the set failed" in proc.stdout
    assert "sha256 mismatch" in proc.stdout
    assert "The live data was not changed" in proc.stdout
    assert "Services started again (health after that: ok)" in proc.stdout
    assert rows(db) == 107
    assert app.running() and app.pid() != first_pid  # stopped for the restore, started again
    assert app.get("/rows") == (200, "107")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["sqlite", "directory"])
def test_failed_health_check_puts_previous_data_back(ansible, tmp_path, app_factory, playbooks, kind):
    live = tmp_path / "live"
    live.mkdir()
    appdir = live / "appdir"
    appdir.mkdir()
    db = make_app_db(appdir / "app.db", rows=100, health="broken")  # the set holds data the app rejects
    (appdir / "config.txt").write_text("old config\n")
    repo = str(tmp_path / "repo")
    if kind == "sqlite":
        backup(ansible, "lifeboat.backup.sqlite_backup", {"job": "app", "dest": repo, "path": db})
    else:
        backup(ansible, "lifeboat.backup.dir_snapshot", {"job": "app", "dest": repo, "path": str(appdir)})
    change_db(db, add_rows=30, health="ok")  # the live data is good
    (appdir / "config.txt").write_text("live config\n")
    target = db if kind == "sqlite" else str(appdir)
    live_data = contents(target)
    app = app_factory(db)
    app.start()
    assert app.get("/health")[0] == 200

    job = sqlite_job(app, target, job="app", kind=kind)
    proc = ansible.playbook(os.path.join(playbooks, "restore.yml"), {
        "lifeboat_repository": {"dest": repo}, "lifeboat_restore_jobs": [job]})
    assert proc.returncode != 0, proc.stdout
    assert "job app: checking health failed: Status code was 503" in proc.stdout
    assert "The previous data was put back at %s." % target in proc.stdout
    assert "Services started again (health after that: ok)" in proc.stdout
    assert "app                  %-9s rolled back" % kind in proc.stdout
    assert contents(target) == live_data  # byte for byte the data from before the restore
    assert rows(db) == 130
    assert (appdir / "config.txt").read_text() == "live config\n"
    assert app.running() and app.get("/health")[0] == 200 and app.get("/rows") == (200, "130")
    assert leftovers(live) == [] and leftovers(appdir) == []


def test_a_failed_put_back_says_where_the_data_is(ansible, tmp_path, app_factory, playbooks):
    """The kept copy vanishes between the restore and the put-back (here the start command removes it): the put-back
    module refuses, the job is recorded as failed, not rolled back, and the message names the restored data."""
    db = make_app_db(tmp_path / "app.db", rows=100, health="broken")
    repo = str(tmp_path / "repo")
    backup(ansible, "lifeboat.backup.sqlite_backup", {"job": "app", "dest": repo, "path": db})
    change_db(db, add_rows=30, health="ok")
    app = app_factory(db)
    app.start()
    start = ["sh", "-c", 'rm -f -- "$0".lifeboat-prev-* && exec "$@"', db] + app.start_command
    job = sqlite_job(app, db, job="app", start_command=start)
    proc = ansible.playbook(os.path.join(playbooks, "restore.yml"), {
        "lifeboat_repository": {"dest": repo}, "lifeboat_restore_jobs": [job]})
    assert proc.returncode != 0, proc.stdout
    assert "job app: checking health failed: Status code was 503" in proc.stdout
    assert "putting the previous data back failed too (the kept-aside copy %s.lifeboat-prev-" % db in proc.stdout
    assert "is gone (put back or removed already?); the restored data stays at %s" % db in proc.stdout
    assert "The restored data stays at %s; the previous data is kept as %s.lifeboat-prev-" % (db, db) in proc.stdout
    assert "The previous data was put back" not in proc.stdout
    assert "app                  sqlite    failed" in proc.stdout
    assert rows(db) == 100 and app.running()  # the restored data, served again
    assert leftovers(tmp_path) == []


def test_check_mode_only_verifies(ansible, tmp_path, app_factory, playbooks):
    db = make_app_db(tmp_path / "app.db", rows=100)
    repo = str(tmp_path / "repo")
    db_set = backup(ansible, "lifeboat.backup.sqlite_backup", {"job": "app-db", "dest": repo, "path": db})
    change_db(db, add_rows=5)
    app = app_factory(db)
    app.start()
    pid = app.pid()
    proc = ansible.playbook(os.path.join(playbooks, "restore.yml"), {
        "lifeboat_repository": {"dest": repo}, "lifeboat_restore_jobs": [sqlite_job(app, db)]}, check=True)
    assert proc.returncode == 0, proc.stdout
    assert "app-db               sqlite    verified    set %s" % db_set["id"] in proc.stdout
    assert rows(db) == 105 and app.pid() == pid and app.running()
    assert leftovers(tmp_path) == []
