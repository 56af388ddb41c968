"""Subscribing while publications keep coming: replay and live stream join without gap or duplicate."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pyrt.server.brokers.base import History
from pyrt.server.brokers.memory import MemoryBroker
from pyrt.server.connection import Connection
from pyrt.server.hub import Hub, Subscriber
from pyrt.server.metrics import Stats
from pyrt.server.offsets import ZERO, OffsetKey, offset_key


class SlowHistoryBroker(MemoryBroker):
    """A memory broker whose history reads take a while (like a network round trip)."""

    async def history(
        self, channel: str, since: OffsetKey | None, *, limit: int | None = None, max_bytes: int | None = None
    ) -> History:
        await asyncio.sleep(0.01)
        history = await super().history(channel, since, limit=limit, max_bytes=max_bytes)
        await asyncio.sleep(0.01)
        return history


def test_replay_then_live_has_no_gap_and_no_duplicate() -> None:
    async def scenario() -> list[int]:
        stats = Stats()
        broker = SlowHistoryBroker(retention=1_000_000, clock_ms=lambda: 1)
        hub = Hub(broker, stats)
        await broker.start(hub.dispatch)
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        conn = Connection("ws", send, stats=stats, limit_bytes=1 << 20, session="s")

        async def publish_forever() -> None:
            n = 0
            while True:
                await broker.publish("c", "message", str(n))
                n += 1
                await asyncio.sleep(0)

        for n in range(10):
            await broker.publish("c", "message", f"{-10 + n}")
        publisher = asyncio.ensure_future(publish_forever())
        subscriber = Subscriber(conn, "c")
        history = await hub.subscribe(subscriber, ZERO)
        floor = offset_key(history.latest)
        for publication in history.publications:
            conn.push(publication.ws_frame)
            floor = max(floor, publication.key)
        subscriber.go_live(floor)
        await asyncio.sleep(0.05)
        publisher.cancel()
        hub.unsubscribe(subscriber)
        conn.close()
        await conn.finished()
        frames = [json.loads(m["text"]) for m in sent if m["type"] == "websocket.send"]
        return [int(f["data"]) for f in frames]

    values = asyncio.run(scenario())
    assert len(values) > 20
    assert values == list(range(-10, -10 + len(values)))


def test_unsubscribe_stops_delivery_and_forgets_the_channel() -> None:
    async def scenario() -> None:
        stats = Stats()
        broker = MemoryBroker()
        hub = Hub(broker, stats)
        await broker.start(hub.dispatch)
        sent: list[Any] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        subscriber = Subscriber(Connection("ws", send, stats=stats, limit_bytes=1000, session="s"), "c")
        await hub.subscribe(subscriber, None)
        subscriber.go_live(ZERO)
        await broker.publish("c", "message", "1")
        assert stats.deliveries == 1
        hub.unsubscribe(subscriber)
        hub.unsubscribe(subscriber)  # idempotent
        await broker.publish("c", "message", "2")
        assert stats.deliveries == 1
        assert hub.channels() == []
        subscriber.conn.detach()

    asyncio.run(scenario())
