"""Fixtures for the Kubernetes tests without a cluster: the runner image (scripts/build_runner_image.sh, skipped
when the image of the current engine exists), podman objects removed at teardown, a Pushgateway stand-in, a
redis-server whose data directory is a podman volume (the Redis PVC), with or without a password, and the role
rendered with the settings of support/kubernetes_render.py (the offline render tests)."""

import http.server
import os
import shutil
import subprocess
import threading
import time

import pytest

from kube_pods import CONTAINERS_CONF, REPO, Kube
from support.ansible import AnsibleRunner
from support.kubernetes_render import render_objects
from support.ports import free_port, wait_for_port

RUNNER_IMAGE = "localhost/lifeboat-runner:latest"
BUILD_SCRIPT = os.path.join(REPO, "scripts", "build_runner_image.sh")


@pytest.fixture(scope="session")
def runner_image():
    """The runner image of this checkout's engine: built when its labels do not match (about 3 s when only the
    engine changed, a few minutes on a fresh machine, which also builds the Debian base)."""
    missing = [tool for tool in ("podman", "runc", "catatonit", "debootstrap") if shutil.which(tool) is None]
    if missing:  # catatonit: the pause process of a pod's infra container
        pytest.fail("missing %s: apt-get install -y podman runc catatonit debootstrap" % " ".join(missing))
    proc = subprocess.run(["bash", BUILD_SCRIPT], env=dict(os.environ, CONTAINERS_CONF=CONTAINERS_CONF),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1200, check=False)
    if proc.returncode != 0:
        pytest.fail("scripts/build_runner_image.sh failed:\n%s" % proc.stdout[-4000:])
    return RUNNER_IMAGE


@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    cluster = Kube(str(tmp_path_factory.mktemp("kube")))
    yield cluster
    cluster.close()


class Pushgateway(object):
    """Records the path and body of every push (the pods reach it through hostNetwork)."""

    def __init__(self):
        self.pushes = []
        pushes = self.pushes

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                pushes.append((self.command, self.path, self.rfile.read(length).decode("utf-8")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = do_POST

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def pushgateway():
    gateway = Pushgateway()
    yield gateway
    gateway.close()


class RedisOnVolume(object):
    """redis-server on 127.0.0.1 (no save points) with its dump.rdb in `data_dir`, the volume the pods mount; with
    `password`, requirepass (from a 0600 config file, never argv), and cli() authenticates through REDISCLI_AUTH."""

    def __init__(self, data_dir, run_dir, password=None):
        self.port = free_port()
        self.password = password
        self.pidfile = os.path.join(run_dir, "redis.pid")
        argv = ["redis-server"]
        if password:
            config = os.path.join(run_dir, "redis.conf")
            with open(os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
                handle.write("requirepass %s\n" % password)
            argv.append(config)
        subprocess.run(argv + ["--bind", "127.0.0.1", "--port", str(self.port), "--dir", data_dir,
                               "--save", "", "--appendonly", "no", "--daemonize", "yes", "--pidfile", self.pidfile,
                               "--logfile", os.path.join(run_dir, "redis.log")], check=True, stdin=subprocess.DEVNULL)
        wait_for_port(self.port)

    def _env(self):
        return dict(os.environ, REDISCLI_AUTH=self.password) if self.password else None

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port)] + list(args), check=True,
                              stdout=subprocess.PIPE, text=True, env=self._env()).stdout.strip()

    def stop(self):
        subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "shutdown", "nosave"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, env=self._env())
        deadline = time.monotonic() + 10
        while os.path.exists(self.pidfile) and time.monotonic() < deadline:
            time.sleep(0.05)


def redis_on_volume(kube, tmp_path_factory, password=None):
    """Start the redis-server of the Redis PVC (a fresh podman volume); returns (volume, server)."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: apt-get install -y redis-server")
    volume, path = kube.volume("redis-data")
    return volume, RedisOnVolume(path, str(tmp_path_factory.mktemp("redis")), password=password)


@pytest.fixture(scope="module")
def redis_volume(kube, tmp_path_factory):
    """(podman volume of the Redis PVC, the running server): the server runs as root on the host like a Redis pod
    beside the runner; its RDB is readable by the runner's uid, as the Redis image's 0644 dump is."""
    volume, server = redis_on_volume(kube, tmp_path_factory)
    yield volume, server
    server.stop()


@pytest.fixture(scope="module")
def redis_volume_with_password(kube, tmp_path_factory):
    """The same as redis_volume, the server requiring a password (server.password, random per run)."""
    volume, server = redis_on_volume(kube, tmp_path_factory, password="lb-%s" % os.urandom(12).hex())
    yield volume, server
    server.stop()


@pytest.fixture(scope="module")
def runner(tmp_path_factory, collections):
    """ansible-playbook for the offline renders of the role and the restore playbook."""
    return AnsibleRunner(str(tmp_path_factory.mktemp("k8s-render")), collections)


@pytest.fixture(scope="module")
def rendered(runner, tmp_path_factory):
    """(render directory, the objects of a present render of support.kubernetes_render.SETTINGS in the order of
    manifests.yml)."""
    out = str(tmp_path_factory.mktemp("present"))
    objects = render_objects(runner, out)
    assert sorted(os.listdir(out)) == ["manifests.yml"]
    return out, objects
