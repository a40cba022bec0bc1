"""Fixtures of tests/integration/secrets; the helpers themselves live in secret_helpers.py (a unique module name, so
test files can import them whatever other conftest.py files pytest has loaded)."""

from secret_helpers import (  # noqa: F401  pylint: disable=unused-import
    pg_server, redis_server, nx, secret_s3)
