"""Picking the runtime: in one module, lazily, by composition (a transport), never by subclassing."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pyrt
from pyrt import EventSourceClient, FetchEventSource, WebSocketClient
from pyrt.aio import runtime
from pyrt.cpython.eventsource_transport import CPythonEventSourceTransport
from pyrt.cpython.fetch_transport import CPythonFetchTransport
from pyrt.cpython.services import CPythonServices, LoopTimers
from pyrt.cpython.ws_transport import CPythonTransport
from pyrt.engine.states import State
from pyrt.errors import RelativeURLError
from pyrt.testing import FakeEventSourceTransport, FakeFetchTransport, FakeServices, FakeTransport

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_importing_and_creating_clients_loads_neither_websockets_nor_httpx() -> None:
    code = (
        "import sys, pyrt\n"
        "clients = [pyrt.WebSocketClient('ws://127.0.0.1:1/ws') for _ in range(500)]\n"
        "sources = [pyrt.FetchEventSource('http://127.0.0.1:1/sse') for _ in range(50)]\n"
        "natives = [pyrt.EventSourceClient('http://127.0.0.1:1/sse') for _ in range(50)]\n"
        "print(sorted(m for m in ('websockets', 'httpx', 'js') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_outside_pyodide_the_runtime_gives_the_cpython_transports_and_services() -> None:
    assert runtime.in_browser() is False
    assert type(runtime.websocket_transport()) is CPythonTransport
    assert type(runtime.fetch_transport()) is CPythonFetchTransport
    assert type(runtime.eventsource_transport()) is CPythonEventSourceTransport
    assert type(runtime.services()) is CPythonServices
    assert runtime.services() is runtime.services()  # one for every client: it holds nothing


def test_outside_the_browser_a_client_times_itself_with_the_loop() -> None:
    async def scenario() -> None:
        client = WebSocketClient("ws://127.0.0.1:9/ws", transport=CPythonTransport(), heartbeat=None)
        client.connect()
        assert type(client._timers) is LoopTimers
        assert client._services is runtime.services()
        client.close()

    asyncio.run(asyncio.wait_for(scenario(), 5))


def test_services_come_from_the_client_else_the_transport_else_the_runtime() -> None:
    async def scenario() -> None:
        mine = FakeServices()
        given = WebSocketClient("ws://h/ws", transport=FakeTransport(), services=mine, heartbeat=None)
        given.connect()
        assert given._services is mine
        fake = FakeTransport()
        carried = WebSocketClient("ws://h/ws", transport=fake, heartbeat=None).connect()
        assert carried._services is fake.services
        sse = FetchEventSource("http://h/sse", transport=FakeFetchTransport(), services=mine).connect()
        assert sse._services is mine
        assert mine.watchers == [given, sse]  # the page, through the services
        for client in (given, carried, sse):
            client.close()
        assert mine.watchers == []  # a closed client stops watching

    asyncio.run(asyncio.wait_for(scenario(), 5))


def test_the_client_classes_are_the_same_on_every_runtime() -> None:
    fetch = FetchEventSource("http://h/sse", method="POST", body=b"x", credentials="omit", stall_timeout=None)
    native = EventSourceClient("http://h/sse", resume_param="since", event_types=["tick"])
    assert type(fetch) is FetchEventSource
    assert type(native) is EventSourceClient
    assert (fetch.method, fetch.body, fetch.credentials) == ("POST", b"x", "omit")
    assert native.listened_types() == {"tick"}
    assert pyrt.WebSocketClient is WebSocketClient


def test_a_client_uses_the_transport_it_is_given_and_asks_the_runtime_only_when_none() -> None:
    async def scenario() -> None:
        given = FakeFetchTransport()
        client = FetchEventSource("/relative/is/fine/here", transport=given).connect()
        assert given.requests
        client.close()
        native = EventSourceClient("/sse", transport=FakeEventSourceTransport()).connect()
        native.close()
        ws = WebSocketClient("/ws", transport=FakeTransport(), heartbeat=None).connect()
        ws.close()
        default = FetchEventSource("http://127.0.0.1:9/sse", backoff=pyrt.Backoff(max_attempts=1))
        default.connect()
        assert type(default._transport) is CPythonFetchTransport
        default.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("make", "example"),
    [
        (lambda: WebSocketClient("/ws"), "ws://127.0.0.1:8000/ws"),
        (lambda: FetchEventSource("/sse?channel=x"), "http://127.0.0.1:8000/sse"),
        (lambda: EventSourceClient("/sse?channel=x"), "http://127.0.0.1:8000/sse"),
    ],
)
def test_a_relative_url_raises_from_connect_and_leaves_the_client_idle(make: object, example: str) -> None:
    async def scenario() -> None:
        client = make()  # type: ignore[operator]
        with pytest.raises(RelativeURLError, match=re.escape(example)):
            client.connect()
        assert client.state is State.IDLE

    asyncio.run(scenario())


def test_the_cpython_transport_is_the_socket_only() -> None:
    transport = CPythonTransport()
    assert transport.services is None  # the runtime's services, unless storage_dir= is given
    for runtime_service in ("watch_page", "storage", "timers", "share_channel"):
        assert not hasattr(transport, runtime_service)
    assert transport.buffered_amount() == 0
    transport.close(1000, "", detach=True)  # nothing open: nothing happens
    transport.dispose()
    with pytest.raises(RuntimeError, match="no open socket"):
        transport.send("x")


def test_creating_500_websocket_clients_with_their_transports_is_cheap() -> None:
    started = time.perf_counter()
    pairs = [(WebSocketClient("ws://127.0.0.1:1/ws"), CPythonTransport()) for _ in range(500)]
    elapsed = time.perf_counter() - started
    print(f"\n500 WebSocketClient + CPythonTransport: {elapsed * 1000:.1f} ms")
    assert len(pairs) == 500
