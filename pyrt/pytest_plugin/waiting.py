"""Wait on a condition with a deadline, never a fixed sleep.

:func:`wait_until` polls a predicate until it returns something truthy and returns that value; when
the deadline passes it fails the test with what was awaited and the last value seen. Pass ``page=``
while a browser page makes requests through ``context.route`` handlers: the sync Playwright API runs
those handlers (and every other Playwright event) only while the test thread is inside a Playwright
call, so the wait then idles in ``page.wait_for_timeout`` instead of ``time.sleep``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

__all__ = ["Idler", "wait_until"]

T = TypeVar("T")


class Idler(Protocol):
    """Anything with Playwright's ``wait_for_timeout(ms)``: a ``Page``, or a pyrt page wrapper."""

    def wait_for_timeout(self, timeout: float) -> Any: ...


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    message: str = "",
    *,
    interval: float = 0.02,
    page: Idler | None = None,
) -> T:
    """Return ``predicate()``'s first truthy value; raise :class:`AssertionError` after ``timeout`` s.

    ``message`` says what was awaited (the failure reads ``within 10 s: <message> (last: <value>)``).
    ``page`` idles in Playwright between polls, so routed requests and page events keep flowing.
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            what = message or getattr(predicate, "__qualname__", repr(predicate))
            raise AssertionError(f"within {timeout:g} s: {what} (last: {value!r})")
        if page is not None:
            page.wait_for_timeout(interval * 1000)
        else:
            time.sleep(interval)
