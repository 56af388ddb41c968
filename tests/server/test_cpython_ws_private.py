"""The ``websockets`` internals CPythonTransport leans on (pyrt/cpython/ws_private.py). The
canaries fail loudly, naming the missing piece, when a ``websockets`` release moves one; the
last test checks what the fenced functions do on a real connection (127.0.0.1, port 0)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.protocol import Protocol, State

from pyrt.cpython import ws_private


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 20))


@asynccontextmanager
async def echo_connection() -> AsyncIterator[ClientConnection]:
    async def echo(conn: ServerConnection) -> None:
        async for message in conn:
            await conn.send(message)

    async with serve(echo, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", ping_interval=None) as conn:
            yield conn


def test_canary_a_connection_exposes_its_sans_io_protocol_and_asyncio_transport() -> None:
    async def scenario() -> None:
        async with echo_connection() as conn:
            assert isinstance(getattr(conn, "protocol", None), Protocol), "ClientConnection.protocol moved"
            assert callable(getattr(conn, "send_data", None)), "ClientConnection.send_data() is gone"
            transport = getattr(conn, "transport", None)
            assert isinstance(transport, asyncio.WriteTransport), "ClientConnection.transport moved"

    run(scenario)


def test_canary_the_protocol_still_has_what_pyrt_calls() -> None:
    async def scenario() -> None:
        async with echo_connection() as conn:
            protocol = conn.protocol
            missing = [
                name
                for name in ("state", "send_text", "send_binary", "close_rcvd", "close_sent")
                if not hasattr(protocol, name)
            ]
            assert missing == [], f"websockets' Protocol lost {missing}"
            assert protocol.state is State.OPEN

    run(scenario)


def test_the_fenced_functions_send_at_once_report_the_buffer_and_a_clean_close() -> None:
    async def scenario() -> None:
        async with echo_connection() as conn:
            assert ws_private.send_now(conn, "hello", State.OPEN)
            assert ws_private.send_now(conn, b"\x00\x01", State.OPEN)
            assert ws_private.write_buffer_size(conn) >= 0
            assert await conn.recv() == "hello"
            assert await conn.recv() == b"\x00\x01"
            assert not ws_private.closed_cleanly(conn)
            await conn.close()
            assert ws_private.closed_cleanly(conn)
            assert not ws_private.send_now(conn, "too late", State.OPEN)  # dropped, as a browser does

    run(scenario)


def test_abort_drops_the_connection_without_a_handshake() -> None:
    async def scenario() -> None:
        async with echo_connection() as conn:
            ws_private.abort(conn)
            with pytest.raises(Exception, match="no close frame"):
                await conn.recv()
            assert not ws_private.closed_cleanly(conn)

    run(scenario)
