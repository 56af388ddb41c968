"""The in-process broker: one log per channel, offsets ``"<channel life>-<n>"``, memory bounded.

What it keeps is bounded whatever clients publish:

- per channel, the newest ``retention`` publications;
- in all, ``history_bytes`` of publications: over it, the least recently published channels lose
  their oldest publications first (a busy channel keeps its history longest);
- at most ``max_channels`` channels: over it, the least recently published one is forgotten;
- publications older than ``history_ttl`` seconds are dropped, and a channel idle that long is
  forgotten.

A forgotten channel that is published to again starts a new *life* (the major part of its
offsets), always greater than any earlier life in this process, so offsets keep increasing and a
client resuming from the old life is told ``recovered: false``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

from pyrt.server.brokers.base import Broker, History, Listener, Page, Publication
from pyrt.server.dedup import DedupWindow, MemoryMessageDedup, MessageDedup, scoped_key
from pyrt.server.offsets import ZERO, OffsetKey
from pyrt.server.presence import MemoryPresence
from pyrt.wire.ingress import check_text

__all__ = ["MemoryBroker"]


class _Channel:
    __slots__ = ("bytes", "life", "log", "seq", "times", "touched")

    def __init__(self, life: int, now: float) -> None:
        self.life = life  # the major part of this life's offsets (its start time in ms)
        self.seq = 0  # the last sequence number given out
        self.log: deque[Publication] = deque()
        self.times: deque[float] = deque()  # when each publication in ``log`` was made
        self.bytes = 0  # memory held by ``log``
        self.touched = now  # the last publish


class MemoryBroker(Broker):
    """Channels in this process. ``retention`` publications are kept per channel for replay,
    within the process-wide bounds described in the module docstring.

    Publishing delivers synchronously to the listener, so a publish acked to a client has been
    handed to every local subscriber already. ``clock`` (monotonic seconds) and ``clock_ms`` (wall
    clock, for offsets) can be injected in tests.
    """

    kind = "memory"

    def __init__(
        self,
        retention: int = 1000,
        dedup_ttl: float = 600.0,
        dedup_max: int = 100_000,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        *,
        history_bytes: int = 64 * 1024 * 1024,
        max_channels: int = 10_000,
        history_ttl: float = 600.0,
        dedup_per_identity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        presence_ttl: float = 30.0,
        presence_grace: float = 5.0,
        max_presence_total: int = 50_000,
    ) -> None:
        for name, value in (("retention", retention), ("max_channels", max_channels)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if history_bytes < 0 or history_ttl <= 0:
            raise ValueError("history_bytes must be >= 0 and history_ttl > 0")
        self.retention = retention
        self.history_bytes = history_bytes
        self.max_channels = max_channels
        self.history_ttl = history_ttl
        self._clock_ms = clock_ms
        self._clock = clock
        self._last_life = 0
        self._channels: OrderedDict[str, _Channel] = OrderedDict()  # least recently published first
        self._bytes = 0
        self._listener: Listener | None = None
        per_scope = min(dedup_per_identity, dedup_max)
        self._publish_ids: DedupWindow[str] = DedupWindow(dedup_ttl, dedup_max, clock, per_scope=per_scope)
        messages: DedupWindow[str | asyncio.Future[str]] = DedupWindow(
            dedup_ttl, dedup_max, clock, per_scope=per_scope
        )
        self._message_dedup = MemoryMessageDedup(messages)
        self.presence = MemoryPresence(
            presence_ttl, presence_grace, max_total=max_presence_total, clock=clock, clock_ms=clock_ms
        )

    @property
    def message_dedup(self) -> MessageDedup:
        return self._message_dedup

    @property
    def retained_bytes(self) -> int:
        """Memory held by retained publications, all channels together."""
        return self._bytes

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    async def start(self, listener: Listener) -> None:
        self._listener = listener

    async def close(self) -> None:
        self._listener = None
        await self.presence.close()

    async def housekeeping(self) -> None:
        self._expire(self._clock())

    async def publish(
        self,
        channel: str,
        event: str,
        data_json: str,
        *,
        publish_id: str | None = None,
        scope: str = "",
        retention: int | None = None,
    ) -> tuple[str, bool]:
        return self.publish_now(
            channel, event, data_json, publish_id=publish_id, scope=scope, retention=retention
        )

    def publish_now(
        self,
        channel: str,
        event: str,
        data_json: str,
        *,
        publish_id: str | None = None,
        scope: str = "",
        retention: int | None = None,
    ) -> tuple[str, bool]:
        """:meth:`publish` without awaiting (the memory broker never waits)."""
        check_text(data_json)
        now = self._clock()
        self._expire(now)
        dedup_key = None
        if publish_id is not None:
            dedup_key = scoped_key(scope, channel, publish_id)
            known = self._publish_ids.get(dedup_key)
            if known is not None:
                return known, True
        state = self._channels.get(channel)
        if state is None:
            state = self._channels[channel] = _Channel(self._new_life(), now)
            while len(self._channels) > self.max_channels:
                self._forget(next(iter(self._channels)))
        else:
            self._channels.move_to_end(channel)
            state.touched = now
        state.seq += 1
        publication = Publication(channel, f"{state.life}-{state.seq}", event, data_json)
        size = publication.size
        state.log.append(publication)
        state.times.append(now)
        state.bytes += size
        self._bytes += size
        keep = retention or self.retention
        while len(state.log) > keep:
            self._drop_oldest(state)
        self._trim_expired(state, now)
        self._fit_budget(state)
        if dedup_key is not None:
            self._publish_ids.put(dedup_key, publication.offset, scope)
        if self._listener is not None:
            self._listener(publication)
        return publication.offset, False

    async def watch(self, channel: str) -> None:
        return None  # every publication goes to the listener; it ignores channels nobody watches

    def unwatch(self, channel: str) -> None:
        return None

    async def history(
        self,
        channel: str,
        since: OffsetKey | None,
        *,
        limit: int | None = None,
        max_bytes: int | None = None,
        page_bytes: int | None = None,  # the list shares the log's publications: nothing to page
    ) -> History:
        now = self._clock()
        self._expire(now)
        state = self._channels.get(channel)
        if state is None:
            return History([], "0", since is None or since == ZERO)
        self._trim_expired(state, now)
        latest = f"{state.life}-{state.seq}" if state.seq else "0"
        if since is None:
            return History([], latest, True)
        log = state.log
        start, recovered = 0, True
        if since != ZERO:
            oldest = log[0].key[1] if log else state.seq + 1
            life, seq = since
            if life != state.life or not oldest - 1 <= seq <= state.seq:
                recovered = False
            else:
                start = seq - oldest + 1
        first = len(log) - _that_fit(reversed(log), len(log) - start, limit, max_bytes)
        if first > start:
            recovered = False
        return History(list(itertools.islice(log, first, None)), latest, recovered)

    async def page(
        self, channel: str, since: OffsetKey | None, *, limit: int, reverse: bool = False, max_bytes: int
    ) -> Page:
        now = self._clock()
        self._expire(now)
        state = self._channels.get(channel)
        if state is None:
            return Page([], "0", reverse or since is None or since == ZERO, False)
        self._trim_expired(state, now)
        latest = f"{state.life}-{state.seq}" if state.seq else "0"
        log = state.log
        size = len(log)
        oldest = log[0].key[1] if log else state.seq + 1  # the sequence number of log[0]

        def retained_before(key: OffsetKey, inclusive: bool) -> int:
            """How many retained publications come before ``key`` (or at it, ``inclusive``)."""
            life, seq = key
            if life != state.life:
                return 0 if life < state.life else size
            return min(size, max(0, seq - oldest + (1 if inclusive else 0)))

        if reverse:
            end = size if since is None else retained_before(since, inclusive=False)
            taken = _that_fit(itertools.islice(reversed(log), size - end, None), end, limit, max_bytes)
            chosen = list(itertools.islice(reversed(log), size - end, size - end + taken))
            return Page(chosen, latest, True, end - taken > 0)
        start, recovered = 0, True
        if since is not None and since != ZERO:
            life, seq = since
            if life == state.life and oldest - 1 <= seq <= state.seq:
                start = retained_before(since, inclusive=True)
            else:
                recovered = False  # no longer retained (or never was): from the oldest retained
        taken = _that_fit(itertools.islice(log, start, None), size - start, limit, max_bytes)
        return Page(
            list(itertools.islice(log, start, start + taken)), latest, recovered, start + taken < size
        )

    async def healthy(self) -> bool:
        await asyncio.sleep(0)
        return True

    # --- bounds ---------------------------------------------------------------------------------

    def _new_life(self) -> int:
        self._last_life = max(self._clock_ms(), self._last_life + 1)
        return self._last_life

    def _drop_oldest(self, state: _Channel) -> None:
        size = state.log.popleft().size
        state.times.popleft()
        state.bytes -= size
        self._bytes -= size

    def _forget(self, name: str) -> None:
        state = self._channels.pop(name)
        self._bytes -= state.bytes

    def _trim_expired(self, state: _Channel, now: float) -> None:
        cutoff = now - self.history_ttl
        while state.times and state.times[0] <= cutoff:
            self._drop_oldest(state)

    def _expire(self, now: float) -> None:
        """Forget channels idle for ``history_ttl`` (they are first in publish order)."""
        cutoff = now - self.history_ttl
        channels = self._channels
        while channels:
            name, state = next(iter(channels.items()))
            if state.touched > cutoff:
                return
            self._forget(name)

    def _fit_budget(self, current: _Channel) -> None:
        """Over ``history_bytes``: drop the oldest publications of the least recently published
        channels (a channel left empty is forgotten, except the one just published to)."""
        channels = self._channels
        while self._bytes > self.history_bytes and channels:
            name, state = next(iter(channels.items()))
            if state.log:
                self._drop_oldest(state)
            if not state.log:
                if state is current:
                    return
                self._forget(name)


def _that_fit(
    in_order: Iterable[Publication], available: int, limit: int | None, max_bytes: int | None
) -> int:
    """How many of the ``available`` publications, taken in order (the newest first for a
    replay), fit in ``limit`` and about ``max_bytes`` of data (at least one, when any is)."""
    count = available if limit is None else min(available, limit)
    if max_bytes is None or count == 0:
        return count
    total = 0
    taken = 0
    for publication in itertools.islice(in_order, count):
        total += len(publication.data_json)
        if taken and total > max_bytes:
            break
        taken += 1
    return taken
