"""How a WebSocketClient opens each attempt (pyrt.aio.opening): the URL, subprotocols and token
chosen again for every attempt, the token offered as a subprotocol and never shown, refreshed in
place; on CPython over the in-memory FakeTransport and FakePyrtServer."""

from __future__ import annotations

import asyncio
import logging

import pytest

from pyrt.aio.websocket import WebSocketClient
from pyrt.engine.backoff import Backoff
from pyrt.engine.states import State
from pyrt.errors import TokenError
from pyrt.testing import FakePyrtServer, FakeTransport
from tests.unit.loop_support import run, until
from tests.unit.test_aio_websocket import FAST, make


def test_the_url_callable_is_called_again_for_every_attempt() -> None:
    async def scenario() -> None:
        attempts = iter(range(100))

        async def url() -> str:
            return f"ws://test/ws?attempt={next(attempts)}"

        transport = FakeTransport(FakePyrtServer(), asyncio.get_running_loop().call_soon)
        client = WebSocketClient(url, transport=transport, heartbeat=None, backoff=FAST)
        await client.connect().wait_open()
        transport.drop()
        await until(lambda: len(transport.sockets) == 2 and client.state is State.OPEN)
        assert [s.url for s in transport.sockets] == ["ws://test/ws?attempt=0", "ws://test/ws?attempt=1"]

    run(scenario)


def test_the_wire_protocol_subprotocol_is_offered_with_the_users() -> None:
    async def scenario() -> None:
        client, transport = make(protocols=["bearer.abc"])
        await client.connect().wait_open()
        assert transport.sockets[0].protocols == ("pyrt.v1.msgpack", "pyrt.v1.batch", "pyrt.v1", "bearer.abc")

    run(scenario)


def test_the_token_and_subprotocols_are_chosen_again_for_every_attempt() -> None:
    async def scenario() -> None:
        issued: list[str] = []

        async def token() -> str:
            await asyncio.sleep(0)
            issued.append(f"tok{len(issued)}")
            return issued[-1]

        async def protocols() -> list[str]:
            return [f"app.v{len(issued)}"]

        client, transport = make(token=token, protocols=protocols)
        await client.connect().wait_open()
        transport.drop()
        await until(lambda: len(transport.sockets) == 2 and client.state is State.OPEN)
        assert [s.protocols for s in transport.sockets] == [
            ("pyrt.v1.msgpack", "pyrt.v1.batch", "pyrt.v1", "app.v0", "bearer.tok0"),
            ("pyrt.v1.msgpack", "pyrt.v1.batch", "pyrt.v1", "app.v1", "bearer.tok1"),
        ]
        assert all("tok" not in s.url for s in transport.sockets)

    run(scenario)


def test_a_token_is_refreshed_on_the_open_connection(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        issued: list[str] = []

        async def token() -> str:
            issued.append(f"secret{len(issued)}")
            return issued[-1]

        server = FakePyrtServer(token_ttl=lambda token: 0.08)
        client, transport = make(server, token=token)
        await client.connect().wait_open()
        await until(lambda: client.stats.token_refreshes >= 2)
        assert server.refreshed[:2] == ["secret1", "secret2"]
        assert len(transport.sockets) == 1
        assert client.state is State.OPEN
        client.close()

    with caplog.at_level(logging.DEBUG, logger="pyrt"):
        run(scenario)
    assert "secret" not in caplog.text


def test_a_token_callable_that_fails_is_an_error_event_and_the_connection_stays() -> None:
    async def scenario() -> None:
        calls: list[int] = []

        def token() -> str:
            calls.append(1)
            if len(calls) > 1:
                raise PermissionError("logged out")
            return "first"

        errors: list[Exception] = []
        server = FakePyrtServer(token_ttl=lambda token: 0.1)
        client, transport = make(server, token=token)
        client.on_error(errors.append)
        await client.connect().wait_open()
        await until(lambda: errors)
        assert isinstance(errors[0], TokenError)
        assert "logged out" in str(errors[0])
        assert client.state is State.OPEN
        assert len(transport.sockets) == 1
        client.close()

    run(scenario)


def test_a_token_that_cannot_travel_fails_the_attempt_with_a_clear_error() -> None:
    async def scenario() -> None:
        errors: list[Exception] = []
        client, transport = make(token=lambda: "has spaces", backoff=Backoff(initial=5.0))
        client.on_error(errors.append)
        client.connect()
        await until(lambda: errors)
        assert "cannot travel" in str(errors[0])
        assert "has spaces" not in str(errors[0])
        assert transport.sockets == []
        assert client.state is State.RECONNECTING
        client.close()

    run(scenario)


def test_token_must_be_a_callable() -> None:
    with pytest.raises(TypeError, match="token must be a callable"):
        WebSocketClient("ws://x/ws", token="abc")  # type: ignore[arg-type]
