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


@pytest.mark.parametrize(
    "subprotocols", [["pyrt.v1"], ["pyrt.v1.batch", "pyrt.v1"]], ids=["single", "batched"]
)
def test_a_slow_consumer_is_closed_with_1013_and_resumes_without_gap(
    pyrt_start_server: Callable[..., ServerProcess], subprotocols: list[str]
) -> None:
    # No rate limit: the publisher is the bare protocol client of tests/server/wsclient.py, which
    # does not pace itself as pyrt does; this test measures the slow consumer, not the limit. No
    # CPU budget either: one address pushing 12.8 MB of publications as fast as it can would be
    # paced to its share of the server (and its connections' keepalive pings left unanswered
    # while they wait their turn).
    srv = pyrt_start_server(
        "--send-queue-bytes", "262144", "--demo-tick", "0", "--rate-limit", "0", "--cpu-share-per-ip", "0"
    )
    channel = f"slow-{uuid.uuid4().hex[:8]}"
    total = 400
    payload = "x" * 32_000

    async def scenario() -> None:
        slow = await Client.connect(srv.ws_url, compression=None, max_queue=1, subprotocols=subprotocols)
        assert slow.ws.subprotocol == subprotocols[0]
        await slow.send({"type": "subscribe", "channel": channel})
        await slow.expect("subscribed")
        publisher = await Client.connect(srv.ws_url, compression=None)  # "x" * 32_000 inflates 300x
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


def test_a_batching_websocket_joins_what_piled_up_into_one_frame_in_order() -> None:
    async def scenario() -> None:
        send = FakeSend()
        send.open.clear()
        stats = Stats()
        conn = Connection("ws", send, stats=stats, limit_bytes=10_000, session="s", batch=True)
        conn.push('{"n":0}')
        await asyncio.sleep(0)  # the writer takes the first frame and blocks on the socket
        for n in range(1, 4):
            conn.push(f'{{"n":{n}}}')
        send.open.set()
        conn.close()
        await conn.finished()
        texts = [m.get("text") for m in send.messages if m["type"] == "websocket.send"]
        assert texts == ['{"n":0}', '{"n":1}\n{"n":2}\n{"n":3}']
        assert stats.frames_out == 4
        assert conn.queued_bytes == 0

    asyncio.run(scenario())


def test_a_batch_stops_at_its_frame_and_byte_limits_and_a_large_frame_goes_alone() -> None:
    from pyrt.server.connection import BATCH_BYTES, BATCH_FRAMES

    async def scenario() -> list[str]:
        send = FakeSend()
        send.open.clear()
        conn = Connection("ws", send, stats=Stats(), limit_bytes=1 << 22, session="s", batch=True)
        conn.push("first")
        await asyncio.sleep(0)
        small = [f'{{"n":{n}}}' for n in range(BATCH_FRAMES + 10)]
        for frame in small:
            conn.push(frame)
        big = "b" * BATCH_BYTES
        conn.push(big)
        conn.push("after")
        send.open.set()
        conn.close()
        await conn.finished()
        return [m["text"] for m in send.messages if m["type"] == "websocket.send"]

    texts = asyncio.run(scenario())
    assert texts[0] == "first"
    assert len(texts[1].split("\n")) == BATCH_FRAMES
    assert all(len(text.encode()) <= BATCH_BYTES for text in texts if text != "b" * BATCH_BYTES)
    assert "b" * BATCH_BYTES in texts  # alone in its frame
    assert [line for text in texts for line in text.split("\n")] == [
        "first",
        *[f'{{"n":{n}}}' for n in range(BATCH_FRAMES + 10)],
        "b" * BATCH_BYTES,
        "after",
    ]


def test_a_websocket_that_did_not_ask_for_batches_gets_one_frame_per_message() -> None:
    async def scenario() -> None:
        send = FakeSend()
        send.open.clear()
        conn = Connection("ws", send, stats=Stats(), limit_bytes=10_000, session="s")
        for n in range(4):
            conn.push(f"frame {n}")
        send.open.set()
        conn.close()
        await conn.finished()
        texts = [m.get("text") for m in send.messages if m["type"] == "websocket.send"]
        assert texts == [f"frame {n}" for n in range(4)]

    asyncio.run(scenario())


class FakeDirect:
    """A protocol object with serve.py's direct send path: records each socket write."""

    def __init__(self) -> None:
        self.ready = True
        self.writes: list[list[bytes]] = []

    def pyrt_ready(self) -> bool:
        return self.ready

    def pyrt_send_texts(self, texts: list[bytes]) -> None:
        self.writes.append(texts)


@pytest.mark.parametrize("batch", [False, True])
def test_the_direct_path_writes_one_turns_frames_in_one_socket_write(batch: bool) -> None:
    async def scenario() -> tuple[FakeDirect, FakeSend]:
        send, direct = FakeSend(), FakeDirect()
        conn = Connection(
            "ws", send, stats=Stats(), limit_bytes=10_000, session="s", batch=batch, direct=direct
        )
        for n in range(3):
            conn.push(f"frame {n}")
        assert direct.writes == []  # written at the end of this turn of the event loop
        await asyncio.sleep(0)
        conn.push("frame 3")
        await asyncio.sleep(0)
        return direct, send

    direct, send = asyncio.run(scenario())
    if batch:
        assert direct.writes == [[b"frame 0\nframe 1\nframe 2"], [b"frame 3"]]
    else:
        assert direct.writes == [[b"frame 0", b"frame 1", b"frame 2"], [b"frame 3"]]
    assert send.messages == []  # no ASGI message, no writer task


def test_when_the_socket_is_full_the_writer_task_takes_over_in_order() -> None:
    async def scenario() -> tuple[FakeDirect, FakeSend]:
        send, direct = FakeSend(), FakeDirect()
        conn = Connection("ws", send, stats=Stats(), limit_bytes=10_000, session="s", direct=direct)
        conn.push("a")
        await asyncio.sleep(0)
        direct.ready = False  # over the high-water mark
        conn.push("b")
        conn.push("c")
        await asyncio.sleep(0)
        direct.ready = True
        conn.close()
        await conn.finished()
        return direct, send

    direct, send = asyncio.run(scenario())
    assert direct.writes == [[b"a"]]
    assert [m.get("text") for m in send.messages] == ["b", "c", None]
    assert send.messages[-1]["type"] == "websocket.close"


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
