"""Waiting on a condition with a deadline, the one way pyrt's tests (and yours) wait.

``await until(lambda: client.state is State.OPEN)`` lets the event loop run until the condition
holds and fails with :class:`TimeoutError` naming it after ``timeout`` seconds: no fixed sleeps.
It runs wherever asyncio does: CPython, and Pyodide pages and workers (``pyrt.testing`` ships in
``/pyrt.zip``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["until"]


async def until(
    condition: Callable[[], object], timeout: float = 10.0, message: str = "", interval: float = 0.005
) -> None:
    """Return once ``condition()`` is true; :class:`TimeoutError` (saying ``message``, else the
    condition) when it is still false after ``timeout`` seconds. Checks every ``interval``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s: {message or condition}")
        await asyncio.sleep(interval)
