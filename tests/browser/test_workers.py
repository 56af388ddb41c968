"""pyrt in a PyScript worker (``<script type="py" worker>``): no ``document``, no ``localStorage``.

``persist=`` goes to IndexedDB there, and a reload (which terminates the worker without a
``pagehide``) loses nothing: unacknowledged messages and channel offsets come back and are
delivered exactly once (docs/reliability.md, scenario 13).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyrt.pytest_plugin.proxy import ChaosProxy
from pyrt.pytest_plugin.server_process import ServerProcess
from tests.browser.reload_scenario import reload_scenario
from tests.browser.worker_page import WorkerPage


@pytest.fixture(scope="module")
def worker(pyrt_browser: Any, pyrt_node_modules: Path | None) -> Iterator[tuple[WorkerPage, ServerProcess]]:
    """One worker page and its server for the module's tests, in order (a PyScript worker boots in
    seconds, in WebKit tens of them on a busy machine); the reload test leaves a fresh worker. The
    scenarios' clients reach the server through a chaos proxy (another port: any origin)."""
    options = ["--node-modules", str(pyrt_node_modules)] if pyrt_node_modules is not None else []
    server = ServerProcess(*options, "--demo", "--demo-tick", "0", "--allowed-origin", "*")
    try:
        page = WorkerPage(pyrt_browser, server.url)
        try:
            yield page, server
        finally:
            page.close()
    finally:
        server.stop()


def test_a_worker_has_no_document_and_no_local_storage_but_indexeddb(
    worker: tuple[WorkerPage, ServerProcess],
) -> None:
    page, _ = worker
    found = page.run(
        """
import js
from pyrt.browser.storage import default_store
[hasattr(js, "document"), hasattr(js, "localStorage"), default_store().kind]
"""
    )
    assert found == [False, False, "indexeddb"]


def test_persisted_state_survives_a_reload_of_the_worker_page_exactly_once(
    worker: tuple[WorkerPage, ServerProcess],
) -> None:
    page, server = worker
    reload_scenario(page, server, name="13-worker-reload", storage="indexeddb")


def test_a_client_in_a_worker_falls_back_to_http_where_websockets_are_refused(
    worker: tuple[WorkerPage, ServerProcess], pyrt_start_proxy: Callable[[ServerProcess], ChaosProxy]
) -> None:
    """A JupyterLite kernel runs in a worker: behind a network that refuses WebSockets its client
    carries on over HTTP (a worker has no localStorage: nothing is remembered, so each start tries
    WebSockets first and moves on within the connect timeout)."""
    page, server = worker
    proxy = pyrt_start_proxy(server)
    proxy.set(refuse_upgrade=403)
    found = page.run(
        f"""
import asyncio
from pyrt import WebSocketClient
client = WebSocketClient("ws://127.0.0.1:{proxy.port}/ws", heartbeat=None, connect_timeout=2)
started = asyncio.get_running_loop().time()
await client.connect().wait_open(10)
took = asyncio.get_running_loop().time() - started
replies = [await client.send_with_ack({{"n": n}}, timeout=10) for n in range(5)]
client.close()
await client.wait_closed(5)
[client.transport, took < 3, [r["n"] for r in replies], client.stats.fallbacks]
"""
    )
    assert found == ["http", True, [0, 1, 2, 3, 4], 1]
