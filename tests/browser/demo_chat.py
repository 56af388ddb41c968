"""The demo's chat driven with page JavaScript only (:meth:`~pyrt.pytest_plugin.app_page.AppPage.evaluate`),
so a scenario written here runs in Chromium, Firefox and WebKit alike: ``test_demo.py`` runs it on
its Chromium pages, ``test_engines_demo.py`` on pages of the other engines.
"""

from __future__ import annotations

import uuid

from pyrt.pytest_plugin.app_page import AppPage
from pyrt.pytest_plugin.waiting import wait_until

WAIT = 30.0  # seconds: generous deadline for anything that happens over the network
BACK_TO_WEBSOCKETS = 45.0  # seconds: the demo probes WebSockets again at 5, 10, 20 s intervals

STATE = """() => ({
  ready: document.body.dataset.ready !== undefined,
  status: document.getElementById("ws-status").textContent.trim(),
})"""

SAY = """(text) => {
  const form = document.getElementById("ws-form");
  document.getElementById("ws-input").value = text;
  form.requestSubmit();  // what Enter does
}"""

TEXTS = """(selector) => [...document.querySelectorAll(selector)].map((item) => item.textContent.trim())"""

TEXT = """(selector) => document.querySelector(selector).textContent.trim()"""

CLICK = """(selector) => document.querySelector(selector).click()"""


def tag() -> str:
    return uuid.uuid4().hex[:8]


def stat(page: AppPage, name: str) -> str:
    """A figure of the WebSocket tab's "Connection" panel, by its key."""
    return str(page.evaluate(TEXT, f'#ws-stats dd[data-stat="{name}"]'))


def received(page: AppPage, tag: str) -> list[str]:
    """The texts of the chat messages ``page`` received that contain ``tag``."""
    return [text for text in page.evaluate(TEXTS, "#ws-messages li.received .text") if tag in text]


def acked(page: AppPage, tag: str) -> list[str]:
    """The texts of the messages ``page`` sent that contain ``tag`` and were acknowledged."""
    texts = page.evaluate(TEXTS, "#ws-messages li.sent[data-ack=acked] .text")
    return [text for text in texts if tag in text]


def system_lines(page: AppPage) -> list[str]:
    """What the chat says about its connection (connected, lost, blocked...), oldest first."""
    return [str(line) for line in page.evaluate(TEXTS, "#ws-messages li.system")]


def wait_for_stat(page: AppPage, name: str, value: str, timeout: float = WAIT) -> None:
    wait_until(
        lambda: stat(page, name) == value,
        timeout,
        f"the {name} figure to read {value!r} in {page.engine.name} (last: {stat(page, name)!r})",
        page=page,
    )


def block_websockets_then_lift(alice: AppPage, bob: AppPage) -> None:
    """Press "Block WebSockets" on ``alice``: its chat moves to the HTTP binding and messages flow both
    ways, each acknowledged once; lifting the block moves it back to a WebSocket within the demo's
    probe interval, and the chat carries on.

    Where the two pages are tabs of one profile (WebKit), they share one connection and one
    ``cid``: the block moves both."""
    wait_for_stat(alice, "transport", "WebSocket")
    alice.evaluate(CLICK, "#ws-block")
    wait_for_stat(alice, "transport", "HTTP fallback")
    assert alice.evaluate(TEXT, "#ws-block") == "Let WebSockets through"
    try:
        wait_until(
            lambda: [t for t in system_lines(alice) if "Connected over HTTP" in t],
            WAIT,
            "alice's chat to say it is connected over HTTP",
            page=alice,
        )
    except AssertionError as failed:
        raise AssertionError(f"{failed}\nalice: {system_lines(alice)}\nbob: {system_lines(bob)}") from None
    t = tag()
    texts = [f"over http {n} {t}" for n in range(3)]
    for text in texts:
        alice.evaluate(SAY, text)
    wait_until(lambda: len(received(bob, t)) >= 3, WAIT, "bob to receive alice's three messages", page=bob)
    wait_until(lambda: len(acked(alice, t)) >= 3, WAIT, "alice's three messages to be acked", page=alice)
    assert received(bob, t) == texts  # each once, in order
    assert acked(alice, t) == texts
    reply = f"to alice over http {t}"
    bob.evaluate(SAY, reply)
    wait_until(lambda: received(alice, reply), WAIT, "alice to receive bob's reply", page=alice)
    assert received(alice, reply) == [reply]
    alice.evaluate(CLICK, "#ws-block")  # let them through: the probe finds them within its interval
    wait_until(
        lambda: alice.evaluate(TEXT, "#ws-block") == "Block WebSockets", WAIT, "the block lifted", page=alice
    )
    wait_for_stat(alice, "transport", "WebSocket", timeout=BACK_TO_WEBSOCKETS)
    u = tag()
    alice.evaluate(SAY, f"back on websockets {u}")
    wait_until(lambda: received(bob, u), WAIT, "bob to receive alice's message over WebSockets", page=bob)
    assert received(bob, u) == [f"back on websockets {u}"]
