"""A real redis-server on 127.0.0.1 (free port, private dir, password in a 0600 config file) per test."""

import os
import shutil
import subprocess
import sys
import time

import pytest

from engine.errors import LifeboatError
from engine.resp import RedisClient
from support.ports import free_port, wait_for_port

HERE = os.path.dirname(os.path.abspath(__file__))
RESTART = os.path.join(HERE, "restart_redis.py")
PASSWORD = "s3cr3t-lifeboat-test"


class RedisServer(object):
    def __init__(self, base):
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
                         "appendonly no\nsave \"\"\nrequirepass %s\nenable-debug-command local\n"
                         % (self.port, self.dir, self.pidfile, self.logfile, PASSWORD))
        subprocess.run(["redis-server", self.conf], check=True, stdin=subprocess.DEVNULL)
        wait_for_port(self.port)
        self.rdb = os.path.join(self.dir, "dump.rdb")

    @property
    def restart_command(self):
        return [sys.executable, RESTART, self.conf]

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
