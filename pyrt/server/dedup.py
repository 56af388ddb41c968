"""Dedup windows: remember ids for a while so a re-sent message or publish takes effect once.

:class:`DedupWindow` is a bounded, time-limited map (oldest first out). :class:`MemoryMessageDedup`
runs an application handler once per message id in this process; the Redis broker has its own
implementation of :class:`MessageDedup` shared by every instance.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["Compute", "DedupWindow", "MemoryMessageDedup", "MessageDedup"]

V = TypeVar("V")

#: Computes an ack frame; returns ``(frame, cacheable)``. Results that are not cacheable (an
#: internal error) are not remembered, so a retry runs the handler again.
Compute = Callable[[], Awaitable[tuple[str, bool]]]


class DedupWindow(Generic[V]):
    """A map that forgets entries ``ttl`` seconds after they were put, and keeps at most ``max_size``.

    ``clock`` returns seconds (monotonic); inject a fake one in tests.
    """

    def __init__(
        self, ttl: float = 600.0, max_size: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl <= 0 or max_size <= 0:
            raise ValueError("a dedup window needs a positive ttl and max_size")
        self.ttl = ttl
        self.max_size = max_size
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        self._expire()
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def get(self, key: str) -> V | None:
        """The value remembered for ``key``, or ``None`` if unknown or forgotten."""
        self._expire()
        entry = self._entries.get(key)
        return None if entry is None else entry[1]

    def put(self, key: str, value: V) -> None:
        """Remember ``value`` for ``key`` from now on (replacing any earlier value)."""
        self._entries.pop(key, None)
        self._entries[key] = (self._clock() + self.ttl, value)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def discard(self, key: str) -> None:
        self._entries.pop(key, None)

    def _expire(self) -> None:
        now = self._clock()
        entries = self._entries
        while entries:
            key, (deadline, _) = next(iter(entries.items()))
            if deadline > now:
                return
            del entries[key]


class MessageDedup(abc.ABC):
    """Runs the application once per message id and replays its ack to re-sent copies."""

    @abc.abstractmethod
    async def run_once(self, message_id: str, compute: Compute) -> tuple[str, bool]:
        """The ack frame for ``message_id`` and whether it was a duplicate.

        The first call runs ``compute``; calls with the same id while it runs wait for its
        result; later calls (within the window) get the remembered frame without running it.
        """


class MemoryMessageDedup(MessageDedup):
    """:class:`MessageDedup` for one process."""

    def __init__(self, window: DedupWindow[asyncio.Future[str]]) -> None:
        self._window = window

    async def run_once(self, message_id: str, compute: Compute) -> tuple[str, bool]:
        known = self._window.get(message_id)
        if known is not None:
            return await asyncio.shield(known), True
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._window.put(message_id, future)
        try:
            frame, cacheable = await compute()
        except BaseException as exc:
            self._window.discard(message_id)
            future.set_exception(RuntimeError(f"the first copy of {message_id!r} failed: {exc!r}"))
            future.exception()  # mark retrieved: no "never retrieved" warning without waiters
            raise
        if not cacheable:
            self._window.discard(message_id)
        future.set_result(frame)
        return frame, False
