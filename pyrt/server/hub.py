"""Local fan-out: which connections of this process subscribe to which channel.

The broker hands every live publication to :meth:`Hub.dispatch` once; the hub pushes the
publication's shared encoding (built once) into each subscriber's send queue.

Subscribing without gap or duplicate (:meth:`Hub.subscribe`): the subscriber is registered first
and buffers live publications; then history after ``since`` is read and replayed; then the buffer
is flushed, skipping what the replay already covered (offsets are totally ordered per channel).
"""

from __future__ import annotations

import asyncio

from pyrt.server.brokers.base import Broker, History, Publication
from pyrt.server.connection import Connection
from pyrt.server.metrics import Stats
from pyrt.server.offsets import ZERO, OffsetKey

__all__ = ["Hub", "Subscriber"]

#: Live publications buffered while a subscriber's replay is being read, before it counts as slow.
_PENDING_LIMIT = 10_000


class Subscriber:
    """One connection's subscription to one channel."""

    __slots__ = ("channel", "conn", "floor", "pending")

    def __init__(self, conn: Connection, channel: str) -> None:
        self.conn = conn
        self.channel = channel
        #: Publications at or below this offset were sent already (or predate the subscription).
        self.floor: OffsetKey = ZERO
        #: Live publications that arrived while the replay was being read; ``None`` once live.
        self.pending: list[Publication] | None = []

    def deliver(self, publication: Publication) -> bool:
        """Queue a live publication; ``False`` if it was not sent (buffered, old, or dropped)."""
        pending = self.pending
        if pending is not None:
            pending.append(publication)
            if len(pending) > _PENDING_LIMIT:
                self.pending = None
                self.conn.close(1013, "slow consumer: resubscribe from your last offset")
            return False
        if publication.key <= self.floor:
            return False
        self.floor = publication.key
        conn = self.conn
        return conn.push(publication.ws_frame if conn.kind == "ws" else publication.sse_event)

    def go_live(self, floor: OffsetKey) -> int:
        """End the replay: publications up to ``floor`` were sent; flush the newer buffered ones."""
        self.floor = max(self.floor, floor)
        pending, self.pending = self.pending or [], None
        return sum(1 for publication in pending if self.deliver(publication))


class Hub:
    """Subscribers of this process by channel, fed by one broker."""

    def __init__(self, broker: Broker, stats: Stats) -> None:
        self._broker = broker
        self._stats = stats
        self._channels: dict[str, dict[Subscriber, None]] = {}
        self._watching: dict[str, asyncio.Future[None]] = {}

    def dispatch(self, publication: Publication) -> None:
        """The broker's listener: hand ``publication`` to every local subscriber of its channel."""
        subscribers = self._channels.get(publication.channel)
        if not subscribers:
            return
        sent = 0
        for subscriber in tuple(subscribers):
            if subscriber.deliver(publication):
                sent += 1
        self._stats.deliveries += sent

    def channels(self) -> list[str]:
        return list(self._channels)

    def subscriber_count(self, channel: str) -> int:
        return len(self._channels.get(channel, ()))

    async def subscribe(self, subscriber: Subscriber, since: OffsetKey | None) -> History:
        """Register ``subscriber`` and read what it must replay.

        The caller sends the ``History`` (its subscribed answer and the replayed publications,
        pacing itself with ``Connection.wait_room``), then calls ``subscriber.go_live(floor)``
        with the offset of the last publication it sent (or ``History.latest``). Live
        publications are buffered until then. Call :meth:`unsubscribe` when done, also on error.
        """
        channel = subscriber.channel
        subscribers = self._channels.get(channel)
        if subscribers is None:
            subscribers = self._channels[channel] = {}
        subscribers[subscriber] = None
        watching = self._watching.get(channel)
        if watching is None:
            watching = self._watching[channel] = asyncio.ensure_future(self._broker.watch(channel))
        try:
            await asyncio.shield(watching)
        except BaseException:
            if self._watching.get(channel) is watching and watching.done():
                del self._watching[channel]
            self.unsubscribe(subscriber)
            raise
        try:
            return await self._broker.history(channel, since)
        except BaseException:
            self.unsubscribe(subscriber)
            raise

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget ``subscriber`` (idempotent); the broker stops watching an empty channel."""
        subscriber.pending = None
        channel = subscriber.channel
        subscribers = self._channels.get(channel)
        if subscribers is None or subscriber not in subscribers:
            return
        del subscribers[subscriber]
        if not subscribers:
            del self._channels[channel]
            watching = self._watching.pop(channel, None)
            if watching is not None and not watching.done():
                watching.cancel()
            self._broker.unwatch(channel)
