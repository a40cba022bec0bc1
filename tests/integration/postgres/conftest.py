"""Fixtures: a real PostgreSQL 15 with pgbench data (see pgserver.py), stopped at the end of the session."""

import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pgserver import PG_BIN, SCALE, USER, Postgres  # noqa: E402


@pytest.fixture(scope="session")
def postgres():
    server = Postgres()
    try:
        server.sql("CREATE DATABASE bench OWNER %s" % USER)
        env = dict(server.admin_env(), PGUSER=USER)
        subprocess.run([os.path.join(PG_BIN, "pgbench"), "-i", "-q", "-s", str(SCALE), "bench"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Some non-zero balances and history rows, so sums and counts mean something.
        server.sql("UPDATE pgbench_accounts SET abalance = aid % 97 - 40 WHERE aid % 3 = 0;"
                   "UPDATE pgbench_branches SET bbalance = bid * 1000;"
                   "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
                   "SELECT 1, 1, g, g, now() FROM generate_series(1, 500) g", "bench")
        server.sql("VACUUM ANALYZE", "bench")
        yield server
    finally:
        server.remove()


@pytest.fixture
def pg_login(postgres):
    return postgres.login()
