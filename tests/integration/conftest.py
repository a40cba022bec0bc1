"""Fixtures shared by the integration tests: a moto S3 endpoint and an ansible-playbook runner.

Service-specific fixtures (PostgreSQL, Redis, ...) live in the conftest.py of their own folder.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from support.ansible import AnsibleRunner, collections_root  # noqa: E402
from support.moto import MotoServer, aws_env  # noqa: E402


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    server = MotoServer(str(tmp_path_factory.mktemp("moto") / "moto.log"))
    yield server
    server.stop()


@pytest.fixture
def bucket(moto):
    return moto.new_bucket()


@pytest.fixture
def s3(moto, bucket):
    """The module option `s3` for a fresh bucket on the moto endpoint."""
    return moto.s3_options(bucket, prefix="prod")


@pytest.fixture(scope="session")
def collections(tmp_path_factory):
    return collections_root(str(tmp_path_factory.mktemp("ansible")))


@pytest.fixture
def ansible(tmp_path, collections):
    return AnsibleRunner(str(tmp_path / "ansible"), collections, extra_env=aws_env())
