"""pyrt's own test suite (the fixtures come from pyrt's pytest plugin, pyrt/pytest_plugin)."""

from pathlib import Path

import pytest

from pyrt.pytest_plugin.engines import in_ci

REPO = Path(__file__).resolve().parents[1]


def skip_outside_ci(reason: str) -> None:
    """Skip the test for ``reason`` (something this machine lacks); in CI (``CI=true``), where
    ``make`` installs everything the suite needs, fail it instead: CI never skips silently."""
    if in_ci():
        pytest.fail(f"{reason}\n(CI=true: a test that cannot run fails)", pytrace=False)
    pytest.skip(reason)
