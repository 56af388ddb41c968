"""The binary binding (``pyrt.v1.msgpack``) through the real serve.py, from CPython clients.

Bytes and NumPy arrays published by a binary client arrive equal at binary subscribers (and in
history, acks and replies); a JSON subscriber on the same channel gets their tagged JSON form;
a JSON client that tries to send bytes is told so before anything is queued; malformed
MessagePack is answered with ``bad_frame`` and the connection stays usable.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack
import numpy as np
import pytest
import websockets

from pyrt import WebSocketClient
from pyrt.errors import EncodeError
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.wire.frames import Publication
from pyrt.wire.protocols import PyrtBinaryProtocol
from tests.server.cpython_support import new_cid, run, until

ARRAYS = [
    np.arange(12, dtype="<f4").reshape(3, 4),
    np.arange(24, dtype=">i2").reshape(2, 3, 4),
    np.array([True, False, True]),
    np.array(7.5, dtype="<f8"),  # 0-d
    np.zeros((0, 5), dtype="<u8"),
    (np.arange(6, dtype="<c16") * 1j).reshape(2, 3),
    np.arange(10, dtype="<i8")[::3],  # not contiguous
    np.array(["2026-12-08T00:00", "1999-01-01T12:30"], dtype="datetime64[ns]"),
    np.array(["ab", "héllo"], dtype="<U5"),
    np.arange(256, dtype="|u1"),
]


def test_arrays_and_bytes_published_on_the_binary_binding_arrive_equal(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        channel = f"bin-{new_cid()}"
        seen: list[Publication] = []
        json_seen: list[Publication] = []
        async with (
            WebSocketClient(f"{pyrt_server.ws_url}/ws", heartbeat=None) as sender,
            WebSocketClient(f"{pyrt_server.ws_url}/ws", heartbeat=None) as receiver,
            WebSocketClient(
                f"{pyrt_server.ws_url}/ws", heartbeat=None, protocol="pyrt-json"
            ) as json_receiver,
        ):
            receiver.subscribe(channel, seen.append)
            json_receiver.subscribe(channel, json_seen.append)
            await until(lambda: receiver.stats.received >= 2 and json_receiver.stats.received >= 2)
            for array in ARRAYS:
                await sender.publish(channel, {"array": array, "note": "x"})
            await sender.publish(channel, b"\x00\xffraw bytes")
            await until(lambda: len(seen) == len(ARRAYS) + 1 and len(json_seen) == len(ARRAYS) + 1)
            assert sender._engine.protocol.binary is True  # type: ignore[attr-defined]
            assert not isinstance(json_receiver._engine.protocol, PyrtBinaryProtocol)
            page = await receiver.history(channel, limit=100)
        for array, publication in zip(ARRAYS, seen, strict=False):
            got = publication.data["array"]
            assert isinstance(got, np.ndarray)
            assert (got.dtype, got.shape) == (array.dtype, array.shape)
            assert np.array_equal(got, array)
            assert publication.data["note"] == "x"
        assert seen[-1].data == b"\x00\xffraw bytes"
        assert json_seen[-1].data == {"$pyrt": "bytes", "base64": "AP9yYXcgYnl0ZXM="}
        first = json_seen[0].data["array"]
        assert (first["$pyrt"], first["dtype"], first["shape"]) == ("ndarray", "<f4", [3, 4])
        assert page.publications[-1].data == b"\x00\xffraw bytes"
        assert np.array_equal(page.publications[1].data["array"], ARRAYS[1])

    run(scenario)


def test_acks_and_replies_carry_bytes_unchanged(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        async with WebSocketClient(f"{pyrt_server.ws_url}/ws", heartbeat=None) as client:
            answer = await client.send_with_ack(b"\x01\x02bytes in, bytes out", timeout=10)
        assert answer == b"\x01\x02bytes in, bytes out"

    run(scenario)


def test_a_json_client_is_told_that_bytes_need_the_binary_binding(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        async with WebSocketClient(
            f"{pyrt_server.ws_url}/ws", heartbeat=None, protocol="pyrt-json"
        ) as client:
            with pytest.raises(EncodeError, match="binary binding"):
                client.publish("somewhere", b"bytes")
            assert client.stats.sent == 0 or client.buffered_amount == 0

    run(scenario)


async def _frames(socket: Any, count: int) -> list[Any]:
    out = []
    while len(out) < count:
        message = await asyncio.wait_for(socket.recv(), 10)
        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(message)
        out.extend(unpacker)
    return out


@pytest.mark.parametrize(
    "bad",
    [
        b"\xc1",  # never used in MessagePack
        b"\x92\x01",  # an array that ends early
        msgpack.packb({"type": "publish", "channel": "c", "data": msgpack.ExtType(5, b"x")}),
        msgpack.packb({"type": "publish", "channel": "c", "data": {1: 2}}, strict_types=False),
        msgpack.packb({"type": "publish", "channel": "c", "data": float("nan")}),
        msgpack.packb({"type": "publish", "channel": "bad channel name!"}),
        msgpack.packb([1, 2, 3]),
        msgpack.packb(
            {"type": "publish", "channel": "c", "data": msgpack.ExtType(1, b"\x92\xa3<f4\x91\x02abc")}
        ),
    ],
)
def test_malformed_messagepack_gets_bad_frame_and_the_connection_stays_usable(
    pyrt_server: ServerProcess, bad: bytes
) -> None:
    async def scenario() -> None:
        async with websockets.connect(f"{pyrt_server.ws_url}/ws", subprotocols=["pyrt.v1.msgpack"]) as socket:
            assert socket.subprotocol == "pyrt.v1.msgpack"
            (welcome,) = await _frames(socket, 1)
            assert welcome["type"] == "welcome"
            await socket.send(bad)
            (error,) = await _frames(socket, 1)
            assert (error["type"], error["code"]) == ("error", "bad_frame")
            await socket.send(msgpack.packb({"type": "ping", "t": 7}))
            (pong,) = await _frames(socket, 1)
            assert pong == {"type": "pong", "t": 7}

    run(scenario)


def test_deep_nesting_is_refused_without_a_crash(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        deep = b"\x91" * 200 + b"\xc0"  # 200 nested one-element arrays: a 201-byte frame
        frame = b"\x84" + msgpack.packb("type") + msgpack.packb("publish") + msgpack.packb("channel")
        frame += (
            msgpack.packb("c") + msgpack.packb("id") + msgpack.packb("p-1") + msgpack.packb("data") + deep
        )
        async with websockets.connect(f"{pyrt_server.ws_url}/ws", subprotocols=["pyrt.v1.msgpack"]) as socket:
            await _frames(socket, 1)
            await socket.send(frame)
            (error,) = await _frames(socket, 1)
            assert (error["type"], error["code"]) == ("error", "bad_frame")
            assert "nested" in error["message"]

    run(scenario)


def test_a_client_offering_only_json_still_gets_the_json_binding(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        async with websockets.connect(
            f"{pyrt_server.ws_url}/ws", subprotocols=["pyrt.v1.batch", "pyrt.v1"]
        ) as socket:
            assert socket.subprotocol == "pyrt.v1.batch"
            assert isinstance(await asyncio.wait_for(socket.recv(), 10), str)
            await socket.send(b"\x81\xa4type\xa4ping")
            error = await asyncio.wait_for(socket.recv(), 10)
            assert '"binary_not_supported"' in error

    run(scenario)


def test_binary_publications_cross_instances_on_redis_and_replay_equal(
    pyrt_redis: Any, pyrt_start_server: Any
) -> None:
    """Redis keeps the stored (tagged) form as it keeps any publication: a subscriber on another
    instance, and one that replays from history, get the same bytes and arrays."""
    args = ("--redis", pyrt_redis.url)
    first, second = pyrt_start_server(*args, "--name", "A"), pyrt_start_server(*args, "--name", "B")
    array = np.arange(1000, dtype=">f8").reshape(10, 100)

    async def scenario() -> None:
        channel = f"redis-bin-{new_cid()}"
        live: list[Publication] = []
        async with (
            WebSocketClient(f"{first.ws_url}/ws", heartbeat=None) as sender,
            WebSocketClient(f"{second.ws_url}/ws", heartbeat=None) as receiver,
        ):
            receiver.subscribe(channel, live.append)
            await receiver.history(channel, limit=1)
            await sender.publish(channel, {"a": array, "b": b"\x00\x01\x02"})
            await until(lambda: live, timeout=10)
        replayed: list[Publication] = []
        async with WebSocketClient(f"{second.ws_url}/ws", heartbeat=None) as late:
            late.subscribe(channel, replayed.append, since="0")
            await until(lambda: replayed, timeout=10)
        for publication in (live[0], replayed[0]):
            assert np.array_equal(publication.data["a"], array)
            assert publication.data["a"].dtype == np.dtype(">f8")
            assert publication.data["b"] == b"\x00\x01\x02"

    run(scenario)
