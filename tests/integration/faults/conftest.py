"""Fixtures of tests/integration/faults; the helpers themselves live in fault_helpers.py (a unique module name, so
test files can import them whatever other conftest.py files pytest has loaded)."""

from fault_helpers import (  # noqa: F401  pylint: disable=unused-import
    proxy, small_fs, runner_lib, runner)
