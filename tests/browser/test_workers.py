"""pyrt in a PyScript worker (``<script type="py" worker>``): no ``document``, no ``localStorage``.

``persist=`` goes to IndexedDB there, and a reload (which terminates the worker without a
``pagehide``) loses nothing: unacknowledged messages and channel offsets come back and are
delivered exactly once (docs/reliability.md, scenario 13).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser

from pyrt.pytest_plugin.server_process import ServerProcess
from tests.browser.reload_scenario import reload_scenario
from tests.browser.worker_page import WorkerPage


@pytest.fixture
def worker(
    pyrt_browser: Browser, pyrt_start_server: Callable[..., ServerProcess]
) -> Iterator[tuple[WorkerPage, ServerProcess]]:
    # The scenario's client reaches the server through a chaos proxy (another port: any origin).
    server = pyrt_start_server("--demo", "--demo-tick", "0", "--allowed-origin", "*")
    page = WorkerPage(pyrt_browser, server.url)
    yield page, server
    page.close()


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
