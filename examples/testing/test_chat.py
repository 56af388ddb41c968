"""The chat page of app/ keeps working through network faults and a server restart.

Real browsers, real Pyodide, pyrt's real server, and a chaos proxy between them: the pages are
opened through the proxy, so everything they send and receive crosses it. Run with
``python -m pytest examples/testing`` (docs/testing.md); add ``--pyrt-engine chromium,firefox,webkit``
to run each test in the three engines (the first uses Playwright's locators: Chromium and Firefox).
"""

from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from pyrt.pytest_plugin import AppPage, ChaosProxy, PyodidePage, ResetSchedule, ServerProcess, check_delivery

StartProxy = Callable[[ServerProcess], ChaosProxy]

BOOT = 60_000  # ms: PyScript and Pyodide start on a busy machine
NETWORK = 20_000  # ms: anything that waits for a reconnect


def say(page: AppPage, text: str) -> None:
    page.page.fill("#text", text)
    page.page.press("#text", "Enter")


def lines(page: AppPage) -> list[str]:
    return page.page.locator("#messages li").all_text_contents()


@pytest.mark.pyrt_engines("chromium", "firefox")  # Playwright drives these pages: WebKit has no Playwright
def test_the_chat_page_keeps_working_through_a_blackhole_and_a_server_restart(
    chat_server: ServerProcess,
    pyrt_start_proxy: StartProxy,
    pyrt_open_page: Callable[..., AppPage],
    pyrt_channel: str,
) -> None:
    proxy = pyrt_start_proxy(chat_server)
    room = pyrt_channel  # a channel of this test alone
    # A short heartbeat (the page reads it from its URL) finds a silently dead connection in ~2 s.
    alice = pyrt_open_page(proxy, f"/index.html?room={room}&name=alice&heartbeat=1")
    bob = pyrt_open_page(proxy, f"/index.html?room={room}&name=bob&heartbeat=1")
    for page in (alice, bob):
        expect(page.page.locator("#status")).to_have_text("OPEN", timeout=BOOT)

    say(alice, "m0")
    expect(bob.page.locator("#messages li")).to_have_text(["alice: m0"], timeout=NETWORK)

    # The network drops everything on the open connections, without closing them.
    proxy.blackhole_existing()
    say(alice, "m1")
    say(alice, "m2")
    expect(bob.page.locator("#messages li").last).to_have_text("alice: m2", timeout=NETWORK)

    # The server goes away; what alice says meanwhile waits in her page.
    chat_server.stop()
    expect(alice.page.locator("#status")).not_to_have_text("OPEN", timeout=NETWORK)
    say(alice, "m3")
    expect(alice.page.locator("#pending")).to_have_text("1 waiting")
    chat_server.restart()  # the same address, a new process
    say(alice, "m4")
    expect(bob.page.locator("#messages li").last).to_have_text("alice: m4", timeout=NETWORK)
    expect(alice.page.locator("#pending")).to_have_text("")

    seqs = [int(line.removeprefix("alice: m")) for line in lines(bob)]
    check_delivery(range(5), seqs).assert_exactly_once_in_order()
    assert lines(alice) == lines(bob)


def test_every_message_arrives_once_and_in_order_while_connections_keep_breaking(
    chat_server: ServerProcess,
    pyrt_start_proxy: StartProxy,
    pyrt_new_page: Callable[..., PyodidePage],
    pyrt_channel: str,
) -> None:
    proxy = pyrt_start_proxy(chat_server)
    page = pyrt_new_page(proxy)  # Pyodide + pyrt + app/chat.py (conftest.py), through the proxy
    room = pyrt_channel
    page.run(
        f"""
from pyrt import Heartbeat
from chat import ChatRoom

fast = Heartbeat(interval=0.5, timeout=0.5)
alice = ChatRoom(name="alice", channel="{room}", heartbeat=fast).connect()
bob = ChatRoom(name="bob", channel="{room}", heartbeat=fast).connect()
""",
        ns="chat",
    )
    page.wait_for("alice.state == bob.state == 'OPEN'", ns="chat")

    with ResetSchedule(proxy, low=0.2, high=0.6, seed=3) as resets:  # RST on every connection
        page.run(
            """
import asyncio
for n in range(60):
    alice.say(f"m{n}")
    await asyncio.sleep(0.02)
""",
            ns="chat",
            timeout=60,
        )
        page.wait_for("not alice.pending", ns="chat", timeout=60)
    page.wait_for("len(bob.messages) >= 60", ns="chat", timeout=30)

    seqs = page.run("[int(m['text'][1:]) for m in bob.messages]", ns="chat")
    check_delivery(range(60), seqs).assert_exactly_once_in_order()
    assert page.run("alice.failed", ns="chat") == []
    assert resets.connections_cut > 0  # the faults really happened
