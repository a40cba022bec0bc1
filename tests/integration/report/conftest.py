"""Fixtures of tests/integration/report; the helpers live in report_helpers.py (a unique module name)."""

from report_helpers import installed_runner  # noqa: F401  pylint: disable=unused-import
