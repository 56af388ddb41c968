"""The share group's lock and channel in real Chromium: two tabs of one profile, and a worker.

One tab holds the group's Web Lock until it resigns, then the other gets it; strings travel on the
``BroadcastChannel`` both ways (never back to their sender); each participant's own lock tells
the leader who is alive; disposing releases both locks and destroys every proxy. A PyScript
worker shares a WebSocket with a page tab.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from pyrt.pytest_plugin.server_process import ServerProcess
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
def tabs(pyrt_browser: Browser, pyrt_server: ServerProcess) -> Iterator[Tabs]:
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
