"""A real redis-server on 127.0.0.1 (free port, private dir, password in a 0600 config file) per test.

`redis_server` has no save points; `redis_saving` has save points as Debian's redis.conf does, so a shutdown
(SIGTERM from systemd, or SHUTDOWN) saves the dataset unless lifeboat switches that off."""

import os
import shutil
import subprocess
import sys
import time

import pytest

from engine.core.errors import LifeboatError
from engine.sources.redis.resp import RedisClient
from support.ports import free_port, wait_for_port

HERE = os.path.dirname(os.path.abspath(__file__))
RESTART = os.path.join(HERE, "restart_redis.py")
PASSWORD = "s3cr3t-lifeboat-test"


class RedisServer(object):
    def __init__(self, base, save='""', extra=""):
        if not shutil.which("redis-server"):
            raise RuntimeError("redis-server is not installed: apt-get install -y redis-server (CI installs it)")
        self.port = free_port()
        self.dir = os.path.join(base, "data")
        os.makedirs(self.dir)
        self.pidfile = os.path.join(base, "redis.pid")
        self.logfile = os.path.join(base, "redis.log")
        self.conf = os.path.join(base, "redis.conf")
        self.password = PASSWORD
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("bind 127.0.0.1\nport %d\ndir %s\ndaemonize yes\npidfile %s\nlogfile %s\n"
                         "appendonly no\nsave %s\nrequirepass %s\nenable-debug-command local\n%s"
                         % (self.port, self.dir, self.pidfile, self.logfile, save, PASSWORD, extra))
        subprocess.run(["redis-server", self.conf], check=True, stdin=subprocess.DEVNULL)
        wait_for_port(self.port)
        self.rdb = os.path.join(self.dir, "dump.rdb")

    @property
    def restart_command(self):
        return [sys.executable, RESTART, self.conf]

    def restart_by(self, stop):
        """restart_command whose stop is `stop`: nosave (SHUTDOWN NOSAVE), sigterm (as systemd stops the
        service) or save (SHUTDOWN SAVE: a stop path that always saves)."""
        return [sys.executable, RESTART, self.conf, stop]

    def client(self):
        return RedisClient("127.0.0.1", self.port, password=self.password, timeout=30)

    def options(self, **extra):
        options = {"redis_host": "127.0.0.1", "redis_port": self.port, "redis_password": self.password}
        options.update(extra)
        return options

    def stop(self):
        try:
            with self.client() as client:
                try:
                    client.execute("SHUTDOWN", "NOSAVE")
                except Exception:  # the server closes the connection as it exits
                    pass
        except LifeboatError:
            pass
        deadline = time.monotonic() + 10
        while os.path.exists(self.pidfile) and time.monotonic() < deadline:
            time.sleep(0.05)
        if os.path.exists(self.pidfile):
            with open(self.pidfile) as handle:
                os.kill(int(handle.read().strip()), 9)


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(str(tmp_path / "redis"))
    yield server
    server.stop()


@pytest.fixture
def make_redis(tmp_path):
    """make_redis(name, save=..., extra=...): a server with its own config lines; all are stopped at the end."""
    servers = []

    def make(name, **config):
        servers.append(RedisServer(str(tmp_path / name), **config))
        return servers[-1]
    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def redis_saving(tmp_path):
    server = RedisServer(str(tmp_path / "redis"), save="3600 1 300 100 60 10000")
    yield server
    server.stop()
