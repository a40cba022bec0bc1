"""The lifeboat runner installed as the schedule role installs it (the runner zipapp, a wrapper
script with the role's --config-dir/--state-dir), for the report and backup-now playbook tests."""

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from support.runner import install_runner

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
PLAYBOOKS = os.path.join(REPO, "playbooks")


class Runner(object):
    def __init__(self, base):
        self.base = base
        self.lib = os.path.join(base, "opt", "lib")
        self.config_dir = os.path.join(base, "etc")
        self.state_dir = os.path.join(base, "state")
        self.metrics_dir = os.path.join(base, "textfile")
        self.bin = os.path.join(base, "bin", "lifeboat")
        runner = install_runner(self.lib)
        for path in (os.path.join(self.config_dir, "jobs"), self.metrics_dir, os.path.dirname(self.bin)):
            os.makedirs(path)
        with open(self.bin, "w") as handle:  # what roles/schedule/templates/lifeboat.sh.j2 renders
            handle.write("#!/bin/sh\nexec %s %s --config-dir %s --state-dir %s \"$@\"\n"
                         % (sys.executable, runner, self.config_dir, self.state_dir))
        os.chmod(self.bin, 0o755)

    def write_job(self, document):
        path = os.path.join(self.config_dir, "jobs", "%s.json" % document["job"])
        with open(path, "w") as handle:
            json.dump(document, handle)
        os.chmod(path, 0o600)

    def __call__(self, *args):
        return subprocess.run([self.bin] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=300, check=False)

    def audit(self):
        path = os.path.join(self.state_dir, "audit.jsonl")
        with open(path) as handle:
            return [json.loads(line) for line in handle]


@pytest.fixture
def installed_runner(tmp_path):
    return Runner(str(tmp_path / "host"))


def make_db(path, rows):
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany("INSERT INTO items (name) VALUES (?)", (("item %d %s" % (i, "x" * 200),) for i in range(rows)))
    conn.commit()
    conn.close()
    return str(path)
