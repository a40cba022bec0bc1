"""The lifeboat runner: argument parsing, job files, locks, audit log, metrics files, notifications."""

import json
import os
import re
import sqlite3
import stat
import sys

import pytest

from engine.runner import audit, jobs, metrics, notify
from engine.sources import kinds
from engine.runner.cli import build_parser, main
from engine.runner.context import EX_FAILURE, EX_TEMPFAIL, EX_USAGE, Busy, Context, JobLock
from engine.core.errors import ConfigError


def write_job(config_dir, name, document, mode=0o600):
    path = os.path.join(str(config_dir), "jobs", "%s.json" % name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(document, handle)
    os.chmod(path, mode)
    return path


def make_db(path, rows=50):
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [("row %d" % i,) for i in range(rows)])
    conn.commit()
    conn.close()


@pytest.fixture
def dirs(tmp_path):
    config, state = tmp_path / "etc", tmp_path / "state"
    config.mkdir()
    return str(config), str(state)


# --- arguments ---------------------------------------------------------------------------------------------

def test_help_and_usage_errors(capsys):
    assert main(["--help"]) == 0
    assert "Exit status" in capsys.readouterr().out
    assert main([]) == EX_USAGE
    assert main(["run"]) == EX_USAGE
    assert main(["explode", "app"]) == EX_USAGE
    assert main(["restore", "app", "--backup"]) == EX_USAGE


@pytest.mark.parametrize("argv", [
    ["--config-dir", "/c", "--state-dir", "/s", "--quiet", "list", "app"],
    ["list", "app", "--config-dir", "/c", "--state-dir", "/s", "-q"],
    ["--config-dir", "/c", "list", "--state-dir", "/s", "app", "--quiet"],
])
def test_global_options_before_or_after_the_command(argv):
    ctx = Context(build_parser().parse_args(argv))
    assert (ctx.config_dir, ctx.state_dir, ctx.quiet) == ("/c", "/s", True)


def test_directories_default_to_environment_then_fhs(monkeypatch):
    monkeypatch.delenv("LIFEBOAT_CONFIG_DIR", raising=False)
    monkeypatch.delenv("LIFEBOAT_STATE_DIR", raising=False)
    ctx = Context(build_parser().parse_args(["jobs"]))
    assert (ctx.config_dir, ctx.state_dir, ctx.quiet) == ("/etc/lifeboat", "/var/lib/lifeboat", False)
    monkeypatch.setenv("LIFEBOAT_CONFIG_DIR", "/env/c")
    monkeypatch.setenv("LIFEBOAT_STATE_DIR", "/env/s")
    ctx = Context(build_parser().parse_args(["jobs"]))
    assert (ctx.config_dir, ctx.state_dir) == ("/env/c", "/env/s")


def test_restore_and_verify_options():
    args = build_parser().parse_args(["restore", "app", "--before", "2026-01-01T00:00:00Z", "--to", "/tmp/x.db",
                                      "--dry-run"])
    assert (args.backup, args.before, args.to, args.dry_run) == ("latest", "2026-01-01T00:00:00Z", "/tmp/x.db", True)
    args = build_parser().parse_args(["verify", "app", "--backup", "20261122T031500Z-3f9a"])
    assert args.backup == "20261122T031500Z-3f9a" and not args.first_copy
    assert build_parser().parse_args(["prune", "app", "--dry-run"]).dry_run is True
    assert build_parser().parse_args(["list", "app", "--json"]).json is True
    assert build_parser().parse_args(["restore", "app"]).skip_damaged is False
    assert build_parser().parse_args(["restore", "app", "--skip-damaged"]).skip_damaged is True
    assert build_parser().parse_args(["verify", "app", "--skip-damaged"]).skip_damaged is True


# --- job files ---------------------------------------------------------------------------------------------

GOOD = {"job": "app", "kind": "sqlite", "path": "/srv/app.db", "dest": "/var/backups"}


def test_validate_fills_defaults_and_resolves_s3_aliases():
    job = jobs.validate(dict(GOOD, s3={"bucket": "b", "aws_access_key_id": "AK", "aws_secret_access_key": "SK",
                                       "prefix": None}, retention={"keep_daily": 7}), "app")
    assert job["compression"] == "zstd" and job["tags"] == {} and job["prune_after_run"] is True
    assert job["s3"] == {"bucket": "b", "access_key": "AK", "secret_key": "SK"}
    assert jobs.validate(dict(GOOD), "app")["prune_after_run"] is False
    assert jobs.validate({k: v for k, v in GOOD.items() if k != "job"}, "app")["job"] == "app"


@pytest.mark.parametrize("change,message", [
    ({"job": "other"}, "does not match the file name"),
    ({"kind": "oracle"}, "kind must be one of"),
    ({"kind": None}, "kind must be one of"),
    ({"dest": None}, "set dest"),
    ({"s3": {"prefix": "x"}}, "s3.bucket is required"),
    ({"s3": "bucket"}, "s3 must be an object"),
    ({"compression": "lz4"}, "compression must be one of"),
    ({"compression_level": "high"}, "compression_level must be a whole number"),
    ({"compression_level": True}, "compression_level must be a whole number"),
    ({"retention": {"keep_daily": -1}}, "keep_daily must be 0 (off) or more"),
    ({"retention": {}}, "no rule"),
    ({"retention": 7}, "retention must be an object"),
    ({"prune_after_run": "yes"}, "prune_after_run must be true or false"),
    ({"metrics_dir": "relative/dir"}, "absolute path"),
    ({"rpo_seconds": 0}, "rpo_seconds must be more than 0"),
    ({"notify": {"webhook": "x"}}, "unknown notify option"),
    ({"notify": {"on": ["always"]}}, "notify.on must be a list"),
    ({"notify": {"mail_to": ["a@b"], "mail_command": "/usr/sbin/sendmail -t"}}, "non-empty list of arguments"),
    ({"notify": {"webhook_url": "ftp://x"}}, "http(s) URL"),
    ({"encryption": {"age_recipients": "age1x"}}, "list of age public keys"),
    ({"restore": {"skip_damaged": "yes"}}, "skip_damaged must be true or false"),
    ({"job": "../other"}, "does not match the file name"),
])
def test_validate_rejects(change, message):
    with pytest.raises(ConfigError) as info:
        jobs.validate(dict(GOOD, **change), "app", where="/etc/lifeboat/jobs/app.json")
    assert message in info.value.msg and "/etc/lifeboat/jobs/app.json" in info.value.msg


def test_secret_paths():
    found = jobs.secret_paths({"s3": {"bucket": "b", "secret_key": "x", "access_key": None},
                               "notify": {"webhook_url": "https://hooks/x", "mail_to": ["a@b"]},
                               "mongo_uri": "mongodb://u:pw@h/db", "pg_password": "x", "path": "/x"})
    assert sorted(found) == ["mongo_uri", "notify.webhook_url", "pg_password", "s3.secret_key"]
    assert jobs.secret_paths({"mongo_uri": "mongodb://h/db", "s3": {"bucket": "b"}}) == []


def test_load_refuses_readable_files_with_secrets(dirs):
    config = dirs[0]
    path = write_job(config, "app", dict(GOOD, s3={"bucket": "b", "secret_key": "S", "access_key": "A"}), 0o644)
    with pytest.raises(ConfigError) as info:
        jobs.load(config, "app")
    assert "holds secrets (s3.access_key, s3.secret_key)" in info.value.msg and "chmod 0600" in info.value.msg
    os.chmod(path, 0o600)
    assert jobs.load(config, "app")["s3"]["secret_key"] == "S"


def test_load_accepts_readable_files_without_secrets_but_never_writable_ones(dirs):
    config = dirs[0]
    path = write_job(config, "app", GOOD, 0o644)
    assert jobs.load(config, "app")["kind"] == "sqlite"
    os.chmod(path, 0o664)
    with pytest.raises(ConfigError) as info:
        jobs.load(config, "app")
    assert "writable by group or others" in info.value.msg


def test_load_reports_missing_and_broken_files(dirs):
    config = dirs[0]
    with pytest.raises(ConfigError) as info:
        jobs.load(config, "nope")
    assert "has no job file" in info.value.msg and os.path.join(config, "jobs", "nope.json") in info.value.msg
    path = write_job(config, "bad", GOOD)
    with open(path, "w") as handle:
        handle.write("{not json")
    with pytest.raises(ConfigError) as info:
        jobs.load(config, "bad")
    assert "not valid JSON" in info.value.msg
    with pytest.raises(ConfigError):
        jobs.load(config, "../etc/passwd")


def test_jobs_command_lists_and_validates(dirs, capsys):
    config, state = dirs
    write_job(config, "app", GOOD)
    write_job(config, "broken", dict(GOOD, job="broken", kind="oracle"))
    assert main(["--config-dir", config, "--state-dir", state, "jobs", "--json"]) == EX_USAGE
    rows = json.loads(capsys.readouterr().out)
    assert [(r["job"], r["valid"]) for r in rows] == [("app", True), ("broken", False)]
    assert "kind must be one of" in rows[1]["error"]


# --- kinds -------------------------------------------------------------------------------------------------

def test_kinds_registry(monkeypatch):
    assert callable(kinds.load("sqlite").source_from_options)
    with pytest.raises(ConfigError) as info:
        kinds.load("oracle")
    assert "not known" in info.value.msg
    monkeypatch.setitem(kinds.KINDS, "ghost", ".ghost_kind_that_is_not_there")
    with pytest.raises(ConfigError) as info:
        kinds.load("ghost")
    assert "kind ghost is not available" in info.value.msg and "ghost_kind_that_is_not_there.py is missing" in \
        info.value.msg
    assert kinds.restore_target("sqlite") == "path"
    assert kinds.restore_target("postgres") == "database"
    with pytest.raises(ConfigError):
        kinds.restore_target("redis")


# --- lock, audit -------------------------------------------------------------------------------------------

def test_job_lock_is_exclusive_and_names_the_holder(tmp_path):
    with JobLock(str(tmp_path), "app") as first:
        with pytest.raises(Busy) as info:
            JobLock(str(tmp_path), "app").acquire()
        assert "pid %d" % os.getpid() in str(info.value)
        JobLock(str(tmp_path), "other").acquire().release()  # other jobs are independent
        assert stat.S_IMODE(os.stat(first.path).st_mode) == 0o600
    JobLock(str(tmp_path), "app").acquire().release()


def test_busy_job_exits_75_without_work(dirs, tmp_path):
    config, state = dirs
    db = tmp_path / "app.db"
    make_db(db)
    write_job(config, "app", dict(GOOD, path=str(db), dest=str(tmp_path / "repo")))
    with JobLock(state, "app"):
        assert main(["--config-dir", config, "--state-dir", state, "run", "app"]) == EX_TEMPFAIL
        assert main(["--config-dir", config, "--state-dir", state, "prune", "app"]) == EX_TEMPFAIL
    assert not (tmp_path / "repo").exists()
    assert audit.read(state) == []


def test_audit_log_is_json_lines_0600(tmp_path):
    state = str(tmp_path / "state")
    audit.append(state, audit.entry("run", "app", "ok", set_id="20261122T031500Z-3f9a", duration_seconds=1.23456,
                                    size=10))
    audit.append(state, audit.entry("prune", "app", "failed", error="boom"))
    entries = audit.read(state)
    assert [(e["operation"], e["status"]) for e in entries] == [("run", "ok"), ("prune", "failed")]
    assert entries[0]["duration_seconds"] == 1.235 and entries[0]["bytes"] == 10 and entries[1]["error"] == "boom"
    assert set(entries[0]) >= {"ts", "operation", "job", "set", "status", "duration_seconds", "bytes", "error"}
    assert stat.S_IMODE(os.stat(os.path.join(state, "audit.jsonl")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700


# --- metrics -----------------------------------------------------------------------------------------------

LINE = re.compile(r'^(lifeboat_(?:backup|verify)_[a-z_]+)\{job="([^"]+)"\} (-?[0-9]+(\.[0-9]+)?)$')


def parse_prom(text):
    values = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            assert line.split(" ")[2].startswith(("lifeboat_backup_", "lifeboat_verify_"))
            continue
        match = LINE.match(line)
        assert match, "not a valid exposition line: %r" % line
        values[match.group(1)] = float(match.group(3))
    return values


def test_metrics_file_format_and_failure_keeps_last_success(tmp_path):
    directory = str(tmp_path)
    path = metrics.write_backup_metrics(directory, "app", False, 1700000000.5, 2.0)
    first = parse_prom(open(path).read())
    assert first["lifeboat_backup_last_status"] == 0
    assert first["lifeboat_backup_last_success_timestamp_seconds"] == 0
    assert "lifeboat_backup_rpo_seconds" not in first
    metrics.write_backup_metrics(directory, "app", True, 1700000100.25, 3.5, size=4096, rpo_seconds=90000)
    text = open(path).read()
    assert "# TYPE lifeboat_backup_last_status gauge\n" in text and text.endswith("\n")
    ok = parse_prom(text)
    assert ok == {"lifeboat_backup_last_success_timestamp_seconds": 1700000100.25,
                  "lifeboat_backup_last_status": 1, "lifeboat_backup_last_duration_seconds": 3.5,
                  "lifeboat_backup_last_size_bytes": 4096, "lifeboat_backup_last_run_timestamp_seconds": 1700000100.25,
                  "lifeboat_backup_rpo_seconds": 90000}
    metrics.write_backup_metrics(directory, "app", False, 1700000200.0, 1.0, rpo_seconds=90000)
    failed = parse_prom(open(path).read())
    assert failed["lifeboat_backup_last_status"] == 0
    assert failed["lifeboat_backup_last_success_timestamp_seconds"] == 1700000100.25
    assert failed["lifeboat_backup_last_size_bytes"] == 4096
    assert failed["lifeboat_backup_last_run_timestamp_seconds"] == 1700000200.0
    assert sorted(os.listdir(directory)) == ["lifeboat_app.prom"]  # no temp file left behind
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_metrics_label_escaping():
    text = metrics.render('we"ird\\job', {"lifeboat_backup_last_status": 1})
    assert 'lifeboat_backup_last_status{job="we\\"ird\\\\job"} 1' in text
    assert metrics.read_previous("/nonexistent/file.prom") == {}


# --- notifications -----------------------------------------------------------------------------------------

def mail_catcher(tmp_path, status=0):
    out = tmp_path / "mail.txt"
    code = "import sys; open(%r, 'wb').write(sys.stdin.buffer.read()); sys.exit(%d)" % (str(out), status)
    return [sys.executable, "-c", code], out


def test_mail_command_gets_the_message_on_stdin(tmp_path):
    command, out = mail_catcher(tmp_path)
    event = audit.entry("run", "app", "failed", error="SQLite database /srv/app.db does not exist")
    results = notify.send({"mail_to": ["ops@example.com", "dba@example.com"], "mail_command": command}, event)
    assert results == [{"channel": "mail", "ok": True, "error": None}]
    message = out.read_text()
    assert "To: ops@example.com, dba@example.com" in message
    assert "Subject: [lifeboat] run FAILED: app on " in message
    assert "/srv/app.db does not exist" in message


def test_notifications_follow_on_and_never_raise(tmp_path):
    command, out = mail_catcher(tmp_path, status=3)
    ok_event = audit.entry("run", "app", "ok")
    assert notify.send({"mail_to": "ops@example.com", "mail_command": command}, ok_event) == []
    assert not out.exists()
    failed = audit.entry("run", "app", "failed", error="x")
    logged = []
    results = notify.send({"mail_to": "ops@example.com", "mail_command": command,
                           "webhook_url": "http://127.0.0.1:9/hook/SECRET", "timeout": 2}, failed, log=logged.append)
    assert [r["ok"] for r in results] == [False, False]
    assert "exited with status 3" in results[1]["error"]
    assert len(logged) == 2 and not any("SECRET" in line for line in logged)
    missing = notify.send({"mail_to": "ops@example.com", "mail_command": ["/nonexistent/sendmail"]}, failed)
    assert missing[0]["ok"] is False


# --- commands in process -----------------------------------------------------------------------------------

def test_run_list_verify_restore_in_process(dirs, tmp_path, capsys):
    config, state = dirs
    db = tmp_path / "app.db"
    make_db(db, rows=75)
    prom = tmp_path / "metrics"
    prom.mkdir()
    write_job(config, "app", dict(GOOD, path=str(db), dest=str(tmp_path / "repo"), metrics_dir=str(prom),
                                  retention={"keep_last": 1}))
    base = ["--config-dir", config, "--state-dir", state, "--quiet"]
    assert main(base + ["run", "app"]) == 0
    assert main(base + ["run", "app"]) == 0
    capsys.readouterr()
    assert main(base + ["list", "app", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 1 and listed[0]["status"] == "complete"  # prune_after_run kept only the last
    assert main(base + ["verify", "app", "--json"]) == 0
    verified = json.loads(capsys.readouterr().out)
    assert verified["verification"]["row_counts"] == {"t": 75} and verified["verification"]["row_counts_match"]
    target = tmp_path / "restored.db"
    assert main(base + ["restore", "app", "--to", str(target)]) == 0
    assert sqlite3.connect(str(target)).execute("select count(*) from t").fetchone()[0] == 75
    operations = [(e["operation"], e["status"]) for e in audit.read(state)]
    assert operations == [("run", "ok"), ("prune", "ok"), ("run", "ok"), ("prune", "ok"), ("verify", "ok"),
                          ("restore", "ok")]
    assert parse_prom((prom / "lifeboat_app.prom").read_text())["lifeboat_backup_last_status"] == 1


def test_restore_prints_the_warnings_of_a_restore_that_stands(dirs, tmp_path, capsys, monkeypatch):
    config, state = dirs
    write_job(config, "app", dict(GOOD, dest=str(tmp_path / "repo")))

    class Kind(object):
        @staticmethod
        def restore_from_options(_repository, _options, check_mode=False):
            return {"backup": {"id": "20261122T031500Z-3f9a0c", "size": 1}, "restored_to": "/srv/app.db",
                    "warnings": ["ANALYZE of database app failed (permission denied): run ANALYZE there"]}
    monkeypatch.setattr(kinds, "load", lambda kind: Kind)
    assert main(["--config-dir", config, "--state-dir", state, "restore", "app"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "ANALYZE of database app failed (permission denied)" in err


def test_failures_exit_1_and_config_errors_exit_2(dirs, tmp_path, capsys):
    config, state = dirs
    write_job(config, "app", dict(GOOD, path=str(tmp_path / "missing.db"), dest=str(tmp_path / "repo")))
    base = ["--config-dir", config, "--state-dir", state]
    assert main(base + ["run", "app"]) == EX_FAILURE
    assert "missing.db does not exist" in capsys.readouterr().err
    assert main(base + ["prune", "app"]) == EX_USAGE  # no retention in the job file
    assert main(base + ["run", "nosuchjob"]) == EX_USAGE
    assert main(base + ["run", "../evil"]) == EX_USAGE
    assert "job name '../evil' is not valid" in capsys.readouterr().err
    entries = audit.read(state)
    assert [(e["operation"], e["job"], e["status"]) for e in entries] == [
        ("run", "app", "failed"), ("prune", "app", "failed"), ("run", "nosuchjob", "failed"),
        ("run", "../evil", "failed")]
    assert "does not exist" in entries[0]["error"]


def test_progress_on_a_terminal_and_in_logs():
    import io
    from engine.runner.console import Console, LogProgress, TerminalProgress
    screen = io.StringIO()
    progress = TerminalProgress(screen, interval=0)
    progress.stage("stream")
    progress.advance(3 * 1024 * 1024)
    progress.finish()
    text = screen.getvalue()
    assert "\r\033[K  stream" in text and "3.0 MiB stored" in text and "/s" in text and text.endswith("\r\033[K")
    log = io.StringIO()
    console = Console(stream=log)
    console.job = "app"
    lines = LogProgress(console, interval=0)
    lines.stage("dump")
    lines.advance(2048)
    out = log.getvalue().splitlines()
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ lifeboat\[\d+\] info job=app stage dump$", out[0])
    assert "2.0 KiB stored so far" in out[1]
