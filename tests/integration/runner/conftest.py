"""Fixtures for the runner tests: the engine installed as the schedule role does (the runner zipapp,
run with `python3 <lib>/lifeboat.pyz`), job files, and a webhook listener."""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from support.moto import aws_env
from support.ports import free_port
from support.runner import install_runner

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.fixture(scope="session")
def runner_lib(tmp_path_factory):
    """<tmp>/lib/lifeboat.pyz: what the schedule role puts in /opt/lifeboat/lib."""
    lib = tmp_path_factory.mktemp("opt-lifeboat") / "lib"
    install_runner(lib)
    return str(lib)


class Lifeboat(object):
    def __init__(self, lib, base):
        self.lib = lib
        self.config_dir = os.path.join(base, "etc")
        self.state_dir = os.path.join(base, "state")
        self.metrics_dir = os.path.join(base, "textfile_collector")
        os.makedirs(os.path.join(self.config_dir, "jobs"))
        os.makedirs(self.metrics_dir)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LIFEBOAT_")}
        self.env.update(aws_env())
        self.env["PYTHONPATH"] = lib

    def write_job(self, document, mode=0o600):
        path = os.path.join(self.config_dir, "jobs", "%s.json" % document["job"])
        with open(path, "w") as handle:
            json.dump(document, handle)
        os.chmod(path, mode)
        return path

    def __call__(self, *args, **kwargs):
        argv = [sys.executable, os.path.join(self.lib, "lifeboat.pyz"), "--config-dir", self.config_dir,
                "--state-dir", self.state_dir] + list(args)
        return subprocess.run(argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=kwargs.get("timeout", 120), cwd="/", check=False)

    def audit(self):
        path = os.path.join(self.state_dir, "audit.jsonl")
        if not os.path.exists(path):
            return []
        with open(path) as handle:
            return [json.loads(line) for line in handle]

    def metrics(self, job):
        values = {}
        path = os.path.join(self.metrics_dir, "lifeboat_%s.prom" % job)
        with open(path) as handle:
            for line in handle:
                if line.startswith("#") or not line.strip():
                    continue
                name_labels, value = line.rsplit(" ", 1)
                assert name_labels.endswith('{job="%s"}' % job), line
                values[name_labels.split("{")[0]] = float(value)
        return values


@pytest.fixture
def lifeboat(runner_lib, tmp_path):
    return Lifeboat(runner_lib, str(tmp_path / "host"))


class Listener(object):
    """An HTTP listener on 127.0.0.1 that records every request (webhook POSTs, healthcheck GETs)."""

    def __init__(self):
        self.requests = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                listener.requests.append({"method": self.command, "path": self.path, "body": body,
                                          "content_type": self.headers.get("Content-Type")})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST = _record

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.stop()
