"""Every tier gets its marker from its folder; the fixtures come from pyrt's pytest plugin."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

TIERS = ("unit", "server", "browser")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def pyrt_server_args() -> Sequence[str]:
    """The session's server adds two opt-in features to the default settings: the demo controls
    (many tests drop or stall connections through /demo/drop and /demo/stall, and read what the
    application received) and the raw /echo endpoint (raw-mode tests)."""
    return ("--demo", "--echo")
