"""Running the asyncio-layer unit tests: a fresh event loop per test, conditions with deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pyrt.testing.waiting import until

__all__ = ["run", "until"]


def run(test: Callable[[], Awaitable[None]], timeout: float = 10.0) -> None:
    """Run ``test()`` in a fresh event loop; fail after ``timeout`` seconds."""

    async def bounded() -> None:
        await asyncio.wait_for(test(), timeout)

    asyncio.run(bounded())


