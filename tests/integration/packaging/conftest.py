"""Fixtures of tests/integration/packaging; the helpers live in packaging_helpers.py (a unique module name)."""

import pytest

from packaging_helpers import build_tarball


@pytest.fixture(scope="session")
def tarball(tmp_path_factory):
    """The collection tarball, built once per test session from the checkout as it is."""
    return build_tarball(str(tmp_path_factory.mktemp("dist")))
