"""A real OpenSSH sshd (internal-sftp) on 127.0.0.1 for the SFTP repository tests, shared by this folder."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sftp_server import SshServer  # noqa: E402


@pytest.fixture(scope="module")
def sshd():
    server = SshServer()
    yield server
    server.stop()
