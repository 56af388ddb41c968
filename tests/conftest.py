"""Fixtures shared by every tier; each test folder adds its own tier marker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.serverproc import ServerProcess

TIERS = ("unit", "server", "browser")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def server() -> Iterator[ServerProcess]:
    """One ``serve.py --demo --echo`` for the whole run (memory broker): the demo controls and the
    raw echo endpoint are opt-in; everything else runs with the default settings."""
    proc = ServerProcess("--demo", "--echo")
    yield proc
    proc.stop()


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProcess]]:
    """Start extra servers with their own arguments; all are stopped after the test."""
    started: list[ServerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, files: int | None = None) -> ServerProcess:
        proc = ServerProcess(*args, env=env, files=files)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
