"""The demo page in every engine: it loads (PyScript, Pyodide, pyrt, all from the server, under its
Content-Security-Policy), two pages chat, each message acknowledged, and "Block WebSockets" moves
the chat to HTTP and back.

Driven with page JavaScript only (:mod:`tests.browser.demo_chat`), so the same scenarios run in
Chromium, Firefox and WebKit; ``test_demo.py`` runs them, and the rest of the demo, in Chromium
with Playwright's locators. In WebKit both pages are windows of one profile: they are two tabs of
one browser, which share one WebSocket (``share=``), as a user's tabs do.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pyrt.pytest_plugin.app_page import AppPage
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.pytest_plugin.waiting import wait_until
from tests.browser.demo_chat import SAY, STATE, WAIT, acked, block_websockets_then_lift, received, tag

BOOT_TIMEOUT = 120.0  # seconds: two pages boot PyScript and Pyodide at once on a busy 2-core machine

pytestmark = pytest.mark.pyrt_engines("firefox", "webkit")  # Chromium: test_demo.py runs these


@pytest.fixture(scope="module")
def pages(pyrt_browser: Any, pyrt_server: ServerProcess) -> Iterator[tuple[AppPage, AppPage]]:
    """Two demo pages of one engine, booted at the same time, for the module's tests in order."""
    opened: list[AppPage] = []
    try:
        viewport = {"viewport": {"width": 1280, "height": 860}}
        for _ in range(2):
            opened.append(AppPage(pyrt_browser, pyrt_server.url + "/", context_args=viewport))
        for page in opened:
            wait_until(
                lambda page=page: page.evaluate(STATE) == {"ready": True, "status": "open"},
                BOOT_TIMEOUT,
                f"the demo in {page.engine.name} to be ready and connected",
                page=page,
            )
        yield opened[0], opened[1]
    finally:
        for page in opened:
            page.close()


def test_the_demo_loads_and_two_pages_chat_with_acks(pages: tuple[AppPage, AppPage]) -> None:
    alice, bob = pages
    t = tag()
    alice.evaluate(SAY, f"hello from alice {t}")
    wait_until(lambda: received(bob, t), WAIT, "bob to receive alice's message", page=bob)
    wait_until(lambda: acked(alice, t), WAIT, "alice's message to be acknowledged", page=alice)
    assert acked(alice, t) == [f"hello from alice {t}"]
    assert received(bob, t) == [f"hello from alice {t}"]  # once


def test_blocking_websockets_moves_the_chat_to_http_and_lifting_the_block_moves_it_back(
    pages: tuple[AppPage, AppPage],
) -> None:
    block_websockets_then_lift(*pages)
