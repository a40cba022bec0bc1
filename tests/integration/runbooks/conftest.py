"""Fixtures of tests/integration/runbooks; the helpers themselves live in runbook_helpers.py (a unique module name, so
test files can import them whatever other conftest.py files pytest has loaded)."""

from runbook_helpers import (  # noqa: F401  pylint: disable=unused-import
    app_factory, playbooks)
