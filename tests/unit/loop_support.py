"""Running the asyncio-layer unit tests: a fresh event loop per test, conditions with deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pyrt.testing.waiting import until

__all__ = ["run", "settle", "until"]


def run(test: Callable[[], Awaitable[None]], timeout: float = 10.0) -> None:
    """Run ``test()`` in a fresh event loop; fail after ``timeout`` seconds."""

    async def bounded() -> None:
        await asyncio.wait_for(test(), timeout)

    asyncio.run(bounded())


async def settle(turns: int = 20) -> None:
    """Let every task that is ready run to its next wait: ``turns`` turns of the loop, no time."""
    for _ in range(turns):
        await asyncio.sleep(0)
