"""Subscribing while publications keep coming: replay and live stream join without gap or duplicate;
one subscriber's failure never stops the fan-out to the others."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pyrt.server.brokers.base import History, Publication
from pyrt.server.brokers.memory import MemoryBroker
from pyrt.server.connection import Connection
from pyrt.server.hub import Hub, Subscriber
from pyrt.server.metrics import Stats
from pyrt.server.offsets import ZERO, OffsetKey, offset_key
from pyrt.testing import until


class SlowHistoryBroker(MemoryBroker):
    """A memory broker whose history reads take a while (like a network round trip)."""

    async def history(
        self,
        channel: str,
        since: OffsetKey | None,
        *,
        limit: int | None = None,
        max_bytes: int | None = None,
        page_bytes: int | None = None,
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


def test_a_publication_that_cannot_be_encoded_ends_no_subscriber() -> None:
    async def scenario() -> tuple[list[Any], list[Any], Stats]:
        stats = Stats()
        hub = Hub(MemoryBroker(), stats)
        ws_sent: list[Any] = []
        sse_sent: list[Any] = []

        async def ws_send(message: dict[str, Any]) -> None:
            ws_sent.append(message)

        async def sse_send(message: dict[str, Any]) -> None:
            sse_sent.append(message)

        subscribers = [
            Subscriber(Connection("sse", sse_send, stats=stats, limit_bytes=1 << 20, session="a"), "c"),
            Subscriber(Connection("ws", ws_send, stats=stats, limit_bytes=1 << 20, session="b"), "c"),
        ]
        for subscriber in subscribers:
            await hub.subscribe(subscriber, None)
            subscriber.go_live(ZERO)
        # An embedding application's own data bypassing the broker's check: not valid text.
        hub.dispatch(Publication("c", "1-1", "message", '"\ud800"'))
        hub.dispatch(Publication("c", "1-2", "message", '"fine"'))
        for subscriber in subscribers:
            subscriber.conn.close()
            await subscriber.conn.finished()
        return ws_sent, sse_sent, stats

    ws_sent, sse_sent, stats = asyncio.run(scenario())
    sse_body = b"".join(m.get("body", b"") for m in sse_sent)
    assert b"id: 1-2" in sse_body  # the SSE stream went on
    assert b"1-1" not in sse_body
    texts = [m["text"] for m in ws_sent if m["type"] == "websocket.send"]
    assert [json.loads(t.encode("utf-8", "surrogatepass"))["offset"] for t in texts] == ["1-1", "1-2"]
    assert stats.errors["undeliverable"] == 1


def slow_replay(retention: int, published: int) -> tuple[list[str], int, int, int, bool]:
    """A client taking ~1 frame per ms subscribes from the start of 30 retained publications
    while ``published`` more arrive as fast as the broker takes them. Returns the data
    delivered in order, the largest ``pending_bytes`` seen, the connection's limit, the close
    code (0: none) and whether the subscriber was ever behind."""

    async def scenario() -> tuple[list[str], int, int, int, bool]:
        stats = Stats()
        broker = MemoryBroker(retention=retention, clock_ms=lambda: 1)
        hub = Hub(broker, stats)
        await broker.start(hub.dispatch)
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            await asyncio.sleep(0.001)
            sent.append(message)

        limit = 2_000  # ~13 frames of these publications
        conn = Connection("ws", send, stats=stats, limit_bytes=limit, session="s")
        for n in range(30):
            await broker.publish("c", "message", f'"{n:0>100}"')
        subscriber = Subscriber(conn, "c")
        history = await hub.subscribe(subscriber, ZERO)
        replaying = asyncio.ensure_future(hub.replay(subscriber, history))
        most = 0
        behind = False
        for n in range(30, 30 + published):
            await broker.publish("c", "message", f'"{n:0>100}"')
            most = max(most, subscriber.pending_bytes)
            behind = behind or subscriber.behind
            await asyncio.sleep(0)
        await replaying
        await until(
            lambda: conn.closed or len(sent) >= 30 + published,
            timeout=30,
            message="every publication sent, or the connection closed",
        )
        hub.unsubscribe(subscriber)
        conn.close()
        await conn.finished()
        texts = [json.loads(m["text"])["data"] for m in sent if m["type"] == "websocket.send"]
        closes = [m["code"] for m in sent if m["type"] == "websocket.close"]
        return texts, most, limit, closes[0] if closes else 0, behind

    return asyncio.run(scenario())


def test_live_publications_that_overflow_a_replays_buffer_are_read_again_from_the_broker() -> None:
    data, most, limit, closed, behind = slow_replay(retention=1000, published=300)
    assert behind  # the buffer did overflow...
    assert most <= limit  # ...without ever holding more than the connection may queue
    assert data == [f"{n:0>100}" for n in range(330)]  # no gap, no duplicate
    assert closed == 1000  # closed by the test, not cut off


def test_a_replay_outrun_by_the_retention_is_cut_off_as_a_slow_consumer_without_a_gap() -> None:
    data, most, limit, closed, _ = slow_replay(retention=40, published=300)
    assert closed == 1013  # resubscribe from your last offset (and learn what was lost)
    assert most <= limit
    assert data == [f"{n:0>100}" for n in range(len(data))]  # what it got has no gap
    assert len(data) < 330
