"""Running the asyncio-layer unit tests: a fresh event loop per test, conditions with deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["run", "until"]


def run(test: Callable[[], Awaitable[None]], timeout: float = 10.0) -> None:
    """Run ``test()`` in a fresh event loop; fail after ``timeout`` seconds."""

    async def bounded() -> None:
        await asyncio.wait_for(test(), timeout)

    asyncio.run(bounded())


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Let the loop run until ``condition()`` holds (no fixed sleeps); fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.001)
