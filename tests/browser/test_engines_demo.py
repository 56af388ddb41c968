"""The demo page in every engine: it loads (PyScript, Pyodide, pyrt, all from the server, under its
Content-Security-Policy) and two pages chat, each message acknowledged.

Driven with page JavaScript only (:meth:`~pyrt.pytest_plugin.app_page.AppPage.evaluate`), so the
same test runs in Chromium, Firefox and WebKit; ``test_demo.py`` covers the rest of the demo in
Chromium with Playwright's locators. In WebKit both pages are windows of one profile: they are two
tabs of one browser, which share one WebSocket (``share=``), as a user's tabs do.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from pyrt.pytest_plugin.app_page import AppPage
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.pytest_plugin.waiting import wait_until

BOOT_TIMEOUT = 120.0  # seconds: two pages boot PyScript and Pyodide at once on a busy 2-core machine
WAIT = 30.0

pytestmark = pytest.mark.pyrt_engines("firefox", "webkit")  # Chromium: test_demo.py's chat tests

STATE = """() => ({
  ready: document.body.dataset.ready !== undefined,
  status: document.getElementById("ws-status").textContent.trim(),
})"""

SAY = """(text) => {
  const form = document.getElementById("ws-form");
  document.getElementById("ws-input").value = text;
  form.requestSubmit();  // what Enter does
}"""

TEXTS = """(selector) => [...document.querySelectorAll(selector)].map((item) => item.textContent)"""


def open_demo(pyrt_open_page: Callable[..., AppPage], server: ServerProcess) -> AppPage:
    return pyrt_open_page(server, "/", context_args={"viewport": {"width": 1280, "height": 860}})


def test_the_demo_loads_and_two_pages_chat_with_acks(
    pyrt_open_page: Callable[..., AppPage], pyrt_server: ServerProcess
) -> None:
    alice, bob = open_demo(pyrt_open_page, pyrt_server), open_demo(pyrt_open_page, pyrt_server)
    for page in (alice, bob):
        wait_until(
            lambda page=page: page.evaluate(STATE) == {"ready": True, "status": "open"},
            BOOT_TIMEOUT,
            f"the demo in {page.engine.name} to be ready and connected",
            page=page,
        )
    tag = uuid.uuid4().hex[:8]
    alice.evaluate(SAY, f"hello from alice {tag}")
    wait_until(
        lambda: [t for t in bob.evaluate(TEXTS, "#ws-messages li.received .text") if tag in t],
        WAIT,
        "bob to receive alice's message",
        page=bob,
    )
    acked = wait_until(
        lambda: [t for t in alice.evaluate(TEXTS, "#ws-messages li.sent[data-ack=acked] .text") if tag in t],
        WAIT,
        "alice's message to be acknowledged",
        page=alice,
    )
    received = [t for t in bob.evaluate(TEXTS, "#ws-messages li.received .text") if tag in t]
    assert acked == [f"hello from alice {tag}"]
    assert received == [f"hello from alice {tag}"]  # once
