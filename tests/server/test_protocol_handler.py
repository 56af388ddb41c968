"""The /ws pyrt protocol against a real serve.py: every frame type, dedup, replay, bad input."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.auth import make_token
from tests.server.wsclient import Client, publish_http, run


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_welcome_names_the_session_server_and_heartbeat(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        client = await Client.connect(pyrt_server.ws_url)
        assert client.ws.subprotocol == "pyrt.v1"
        assert isinstance(client.session, str)
        assert len(client.session) >= 8
        assert client.welcome["server"].startswith("pyrt-")
        assert client.welcome["heartbeat"] > 0
        await client.close()

    run(scenario())


def test_ping_is_answered_with_the_same_t(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        client = await Client.connect(pyrt_server.ws_url)
        await client.send({"type": "ping", "t": {"sent": 12.5, "n": [1, 2]}})
        assert await client.expect("pong") == {"type": "pong", "t": {"sent": 12.5, "n": [1, 2]}}
        await client.send({"type": "ping"})
        assert await client.expect("pong") == {"type": "pong"}
        await client.send({"type": "pong", "t": 1})  # answers nothing
        await client.send({"type": "ping", "t": "last"})
        assert await client.expect("pong") == {"type": "pong", "t": "last"}
        assert client.frames == []
        await client.close()

    run(scenario())


def test_acked_message_is_echoed_in_the_ack_and_delivered_once_per_id(pyrt_server: ServerProcess) -> None:
    cid = unique("cid")

    async def scenario() -> None:
        client = await Client.connect(pyrt_server.ws_url, f"?cid={cid}")
        await client.send({"type": "message", "id": f"{cid}-1", "data": {"text": "hello"}})
        first = await client.expect("ack", id=f"{cid}-1")
        assert first == {"type": "ack", "id": f"{cid}-1", "ok": True, "data": {"text": "hello"}}
        await client.close()
        # the same id again, on a new connection (a client retrying after a reconnect)
        again = await Client.connect(pyrt_server.ws_url, f"?cid={cid}")
        await again.send({"type": "message", "id": f"{cid}-1", "data": {"text": "hello"}})
        assert await again.expect("ack", id=f"{cid}-1") == first
        await again.send({"type": "message", "id": f"{cid}-2", "data": 2})
        await again.expect("ack", id=f"{cid}-2")
        await again.close()

    run(scenario())
    received = httpx.get(f"{pyrt_server.url}/demo/received", params={"cid": cid}).json()["messages"]
    assert received == [{"id": f"{cid}-1", "data": {"text": "hello"}}, {"id": f"{cid}-2", "data": 2}]


def test_fire_and_forget_message_is_echoed_back_without_ack(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        client = await Client.connect(pyrt_server.ws_url)
        await client.send({"type": "message", "data": ["no", "ack"]})
        assert await client.expect("message") == {"type": "message", "data": ["no", "ack"]}
        await client.send({"type": "ping", "t": 0})
        await client.expect("pong")
        assert not [f for f in client.frames if f["type"] == "ack"]
        await client.close()

    run(scenario())


def test_subscribe_then_live_publications_in_order(pyrt_server: ServerProcess) -> None:
    channel = unique()

    async def scenario() -> None:
        client = await Client.connect(pyrt_server.ws_url)
        await client.send({"type": "subscribe", "channel": channel})
        subscribed = await client.expect("subscribed")
        assert subscribed == {"type": "subscribed", "channel": channel, "offset": "0", "recovered": True}
        offsets = [await publish_http(pyrt_server.url, channel, {"n": n}, event="tick") for n in range(5)]
        got = await client.publications(channel, 5)
        assert [p["data"] for p in got] == [{"n": n} for n in range(5)]
        assert [p["offset"] for p in got] == offsets
        assert {p["event"] for p in got} == {"tick"}
        await client.send({"type": "unsubscribe", "channel": channel})
        assert await client.expect("unsubscribed") == {"type": "unsubscribed", "channel": channel}
        await publish_http(pyrt_server.url, channel, "after")
        await client.send({"type": "ping", "t": "sync"})
        await client.expect("pong")
        assert not [f for f in client.frames if f["type"] == "publication"]
        await client.close()

    run(scenario())


def test_a_client_offering_batches_gets_them_and_one_that_does_not_never_does(
    pyrt_server: ServerProcess,
) -> None:
    channel = unique()

    async def scenario() -> None:
        batched = await Client.connect(pyrt_server.ws_url, subprotocols=["pyrt.v1.batch", "pyrt.v1"])
        single = await Client.connect(pyrt_server.ws_url)
        assert (batched.ws.subprotocol, single.ws.subprotocol) == ("pyrt.v1.batch", "pyrt.v1")
        publisher = await Client.connect(pyrt_server.ws_url)
        for client in (batched, single):
            await client.send({"type": "subscribe", "channel": channel})
            await client.expect("subscribed")
        for n in range(300):  # sent at once: the fan-out queues up for the subscribers
            await publisher.send({"type": "publish", "id": f"b{n}", "channel": channel, "data": n})
        acks = [await publisher.expect("ack", id=f"b{n}") for n in range(300)]
        offsets = [ack["data"]["offset"] for ack in acks]
        for client in (batched, single):
            got = await client.publications(channel, 300)
            assert [p["data"] for p in got] == list(range(300))
            assert [p["offset"] for p in got] == offsets
        assert single.batches == 0  # pyrt.v1: one frame per message, always
        assert batched.messages <= single.messages
        for client in (batched, single, publisher):
            await client.close()

    run(scenario())


def test_subscribe_since_replays_exactly_the_missed_publications(pyrt_server: ServerProcess) -> None:
    channel = unique()

    async def scenario() -> None:
        offsets = [await publish_http(pyrt_server.url, channel, n) for n in range(6)]
        client = await Client.connect(pyrt_server.ws_url)
        await client.send({"type": "subscribe", "channel": channel, "since": offsets[2]})
        subscribed = await client.expect("subscribed")
        assert subscribed["offset"] == offsets[-1]
        assert subscribed["recovered"] is True
        replay = await client.publications(channel, 3)
        assert [p["data"] for p in replay] == [3, 4, 5]
        live = await publish_http(pyrt_server.url, channel, 6)
        assert (await client.expect("publication"))["offset"] == live
        # "0" means everything retained
        await client.send({"type": "subscribe", "channel": channel, "since": "0"})
        await client.expect("subscribed")
        assert [p["data"] for p in await client.publications(channel, 7)] == list(range(7))
        await client.close()

    run(scenario())


def test_recovered_is_false_when_retention_was_exceeded(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    small = pyrt_start_server("--retention", "3", "--demo-tick", "0")
    channel = unique()

    async def scenario() -> None:
        offsets = [await publish_http(small.url, channel, n) for n in range(8)]
        client = await Client.connect(small.ws_url)
        await client.send({"type": "subscribe", "channel": channel, "since": offsets[1]})
        subscribed = await client.expect("subscribed")
        assert subscribed["recovered"] is False
        assert [p["data"] for p in await client.publications(channel, 3)] == [5, 6, 7]
        # within retention: recovered
        await client.send({"type": "subscribe", "channel": channel, "since": offsets[5]})
        assert (await client.expect("subscribed"))["recovered"] is True
        assert [p["data"] for p in await client.publications(channel, 2)] == [6, 7]
        await client.close()

    run(scenario())


def test_publish_is_acked_with_its_offset_and_a_resent_id_publishes_nothing(
    pyrt_server: ServerProcess,
) -> None:
    channel = unique()

    async def scenario() -> None:
        client = await Client.connect(pyrt_server.ws_url)
        await client.send({"type": "subscribe", "channel": channel})
        await client.expect("subscribed")
        frame = {
            "type": "publish",
            "id": f"{channel}-p",
            "channel": channel,
            "data": {"x": 1},
            "event": "note",
        }
        await client.send(frame)
        ack = await client.expect("ack")
        publication = await client.expect("publication")
        assert ack["ok"] is True
        assert ack["data"]["offset"] == publication["offset"]
        assert publication["event"] == "note"
        assert publication["data"] == {"x": 1}
        await client.send(frame)
        assert await client.expect("ack") == ack
        await client.send({"type": "ping", "t": "sync"})
        await client.expect("pong")
        assert not [f for f in client.frames if f["type"] == "publication"]
        await client.close()

    run(scenario())


def test_publishing_into_a_server_channel_is_forbidden(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        client = await Client.connect(pyrt_server.ws_url)
        await client.send({"type": "publish", "id": "x1", "channel": "_received.someone", "data": 1})
        error = await client.expect("error")
        assert error["code"] == "forbidden"
        assert error["id"] == "x1"
        await client.close()

    run(scenario())


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_frame"),
        ('"a string"', "bad_frame"),
        ('{"type": "teleport", "id": "q1"}', "unknown_type"),
        ('{"no": "type"}', "unknown_type"),
        ("[" * 100_000 + "]" * 100_000, "bad_json"),
        ('{"type": "subscribe", "channel": "bad channel!"}', "bad_frame"),
        ('{"type": "subscribe", "channel": "c", "since": "yesterday"}', "bad_frame"),
        ('{"type": "message", "id": 17, "data": 1}', "bad_frame"),
        ('{"type": "publish", "id": "p", "channel": "c", "event": "two\\nlines"}', "bad_frame"),
    ],
)
def test_bad_frames_get_an_error_and_the_connection_stays_open(
    pyrt_server: ServerProcess, frame: str, code: str
) -> None:
    async def scenario() -> None:
        # not compressed: 200 KB of brackets would inflate past the ratio cap (close 1009)
        client = await Client.connect(pyrt_server.ws_url, compression=None)
        await client.send(frame)
        error = await client.expect("error")
        assert error["code"] == code, error
        assert isinstance(error["message"], str)
        assert error["message"]
        await client.send({"type": "ping", "t": "still here"})
        assert (await client.expect("pong"))["t"] == "still here"
        await client.close()

    run(scenario())


def test_a_deeply_nested_but_valid_frame_is_answered(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        client = await Client.connect(pyrt_server.ws_url)
        data = json.loads("[" * 200 + "]" * 200)
        await client.send({"type": "message", "id": unique(), "data": data})
        assert (await client.expect("ack"))["data"] == data
        await client.close()

    run(scenario())


def test_binary_frames_get_a_clear_error(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        client = await Client.connect(pyrt_server.ws_url)
        await client.send(b"\x00\x01binary")
        assert (await client.expect("error"))["code"] == "binary_not_supported"
        await client.close()

    run(scenario())


def test_an_oversize_frame_closes_with_1009_and_others_are_unaffected(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        bystander = await Client.connect(pyrt_server.ws_url)
        client = await Client.connect(pyrt_server.ws_url, max_size=None)
        await client.send({"type": "message", "data": "x" * (1024 * 1024 + 10)})
        assert await client.close_code() == 1009
        await bystander.send({"type": "ping", "t": 1})
        assert (await bystander.expect("pong"))["t"] == 1
        await bystander.close()

    run(scenario())


def _raw_handshake(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: pyrt.v1\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask + masked


def test_invalid_utf8_from_a_raw_socket_closes_with_1007(pyrt_server: ServerProcess) -> None:
    sock = _raw_handshake(pyrt_server.port)
    with sock:
        sock.sendall(_masked_frame(0x1, b'{"type":"ping","t":"\xff\xfe"}'))
        data = b""
        while True:  # read until the close frame (the welcome frame comes first)
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
            index = data.find(b"\x88")
            if index >= 0 and len(data) >= index + 4:
                break
        index = data.find(b"\x88")
        assert index >= 0, data
        assert struct.unpack("!H", data[index + 2 : index + 4])[0] == 1007
    assert httpx.get(pyrt_server.url + "/healthz").status_code == 200


# -- flow control (pyrt.session.admission): refusals, holds, and who gets 1008 ----------------------------

RATE_ARGS = (
    "--rate-limit", "20", "--rate-burst", "10", "--rate-window", "50", "--abuse-limit", "30",
    "--demo-tick", "0",
)  # fmt: skip


def test_welcome_advertises_the_limits_a_client_must_respect(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        client = await Client.connect(pyrt_server.ws_url)
        assert client.welcome["limits"] == {
            "rate": 200.0,
            "burst": 400,
            "window": 1000,
            "max_bytes": 1024 * 1024,
            "subscriptions": 256,
            "publish_rate": 200.0,
            "publish_burst": 1000,
        }
        await client.close()

    run(scenario())


def test_without_a_rate_limit_welcome_advertises_only_sizes(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    # Limits off on purpose: this test measures what welcome says when a deployment turns them off.
    unlimited = pyrt_start_server("--rate-limit", "0", "--publish-rate", "0", "--demo-tick", "0")

    async def scenario() -> None:
        client = await Client.connect(unlimited.ws_url)
        assert client.welcome["limits"] == {"max_bytes": 1024 * 1024, "subscriptions": 256}
        await client.close()

    run(scenario())


def test_a_refused_frame_is_named_and_everything_after_it_waits_for_the_pong_and_retry_after(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    limited = pyrt_start_server(*RATE_ARGS)

    async def scenario() -> None:
        client = await Client.connect(limited.ws_url)
        for n in range(15):  # a burst of 10 is allowed; the rest arrives before any answer is read
            await client.send({"type": "message", "id": f"m-{n}", "data": n})
        assert [(await client.expect("ack", id=f"m-{n}"))["data"] for n in range(10)] == list(range(10))
        first = await client.expect("error", id="m-10")
        assert first["code"] == "rate_limited"
        assert 0.5 <= first["retry_after"] <= 1.0
        hold = await client.expect("ping")
        assert str(hold["t"]).startswith("hold-")
        # Frames already on their way are refused too, never handled out of order.
        for n in range(11, 15):
            refused = await client.expect("error", id=f"m-{n}")
            assert refused["code"] == "rate_limited"
        await client.send({"type": "ping", "t": "still there?"})  # pings are answered in a hold
        assert (await client.expect("pong"))["t"] == "still there?"
        await client.send({"type": "pong", "t": hold["t"]})
        await asyncio.sleep(first["retry_after"])  # what the refusal asked for
        for n in range(10, 15):
            await client.send({"type": "message", "id": f"m-{n}", "data": n})
        later = [(await client.expect("ack", id=f"m-{n}"))["data"] for n in range(10, 15)]
        assert later == list(range(10, 15))
        assert client.ws.close_code is None
        await client.close()

    run(scenario())


def test_a_publication_over_the_identity_quota_holds_the_connection_like_the_rate(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    quota = pyrt_start_server("--publish-rate", "5", "--publish-burst", "2", "--demo-tick", "0")
    channel = unique("quota")

    async def scenario() -> None:
        client = await Client.connect(quota.ws_url)
        for n in range(5):
            await client.send({"type": "publish", "id": f"p-{n}", "channel": channel, "data": n})
        for n in range(2):
            await client.expect("ack", id=f"p-{n}")
        first = await client.expect("error", id="p-2")
        assert first["code"] == "rate_limited"
        hold = await client.expect("ping")
        for n in (3, 4):  # behind it in flight: refused too, not published out of order
            assert (await client.expect("error", id=f"p-{n}"))["code"] == "rate_limited"
        await client.send({"type": "pong", "t": hold["t"]})
        await asyncio.sleep(first["retry_after"])
        offsets = []
        for n in range(2, 5):  # again, in order, as the quota refills
            while True:
                await client.send({"type": "publish", "id": f"p-{n}", "channel": channel, "data": n})
                answer = await client.recv()
                while answer["type"] == "ping":
                    await client.send({"type": "pong", "t": answer["t"]})
                    answer = await client.recv()
                if answer["type"] == "ack":
                    offsets.append(answer["data"]["offset"])
                    break
                assert answer["code"] == "rate_limited"
                await asyncio.sleep(answer["retry_after"])
        await client.send({"type": "subscribe", "channel": channel, "since": "0"})
        await client.expect("subscribed")
        assert [p["data"] for p in await client.publications(channel, 5)] == [0, 1, 2, 3, 4]
        await client.close()

    run(scenario())


def test_a_client_that_keeps_sending_after_reading_a_refusal_is_closed_with_1008(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    limited = pyrt_start_server(*RATE_ARGS)

    async def scenario() -> None:
        bystander = await Client.connect(limited.ws_url)
        abuser = await Client.connect(limited.ws_url)
        for n in range(11):
            await abuser.send({"type": "message", "data": n})
        assert (await abuser.expect("error"))["code"] == "rate_limited"
        hold = await abuser.expect("ping")
        await abuser.send({"type": "pong", "t": hold["t"]})  # it has read the refusal...
        for n in range(100):  # ...and sends on regardless
            try:
                await abuser.send({"type": "message", "data": n})
            except Exception:
                break
        assert await abuser.close_code() == 1008
        await bystander.send({"type": "ping", "t": "fine"})
        assert (await bystander.expect("pong"))["t"] == "fine"
        await bystander.close()

    run(scenario())


def test_a_client_that_floods_without_reading_is_closed_with_1008_after_the_window(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    limited = pyrt_start_server(*RATE_ARGS)

    async def scenario() -> None:
        flooder = await Client.connect(limited.ws_url)
        for n in range(300):
            try:
                await flooder.send({"type": "message", "data": n})
            except Exception:
                break
        errors = []
        code = None
        try:
            while True:
                frame = await flooder.recv()
                if frame["type"] == "error":
                    errors.append(frame["code"])
        except Exception:
            code = flooder.ws.close_code
        assert errors
        assert set(errors) == {"rate_limited"}
        assert len(errors) == 50  # the window: then it is closed
        assert code == 1008

    run(scenario())


def test_a_client_that_waits_out_every_refusal_is_never_closed(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    limited = pyrt_start_server(*RATE_ARGS)

    async def scenario() -> None:
        client = await Client.connect(limited.ws_url)
        loop = asyncio.get_running_loop()
        pending = [f"w-{n}" for n in range(60)]  # 3 s of the rate limit
        acked: list[str] = []
        holds = 0
        while pending:
            batch = pending[:8]  # eight at a time, as fast as the socket takes them
            for message_id in batch:
                await client.send({"type": "message", "id": message_id, "data": message_id})
            refused: list[str] = []
            wait = 0.0
            for message_id in batch:
                answer = await client.recv()
                while answer["type"] == "ping":  # a hold's ping: answer it at once
                    await client.send({"type": "pong", "t": answer["t"]})
                    holds += 1
                    answer = await client.recv()
                assert answer.get("id") == message_id, answer
                if answer["type"] == "ack":
                    acked.append(message_id)
                else:
                    assert answer["code"] == "rate_limited"
                    refused.append(message_id)
                    wait = max(wait, answer["retry_after"])
            pending = refused + pending[len(batch) :]
            if refused:
                deadline = loop.time() + wait
                while loop.time() < deadline:  # answer a late hold ping while waiting
                    try:
                        answer = await client.recv(timeout=max(0.001, deadline - loop.time()))
                    except TimeoutError:
                        break
                    assert answer["type"] == "ping", answer
                    await client.send({"type": "pong", "t": answer["t"]})
                    holds += 1
        assert acked == [f"w-{n}" for n in range(60)]  # all handled, in order
        assert holds >= 1  # it was refused, and survived
        assert client.ws.close_code is None
        await client.close()

    run(scenario())


def test_a_silent_client_is_pinged_then_dropped(pyrt_start_server: Callable[..., ServerProcess]) -> None:
    quick = pyrt_start_server("--heartbeat", "0.2", "--demo-tick", "0")

    async def scenario() -> None:
        client = await Client.connect(quick.ws_url)
        assert client.welcome["heartbeat"] == 0.2
        ping = await client.expect("ping", timeout=3)
        assert "t" in ping
        assert await client.close_code(timeout=5) is None  # dropped without a close frame

    run(scenario())


def test_a_large_refused_frame_is_named_from_its_head_without_being_parsed_whole(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    # A slow refill (2 frames/s) behind the burst of 10: sending eleven 100 KB frames takes tens
    # of milliseconds on a loaded machine, enough for a faster bucket to refill one token.
    # No CPU budget: it reads one address's large frames a piece at a time as its share allows,
    # which would pace these 11 frames below the frame rate whose refusal is under test.
    limited = pyrt_start_server(
        "--rate-limit", "2", "--rate-burst", "10", "--rate-window", "50", "--cpu-share-per-ip", "0"
    )
    big = "x" * 100_000

    async def scenario() -> None:
        # not compressed: 100 KB of one character would inflate past the ratio cap (close 1009)
        client = await Client.connect(limited.ws_url, compression=None)
        for n in range(11):  # pyrt writes type and id first: the refusal can name a large frame
            await client.send(json.dumps({"type": "message", "id": f"big-{n}", "data": big}))
        for n in range(10):
            await client.expect("ack", id=f"big-{n}")
        refused = await client.expect("error", id="big-10")
        assert refused["code"] == "rate_limited"
        hold = await client.expect("ping")
        await client.send({"type": "pong", "t": hold["t"]})
        await asyncio.sleep(refused["retry_after"])
        await client.send(json.dumps({"type": "message", "id": "big-10", "data": big}))
        assert (await client.expect("ack", id="big-10"))["data"] == big  # accepted whole
        await client.close()

    run(scenario())


# ------------------------------------------------------------------ tokens refreshed in place

SECRET = "refresh-secret"


@pytest.fixture
def secured(pyrt_start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return pyrt_start_server(env={"PYRT_TOKEN_SECRET": SECRET})


async def _connect(server: ServerProcess, token: str) -> Client:
    return await Client.connect(server.ws_url, subprotocols=["pyrt.v1", f"bearer.{token}"])


def test_welcome_tells_how_long_the_token_lasts(secured: ServerProcess, pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        client = await _connect(secured, make_token(SECRET, "alice", ttl=120))
        assert 115 <= client.welcome["ttl"] <= 120
        await client.close()
        plain = await Client.connect(pyrt_server.ws_url)  # no tokens: nothing expires
        assert "ttl" not in plain.welcome
        await plain.close()

    run(scenario())


def test_a_refreshed_token_keeps_the_connection_past_the_first_expiry(secured: ServerProcess) -> None:
    channel = unique("refresh")

    async def scenario() -> None:
        # The session's expiry and refresh rules are tested on a fake clock
        # (tests/unit/test_session_server.py); here the server's timer follows a refresh.
        loop = asyncio.get_running_loop()
        started = loop.time()
        first_expiry = time.time() + 2  # tokens expire on whole seconds: between 1 and 2 s from now
        client = await _connect(secured, make_token(SECRET, "alice", ttl=2))
        await client.send({"type": "subscribe", "channel": channel})
        await client.expect("subscribed")
        await client.send({"type": "refresh", "id": "r1", "token": make_token(SECRET, "alice", ttl=4)})
        ack = await client.expect("ack", id="r1")
        assert ack["ok"] is True
        assert 2 <= ack["data"]["ttl"] <= 4
        assert await client.close_code(timeout=8) == 4001  # the refreshed one expires in turn...
        assert time.time() >= first_expiry  # ...after the first one would have
        assert loop.time() - started >= 2

    run(scenario())


def test_a_refresh_must_be_a_valid_token_of_the_same_subject(secured: ServerProcess) -> None:
    async def scenario() -> None:
        client = await _connect(secured, make_token(SECRET, "alice", ttl=60))
        for frame_id, token in (
            ("r1", make_token(SECRET, "mallory", ttl=600)),
            ("r2", make_token(SECRET, "alice", ttl=-5)),
            ("r3", make_token("another secret", "alice", ttl=600)),
        ):
            await client.send({"type": "refresh", "id": frame_id, "token": token})
            error = await client.expect("error", id=frame_id)
            assert error["code"] == "unauthorized"
            assert token not in json.dumps(error)
        await client.send({"type": "refresh", "id": "r4", "token": 42})
        assert (await client.expect("error", id="r4"))["code"] == "bad_frame"
        await client.send({"type": "ping", "t": 1})
        await client.expect("pong")  # refused refreshes leave the connection as it was
        await client.close()

    run(scenario())


def test_a_refresh_with_narrower_caps_ends_what_it_no_longer_allows(secured: ServerProcess) -> None:
    keep, lose = unique("keep"), unique("lose")
    wide = [{"channels": [keep, lose], "allow": ["subscribe"]}]
    narrow = [{"channels": [keep], "allow": ["subscribe"]}]

    async def scenario() -> None:
        client = await _connect(secured, make_token(SECRET, "alice", ttl=60, caps=wide))
        for channel in (keep, lose):
            await client.send({"type": "subscribe", "channel": channel})
            await client.expect("subscribed", channel=channel)
        await client.send({"type": "refresh", "id": "r", "token": make_token(SECRET, "alice", caps=narrow)})
        revoked = await client.expect("error", channel=lose)
        assert revoked["code"] == "forbidden"
        await client.expect("ack", id="r")
        for channel in (keep, lose):
            await publish_http(secured.url, channel, channel, headers=_bearer("bob"))
        await client.send({"type": "ping", "t": "after"})  # answered after anything published before
        await client.expect("pong", t="after")
        assert [f["channel"] for f in client.frames if f["type"] == "publication"] == [keep]
        await client.close()

    run(scenario())


def test_refresh_without_authentication_answers_no_expiry(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        client = await Client.connect(pyrt_server.ws_url)
        await client.send({"type": "refresh", "id": "r", "token": "anything"})
        assert (await client.expect("ack", id="r"))["data"] == {"ttl": None}
        await client.close()

    run(scenario())


def _bearer(subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(SECRET, subject)}"}
