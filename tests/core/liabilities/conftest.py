"""Every proof-of-liabilities test runs with signing keys (throw-away ones on a real test server)."""

import pytest


@pytest.fixture(autouse=True)
def _keys(pol_keys):
    """Applies tests/conftest.py's `pol_keys` to every test in this folder."""
