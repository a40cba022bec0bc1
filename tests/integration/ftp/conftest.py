"""A real FTP server (pyftpdlib, explicit FTPS) on 127.0.0.1 for the FTP repository tests, shared by this folder."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ftp_server import FtpServer  # noqa: E402


@pytest.fixture(scope="module")
def ftpd():
    server = FtpServer()
    yield server
    server.stop()


@pytest.fixture
def plain_ftpd():
    """Plain FTP without MLSD, as vsftpd behaves without TLS configured: the NLST/SIZE/MDTM fallback."""
    server = FtpServer(tls=False, mlsd=False)
    yield server
    server.stop()
