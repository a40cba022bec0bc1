"""Metrics pushed to a Prometheus Pushgateway (LIFEBOAT_PUSHGATEWAY_URL), for pods without a textfile collector:
a tiny HTTP listener on 127.0.0.1 records what the runner sends."""

import base64
import contextlib
import http.server
import json
import os
import sqlite3
import threading

import pytest

from engine.runner import metrics
from engine.runner.cli import main


class Gateway(object):
    """Records each request (method, path, headers, body); answers `status`."""

    def __init__(self, status=200):
        self.requests = []
        self.status = status
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self):
                length = int(self.headers.get("Content-Length") or 0)
                gateway.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                         "body": self.rfile.read(length).decode("utf-8")})
                self.send_response(gateway.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = _record

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway():
    server = Gateway()
    yield server
    server.close()


class Console(object):
    def __init__(self):
        self.infos, self.warnings = [], []

    def info(self, message):
        self.infos.append(message)

    def warn(self, message):
        self.warnings.append(message)


def gauges(body):
    """Metric name -> value of the pushed text; fails on any labelled sample."""
    values = {}
    for line in body.splitlines():
        if line.startswith("#") or not line:
            continue
        name, value = line.split(" ")
        assert "{" not in name, "a pushed sample carries labels (the grouping key has them): %r" % line
        values[name] = float(value)
    return values


JOB = {"rpo_seconds": 90000, "rto_seconds": 3600, "verify_restore": {"objective": 691200}}


def test_backup_gauges_posted_to_the_jobs_group(gateway):
    console = Console()
    env = {metrics.PUSHGATEWAY_ENV: gateway.url + "/prefix/"}
    assert metrics.push_backup("app-db", JOB, True, 2.5, 4096, console, environ=env) is True
    [request] = gateway.requests
    assert request["method"] == "POST"  # a PUT would erase the verify's gauges of the same group
    assert request["path"] == "/prefix/metrics/job/app-db"
    assert request["headers"]["Content-Type"].startswith("text/plain; version=0.0.4")
    values = gauges(request["body"])
    assert values["lifeboat_backup_last_status"] == 1
    assert values["lifeboat_backup_last_size_bytes"] == 4096
    assert values["lifeboat_backup_last_duration_seconds"] == 2.5
    assert values["lifeboat_backup_rpo_seconds"] == 90000
    assert values["lifeboat_backup_rto_seconds"] == 3600
    assert values["lifeboat_verify_objective_seconds"] == 691200
    assert values["lifeboat_backup_last_success_timestamp_seconds"] == values[
        "lifeboat_backup_last_run_timestamp_seconds"] > 0
    assert "# TYPE lifeboat_backup_last_status gauge" in request["body"]
    assert console.warnings == [] and console.infos == ["metrics pushed to %s/prefix/metrics/job/app-db" % gateway.url]


def test_failed_backup_leaves_the_last_success_to_the_gateway(gateway):
    """A pod has no previous values: pushing 0 as the last success would lose the real one."""
    assert metrics.push_backup("app", JOB, False, 1.0, None, Console(),
                               environ={metrics.PUSHGATEWAY_ENV: gateway.url}) is True
    values = gauges(gateway.requests[0]["body"])
    assert values["lifeboat_backup_last_status"] == 0
    assert "lifeboat_backup_last_success_timestamp_seconds" not in values
    assert "lifeboat_backup_last_size_bytes" not in values


def test_verify_gauges(gateway):
    env = {metrics.PUSHGATEWAY_ENV: gateway.url}
    assert metrics.push_verify("app", JOB, True, {"restore_seconds": 1.25}, Console(), environ=env) is True
    assert metrics.push_verify("app", JOB, False, None, Console(), environ=env) is True
    ok, failed = [gauges(r["body"]) for r in gateway.requests]
    assert ok["lifeboat_verify_last_status"] == 1 and ok["lifeboat_verify_restore_seconds"] == 1.25
    assert ok["lifeboat_verify_objective_seconds"] == 691200 and ok["lifeboat_backup_rpo_seconds"] == 90000
    assert failed["lifeboat_verify_last_status"] == 0
    assert "lifeboat_verify_last_success_timestamp_seconds" not in failed
    assert "lifeboat_verify_restore_seconds" not in failed
    assert not any(name.startswith("lifeboat_backup_last_") for name in ok)  # the backup's gauges stay as pushed


def test_credentials_in_the_url_become_basic_auth_and_stay_out_of_messages(gateway):
    console = Console()
    env = {metrics.PUSHGATEWAY_ENV: gateway.url.replace("://", "://ops:s%40cret@")}
    assert metrics.push_backup("app", JOB, True, 1.0, 1, console, environ=env) is True
    header = gateway.requests[0]["headers"]["Authorization"]
    assert base64.b64decode(header.split(" ", 1)[1]) == b"ops:s@cret"
    assert "cret" not in " ".join(console.infos + console.warnings)


def test_failures_are_warnings_without_the_password():
    console = Console()
    broken = Gateway(status=500)
    try:
        env = {metrics.PUSHGATEWAY_ENV: broken.url.replace("://", "://ops:hunter2@")}
        assert metrics.push_backup("app", JOB, True, 1.0, 1, console, environ=env) is False
    finally:
        broken.close()
    assert len(broken.requests) == 1
    assert len(console.warnings) == 1 and "HTTP 500" in console.warnings[0]
    # nothing listens there any more
    assert metrics.push_verify("app", JOB, True, None, console, environ=env) is False
    assert "cannot reach the Pushgateway" in console.warnings[1]
    assert metrics.push_backup("app", JOB, True, 1.0, 1, console, environ={metrics.PUSHGATEWAY_ENV: "ftp://x"}) is False
    assert "must be an http(s) URL" in console.warnings[2]
    assert not any("hunter2" in message for message in console.warnings)


def test_nothing_pushed_without_the_variable(gateway):
    console = Console()
    assert metrics.push_backup("app", JOB, True, 1.0, 1, console, environ={}) is None
    assert gateway.requests == [] and console.infos == console.warnings == []


@contextlib.contextmanager
def sqlite_job(tmp_path):
    db = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(str(db))) as conn:
        conn.execute("CREATE TABLE t (v TEXT)")
        conn.execute("INSERT INTO t VALUES ('x')")
        conn.commit()
    jobs_dir = tmp_path / "etc" / "jobs"
    jobs_dir.mkdir(parents=True)
    job = {"kind": "sqlite", "path": str(db), "dest": str(tmp_path / "sets"), "verify": {"mode": "decode"}}
    (jobs_dir / "app.json").write_text(json.dumps(job))
    os.chmod(str(jobs_dir / "app.json"), 0o600)
    yield ["--config-dir", str(tmp_path / "etc"), "--state-dir", str(tmp_path / "state")]


def test_runner_pushes_after_run_and_verify(tmp_path, gateway, monkeypatch):
    monkeypatch.setenv(metrics.PUSHGATEWAY_ENV, gateway.url)
    with sqlite_job(tmp_path) as common:
        assert main(common + ["run", "app"]) == 0
        assert main(common + ["verify", "app"]) == 0
    assert [r["path"] for r in gateway.requests] == ["/metrics/job/app"] * 2
    assert gauges(gateway.requests[0]["body"])["lifeboat_backup_last_status"] == 1
    assert gauges(gateway.requests[1]["body"])["lifeboat_verify_last_status"] == 1


def test_unreachable_gateway_never_fails_the_backup(tmp_path, monkeypatch, capsys):
    broken = Gateway(status=503)
    monkeypatch.setenv(metrics.PUSHGATEWAY_ENV, broken.url)
    try:
        with sqlite_job(tmp_path) as common:
            assert main(common + ["run", "app"]) == 0
            assert main(common + ["verify", "app"]) == 0
    finally:
        broken.close()
    assert len(broken.requests) == 2
    assert capsys.readouterr().err.count("metrics not pushed (the run's own result stands)") == 2
    assert len(os.listdir(str(tmp_path / "sets"))) > 0
