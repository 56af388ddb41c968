"""Credentials end to end: the CPython clients against a real ``serve.py`` with tokens, whose
tokens live two seconds (a scaled-down lifetime: what is measured is the refresh, not a limit)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from pyrt import FetchEventSource, WebSocketClient
from pyrt.backoff import Backoff
from pyrt.errors import TokenError
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.auth import make_token
from pyrt.states import State
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
