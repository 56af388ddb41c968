"""Credentials end to end: the CPython clients against a real ``serve.py`` with tokens, whose
tokens live two seconds (a scaled-down lifetime: what is measured is the refresh, not a limit)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import pytest

from pyrt import FetchEventSource, WebSocketClient
from pyrt.engine.backoff import Backoff
from pyrt.engine.states import State
from pyrt.errors import TokenError
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.auth import make_token
from tests.server.cpython_support import run, until

SECRET = "credentials-secret"
FAST = Backoff(initial=0.05, maximum=0.2)


@pytest.fixture
def secured(pyrt_start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return pyrt_start_server(env={"PYRT_TOKEN_SECRET": SECRET})


def test_a_websocket_stays_connected_across_several_token_lifetimes(secured: ServerProcess) -> None:
    channel = f"cred-{uuid.uuid4().hex[:8]}"
    issued: list[str] = []

    async def token() -> str:
        issued.append(make_token(SECRET, "alice", ttl=2))
        return issued[-1]

    async def scenario() -> None:
        got: list[object] = []
        opens: list[int] = []
        client = WebSocketClient(secured.ws_url + "/ws", token=token, backoff=FAST)
        client.on_open(lambda: opens.append(1))
        client.subscribe(channel, lambda p: got.append(p.data))
        await client.connect().wait_open()
        await until(lambda: client.stats.token_refreshes >= 3, timeout=20)  # ~6 s: three lifetimes
        assert opens == [1]
        assert client.stats.reconnects == 0
        assert await client.publish(channel, "still the same connection")
        await until(lambda: got == ["still the same connection"])
        client.close()
        await client.wait_closed()

    run(scenario)


def test_a_token_refused_in_place_expires_and_the_client_reconnects_with_a_fresh_one(
    secured: ServerProcess,
) -> None:
    calls: list[int] = []

    def token() -> str:
        calls.append(1)
        # the refresh (second call) names another subject: refused; the reconnect gets a good one
        return make_token(SECRET, "mallory" if len(calls) == 2 else "alice", ttl=2)

    async def scenario() -> None:
        errors: list[Exception] = []
        closes: list[str] = []
        client = WebSocketClient(secured.ws_url + "/ws", token=token, backoff=FAST)
        client.on_error(errors.append)
        client.on_reconnecting(lambda attempt, delay, reason: closes.append(reason))
        await client.connect().wait_open()
        await until(lambda: closes, timeout=10)
        assert "4001" in closes[0]
        await until(lambda: client.state is State.OPEN and client.stats.reconnects == 1, timeout=10)
        assert any(isinstance(e, TokenError) and "refused" in str(e) for e in errors)
        client.close()
        await client.wait_closed()

    run(scenario)


def test_fetch_event_source_sends_a_fresh_token_after_its_stream_ends(secured: ServerProcess) -> None:
    channel = f"cred-sse-{uuid.uuid4().hex[:8]}"
    calls: list[int] = []

    def token() -> str:
        calls.append(1)
        return make_token(SECRET, "alice", ttl=2)

    async def scenario() -> None:
        client = FetchEventSource(
            f"{secured.url}/sse?channel={channel}", token=token, backoff=FAST, stall_timeout=None
        )
        opens: list[int] = []
        client.on_open(lambda: opens.append(1))
        client.connect()
        await until(lambda: len(opens) >= 2, timeout=15)  # the stream ended with its token: reopened
        assert len(calls) >= 2
        assert client.state is State.OPEN
        client.close()
        await client.wait_closed()

    run(scenario)


def test_tokens_never_travel_in_urls_nor_reach_any_log(
    pyrt_start_server: Callable[..., ServerProcess], caplog: pytest.LogCaptureFixture
) -> None:
    # Both sides log at DEBUG: the server's log and access log (every URL it was asked for, every
    # handshake header and frame the websockets library prints), and every logger of the client
    # process, through connects, refreshes in place, a refused refresh and its 4001 reconnect,
    # and SSE streams that end with their token. One callable serves both clients.
    server = pyrt_start_server("--log-level", "debug", env={"PYRT_TOKEN_SECRET": SECRET})
    channel = f"cred-log-{uuid.uuid4().hex[:8]}"
    issued: list[str] = []
    refuse = [False]

    def token() -> str:
        # from a moment on, another subject: the open WebSocket's refreshes are refused, its
        # token expires (4001) and it reconnects as that subject; new SSE streams just open
        subject = "mallory" if refuse[0] else "alice"
        issued.append(make_token(SECRET, subject, ttl=2))
        return issued[-1]

    async def scenario() -> None:
        ws = WebSocketClient(server.ws_url + "/ws", token=token, backoff=FAST)
        sse = FetchEventSource(f"{server.url}/sse?channel={channel}", token=token, backoff=FAST)
        sse_opens: list[int] = []
        sse.on_open(lambda: sse_opens.append(1))
        ws.subscribe(channel, lambda p: None)
        await ws.connect().wait_open()
        sse.connect()
        await until(lambda: ws.stats.token_refreshes >= 1, timeout=20)
        await until(lambda: len(sse_opens) >= 2, timeout=20)
        refuse[0] = True
        await until(lambda: ws.stats.reconnects >= 1 and ws.state is State.OPEN, timeout=20)
        assert await ws.publish(channel, "after the reconnect")
        ws.close()
        sse.close()
        await ws.wait_closed()
        await sse.wait_closed()

    with caplog.at_level(logging.DEBUG):
        run(scenario)
    server.stop()
    server_log = server.log_text()
    # what is searched for is there: URLs, handshake headers and frames, on both sides
    assert "GET /sse?channel=" in server_log
    assert "sec-websocket-protocol" in server_log.lower()
    assert '"type":"refresh"' in server_log
    assert "refresh" in caplog.text
    assert "bearer.***" in caplog.text.lower()
    assert "bearer.***" in server_log.lower()
    assert len(issued) >= 4
    for issued_token in issued:
        payload, signature = issued_token.split(".")
        for text in (server_log, caplog.text):
            assert payload not in text
            assert signature not in text
            assert signature[-12:] not in text  # not even the tail a shortened frame shows
    assert SECRET not in server_log
