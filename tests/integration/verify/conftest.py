"""Fixtures of the verify suite: sets stored through the engine's own backup path from arbitrary bytes (so their
sha256 is right whatever they hold, as a set written by someone who can write to the repository would be), the
decoded data of a stored set, and the servers of the other suites (PostgreSQL, Redis, nx-27017)."""

import io
import os
import subprocess

import pytest

from engine.pipeline.backup import run_backup
from engine.pipeline.catalog import locate
from engine.repositories.repository import Repository
from engine.pipeline.restore import fetch_to_file
from support.crafted_sets import BytesSource  # noqa: F401 (the verify tests import it from here)
from support.suites import load_suite_module


def store(repository_dir, job, source, encryption=None):
    """Back `source` up into the local repository `repository_dir`; returns (Repository, backup result)."""
    repository = Repository.from_options(dest=str(repository_dir))
    return repository, run_backup(source, repository, job, encryption=encryption)


def decoded(repository, job, backup="latest", identity_file=None):
    """(raw data, manifest) of a stored set."""
    backup_set = locate(repository, job, backup)
    buffer = io.BytesIO()
    fetch_to_file(repository, job, backup_set, buffer, identity_file)
    return buffer.getvalue(), backup_set.manifest


def forged(repository_dir, job, manifest, data=None, verification=None):
    """A new set of `job` holding `data` (default: none) with `manifest`'s kind, extension and source, and
    `verification` (default: the manifest's)."""
    extension = manifest["data"].split(".")[1]
    source = BytesSource(manifest["kind"], extension, data, dict(manifest.get("verification") or {}, **(
        verification or {})), manifest.get("source"))
    return store(repository_dir, job, source)


@pytest.fixture(scope="session")
def postgres():
    pgserver = load_suite_module("verify_pgserver", "postgres/pgserver.py")
    server = pgserver.Postgres()
    try:
        server.sql("CREATE DATABASE shop OWNER %s" % pgserver.USER)
        server.sql("CREATE TABLE public.orders (id int PRIMARY KEY, total numeric);"
                   "INSERT INTO public.orders SELECT g, g * 1.5 FROM generate_series(1, 300) g;"
                   "CREATE TABLE public.customers (id int PRIMARY KEY, name text);"
                   "INSERT INTO public.customers SELECT g, 'c' || g FROM generate_series(1, 40) g;"
                   "ALTER TABLE public.orders OWNER TO %s; ALTER TABLE public.customers OWNER TO %s"
                   % (pgserver.USER, pgserver.USER), "shop")
        yield server
    finally:
        server.remove()


@pytest.fixture
def redis_module():
    return load_suite_module("verify_redis_conftest", "redis/conftest.py")


@pytest.fixture(scope="module")
def nx(tmp_path_factory):
    module = load_suite_module("verify_mongo_conftest", "mongo/conftest.py")
    server = module.NxServer(tmp_path_factory.mktemp("nx"))
    yield server
    server.stop()


@pytest.fixture
def age_keys(tmp_path):
    """Two age identities: {'a': (identity file, recipient), 'b': (...)}."""
    keys = {}
    for name in ("a", "b"):
        path = str(tmp_path / ("%s.key" % name))
        subprocess.run(["age-keygen", "-o", path], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        recipient = subprocess.run(["age-keygen", "-y", path], check=True,
                                   stdout=subprocess.PIPE).stdout.decode().strip()
        os.chmod(path, 0o600)
        keys[name] = (path, recipient)
    return keys
