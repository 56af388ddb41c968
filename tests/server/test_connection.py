"""Bounded send queues: a client that stops reading is cut off (1013) and recovers by offset."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.connection import Connection
from pyrt.server.metrics import Stats
from tests.server.wsclient import Client, run


def test_a_slow_consumer_is_closed_with_1013_and_resumes_without_gap(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    # No rate limit: the publisher is the bare protocol client of tests/server/wsclient.py, which
    # does not pace itself as pyrt does; this test measures the slow consumer, not the limit.
    srv = pyrt_start_server("--send-queue-bytes", "262144", "--demo-tick", "0", "--rate-limit", "0")
    channel = f"slow-{uuid.uuid4().hex[:8]}"
    total = 400
    payload = "x" * 32_000

    async def scenario() -> None:
        slow = await Client.connect(srv.ws_url, compression=None, max_queue=1)
        await slow.send({"type": "subscribe", "channel": channel})
        await slow.expect("subscribed")
        publisher = await Client.connect(srv.ws_url)
        for n in range(total):
            await publisher.send(
                {"type": "publish", "id": f"{channel}-{n}", "channel": channel, "data": [n, payload]}
            )
        for _ in range(total):
            await publisher.expect("ack", timeout=20)
        seen: list[int] = []
        last = None
        code = None
        try:
            while True:
                frame = await slow.recv()
                if frame["type"] == "publication":
                    seen.append(frame["data"][0])
                    last = frame["offset"]
        except Exception:
            code = slow.ws.close_code
        assert code in (1013, 1006), code  # 1006 if even the close frame could not get through
        assert len(seen) < total, "the client was never cut off"
        again = await Client.connect(srv.ws_url, compression=None)
        await again.send({"type": "subscribe", "channel": channel, "since": last or "0"})
        assert (await again.expect("subscribed"))["recovered"] is True
        rest = [p["data"][0] for p in await again.publications(channel, total - len(seen), timeout=20)]
        assert seen + rest == list(range(total))
        await again.close()
        await publisher.close()

    run(scenario())


class FakeSend:
    """An ASGI send that blocks until released, recording messages."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.open = asyncio.Event()
        self.open.set()

    async def __call__(self, message: dict[str, Any]) -> None:
        await self.open.wait()
        self.messages.append(message)


def test_frames_go_out_in_order_and_close_comes_after_them() -> None:
    async def scenario() -> None:
        send = FakeSend()
        conn = Connection("ws", send, stats=Stats(), limit_bytes=1000, session="s")
        for n in range(5):
            assert conn.push(f"frame {n}")
        conn.close(1001, "bye")
        assert not conn.push("late")
        await conn.finished()
        assert [m.get("text") for m in send.messages[:5]] == [f"frame {n}" for n in range(5)]
        assert send.messages[5] == {"type": "websocket.close", "code": 1001, "reason": "bye"}

    asyncio.run(scenario())


def test_sse_events_queued_together_go_out_as_one_chunk() -> None:
    async def scenario() -> None:
        send = FakeSend()
        send.open.clear()
        conn = Connection("sse", send, stats=Stats(), limit_bytes=1000, session="s")
        conn.push(b"a\n\n")
        await asyncio.sleep(0)  # the writer takes the first chunk and blocks on the socket
        conn.push(b"b\n\n")
        conn.push(b"c\n\n")
        send.open.set()
        conn.close()
        await conn.finished()
        bodies = [m["body"] for m in send.messages]
        assert bodies == [b"a\n\n", b"b\n\nc\n\n", b""]

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", ["ws", "sse"])
def test_overflow_drops_the_queue_instead_of_growing(kind: str) -> None:
    async def scenario() -> None:
        send = FakeSend()
        send.open.clear()  # a client that never reads
        stats = Stats()
        conn = Connection(kind, send, stats=stats, limit_bytes=100, session="s")  # type: ignore[arg-type]
        item: str | bytes = "x" * 40 if kind == "ws" else b"x" * 40
        results = [conn.push(item) for _ in range(5)]
        assert results == [True, True, False, False, False]  # 3 x 40 bytes would pass 100
        assert conn.closed
        assert conn.queued_bytes == 0
        assert stats.drops["slow_consumer"] == 1
        conn.detach()

    asyncio.run(scenario())


def test_a_frame_that_cannot_be_encoded_is_dropped_and_the_writer_goes_on() -> None:
    async def scenario() -> tuple[list[str], Stats]:
        stats = Stats()
        sent: list[str] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "websocket.send":
                sent.append(message["text"].encode().decode())  # what a server does: UTF-8
            else:
                sent.append(message["type"])

        conn = Connection("ws", send, stats=stats, limit_bytes=1 << 20, session="s")
        conn.push('{"a":"\ud800"}')
        conn.push('{"b":1}')
        conn.close()
        await conn.finished()
        return sent, stats

    sent, stats = asyncio.run(scenario())
    assert sent == ['{"b":1}', "websocket.close"]
    assert stats.errors["unencodable"] == 1
