"""Many tabs, one connection (docs/reliability.md, scenario 15): ``share=`` in real Chromium.

Eight tabs of one browser profile, each running Pyodide and pyrt, on a dedicated ``serve.py``
with its default settings (plus the demo controls, for ``/demo/received``):

- eight ``WebSocketClient(share=...)`` hold one connection (the server's gauge counts one) and
  every ``send_with_ack`` resolves in the tab that sent it;
- eight ``FetchEventSource`` and eight ``EventSourceClient`` read one stream each and every tab
  gets every event; without ``share=``, six streams use up the browser's six HTTP/1.1
  connections to the origin and the other tabs' streams hang;
- the leader tab is killed (its renderer crashes) or closed while publications stream and every
  tab sends acked messages: another tab takes over, and the others get every publication (on
  the WebSocket, through ``fetch`` and through a native ``EventSource``) exactly once, in order,
  and every ack.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pyrt.pytest_plugin.delivery import DeliveryChecker
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.pytest_plugin.waiting import wait_until
from tests.browser.tabs import Tab, Tabs
from tests.faults.scenario import emit

pytestmark = pytest.mark.pyrt_engines("chromium")  # eight tabs; test_share_channel.py: all engines

TABS = 8


@pytest.fixture(scope="module")
def server(pyrt_node_modules: Path | None) -> Iterator[ServerProcess]:
    """A server of the module's own (default settings, plus the demo controls for
    ``/demo/received``): its connection gauges count these tabs only."""
    options = ["--node-modules", str(pyrt_node_modules)] if pyrt_node_modules is not None else []
    proc = ServerProcess(*options, "--demo")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def tabs(pyrt_browser: Any, server: ServerProcess) -> Iterator[Tabs]:
    with Tabs(pyrt_browser, server.url) as opened:
        for _ in range(TABS):
            opened.open()
        yield opened


def gauge(server: ServerProcess, transport: str) -> int:
    return int(server.metric("pyrt_connections", transport=transport))


def everywhere(tabs: list[Tab], code: str, ns: str) -> list[Any]:
    return [tab.run(code.replace("TAB", str(tab.number)), ns=ns) for tab in tabs]


def received(server: ServerProcess, cid: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{server.url}/demo/received", params={"cid": cid}, timeout=10)
    messages: list[dict[str, Any]] = answer.json()["messages"]
    return messages


def test_sockets_closed_while_connecting_in_a_background_tab_leave_no_connection_open(
    tabs: Tabs, server: ServerProcess
) -> None:
    """Chromium keeps the TCP connection of a WebSocket closed while still connecting (seen in a
    background tab, whose handshake completes before the page hears of it): the server counted
    such sockets until its heartbeat gave up on them. The transport closes a connecting socket
    as soon as it opens, with a close handshake (a new leader's socket, closed by a tab that
    closes at once, is one)."""
    tab = tabs.live()[0]  # opened first: the others are in front of it
    tag = uuid.uuid4().hex[:8]
    code = f"""
import asyncio
from pyrt.browser import proxies
from pyrt.browser.ws_transport import BrowserTransport

class Events:
    closed = 0
    def socket_opened(self): pass
    def socket_message(self, data): pass
    def socket_closed(self, code, reason, clean):
        Events.closed += 1

baseline = proxies.live_count()
transports = []
for n in range(30):
    transport = BrowserTransport()
    transport.open("{server.ws_url}/ws?cid=connecting-{tag}", [], Events())
    await asyncio.sleep((n % 10) * 0.002)  # closed at every stage of the handshake
    transport.close(1000, "", detach=n % 2 == 0)
    transports.append(transport)
deadline = asyncio.get_running_loop().time() + 20
while Events.closed < 15 and asyncio.get_running_loop().time() < deadline:
    await asyncio.sleep(0.02)
for transport in transports:
    transport.dispose()
[Events.closed, proxies.live_count() - baseline]
"""
    assert tab.run(code, ns=tag, timeout=60) == [15, 0]  # each attached socket reported its close
    wait_until(lambda: gauge(server, "ws") == 0, 15, "every socket closed on the server", page=tab.page)


def test_eight_tabs_share_one_websocket_and_each_ack_reaches_its_tab(
    tabs: Tabs, server: ServerProcess
) -> None:
    live = tabs.live()[:TABS]
    tag = uuid.uuid4().hex[:8]
    cid = f"tabs-{tag}"
    everywhere(
        live,
        f"""
from pyrt import WebSocketClient
c = WebSocketClient("{server.ws_url}/ws?cid={cid}", share="chat-{tag}")
c.connect()
None
""",
        ns=tag,
    )
    for tab in live:
        tab.wait_for("c.state.name == 'OPEN' and c.sharing.tabs == 8", ns=tag, timeout=30)
    roles = sorted(everywhere(live, "c.sharing.role", ns=tag))
    assert roles == ["follower"] * 7 + ["leader"]
    assert gauge(server, "ws") == 1
    replies = everywhere(
        live,
        """
import asyncio
replies = await asyncio.gather(*(c.send_with_ack({"tab": TAB, "seq": n}) for n in range(20)))
[r["tab"] == TAB and r["seq"] == n for n, r in enumerate(replies)]
""",
        ns=tag,
    )
    assert all(all(ok) for ok in replies)  # every ack reached the tab that asked, with its reply
    messages = [(m["data"]["tab"], m["data"]["seq"]) for m in received(server, cid)]
    assert sorted(messages) == [(t.number, n) for t in live for n in range(20)]  # each once
    everywhere(live, "c.close()", ns=tag)
    wait_until(lambda: gauge(server, "ws") == 0, 10, "the shared WebSocket closed", page=live[0].page)


def test_eight_tabs_behind_a_websocket_block_share_one_http_connection(
    tabs: Tabs, server: ServerProcess
) -> None:
    """The tab holding the shared connection falls back to HTTP for every tab (the demo's block:
    the server refuses this client's WebSocket upgrades, as a network that blocks them would)."""
    live = tabs.live()[:TABS]
    tag = uuid.uuid4().hex[:8]
    cid = f"blocked-{tag}"
    httpx.post(f"{server.url}/demo/block", json={"cid": cid, "seconds": 300}, timeout=10).raise_for_status()
    try:
        everywhere(
            live,
            f"""
from pyrt import WebSocketClient
c = WebSocketClient("{server.ws_url}/ws?cid={cid}", share="blocked-{tag}")
c.connect()
None
""",
            ns=tag,
        )
        for tab in live:
            tab.wait_for("c.state.name == 'OPEN' and c.sharing.tabs == 8", ns=tag, timeout=30)
        assert everywhere(live, "c.transport", ns=tag) == ["http"] * TABS
        assert gauge(server, "http") == 1
        replies = everywhere(
            live,
            """
import asyncio
replies = await asyncio.gather(*(c.send_with_ack({"tab": TAB, "seq": n}) for n in range(20)))
[r["tab"] == TAB and r["seq"] == n for n, r in enumerate(replies)]
""",
            ns=tag,
        )
        assert all(all(ok) for ok in replies)
        messages = [(m["data"]["tab"], m["data"]["seq"]) for m in received(server, cid)]
        assert sorted(messages) == [(t.number, n) for t in live for n in range(20)]  # each once
        everywhere(live, "c.close()", ns=tag)
        wait_until(
            lambda: gauge(server, "http") == 0, 10, "the shared HTTP connection closed", page=live[0].page
        )
    finally:
        everywhere(live, "c.close()", ns=tag)  # a test that failed must not hold the connections
        httpx.post(f"{server.url}/demo/block", json={"cid": cid, "seconds": 0}, timeout=10)
        # what the tabs remembered for the origin must not send the next tests over HTTP
        live[0].run(f'import js\njs.localStorage.removeItem("pyrt:transport:{server.url}")\nNone', ns=tag)


def test_sse_tabs_hang_without_sharing_and_all_receive_with_it(tabs: Tabs, server: ServerProcess) -> None:
    live = tabs.live()[:TABS]
    tag = uuid.uuid4().hex[:8]
    channel = f"feed-{tag}"
    url = f"{server.url}/sse?channel={channel}"
    everywhere(
        live,
        f"""
from pyrt import FetchEventSource
alone = FetchEventSource("{url}", last_event_id="0")
alone.connect()
None
""",
        ns=tag,
    )
    first = live[0]
    wait_until(lambda: gauge(server, "sse") == 6, 20, "six unshared streams open", page=first.page)
    first.page.wait_for_timeout(1500)  # the others would need a seventh connection
    opened_alone = sum(everywhere(live, "alone.ready_state == 1", ns=tag))
    everywhere(live, "alone.close()", ns=tag)
    wait_until(lambda: gauge(server, "sse") == 0, 10, "the unshared streams closed", page=first.page)

    everywhere(
        live,
        f"""
from pyrt import EventSourceClient
fetched, native = [], []
fe = FetchEventSource("{url}", last_event_id="0", share="feed-{tag}")
fe.on("pub", lambda e: fetched.append(e.json()["seq"]))
es = EventSourceClient("{url}&lastEventId=0", share="feed-{tag}")
es.on("pub", lambda e: native.append(e.json()["seq"]))
fe.connect()
es.connect()
None
""",
        ns=tag,
    )
    for tab in live:
        tab.wait_for("fe.ready_state == 1 and es.ready_state == 1", ns=tag, timeout=30)
    assert gauge(server, "sse") == 2  # one stream per kind of client, for eight tabs
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for n in range(50):
            body = {"channel": channel, "data": {"seq": n}, "event": "pub"}
            http.post("/publish", json=body).raise_for_status()
    for tab in live:
        tab.wait_for("len(fetched) >= 50 and len(native) >= 50", ns=tag, timeout=30)
    got = everywhere(live, "[fetched, native, fe.sharing.tabs, es.sharing.tabs]", ns=tag)
    everywhere(live, "fe.close(); es.close()", ns=tag)
    emit("15-tabs-sse", tabs=len(live), opened_without_share=opened_alone, streams_with_share=2)
    assert opened_alone == 6  # the browser's limit: two tabs' streams hang without sharing
    for fetched, native, fe_tabs, es_tabs in got:
        assert fetched == native == list(range(50))
        assert fe_tabs == es_tabs == TABS


class Publisher(threading.Thread):
    """Publishes ``{"seq": n}`` into a channel about every 20 ms until stopped."""

    def __init__(self, base_url: str, channel: str) -> None:
        super().__init__(daemon=True, name="publisher")
        self.base_url, self.channel = base_url, channel
        self.sent = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as http:
            while not self.stopping.wait(0.02):
                body = {"channel": self.channel, "data": {"seq": self.sent}, "event": "pub"}
                http.post("/publish", json=body).raise_for_status()
                self.sent += 1

    def stop(self) -> int:
        self.stopping.set()
        self.join(10)
        return self.sent


STREAM = """
import asyncio
from pyrt import Backoff, EventSourceClient, FetchEventSource, Heartbeat, WebSocketClient
backoff = Backoff(initial=0.05, maximum=0.5)
pubs, events, native, acked, failed = [], [], [], set(), {}
ws = WebSocketClient("WSURL", share="NAME", heartbeat=Heartbeat(interval=1, timeout=1), backoff=backoff)
ws.subscribe("CHANNEL", lambda p: pubs.append(p.data["seq"]), since="0")
fe = FetchEventSource("SSEURL", last_event_id="0", share="NAME", backoff=backoff)
fe.on("pub", lambda e: events.append(e.json()["seq"]))
es = EventSourceClient("SSEURL&lastEventId=0", share="NAME", backoff=backoff)
es.on("pub", lambda e: native.append(e.json()["seq"]))
ws.connect()
fe.connect()
es.connect()
sending = [True]

def settle(future, n):
    if future.exception() is None:
        acked.add(n)
    else:
        failed[n] = repr(future.exception())

async def send_loop():
    n = 0
    while sending[0]:
        ws.send_with_ack({"tab": TAB, "seq": n}).add_done_callback(lambda f, n=n: settle(f, n))
        n += 1
        await asyncio.sleep(0.1)
    return n

sender = asyncio.ensure_future(send_loop())
None
"""


def hand_over(tabs: Tabs, server: ServerProcess, kill: Callable[[Tab], None], name: str) -> None:
    """Stream to every live tab, kill the leader with ``kill``, check the others lost nothing."""
    while len(tabs.live()) < TABS:
        tabs.open()
    live = tabs.live()[:TABS]
    tag = uuid.uuid4().hex[:8]
    channel, cid = f"hand-{tag}", f"hand-{tag}"
    code = (
        STREAM.replace("WSURL", f"{server.ws_url}/ws?cid={cid}")
        .replace("SSEURL", f"{server.url}/sse?channel={channel}")
        .replace("CHANNEL", channel)
        .replace("NAME", f"hand-{tag}")
    )
    everywhere(live, code, ns=tag)
    for tab in live:
        ready = "ws.state.name == 'OPEN' and fe.ready_state == es.ready_state == 1 and ws.sharing.tabs == 8"
        tab.wait_for(ready, ns=tag, timeout=30)
    leader = next(tab for tab in live if tab.run("ws.sharing.role", ns=tag) == "leader")
    others = [tab for tab in live if tab is not leader]
    sessions = {tab.number: tab.run("ws.session", ns=tag) for tab in others}
    publisher = Publisher(server.url, channel)
    publisher.start()
    others[0].page.wait_for_timeout(1500)
    killed_at = time.monotonic()
    kill(leader)
    back = {}
    for tab in others:
        moved = f"ws.state.name == 'OPEN' and ws.session != {sessions[tab.number]!r}"
        tab.wait_for(moved, ns=tag, timeout=30)
        back[tab.number] = time.monotonic() - killed_at
    others[0].page.wait_for_timeout(1500)
    published = publisher.stop()
    everywhere(others, "sending[0] = False", ns=tag)
    for tab in others:
        tab.wait_for(
            f"min(len(pubs), len(events), len(native)) >= {published} and sender.done() "
            "and len(acked) + len(failed) == sender.result()",
            ns=tag,
            timeout=30,
        )
    results = everywhere(
        others, "[pubs, events, sorted(acked), failed, sender.result(), ws.sharing.tabs, native]", ns=tag
    )
    roles = sorted(everywhere(others, "ws.sharing.role", ns=tag))
    everywhere(others, "ws.close(); fe.close(); es.close()", ns=tag)
    handled = [(m["data"]["tab"], m["data"]["seq"]) for m in received(server, cid)]
    checker = DeliveryChecker()
    for tab, (pubs, events, _acked, _failed, _sent, _tabs, native) in zip(others, results, strict=True):
        for stream, got in (("ws", pubs), ("fetch", events), ("eventsource", native)):
            for n in range(published):
                checker.send(f"{stream}-{tab.number}", n)
            for n in got:
                checker.deliver(f"{stream}-{tab.number}", n)
    report = checker.report()
    acks = sum(len(r[2]) for r in results)
    failed_acks = sum(len(r[3]) for r in results)
    sent_by_others = sum(r[4] for r in results)
    handled_by_others = [h for h in handled if h[0] != leader.number]
    emit(
        name,
        report,
        tabs=TABS,
        publications=published,
        handover_max_s=max(back.values()),
        handover_median_s=sorted(back.values())[len(back) // 2],
        acks=acks,
        failed_acks=failed_acks,
        messages_sent=sent_by_others,
        messages_handled=len(handled_by_others),
        duplicates_handled=len(handled) - len(set(handled)),
    )
    assert roles == ["follower"] * 6 + ["leader"]
    assert all(r[5] == 7 for r in results)  # the dead tab left the count
    assert report.exactly_once_in_order, report.missing
    assert report.unique_delivered == report.delivered == 3 * 7 * published
    assert failed_acks == 0
    assert acks == sent_by_others
    acked_by_others = {(t.number, n) for t, r in zip(others, results, strict=True) for n in r[2]}
    assert sorted(handled_by_others) == sorted(acked_by_others)
    assert len(handled) == len(set(handled))  # the server handled nothing twice


def test_the_leader_tab_crashes_mid_stream_and_the_others_lose_nothing(
    tabs: Tabs, server: ServerProcess
) -> None:
    hand_over(tabs, server, Tab.crash, "15-tabs-leader-crash")


def test_the_leader_tab_closes_mid_stream_and_the_others_lose_nothing(
    tabs: Tabs, server: ServerProcess
) -> None:
    hand_over(tabs, server, Tab.close, "15-tabs-leader-close")
