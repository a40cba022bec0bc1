"""Secrets hygiene: watch every process's command line and the files written during a run for secret strings.

Servers come from the other suites' fixture classes (imported by path, so the `conftest` names do not clash):
PostgreSQL from tests/integration/postgres, Redis from tests/integration/redis, nx-27017 from tests/integration/mongo.
"""

import importlib.util
import json
import os
import stat
import tempfile
import threading
import time

import pytest

from support.suites import load_suite_module

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))

# Distinctive secrets: a grep for them finds nothing by accident.
S3_SECRET = "LbS3-SeCrEt-9f3Kq1ZxW7"
S3_ACCESS = "LBACCESSKEY9F3KQ1ZX"
PG_SECRET = "Lb-s3cret-pw-7Hq9xZ"  # the password the PostgreSQL fixture gives its role lbuser
MONGO_SECRET = "LbMongo-SeCrEt-4Tg8Rw"


class Watch(object):
    """Polls /proc/*/cmdline and the given directories while a run goes on, collecting every sighting."""

    def __init__(self, secrets, dirs=(), shallow_dirs=(), ignore=()):
        self.secrets = [s.encode() for s in secrets]
        self.dirs = list(dirs)
        self.shallow_dirs = list(shallow_dirs)
        self.ignore = list(ignore)
        self.cmdline_hits = []
        self.files = {}  # path -> mode of files that held a secret
        self.private = {}  # path -> inside a directory closed to group and others (when seen)
        self.polls = 0
        self.started = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)
        self._scan_files()  # and once more at the end

    def _run(self):
        while not self._stop.is_set():
            self._scan_cmdlines()
            if self.polls % 5 == 0:
                self._scan_files()
            self.polls += 1
            time.sleep(0.01)

    def _scan_cmdlines(self):
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as handle:
                    data = handle.read()
            except OSError:
                continue
            for secret in self.secrets:
                if secret in data:
                    self.cmdline_hits.append((pid, data.replace(b"\0", b" ").decode("utf-8", "replace")))

    def _candidates(self):
        for top in self.dirs:
            for root, _dirs, names in os.walk(top):
                for name in names:
                    yield top, os.path.join(root, name)
        for top in self.shallow_dirs:
            try:
                for name in os.listdir(top):
                    yield top, os.path.join(top, name)
            except OSError:
                continue

    def _scan_files(self):
        for top, path in self._candidates():
            if any(part in path for part in self.ignore):
                continue
            private = private_dir(path, top)  # before reading: Ansible removes its temp dirs as it goes
            if private is None:
                continue
            try:
                info = os.lstat(path)
                if not stat.S_ISREG(info.st_mode) or info.st_size > 4 * 1024 * 1024 or \
                        info.st_mtime < self.started - 1:  # only files written during the run
                    continue
                with open(path, "rb") as handle:
                    data = handle.read()
            except OSError:
                continue
            if any(secret in data for secret in self.secrets):
                self.files[path] = stat.S_IMODE(info.st_mode)
                self.private[path] = private

    def exposed(self):
        """Files that held a secret and were readable by group or others (not inside a 0700 directory)."""
        return {path: oct(mode) for path, mode in self.files.items() if mode & 0o077 and not self.private[path]}

    def assert_clean(self):
        assert self.polls > 3, "the watcher did not get to run"
        assert self.cmdline_hits == [], "secret in a command line: %s" % self.cmdline_hits[:3]
        assert self.exposed() == {}, "files holding a secret are readable by others: %s" % self.exposed()


def private_dir(path, top):
    """True when a directory between `top` (excluded) and `path` is closed to group and others; None when
    one of them is gone (the file went with it)."""
    directory = os.path.dirname(path)
    top = os.path.abspath(top)
    while directory.startswith(top + os.sep):
        try:
            if not stat.S_IMODE(os.stat(directory).st_mode) & 0o077:
                return True
        except OSError:
            return None
        directory = os.path.dirname(directory)
    return False


def assert_absent(secrets, **texts):
    for where, text in texts.items():
        if isinstance(text, (dict, list)):
            text = json.dumps(text)
        for secret in secrets:
            assert secret not in (text or ""), "secret found in %s" % where


def manifests(*roots):
    found = {}
    for root in roots:
        for base, _dirs, names in os.walk(root):
            if "manifest.json" in names:
                with open(os.path.join(base, "manifest.json")) as handle:
                    found[os.path.join(base, "manifest.json")] = handle.read()
    return found


def s3_manifests(moto, bucket):
    client = moto.client()
    found = {}
    for item in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        if item["Key"].endswith("manifest.json"):
            found[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
    return found


PLAY = """\
- name: Secrets hygiene run
  hosts: localhost
  gather_facts: false
  tasks:
%(tasks)s
"""

TASK = """\
    - name: Step %(n)d
      %(module)s: "{{ steps[%(n)d] }}"
      register: out%(n)d
      ignore_errors: true
    - name: Save step %(n)d
      ansible.builtin.copy:
        content: "{{ out%(n)d | to_json }}"
        dest: "%(result)s"
        mode: "0600"
      check_mode: false
"""


def run_steps(ansible, steps, verbosity="-vvv"):
    """Run (module, args) steps in one ansible-playbook -vvv; returns (results, full output)."""
    tasks, results = [], []
    for n, (module, _args) in enumerate(steps):
        result = os.path.join(ansible.workdir, "secrets-result-%d.json" % n)
        results.append(result)
        tasks.append(TASK % {"n": n, "module": module, "result": result})
    play = os.path.join(ansible.workdir, "secrets-play.yml")
    with open(play, "w") as handle:
        handle.write(PLAY % {"tasks": "".join(tasks)})
    proc = ansible.playbook(play, extra_vars={"steps": [args for _module, args in steps]}, extra_args=[verbosity])
    outs = []
    for path in results:
        if not os.path.exists(path):
            raise AssertionError("ansible-playbook did not run every step:\n" + proc.stdout[-5000:])
        with open(path) as handle:
            outs.append(json.load(handle))
        with open(path) as handle:
            outs[-1]["_raw"] = handle.read()
    return outs, proc.stdout


def watch_dirs(ansible, *extra):
    """Where a run could leave files: Ansible's temp dirs, the repositories, the system temp directory."""
    return Watch([S3_SECRET, PG_SECRET, MONGO_SECRET, S3_ACCESS], dirs=[ansible.workdir] + list(extra),
                 shallow_dirs=[tempfile.gettempdir()], ignore=["/vars-"])


@pytest.fixture(scope="module")
def pg_server():
    module = load_suite_module("lifeboat_pgserver", "postgres/pgserver.py")
    assert module.PASSWORD == PG_SECRET
    server = module.Postgres()
    try:
        server.sql("CREATE DATABASE shop OWNER %s" % module.USER)
        server.sql("CREATE TABLE orders (id serial PRIMARY KEY, item text); ALTER TABLE orders OWNER TO lbuser;"
                   "INSERT INTO orders (item) SELECT 'item ' || g FROM generate_series(1, 300) g", "shop")
        yield server
    finally:
        server.remove()


@pytest.fixture
def redis_server(tmp_path):
    module = load_suite_module("lifeboat_redis_fixture", "redis/conftest.py")
    server = module.RedisServer(str(tmp_path / "redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def nx(tmp_path_factory):
    module = load_suite_module("lifeboat_mongo_fixture", "mongo/conftest.py")
    if importlib.util.find_spec("pymongo") is None:
        pytest.fail("pymongo is not installed: pip install pymongo nx-27017")
    server = module.NxServer(tmp_path_factory.mktemp("nx"))
    yield server
    server.stop()


@pytest.fixture
def secret_s3(moto, bucket):
    """The module option `s3` with distinctive credentials (moto accepts any)."""
    return dict(moto.s3_options(bucket, prefix="prod"), access_key=S3_ACCESS, secret_key=S3_SECRET)
