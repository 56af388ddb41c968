"""Picking the CPython adapters: lazily, cheaply, with the same classes and arguments."""

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
from pyrt.cpython import RelativeURLError
from pyrt.cpython.sse import CPythonEventSourceClient, CPythonFetchEventSource
from pyrt.cpython.storage import FileStorage
from pyrt.cpython.ws_transport import CPythonTransport

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_importing_and_creating_clients_loads_neither_websockets_nor_httpx() -> None:
    code = (
        "import sys, pyrt\n"
        "clients = [pyrt.WebSocketClient('ws://127.0.0.1:1/ws') for _ in range(500)]\n"
        "sources = [pyrt.FetchEventSource('http://127.0.0.1:1/sse') for _ in range(50)]\n"
        "print(sorted(m for m in ('websockets', 'httpx') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_sse_classes_build_their_cpython_subclasses_with_the_same_arguments() -> None:
    fetch = FetchEventSource("http://h/sse", method="POST", body=b"x", credentials="omit", stall_timeout=None)
    native = EventSourceClient("http://h/sse", resume_param="since", event_types=["tick"])
    assert type(fetch) is CPythonFetchEventSource
    assert (fetch.method, fetch.body, fetch.credentials) == ("POST", b"x", "omit")
    assert type(native) is CPythonEventSourceClient
    assert native._engine.resume_param == "since"
    assert native._types() == {"tick"}
    assert type(CPythonFetchEventSource("http://h/sse")) is CPythonFetchEventSource  # direct use too


def test_the_exports_are_the_classes_users_construct() -> None:
    assert pyrt.WebSocketClient is WebSocketClient
    assert issubclass(CPythonFetchEventSource, pyrt.FetchEventSource)
    assert issubclass(CPythonEventSourceClient, pyrt.EventSourceClient)


def test_a_relative_websocket_url_raises_from_connect_and_leaves_the_client_idle() -> None:
    async def scenario() -> None:
        client = WebSocketClient("/ws")
        with pytest.raises(RelativeURLError, match=re.escape("'ws://127.0.0.1:8000/ws'")):
            client.connect()
        assert client.state.name == "IDLE"

    asyncio.run(scenario())


def test_the_transport_has_no_page_and_persists_to_files(tmp_path: Path) -> None:
    transport = CPythonTransport(storage_dir=tmp_path)
    transport.watch_page(None)  # type: ignore[arg-type]  # nothing to watch, nothing called
    storage = transport.storage()
    assert isinstance(storage, FileStorage)
    assert storage.directory == tmp_path
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
