"""The share group's lock and channel in every engine: tabs of one profile, and a worker.

One tab holds the group's Web Lock until it resigns, then the other gets it; strings travel on the
``BroadcastChannel`` both ways (never back to their sender); each participant's own lock tells
the leader who is alive; disposing releases both locks and destroys every proxy. A PyScript
worker shares a WebSocket with a page tab. The tab holding a shared WebSocket goes away mid-stream
and the others lose nothing. Without Web Locks, ``share=`` falls back to a connection of its own
and says so once. Behind a WebSocket block the tabs share one HTTP binding connection.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from pyrt.pytest_plugin.engines import Engine
from pyrt.pytest_plugin.pyodide_page import PyodidePage
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.pytest_plugin.waiting import wait_until
from tests.browser.tabs import Tab, Tabs

SETUP = """
from pyrt.browser import proxies
from pyrt.browser.share_channel import BrowserShareChannel, sharing_supported
before = proxies.live_count()
got, granted, members = [], [], []
channel = BrowserShareChannel(GROUP)
channel.join(ME)
channel.listen(got.append)
channel.request_lead(lambda: granted.append(ME))
sharing_supported()
"""


@pytest.fixture(scope="module")
def tabs(pyrt_browser: Any, pyrt_server: ServerProcess) -> Iterator[Tabs]:
    with Tabs(pyrt_browser, pyrt_server.url) as opened:
        yield opened


@pytest.fixture(scope="module")
def pair(tabs: Tabs) -> tuple[Tab, Tab]:
    return tabs.open(), tabs.open()


def setup(tab: Tab, group: str, me: str) -> bool:
    return bool(tab.run(SETUP.replace("GROUP", repr(group)).replace("ME", repr(me)), ns=group))


def test_one_tab_leads_until_it_resigns_and_messages_travel_both_ways(pair: tuple[Tab, Tab]) -> None:
    first, second = pair
    group = "test-" + uuid.uuid4().hex[:8]
    assert setup(first, group, "one")
    assert setup(second, group, "two")
    first.wait_for("granted == ['one']", ns=group)
    second.run("channel.post('from two')", ns=group)
    first.run("channel.post('from one')", ns=group)
    first.wait_for("got == ['from two']", ns=group)
    second.wait_for("got == ['from one']", ns=group)
    first.run("channel.members(members.append)", ns=group)
    assert sorted(first.wait_for("members and sorted(members[0])", ns=group)) == ["one", "two"]
    assert second.run("granted", ns=group) == []
    first.run("channel.resign()", ns=group)
    second.wait_for("granted == ['two']", ns=group)
    second.run("channel.dispose()", ns=group)
    assert second.run("proxies.live_count() - before", ns=group) == 0
    first.run("members.clear(); channel.members(members.append)", ns=group)
    assert first.wait_for("members and sorted(members[0])", ns=group) == ["one"]
    first.run("channel.dispose()", ns=group)
    assert first.run("proxies.live_count() - before", ns=group) == 0


def test_a_worker_and_a_page_share_one_websocket(
    tabs: Tabs, pyrt_server: ServerProcess, pair: tuple[Tab, Tab]
) -> None:
    page, _ = pair
    worker = tabs.open_worker()
    url = f"{pyrt_server.ws_url}/ws?cid=share-{uuid.uuid4().hex[:8]}"
    client = f"""
from pyrt import WebSocketClient
c = WebSocketClient("{url}", share="worker-test")
c.connect()
await c.wait_open(20)
[c.sharing.role, c.session]
"""
    page_role, page_session = page.run(client, ns="worker-share")
    worker_role, worker_session = worker.run(client, ns="worker-share")
    assert (page_role, worker_role) == ("leader", "follower")
    assert page_session == worker_session  # one connection
    assert worker.run("await c.send_with_ack({'from': 'worker'})", ns="worker-share") == {"from": "worker"}
    page.run("c.close()", ns="worker-share")
    worker.wait_for("c.sharing.role == 'leader' and c.state.name == 'OPEN'", ns="worker-share", timeout=20)
    assert worker.run("await c.send_with_ack(2)", ns="worker-share") == 2
    worker.run("c.close()", ns="worker-share")


WITHOUT_LOCKS = """
import js
from pyodide.ffi import to_js
# An engine without Web Locks (Safari before 15.4, a page that is not a secure context): remove them.
gone = to_js({"value": None}, dict_converter=js.Object.fromEntries)
js.Object.defineProperty(js.Navigator.prototype, "locks", gone)
from pyrt import WebSocketClient
from pyrt.browser.share_channel import sharing_supported
errors = []
clients = [WebSocketClient(URL, share="no-locks", heartbeat=None) for _ in range(2)]
for client in clients:
    client.on_error(lambda e: errors.append(type(e).__name__ + ": " + str(e)))
    client.connect()
for client in clients:
    await client.wait_open(20)
replies = [await client.send_with_ack(n) for n, client in enumerate(clients)]
sessions = [client.session for client in clients]
roles = [client.sharing for client in clients]
for client in clients:
    client.close()
[sharing_supported(), errors, replies, len(set(sessions)), roles]
"""


def test_without_web_locks_share_falls_back_to_a_connection_of_its_own_and_says_so_once(
    pyrt_new_page: Callable[..., PyodidePage], pyrt_server: ServerProcess
) -> None:
    page = pyrt_new_page(pyrt_server.url)
    url = f"{pyrt_server.ws_url}/ws?cid=nolocks-{uuid.uuid4().hex[:8]}"
    supported, errors, replies, sessions, roles = page.run(WITHOUT_LOCKS.replace("URL", repr(url)))
    assert supported is False
    assert len(errors) == 2  # once per client, when it connects
    assert all(e.startswith("ShareUnavailable: share='no-locks': no Web Locks") for e in errors), errors
    assert replies == [0, 1]  # each works on its own connection
    assert sessions == 2
    assert roles == [None, None]


def test_tabs_behind_a_websocket_block_share_one_http_connection(
    pair: tuple[Tab, Tab], pyrt_server: ServerProcess
) -> None:
    """The tab holding the shared connection falls back to HTTP for every tab (the server refuses
    this client's WebSocket upgrades, as a network that blocks them would): one HTTP binding
    connection, every tab's acks, each message once; closing the tabs' clients closes it."""
    live = list(pair)
    tag = uuid.uuid4().hex[:8]
    cid = f"blocked-{tag}"

    def http_connections() -> int:
        return int(pyrt_server.metric("pyrt_connections", transport="http"))

    before = http_connections()
    block = {"cid": cid, "seconds": 300}
    httpx.post(f"{pyrt_server.url}/demo/block", json=block, timeout=10).raise_for_status()
    try:
        for tab in live:
            tab.run(
                f"""
from pyrt import WebSocketClient
c = WebSocketClient("{pyrt_server.ws_url}/ws?cid={cid}", share="blocked-{tag}")
c.connect()
None
""",
                ns=tag,
            )
        for tab in live:
            tab.wait_for(f"c.state.name == 'OPEN' and c.sharing.tabs == {len(live)}", ns=tag, timeout=30)
        assert [tab.run("c.transport", ns=tag) for tab in live] == ["http"] * len(live)
        assert http_connections() == before + 1
        for tab in live:
            replies = tab.run(
                f"""
import asyncio
replies = await asyncio.gather(*(c.send_with_ack({{"tab": {tab.number}, "seq": n}}) for n in range(20)))
[[r["tab"], r["seq"]] for r in replies]
""",
                ns=tag,
            )
            assert replies == [[tab.number, n] for n in range(20)]  # each in the tab that sent it
        answer = httpx.get(f"{pyrt_server.url}/demo/received", params={"cid": cid}, timeout=10)
        messages = [(m["data"]["tab"], m["data"]["seq"]) for m in answer.json()["messages"]]
        assert sorted(messages) == [(tab.number, n) for tab in live for n in range(20)]  # each once
        for tab in live:
            tab.run("c.close()", ns=tag)
        wait_until(lambda: http_connections() == before, 10, "the shared HTTP connection closed")
    finally:
        for tab in live:  # a test that failed must not hold the connection
            tab.run("if 'c' in globals(): c.close()", ns=tag)
        httpx.post(f"{pyrt_server.url}/demo/block", json={**block, "seconds": 0}, timeout=10)
        # what the tabs remembered for the origin must not send later tests over HTTP (in WebKit
        # every window shares this profile)
        forget = f'import js\njs.localStorage.removeItem("pyrt:transport:{pyrt_server.url}")\nNone'
        live[0].run(forget, ns=tag)


HOLDER = """
from pyrt import WebSocketClient
from pyrt.engine.heartbeat import Heartbeat
from pyrt.engine.backoff import Backoff
pubs, acked = [], []
ws = WebSocketClient(URL, share=GROUP, heartbeat=Heartbeat(interval=1, timeout=1),
                     backoff=Backoff(initial=0.05, maximum=0.2))
ws.subscribe(CHANNEL, lambda p: pubs.append(p.data["seq"]), since="0")
ws.connect()
await ws.wait_open(20)
ws.sharing.role
"""


def test_the_holder_tab_goes_away_mid_stream_and_the_others_lose_nothing(
    tabs: Tabs, pair: tuple[Tab, Tab], pyrt_server: ServerProcess, pyrt_engine: Engine
) -> None:
    """Three tabs share one WebSocket; the tab holding it goes away while publications stream:
    crashed in Chromium (nothing runs), closed elsewhere (``pagehide`` runs; no other engine here
    can kill a tab). Another tab takes over; both others get every publication once, in order."""
    group, channel = f"holder-{uuid.uuid4().hex[:8]}", f"holder-{uuid.uuid4().hex[:8]}"
    url = f"{pyrt_server.ws_url}/ws?cid={group}"
    opened = [*pair, tabs.open()]  # last in the module: the holder goes away
    setup = HOLDER.replace("URL", repr(url)).replace("GROUP", repr(group)).replace("CHANNEL", repr(channel))
    roles = [tab.run(setup, ns=group) for tab in opened]
    assert roles == ["leader", "follower", "follower"]
    holder, others = opened[0], opened[1:]
    session = holder.run("ws.session", ns=group)
    published = 0

    def publish(count: int) -> None:
        nonlocal published
        for _ in range(count):
            answer = httpx.post(
                f"{pyrt_server.url}/publish",
                json={"channel": channel, "event": "pub", "data": {"seq": published}},
                headers={"Origin": pyrt_server.url},
                timeout=10,
            )
            answer.raise_for_status()
            published += 1

    publish(20)
    for tab in others:
        tab.wait_for("len(pubs) >= 10", ns=group)
    if pyrt_engine.has("crash"):
        holder.crash()
    else:
        holder.close()
    publish(20)  # while the others notice, elect and reconnect
    for tab in others:
        tab.wait_for(f"ws.state.name == 'OPEN' and ws.session != {session!r}", ns=group, timeout=30)
    publish(20)
    results = []
    for tab in others:
        tab.wait_for(f"len(pubs) >= {published}", ns=group, timeout=30)
        results.append(tab.run("[pubs, ws.sharing.role, await ws.send_with_ack('still here')]", ns=group))
    for tab in others:
        tab.run("ws.close()", ns=group)
    assert sorted(r[1] for r in results) == ["follower", "leader"]
    for pubs, _, reply in results:
        assert pubs == list(range(published))  # every publication once, in order
        assert reply == "still here"
