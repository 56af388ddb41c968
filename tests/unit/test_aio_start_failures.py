"""A client never sits in CONNECTING without saying why: a missing optional library raises from
``connect()``, and a start that fails (a transport, a token, a store) reaches ``on_error`` and
the timeout of ``wait_open``.

The libraries are hidden from the import system in a fresh interpreter (a meta-path finder that
refuses them, as if they were not installed); pyrt itself is not patched.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from pyrt import Backoff, EventSourceClient, FetchEventSource, WebSocketClient
from pyrt.engine.states import State
from pyrt.errors import StorageUnavailable
from pyrt.persist.records import MemoryRecordStore, RecordStore
from pyrt.ports.sse_transport import EventSourceEvents, FetchEvents, FetchRequest
from pyrt.testing import (
    FakeEventSourceTransport,
    FakeFetchTransport,
    FakePyrtServer,
    FakeServices,
    FakeTransport,
)
from pyrt.wire import codec
from pyrt.wire.frames import Welcome
from tests import REPO
from tests.unit.loop_support import run, until

pytestmark = pytest.mark.unit

FAST = Backoff(initial=0.01, maximum=0.01, jitter="none")
HINT = 'pip install "pyrt[cpython]"'

HIDE = """
import importlib.abc, sys

class Hidden(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Hidden())
"""

PROBE = """
import asyncio, json, pyrt

async def attempt(make, how):
    client = make()
    try:
        if how == "connect":
            client.connect()
        elif how == "async with":
            async with client:
                pass
        else:
            async for _ in client:
                break
    except BaseException as exc:
        return {"raised": type(exc).__name__, "message": str(exc), "state": client.state.name}
    return {"raised": None, "state": client.state.name}

async def main():
    found = {}
    for name, make in CLIENTS.items():
        for how in HOWS:
            found[f"{name} {how}"] = await asyncio.wait_for(attempt(make, how), 5)
    print(json.dumps(found))

asyncio.run(main())
"""


def probe_without(
    hidden: tuple[str, ...], clients: str, hows: tuple[str, ...] = ("connect", "async with", "async for")
) -> dict[str, Any]:
    """Run :data:`PROBE` in a fresh interpreter where ``hidden`` cannot be imported: each client
    of ``clients`` is started in each way of ``hows``."""
    code = f"HIDDEN = {hidden!r}\nHOWS = {hows!r}\n{HIDE}\n{textwrap.dedent(clients)}\n{PROBE}"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    found: dict[str, Any] = json.loads(out.stdout)
    return found


def test_without_httpx_both_sse_clients_raise_the_install_hint_from_connect_at_once() -> None:
    found = probe_without(
        ("httpx",),
        """
        CLIENTS = {
            "FetchEventSource": lambda: pyrt.FetchEventSource("http://127.0.0.1:9/sse?channel=x"),
            "EventSourceClient": lambda: pyrt.EventSourceClient("http://127.0.0.1:9/sse?channel=x"),
        }
        """,
    )
    assert len(found) == 6
    for attempt, outcome in found.items():
        assert outcome["raised"] == "ImportError", attempt
        assert "httpx" in outcome["message"], attempt
        assert HINT in outcome["message"], attempt
        assert outcome["state"] == "IDLE", attempt  # not CONNECTING: nothing was started


def test_without_websockets_the_websocket_client_raises_the_install_hint_from_connect_at_once() -> None:
    found = probe_without(
        ("websockets",),
        """
        CLIENTS = {"WebSocketClient": lambda: pyrt.WebSocketClient("ws://127.0.0.1:9/ws")}
        """,
    )
    assert len(found) == 3
    for attempt, outcome in found.items():
        assert outcome["raised"] == "ImportError", attempt
        assert "websockets" in outcome["message"], attempt
        assert HINT in outcome["message"], attempt
        assert outcome["state"] == "IDLE", attempt


def test_without_httpx_the_websocket_client_still_works_and_needs_nothing_more() -> None:
    found = probe_without(
        ("httpx",),
        """
        CLIENTS = {"WebSocketClient": lambda: pyrt.WebSocketClient("ws://127.0.0.1:9/ws", heartbeat=None)}
        """,
        hows=("connect",),
    )
    # No server on port 9: it connects, is refused, and goes on trying; nothing raised.
    assert found["WebSocketClient connect"] == {"raised": None, "state": "CONNECTING"}


class StartFails(FakeFetchTransport):
    """A fetch transport that cannot start a request."""

    def start(self, request: FetchRequest, events: FetchEvents) -> None:
        raise RuntimeError("the network stack is gone")


class CreateFails(FakeEventSourceTransport):
    """An EventSource transport that cannot create the object (a malformed URL in a browser)."""

    def create(self, source: int, url: str, with_credentials: bool, events: EventSourceEvents) -> None:
        raise ValueError(f"SyntaxError: Failed to construct 'EventSource': {url} is invalid")


def test_a_fetch_transport_that_cannot_start_fails_the_attempt_and_says_why() -> None:
    async def scenario() -> None:
        client = FetchEventSource("/sse", transport=StartFails(), backoff=FAST)
        errors: list[Exception] = []
        reasons: list[str] = []
        client.on_error(errors.append)
        client.on_reconnecting(lambda attempt, delay, reason: reasons.append(reason))
        client.connect()
        await until(lambda: len(reasons) >= 2)
        assert "could not start the request: RuntimeError: the network stack is gone" in str(errors[0])
        assert "the network stack is gone" in reasons[0]
        with pytest.raises(TimeoutError, match=r"FetchEventSource not open after 0\.05 s") as waited:
            await client.wait_open(timeout=0.05)
        assert "last problem: " in str(waited.value)
        assert "the network stack is gone" in str(waited.value)
        client.close()

    run(scenario)


def test_an_eventsource_that_cannot_be_created_reaches_on_error_and_is_retried() -> None:
    async def scenario() -> None:
        transport = CreateFails()
        client = EventSourceClient("/sse?x=%", transport=transport, backoff=FAST)
        errors: list[Exception] = []
        client.on_error(errors.append)
        client.connect()
        await until(lambda: sum(isinstance(e, ValueError) for e in errors) >= 2)  # tried again
        assert "Failed to construct 'EventSource'" in str(errors[0])
        assert client.state in (State.RECONNECTING, State.CONNECTING)
        client.close()
        assert client.state is State.CLOSED

    run(scenario)


def test_a_token_callable_that_raises_reaches_on_error_and_the_wait_open_timeout() -> None:
    async def scenario() -> None:
        def token() -> str:
            raise PermissionError("the login service said no")

        server = FakePyrtServer()
        client = WebSocketClient("ws://h/ws", transport=FakeTransport(server), token=token, backoff=FAST)
        errors: list[Exception] = []
        client.on_error(errors.append)
        client.connect()
        await until(lambda: len(errors) >= 2)  # every attempt says so
        assert all(isinstance(e, PermissionError) for e in errors)
        with pytest.raises(TimeoutError) as waited:
            await client.wait_open(timeout=0.05)
        assert "WebSocketClient not open after 0.05 s" in str(waited.value)
        assert "preparing the connection failed: the login service said no" in str(waited.value)
        client.close()

    run(scenario)


def test_wait_open_says_when_the_server_has_not_answered_at_all() -> None:
    async def scenario() -> None:
        transport = FakeTransport()  # a socket that never opens: no server plays it
        client = WebSocketClient("ws://h/ws", transport=transport, heartbeat=None)
        with pytest.raises(TimeoutError, match=r"state idle: call connect\(\) first"):
            await client.wait_open(timeout=0.01)
        client.connect()
        with pytest.raises(TimeoutError, match="state connecting; no error reported yet"):
            await client.wait_open(timeout=0.05)
        transport.accept()
        with pytest.raises(TimeoutError, match="the socket is open but the server's welcome has not come"):
            await client.wait_open(timeout=0.05)  # open means the protocol is up, not the socket
        transport.deliver(codec.encode(Welcome(session="s1")))  # the connection is up with its welcome
        await client.wait_open(timeout=1)
        client.pause()
        with pytest.raises(TimeoutError, match=r"state paused: resume\(\) connects again"):
            await client.wait_open(timeout=0.01)
        client.close()

    run(scenario)


class LoadRaises(MemoryRecordStore):
    """A durable store that raises from ``load`` instead of calling back."""

    def __init__(self) -> None:
        super().__init__(durable=True)

    def load(self, key: str, done: Any, failed: Any) -> None:
        raise OSError("the disk went away")


def test_a_store_that_raises_on_load_is_reported_and_the_client_connects_in_memory() -> None:
    async def scenario() -> None:
        client = WebSocketClient(
            "ws://h/ws", transport=FakeTransport(FakePyrtServer()), persist="chat", storage=LoadRaises()
        )
        errors: list[Exception] = []
        client.on_error(errors.append)
        client.connect()
        await client.wait_open(timeout=2)
        assert [type(e) for e in errors] == [StorageUnavailable]
        assert "the disk went away" in str(errors[0])
        assert (client.storage_kind, client.durable) == ("memory", False)
        client.close()

    run(scenario)


class StorageFailsOnce(FakeServices):
    """A runtime whose storage cannot be opened the first time (a directory not there yet)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def record_store(self) -> RecordStore | None:
        if self.failures:
            self.failures -= 1
            raise PermissionError("~/.cache/pyrt is not writable")
        return super().record_store()


def test_storage_that_cannot_be_opened_raises_from_connect_and_a_later_connect_works() -> None:
    async def scenario() -> None:
        transport, services = FakeTransport(FakePyrtServer()), StorageFailsOnce()
        client = WebSocketClient("ws://h/ws", transport=transport, services=services, persist="chat")
        with pytest.raises(PermissionError, match="not writable"):
            client.connect()
        assert client.state is State.IDLE
        client.connect()  # not "connect() was already called": nothing was started
        await client.wait_open(timeout=2)
        client.close()

    run(scenario)
