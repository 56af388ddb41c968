"""``AckFuture``: the future of ``send_with_ack``/``publish``, and the one place pyrt leans on
asyncio's private internals.

What it relies on (guarded by ``tests/unit/test_aio_ack_future.py::test_canary_*``, which fails
loudly when an asyncio release changes them):

- ``asyncio.futures._PyFuture``, the pure-Python ``Future`` (always shipped; the C accelerator
  only replaces the public name), to subclass;
- its name-mangled ``_Future__schedule_callbacks`` method, called by ``set_result`` and
  ``set_exception`` to schedule the done callbacks, to override;
- its ``_callbacks`` list of ``(callback, context)`` pairs, to run them directly — after
  ``set_exception`` has returned, since it marks the exception unretrieved only after scheduling
  the callbacks (a waiter resumed earlier would leave it logged as "never retrieved").

Why: when the client settles an ack outside any running task (an ack frame arrived, a timer
fired), the waiters resume at once instead of one event-loop turn later — in Pyodide each turn
is a browser task (~50-90 us).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

__all__ = ["AckFuture", "settle"]

if TYPE_CHECKING:
    _FutureBase = asyncio.Future[Any]
else:
    _FutureBase = asyncio.futures._PyFuture  # the pure-Python Future: its scheduling is ours to override


class AckFuture(_FutureBase):
    """An asyncio future (``await`` it, ``asyncio.wait_for`` it, add callbacks) whose waiters
    resume at once when it is settled outside any running task. Inside a running task it
    schedules its callbacks as any future does. ``asyncio.isfuture`` is true;
    ``isinstance(f, asyncio.Future)`` is not, as for any future not made by the C accelerator."""

    _direct = False  # True only while settle() runs outside any task
    _deferred: list[Any] | None = None  # the callbacks settle() runs once the future is settled

    def _Future__schedule_callbacks(self) -> None:
        if not self._direct:
            super()._Future__schedule_callbacks()  # type: ignore[misc]
            return
        # Run by settle() after set_exception() returns: it marks the exception as not yet
        # retrieved only after scheduling, so a waiter resumed in here would be forgotten and
        # the exception logged as "never retrieved" when the future is collected.
        self._deferred = self._callbacks[:]
        self._callbacks[:] = []


def settle(future: AckFuture, value: Any, error: BaseException | None) -> None:
    """Resolve (``error is None``) or reject ``future``; outside any running task its waiters
    resume right here. A future already done (cancelled by its waiter) is left alone."""
    if future.done():
        return
    future._direct = asyncio.current_task(future.get_loop()) is None
    try:
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)
    finally:
        future._direct = False
    callbacks, future._deferred = future._deferred, None
    for callback, context in callbacks or ():
        try:
            context.run(callback, future)
        except Exception as exc:  # what the loop does for a callback that raised
            future.get_loop().call_exception_handler(
                {"message": "exception in a pyrt ack future callback", "exception": exc, "future": future}
            )
