"""How serve.py turns a request or a connection away (pyrt/server/http_refusals.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pyrt.server.http_refusals import reset, status_response, too_many_connections


def test_a_status_response_is_whole_and_closes_the_connection() -> None:
    response = status_response(431, "Request Header Fields Too Large", "request head too large")
    head, body = response.split(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 431 Request Header Fields Too Large"
    assert f"content-length: {len(body)}" in lines
    assert "connection: close" in lines
    assert body == b"request head too large"


def test_too_many_connections_answers_429_and_says_when_to_come_back() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(too_many_connections({"type": "http"}, None, send))
    assert sent[0]["status"] == 429
    assert (b"retry-after", b"5") in sent[0]["headers"]
    assert (b"connection", b"close") in sent[0]["headers"]
    assert sent[1]["body"] == b"too many connections from your address"


def test_a_reset_over_tcp_reaches_the_peer_as_a_reset() -> None:
    async def scenario() -> None:
        accepted: asyncio.Future[asyncio.Transport] = asyncio.get_running_loop().create_future()

        class Accept(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                assert isinstance(transport, asyncio.Transport)
                accepted.set_result(transport)

        server = await asyncio.get_running_loop().create_server(Accept, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        reset(await accepted)
        with pytest.raises(ConnectionResetError):  # not a FIN: read() would return b""
            await reader.read(100)
        writer.close()
        server.close()

    asyncio.run(asyncio.wait_for(scenario(), 10))
