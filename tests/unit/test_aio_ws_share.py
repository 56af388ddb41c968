"""WebSocketClient(share=...) over the in-memory share bus: one connection for many "tabs", acks to
the tab that asked, every publication to every tab once, and hand-over when the leader goes."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest

from pyrt import Backoff, WebSocketClient
from pyrt.aio import share as share_module
from pyrt.engine.heartbeat import Heartbeat
from pyrt.engine.states import State
from pyrt.errors import EncodeError, MessageTooLarge, ShareUnavailable
from pyrt.testing import FakePyrtServer, FakeServices, FakeShareBus, FakeTransport
from pyrt.wire.limits import ServerLimits
from tests.unit.loop_support import run, until

FAST = Backoff(initial=0.01, maximum=0.05)


@dataclass
class Tab:
    client: WebSocketClient
    transport: FakeTransport
    messages: list[Any] = field(default_factory=list)
    publications: list[Any] = field(default_factory=list)


def tab(server: FakePyrtServer, bus: FakeShareBus, **kwargs: Any) -> Tab:
    loop = asyncio.get_running_loop()
    transport = kwargs.pop("transport", None) or FakeTransport(server, loop.call_soon)
    kwargs.setdefault("heartbeat", None)
    client = WebSocketClient("ws://test/ws", backoff=FAST, transport=transport, share=bus.channel(), **kwargs)
    made = Tab(client, transport)
    client.on_message(made.messages.append)
    return made


def live_connections(server: FakePyrtServer) -> int:
    return sum(1 for conn in server.connections if conn.open)


def leaders(tabs: list[Tab]) -> list[Tab]:
    return [t for t in tabs if t.client.sharing is not None and t.client.sharing.role == "leader"]


def leader_of(tabs: list[Tab]) -> Tab:
    found = leaders(tabs)
    assert len(found) == 1, [t.client.sharing for t in tabs]
    return found[0]


def crash(bus: FakeShareBus, dead: Tab) -> None:
    """The tab dies: its lock goes to the next in line, and its socket with it."""
    participant = dead.client._participant
    assert participant is not None
    bus.crash(participant.channel)
    if participant.hub is not None:
        participant.hub.client.close()


def test_eight_tabs_share_one_connection_and_each_ack_reaches_its_tab() -> None:
    async def scenario() -> None:
        server = FakePyrtServer(app=lambda data: {"echo": data})
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        tabs = [tab(server, bus) for _ in range(8)]
        for t in tabs:
            t.client.connect()
        for t in tabs:
            await t.client.wait_open(2)
        assert live_connections(server) == 1
        roles = sorted(t.client.sharing.role for t in tabs if t.client.sharing is not None)
        assert roles == ["follower"] * 7 + ["leader"]
        await until(lambda: all(t.client.sharing and t.client.sharing.tabs == 8 for t in tabs))
        replies = await asyncio.gather(*(t.client.send_with_ack({"tab": n}) for n, t in enumerate(tabs)))
        assert replies == [{"echo": {"tab": n}} for n in range(8)]
        assert sorted(d["tab"] for d in server.handled) == list(range(8))
        assert all(t.client.session == tabs[0].client.session for t in tabs)

    run(scenario)


def test_where_websockets_do_not_pass_the_tab_holding_the_connection_opens_it_over_http_for_all() -> None:
    async def scenario() -> None:
        server = FakePyrtServer(app=lambda data: {"echo": data})
        blocked = FakePyrtServer()
        blocked.accepting = False  # every WebSocket fails before it opens
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        loop = asyncio.get_running_loop()
        tabs = [
            tab(
                server,
                bus,
                transport=FakeTransport(blocked, loop.call_soon),
                http_transport=FakeTransport(server),
            )
            for _ in range(8)
        ]
        for t in tabs:
            t.client.connect()
        for t in tabs:
            await t.client.wait_open(2)
        assert live_connections(server) == 1
        participant = leader_of(tabs).client._participant
        assert participant is not None
        assert participant.hub is not None
        hub_client = participant.hub.client  # type: ignore[attr-defined]
        assert hub_client.transport == "http"
        assert hub_client.stats.fallbacks == 1
        await until(lambda: all(t.client.transport == "http" for t in tabs))  # what the tabs share
        assert all(t.client.transports == ("websocket", "http") for t in tabs)
        assert all(t.client._engine.transports.choice.order == ("websocket",) for t in tabs)  # a link
        replies = await asyncio.gather(*(t.client.send_with_ack({"tab": n}) for n, t in enumerate(tabs)))
        assert replies == [{"echo": {"tab": n}} for n in range(8)]

    run(scenario)


def test_every_tabs_open_handler_reads_the_transport_the_shared_connection_opened_over() -> None:
    """A tab's link opens after the group was told the real connection's transport, so a page
    that shows it when the connection opens ("Connected over HTTP") shows the right one in every
    tab, not the transport it asked for."""

    async def scenario() -> None:
        server = FakePyrtServer()
        blocked = FakePyrtServer()
        blocked.accepting = False
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        loop = asyncio.get_running_loop()
        tabs = [
            tab(
                server,
                bus,
                transport=FakeTransport(blocked, loop.call_soon),
                http_transport=FakeTransport(server),
            )
            for _ in range(3)
        ]
        seen: list[list[str]] = [[] for _ in tabs]
        for t, opened in zip(tabs, seen, strict=True):
            t.client.on_open(lambda client=t.client, opened=opened: opened.append(client.transport))
            t.client.connect()
        for t in tabs:
            await t.client.wait_open(2)
        assert seen == [["http"]] * 3

    run(scenario)


def test_every_subscribed_tab_gets_every_publication_once_and_messages_reach_everyone() -> None:
    async def scenario() -> None:
        server = FakePyrtServer()
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        tabs = [tab(server, bus) for _ in range(3)]
        for t in tabs[:2]:
            t.client.subscribe("news", lambda p, t=t: t.publications.append(p.data))
        for t in tabs:
            t.client.connect()
            await t.client.wait_open(2)
        await until(lambda: len([f for f in server.received_frames if '"subscribe"' in str(f)]) >= 1)
        for n in range(5):
            server.publish("news", n)
        await until(lambda: all(len(t.publications) == 5 for t in tabs[:2]))
        assert tabs[2].publications == []
        tabs[1].client.unsubscribe("news")
        tabs[2].client.send("to the room")  # the fake server echoes it to the connection
        await until(lambda: all(t.messages for t in tabs))
        assert all(t.messages == ["to the room"] for t in tabs)  # one connection: every tab hears it
        server.publish("news", 5)
        await until(lambda: len(tabs[0].publications) == 6)
        assert tabs[1].publications == [0, 1, 2, 3, 4]
        subscribes = [f for f in server.received_frames if '"subscribe"' in str(f)]
        assert len(subscribes) == 1  # one server subscription for both tabs

    run(scenario)


def test_when_the_leader_crashes_the_others_go_on_with_no_gap_and_no_duplicate() -> None:
    async def scenario() -> None:
        server = FakePyrtServer()
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        tabs = [tab(server, bus) for _ in range(4)]
        for t in tabs:
            t.client.subscribe("feed", lambda p, t=t: t.publications.append(p.data))
            t.client.connect()
        for t in tabs:
            await t.client.wait_open(2)
        old = leader_of(tabs)
        others = [t for t in tabs if t is not old]
        for n in range(10):
            server.publish("feed", n)
        pending = [t.client.send_with_ack({"from": i, "n": 0}) for i, t in enumerate(others)]
        crash(bus, old)
        for n in range(10, 20):
            server.publish("feed", n)  # nobody holds the connection for a moment
        more = [t.client.send_with_ack({"from": i, "n": 1}) for i, t in enumerate(others)]
        await until(lambda: len(leaders(others)) == 1 and live_connections(server) == 1, timeout=3)
        await asyncio.wait_for(asyncio.gather(*pending, *more), 5)
        for n in range(20, 30):
            server.publish("feed", n)
        await until(lambda: all(len(t.publications) >= 30 for t in others), timeout=5)
        for t in others:
            assert t.publications == list(range(30))  # no gap, no duplicate, in order
            assert t.client.sharing is not None
            assert t.client.sharing.tabs == 3
        handled = sorted((d["from"], d["n"]) for d in server.handled)
        assert handled == [(i, n) for i in range(3) for n in (0, 1)]

    run(scenario)


def test_a_leader_that_closes_hands_over_and_its_followers_carry_on() -> None:
    async def scenario() -> None:
        server = FakePyrtServer()
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        first, second = tab(server, bus), tab(server, bus)
        first.client.connect()
        await first.client.wait_open(2)
        second.client.connect()
        await second.client.wait_open(2)
        assert first.client.sharing is not None
        assert first.client.sharing.role == "leader"
        first.client.close()
        await until(lambda: second.client.sharing is not None and second.client.sharing.role == "leader")
        await second.client.wait_open(2)
        assert await second.client.send_with_ack("still here") == "still here"
        assert live_connections(server) == 1

    run(scenario)


def test_a_lost_shared_connection_reconnects_every_tab_and_restores_subscriptions() -> None:
    async def scenario() -> None:
        server = FakePyrtServer()
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        tabs = [tab(server, bus) for _ in range(2)]
        for t in tabs:
            t.client.subscribe("feed", lambda p, t=t: t.publications.append(p.data))
            t.client.connect()
            await t.client.wait_open(2)
        server.publish("feed", 0)
        await until(lambda: all(t.publications == [0] for t in tabs))
        leader = leader_of(tabs)
        leader.transport.drop()  # the real socket breaks
        server.publish("feed", 1)  # missed while down
        await until(lambda: all(t.client.state is State.OPEN for t in tabs) and live_connections(server) == 1)
        server.publish("feed", 2)
        await until(lambda: all(t.publications == [0, 1, 2] for t in tabs))

    run(scenario)


def test_followers_ping_the_leader_not_the_server() -> None:
    async def scenario() -> None:
        server = FakePyrtServer()
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        tabs = [tab(server, bus, heartbeat=Heartbeat(interval=0.02, timeout=0.5)) for _ in range(2)]
        for t in tabs:
            t.client.connect()
            await t.client.wait_open(2)
        await until(lambda: all(t.client.stats.rtt is not None for t in tabs))
        pings = [f for f in server.received_frames if '"ping"' in str(f)]
        assert len(pings) < 20  # the hub's own heartbeat only, not every tab's
        assert all(t.client.state is State.OPEN for t in tabs)

    run(scenario)


def test_a_vanished_follower_is_dropped_from_the_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(share_module, "PRUNE_INTERVAL", 0.02)

    async def scenario() -> None:
        server = FakePyrtServer()
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        tabs = [tab(server, bus) for _ in range(3)]
        for t in tabs:
            t.client.connect()
            await t.client.wait_open(2)
        leader = leader_of(tabs)
        await until(lambda: leader.client.sharing is not None and leader.client.sharing.tabs == 3)
        crash(bus, next(t for t in tabs if t is not leader))
        await until(lambda: leader.client.sharing is not None and leader.client.sharing.tabs == 2)

    run(scenario)


def test_a_page_going_away_hands_the_connection_to_another_tab() -> None:
    async def scenario() -> None:
        server = FakePyrtServer()
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        tabs = [tab(server, bus) for _ in range(2)]
        for t in tabs:
            t.client.connect()
            await t.client.wait_open(2)
        leader = leader_of(tabs)
        other = next(t for t in tabs if t is not leader)
        leader.transport.services.page_hidden()  # pagehide in the leader's tab
        await until(lambda: other.client.sharing is not None and other.client.sharing.role == "leader")
        await until(lambda: other.client.state is State.OPEN)
        assert leader.client.state is State.PAUSED  # its own client pauses, as without sharing
        assert await other.client.send_with_ack(1) == 1

    run(scenario)


def test_raw_protocol_frames_are_shared_as_they_are() -> None:
    async def scenario() -> None:
        server = FakePyrtServer()
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        tabs = [tab(server, bus, protocol="raw") for _ in range(2)]
        for t in tabs:
            t.client.connect()
            await t.client.wait_open(2)
        leader = leader_of(tabs)
        socket = leader.transport.socket
        assert socket is not None
        assert socket.conn is not None
        frame = '{"type":"message","data":"broadcast"}'
        leader.transport.deliver(frame)
        await until(lambda: all(frame in t.messages for t in tabs))
        # Raw mode parses nothing: the server's welcome, then the frame, reach both tabs as they are.
        assert [len(t.messages) for t in tabs] == [2, 2]

    run(scenario)


def test_sharing_needs_a_browser_and_does_not_mix_with_persist() -> None:
    async def scenario() -> None:
        client = WebSocketClient(
            "ws://test/ws", heartbeat=None, share="app", transport=FakeTransport(FakePyrtServer())
        )
        errors: list[Exception] = []
        client.on_error(errors.append)
        await client.connect().wait_open(2)
        assert [type(e) for e in errors] == [ShareUnavailable]
        assert client.sharing is None
        assert await client.send_with_ack("alone") == "alone"
        with pytest.raises(ValueError, match="persist= cannot be combined with share="):
            WebSocketClient("ws://test/ws", share="app", persist="chat")
        with pytest.raises(ValueError, match="non-empty"):
            WebSocketClient("ws://test/ws", share="")

    run(scenario)


def test_a_follower_is_open_with_its_session_when_messages_arrive_one_at_a_time() -> None:
    """Each message on the group's channel arrives in a later turn of the loop than the one
    before, as between a page and a worker on a busy machine: a follower is OPEN only with its
    welcome (the link opens with it), so its session and limits are known at once."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        order = itertools.count()
        bus = FakeShareBus(lambda callback: loop.call_later(next(order) * 0.002, callback))
        server = FakePyrtServer()
        first, second = tab(server, bus), tab(server, bus)
        first.client.connect()
        await first.client.wait_open(5)
        second.client.connect()
        await second.client.wait_open(5)
        assert second.client.sharing is not None
        assert second.client.sharing.role == "follower"
        assert second.client.session is not None
        assert second.client.session == first.client.session

    run(scenario)


def test_a_follower_the_check_misses_once_keeps_its_link(monkeypatch: pytest.MonkeyPatch) -> None:
    """The leader's check of who is alive can miss a participant whose own lock is requested but
    not granted yet: only one missing from two checks in a row is dropped."""
    monkeypatch.setattr(share_module, "PRUNE_INTERVAL", 0.02)

    async def scenario() -> None:
        server = FakePyrtServer()
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        tabs = [tab(server, bus) for _ in range(2)]
        for t in tabs:
            t.client.connect()
            await t.client.wait_open(2)
        leader, follower = leader_of(tabs), next(t for t in tabs if t.client.sharing.role == "follower")
        participant = leader.client._participant
        assert participant is not None
        channel = participant.channel
        members = channel.members
        missed: list[bool] = []

        def once_without_the_follower(done: Any) -> None:
            missed.append(len(missed) == 1)  # the second check misses it
            if missed[-1]:
                done({participant.id})
            else:
                members(done)

        reconnects = follower.client.stats.reconnects
        checks: list[int] = []
        real = once_without_the_follower

        def counted(done: Any) -> None:
            checks.append(1)
            real(done)

        monkeypatch.setattr(channel, "members", counted)
        await until(lambda: len(checks) >= 5)  # the miss, then four more checks
        assert follower.client.stats.reconnects == reconnects
        assert follower.client.state is State.OPEN
        assert leader.client.sharing is not None
        assert leader.client.sharing.tabs == 2

    run(scenario)


def test_tabs_are_each_a_presence_member_and_a_closed_tab_leaves() -> None:
    """Every tab joins the channel's presence as its own member through the one connection and
    follows it; a tab that closes leaves at once, while the connection stays."""

    async def scenario() -> None:
        server = FakePyrtServer()
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        tabs = [tab(server, bus) for _ in range(3)]
        seen: list[dict[str, str]] = [{} for _ in tabs]
        for n, t in enumerate(tabs):
            t.client.connect()
            await t.client.wait_open(2)
            t.client.subscribe(
                "room",
                t.publications.append,
                on_join=lambda m, n=n: seen[n].__setitem__(m.client, "in"),
                on_leave=lambda m, n=n: seen[n].__setitem__(m.client, "out"),
            )
        ids = [await t.client.join("room", {"tab": n}) for n, t in enumerate(tabs)]
        assert len(set(ids)) == 3
        await until(lambda: all(s == {i: "in" for i in ids} for s in seen))
        assert [len(t.client.members("room")) for t in tabs] == [3, 3, 3]
        assert live_connections(server) == 1
        leader = leader_of(tabs)
        gone = next(t for t in tabs if t is not leader)
        gone.client.close()
        await until(
            lambda: all(
                s[ids[tabs.index(gone)]] == "out" for t, s in zip(tabs, seen, strict=True) if t is not gone
            )
        )
        assert live_connections(server) == 1

    run(scenario)


def test_the_shared_connection_refreshes_its_token_in_place() -> None:
    """A token callable opens the shared connection with the leader's token and refreshes it
    before it expires: the connection stays up, and the followers never see it go."""

    async def scenario() -> None:
        issued: list[str] = []

        def token() -> str:
            issued.append(f"t{len(issued) + 1}")
            return issued[-1]

        server = FakePyrtServer(token_ttl=lambda t: 0.4)
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        tabs = [tab(server, bus, token=token) for _ in range(2)]
        for t in tabs:
            t.client.connect()
            await t.client.wait_open(2)
        leader = leader_of(tabs)
        participant = leader.client._participant
        assert participant is not None
        assert participant.hub is not None
        hub_client = participant.hub.client  # type: ignore[attr-defined]
        await until(lambda: hub_client.stats.token_refreshes >= 2)  # 3/4 of 0.4 s, twice
        assert live_connections(server) == 1
        assert len(server.connections) == 1  # never reconnected
        assert all(t.client.stats.reconnects == 0 for t in tabs)
        assert await tabs[1].client.send_with_ack("still") == "still"

    run(scenario)


@pytest.mark.parametrize(
    ("code", "reason", "told"),
    [
        (1006, "", "closed with code 1006"),  # what an unshared client says
        (
            1001,
            "server shutting down; reconnect_window=0.01",
            "closed with code 1006 (the server closed the connection with code 1001)",
        ),
    ],
)
def test_a_tab_that_shares_with_no_one_is_told_what_happened_to_the_connection(
    code: int, reason: str, told: str
) -> None:
    async def scenario() -> None:
        server = FakePyrtServer()
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        alone = tab(server, bus)
        reasons: list[str] = []
        alone.client.on_reconnecting(lambda attempt, delay, why: reasons.append(why))
        alone.client.connect()
        await alone.client.wait_open(2)
        alone.transport.drop(code, reason)  # the real socket, held by this tab's hub
        await until(lambda: reasons)
        assert reasons[0] == told
        assert "shared" not in reasons[0]
        await alone.client.wait_open(2)  # and it comes back
        alone.client.close()

    run(scenario)


def test_a_shared_publish_crosses_one_engine_and_the_connection_stays_under_the_servers_limits() -> None:
    """Four tabs send 60 acked messages each at once through one connection to a server that
    takes 100 frames a second in bursts of 20: nothing is refused, every message is handled
    once and acked in the tab that sent it, in order. Each frame is encoded, queued and paced by
    its own tab's engine; the hub's engine only spends a token of the connection's pacer for it
    (it queues none, and awaits no ack of theirs)."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        limits = ServerLimits(rate=100.0, burst=20, window=40)
        server = FakePyrtServer(app=lambda data: data, limits=limits, clock=loop.time)
        bus = FakeShareBus(loop.call_soon)
        tabs = [tab(server, bus) for _ in range(4)]
        for t in tabs:
            t.client.connect()
        for t in tabs:
            await t.client.wait_open(2)
        replies = await asyncio.gather(
            *(t.client.send_with_ack({"tab": n, "seq": i}) for n, t in enumerate(tabs) for i in range(60)),
        )
        assert replies == [{"tab": n, "seq": i} for n in range(4) for i in range(60)]
        assert server.refusals == []
        assert live_connections(server) == 1
        for n in range(4):
            assert [d["seq"] for d in server.handled if d["tab"] == n] == list(range(60))  # once, in order
        participant = leader_of(tabs).client._participant
        assert participant is not None
        hub_client = participant.hub.client  # type: ignore[union-attr]
        assert hub_client.stats.queued == 0
        assert hub_client.stats.pending_acks == 0
        assert hub_client.stats.sent >= 240  # every tab's frame, forwarded through its pacer

    run(scenario, timeout=20)


def test_a_tab_knows_the_servers_frame_size_limit_and_never_gets_the_connection_closed() -> None:
    async def scenario() -> None:
        server = FakePyrtServer(limits=ServerLimits(max_bytes=1000))
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        tabs = [tab(server, bus) for _ in range(2)]
        for t in tabs:
            t.client.connect()
            await t.client.wait_open(2)
        follower = next(t for t in tabs if t is not leader_of(tabs))
        with pytest.raises(MessageTooLarge):
            await follower.client.send_with_ack("x" * 2000)
        assert await follower.client.send_with_ack("small") == "small"
        assert len(server.connections) == 1  # the shared connection never closed

    run(scenario)


def test_share_by_name_uses_the_services_share_channel() -> None:
    async def scenario() -> None:
        server = FakePyrtServer()
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        clients = [
            WebSocketClient(
                "ws://test/ws",
                share="app",
                heartbeat=None,
                transport=FakeTransport(server),
                services=FakeServices(bus=bus),
            )
            for _ in range(2)
        ]
        for client in clients:
            client.connect()
            await client.wait_open(2)
        assert sorted(c.sharing.role for c in clients if c.sharing is not None) == ["follower", "leader"]
        assert {c.sharing.name for c in clients if c.sharing is not None} == {"app"}
        assert live_connections(server) == 1
        for client in clients:
            client.close()

    run(scenario)


def test_a_follower_publish_and_its_ack_cross_json_four_times(monkeypatch: pytest.MonkeyPatch) -> None:
    """The follower's engine encodes the publish; the leader's relay reads it (to route its ack)
    and reads the ack; the follower's engine reads the ack. Nothing on the group's channel is
    JSON-wrapped, and the hub's engine reads none of them."""
    reads: list[str] = []
    decode = json.decoder.JSONDecoder.decode

    def counted(self: json.JSONDecoder, text: str, *args: Any, **kwargs: Any) -> Any:
        callers = []
        frame = sys._getframe(1)
        while frame is not None:
            callers.append(frame.f_code.co_filename.replace("\\", "/"))
            frame = frame.f_back
        server = any("/pyrt/session/" in c or "/pyrt/testing/fake_server" in c for c in callers)
        if not server:  # a client's read: named by the first caller outside the codec
            reads.append(next(c.split("/pyrt/")[1] for c in callers if "/pyrt/" in c and "/wire/" not in c))
        return decode(self, text, *args, **kwargs)

    async def scenario() -> None:
        server = FakePyrtServer()
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        tabs = [tab(server, bus) for _ in range(2)]
        for t in tabs:
            t.client.connect()
            await t.client.wait_open(2)
        follower = next(t for t in tabs if t is not leader_of(tabs))
        await follower.client.publish("news", 0)
        monkeypatch.setattr(json.decoder.JSONDecoder, "decode", counted)
        await follower.client.publish("news", 1)
        monkeypatch.undo()
        assert sorted(reads) == ["engine/connection.py", "share/ws_relay.py", "share/ws_relay.py"]
        publish = next(text for _, text in bus.posted if '"type":"publish"' in text and '"data":1' in text)
        assert not publish.startswith("{")  # the frame as it is, after a few header lines:
        assert '\\"' not in publish  # not escaped into a JSON string

    run(scenario)


def test_a_shared_connection_speaks_the_json_binding_and_tabs_are_told_bytes_need_the_binary_one() -> None:
    async def scenario() -> None:
        server = FakePyrtServer(binary=True)  # a server that would take the binary binding
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        tabs = [tab(server, bus) for _ in range(2)]
        for t in tabs:
            t.client.connect()
        for t in tabs:
            await t.client.wait_open(2)
        assert [conn.binary for conn in server.connections] == [False]  # the relay reads JSON frames
        seen: list[Any] = []
        tabs[1].client.subscribe("c", seen.append)
        await tabs[0].client.publish("c", {"n": 1})
        await until(lambda: seen)
        with pytest.raises(EncodeError, match="binary binding"):
            tabs[0].client.publish("c", b"bytes")

    run(scenario)
