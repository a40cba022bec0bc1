"""nx-27017 (a MongoDB wire-protocol server on SQLite) on a free 127.0.0.1 port.

There is no real mongod on these machines; nx-27017 stands in for it. Its limits (see docs/mongodb.md):
no Decimal128/Timestamp/Regex writes, integer _id sorts as text, buildinfo is empty, no authentication,
renameCollection is a no-op, index names are its own and descending keys come back ascending.
"""

import os
import shutil
import subprocess
import sys

import pytest

from support.ports import free_port, wait_for_port


def nx_binary():
    path = shutil.which("nx-27017") or os.path.join(os.path.dirname(sys.executable), "nx-27017")
    if not os.path.exists(path):
        raise RuntimeError("nx-27017 is not installed: pip install nx-27017 pymongo (it is the MongoDB stand-in "
                           "for these tests)")
    return path


class NxServer(object):
    def __init__(self, base):
        self.base = str(base)
        self.port = free_port()
        self.uri = "mongodb://127.0.0.1:%d" % self.port
        os.makedirs(os.path.join(self.base, "data"), exist_ok=True)
        self._log = open(os.path.join(self.base, "stdout.log"), "wb")
        self.process = subprocess.Popen(
            [nx_binary(), "--host", "127.0.0.1", "-p", str(self.port), "--data-dir", os.path.join(self.base, "data"),
             "--log-file", os.path.join(self.base, "nx.log"), "--pid-file", os.path.join(self.base, "nx.pid")],
            stdout=self._log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, process=self.process)

    def client(self):
        import pymongo
        return pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=3000)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture(scope="module")
def nx(tmp_path_factory):
    try:
        import pymongo  # noqa: F401
    except ImportError:
        raise RuntimeError("pymongo is not installed: pip install pymongo nx-27017")
    server = NxServer(tmp_path_factory.mktemp("nx"))
    yield server
    server.stop()
