"""Fixtures of tests/integration/sqlite; the helpers themselves live in sqlite_helpers.py (a unique module name, so
test files can import them whatever other conftest.py files pytest has loaded)."""

from sqlite_helpers import (  # noqa: F401  pylint: disable=unused-import
    writer_factory)
