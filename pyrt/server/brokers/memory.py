"""The in-process broker: one ring buffer per channel, offsets ``"<channel start ms>-<n>"``."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable

from pyrt.server.brokers.base import Broker, History, Listener, Publication
from pyrt.server.dedup import DedupWindow, MemoryMessageDedup, MessageDedup
from pyrt.server.offsets import ZERO, OffsetKey

__all__ = ["MemoryBroker"]


class _Channel:
    __slots__ = ("life", "log", "seq")

    def __init__(self, life: int) -> None:
        self.life = life  # the channel's start time in ms: the major part of its offsets
        self.seq = 0  # the last sequence number given out
        self.log: deque[Publication] = deque()


class MemoryBroker(Broker):
    """Channels in this process. ``retention`` publications are kept per channel for replay.

    Publishing delivers synchronously to the listener, so a publish acked to a client has been
    handed to every local subscriber already.
    """

    kind = "memory"

    def __init__(
        self,
        retention: int = 1000,
        dedup_ttl: float = 600.0,
        dedup_max: int = 100_000,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        if retention < 1:
            raise ValueError("retention must be at least 1")
        self.retention = retention
        self._clock_ms = clock_ms
        self._channels: dict[str, _Channel] = {}
        self._listener: Listener | None = None
        self._publish_ids: DedupWindow[str] = DedupWindow(dedup_ttl, dedup_max)
        self._message_dedup = MemoryMessageDedup(DedupWindow(dedup_ttl, dedup_max))

    @property
    def message_dedup(self) -> MessageDedup:
        return self._message_dedup

    async def start(self, listener: Listener) -> None:
        self._listener = listener

    async def close(self) -> None:
        self._listener = None

    def _channel(self, name: str) -> _Channel:
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(self._clock_ms())
        return channel

    async def publish(
        self,
        channel: str,
        event: str,
        data_json: str,
        *,
        publish_id: str | None = None,
        retention: int | None = None,
    ) -> tuple[str, bool]:
        return self.publish_now(channel, event, data_json, publish_id=publish_id, retention=retention)

    def publish_now(
        self,
        channel: str,
        event: str,
        data_json: str,
        *,
        publish_id: str | None = None,
        retention: int | None = None,
    ) -> tuple[str, bool]:
        """:meth:`publish` without awaiting (the memory broker never waits)."""
        if publish_id is not None:
            known = self._publish_ids.get(publish_id)
            if known is not None:
                return known, True
        state = self._channel(channel)
        state.seq += 1
        publication = Publication(channel, f"{state.life}-{state.seq}", event, data_json)
        log = state.log
        log.append(publication)
        keep = retention or self.retention
        while len(log) > keep:
            log.popleft()
        if publish_id is not None:
            self._publish_ids.put(publish_id, publication.offset)
        if self._listener is not None:
            self._listener(publication)
        return publication.offset, False

    async def watch(self, channel: str) -> None:
        return None  # every publication goes to the listener; it ignores channels nobody watches

    def unwatch(self, channel: str) -> None:
        return None

    async def history(self, channel: str, since: OffsetKey | None) -> History:
        state = self._channels.get(channel)
        if state is None:
            return History([], "0", since is None or since == ZERO)
        latest = f"{state.life}-{state.seq}" if state.seq else "0"
        if since is None:
            return History([], latest, True)
        log = state.log
        if since == ZERO:
            return History(list(log), latest, True)
        oldest = log[0].key[1] if log else state.seq + 1
        life, seq = since
        if life != state.life or not oldest - 1 <= seq <= state.seq:
            return History(list(log), latest, False)
        return History(list(itertools.islice(log, seq - oldest + 1, None)), latest, True)

    async def healthy(self) -> bool:
        await asyncio.sleep(0)
        return True
