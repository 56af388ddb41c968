"""Dedup windows: remember ids for a while so a re-sent message or publish takes effect once.

Ids are scoped by client identity (the token's subject, or the client's address without
authentication): two clients sending the same id never see each other's results, and one
client filling its quota only forgets its own oldest ids.

:class:`DedupWindow` is a bounded, time-limited map (oldest first out, with a quota per scope).
:class:`MemoryMessageDedup` runs an application handler once per message id in this process; the
Redis broker has its own implementation of :class:`MessageDedup` shared by every instance. What
is remembered is the *result* (an ack without large data), never the message itself.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["Compute", "DedupWindow", "MemoryMessageDedup", "MessageDedup", "scoped_key"]

V = TypeVar("V")

#: Computes an ack frame; returns ``(frame, remember)``: ``remember`` is what re-sent copies get
#: (a compact form of ``frame``), or ``None`` when nothing is to be remembered (an internal
#: error: a retry runs the handler again).
Compute = Callable[[], Awaitable[tuple[str, str | None]]]


def scoped_key(scope: str, *parts: str) -> str:
    """One unambiguous key for ``parts`` within ``scope`` (length-prefixed, so no separator can be
    forged by a part)."""
    return "".join(f"{len(part)}:{part}" for part in (scope, *parts))


class DedupWindow(Generic[V]):
    """A map that forgets entries ``ttl`` seconds after they were put and keeps at most
    ``max_size``; each scope keeps at most ``per_scope`` (its own oldest go first).

    ``clock`` returns seconds (monotonic); inject a fake one in tests.
    """

    def __init__(
        self,
        ttl: float = 600.0,
        max_size: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        *,
        per_scope: int | None = None,
    ) -> None:
        if ttl <= 0 or max_size <= 0 or (per_scope is not None and per_scope <= 0):
            raise ValueError("a dedup window needs a positive ttl, max_size and per_scope")
        self.ttl = ttl
        self.max_size = max_size
        self.per_scope = per_scope if per_scope is not None else max_size
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, str, V]] = OrderedDict()
        self._scopes: dict[str, OrderedDict[str, None]] = {}

    def __len__(self) -> int:
        self._expire()
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def scope_size(self, scope: str) -> int:
        """Entries held for ``scope``."""
        self._expire()
        return len(self._scopes.get(scope, ()))

    def get(self, key: str) -> V | None:
        """The value remembered for ``key``, or ``None`` if unknown or forgotten."""
        self._expire()
        entry = self._entries.get(key)
        return None if entry is None else entry[2]

    def put(self, key: str, value: V, scope: str = "") -> None:
        """Remember ``value`` for ``key`` (in ``scope``) from now on, replacing any earlier value."""
        self.discard(key)
        self._entries[key] = (self._clock() + self.ttl, scope, value)
        keys = self._scopes.setdefault(scope, OrderedDict())
        keys[key] = None
        while len(keys) > self.per_scope:
            self.discard(next(iter(keys)))
        while len(self._entries) > self.max_size:
            self.discard(next(iter(self._entries)))

    def replace(self, key: str, value: V) -> None:
        """Change the value of a remembered ``key`` without renewing it (no-op if forgotten)."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries[key] = (entry[0], entry[1], value)

    def discard(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        keys = self._scopes.get(entry[1])
        if keys is not None:
            keys.pop(key, None)
            if not keys:
                del self._scopes[entry[1]]

    def _expire(self) -> None:
        now = self._clock()
        entries = self._entries
        while entries:
            key, (deadline, _, _) = next(iter(entries.items()))
            if deadline > now:
                return
            self.discard(key)


class MessageDedup(abc.ABC):
    """Runs the application once per message id (per scope) and answers re-sent copies."""

    @abc.abstractmethod
    async def run_once(self, scope: str, message_id: str, compute: Compute) -> tuple[str, bool]:
        """The ack frame for ``message_id`` within ``scope`` and whether it was a duplicate.

        The first call runs ``compute``; calls with the same id while it runs wait for its
        result; later calls (within the window) get what ``compute`` chose to remember, without
        running it.
        """


class MemoryMessageDedup(MessageDedup):
    """:class:`MessageDedup` for one process."""

    def __init__(self, window: DedupWindow[str | asyncio.Future[str]]) -> None:
        self._window = window

    async def run_once(self, scope: str, message_id: str, compute: Compute) -> tuple[str, bool]:
        key = scoped_key(scope, message_id)
        known = self._window.get(key)
        if isinstance(known, str):
            return known, True
        if known is not None:
            return await asyncio.shield(known), True
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._window.put(key, future, scope)
        try:
            frame, remember = await compute()
        except BaseException as exc:
            self._window.discard(key)
            future.set_exception(RuntimeError(f"the first copy of {message_id!r} failed: {exc!r}"))
            future.exception()  # mark retrieved: no "never retrieved" warning without waiters
            raise
        if remember is None:
            self._window.discard(key)
        else:
            self._window.replace(key, remember)
        future.set_result(frame)  # copies that waited for the first one get its full answer
        return frame, False
