"""The recovery corpus: subscription recovery and token refresh cases that broke other mature
real-time SDKs, kept as one named set so a refactoring of the engine cannot quietly bring them back.

Each test's docstring starts with ``Guards:``, the bug it guards against. They were written from
the descriptions of those bugs, not from anyone's code, and run on pyrt's shipped fakes: the
engine through :class:`~pyrt.testing.EngineHarness` with a :class:`~pyrt.testing.FakePyrtServer`
on a fake clock, and handler re-entrancy through the asyncio :class:`~pyrt.WebSocketClient` over
:class:`~pyrt.testing.FakeTransport` (the only place where a handler runs in the middle of the
engine's actions).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pyrt.aio.websocket import WebSocketClient
from pyrt.engine.backoff import Backoff
from pyrt.engine.states import State
from pyrt.testing import EngineHarness, FakePyrtServer, FakeTransport
from pyrt.wire.frames import Publication
from tests.unit.loop_support import run, until

FAST = Backoff(initial=0.01, maximum=0.02)
HELLO = '{"type":"welcome","session":"s1"}'


def online(server: FakePyrtServer, **kwargs: Any) -> EngineHarness:
    kwargs.setdefault("heartbeat", None)
    h = EngineHarness(server=server, **kwargs)
    h.connect()
    assert h.state is State.OPEN
    return h


def make(server: FakePyrtServer, **kwargs: Any) -> tuple[WebSocketClient, FakeTransport]:
    transport = FakeTransport(server, asyncio.get_running_loop().call_soon)
    kwargs.setdefault("heartbeat", None)
    kwargs.setdefault("backoff", FAST)
    return WebSocketClient("ws://test/ws", transport=transport, **kwargs), transport


async def settled(client: WebSocketClient) -> None:
    """Wait until everything the server sent before now has been handled (the fake server
    answers in order, so the ack of a message sent now comes after all of it)."""
    await client.send_with_ack("sync")


def offsets(publications: list[Publication]) -> list[str | None]:
    return [p.offset for p in publications]


def sent_of(transport: FakeTransport, kind: str) -> list[dict[str, Any]]:
    frames = (json.loads(f) for sock in transport.sockets for f in sock.sent if isinstance(f, str))
    return [f for f in frames if f.get("type") == kind]


def publication(offset: str, channel: str = "feed") -> str:
    return json.dumps({"type": "publication", "channel": channel, "offset": offset, "data": offset})


def subscribed(offset: str, recovered: bool = True, channel: str = "feed") -> str:
    return json.dumps({"type": "subscribed", "channel": channel, "offset": offset, "recovered": recovered})


# ------------------------------------------------------- re-subscribing from a publication handler


def test_resubscribing_from_a_publication_handler_does_not_recover_that_publication_again() -> None:
    """Guards: unsubscribe + subscribe from inside a publication handler recovered the very
    publication being handled again, because the offset moved only after the handler ran."""

    async def scenario() -> None:
        server = FakePyrtServer()  # batches: the replay arrives as one message, handled in one go
        for n in range(3):
            server.publish("feed", n)
        client, _ = make(server)
        seen: list[Publication] = []

        def handler(pub: Publication) -> None:
            seen.append(pub)
            if len(seen) == 1:  # resume right after the publication in hand
                client.unsubscribe("feed")
                client.subscribe("feed", handler, since=pub.offset)

        await client.connect().wait_open()
        client.subscribe("feed", handler, since="0")
        await until(lambda: len(seen) >= 3)
        server.publish("feed", 3)
        await until(lambda: len(seen) >= 4)
        await settled(client)
        assert offsets(seen) == ["1-1", "1-2", "1-3", "1-4"]

    run(scenario)


def test_a_reconnect_from_a_publication_handler_resumes_after_that_publication() -> None:
    """Guards: a connection lost while a publication's handler ran (here: by the handler itself)
    recovered that publication again on the next connection."""

    async def scenario() -> None:
        server = FakePyrtServer()
        client, transport = make(server)
        seen: list[Publication] = []

        def handler(pub: Publication) -> None:
            seen.append(pub)
            if len(seen) == 1:
                transport.drop(1012, "restarting")

        await client.connect().wait_open()
        client.subscribe("feed", handler)
        await settled(client)
        server.publish("feed", "a")
        await until(lambda: len(transport.sockets) == 2 and client.state is State.OPEN)
        server.publish("feed", "b")
        await until(lambda: len(seen) >= 2)
        await settled(client)
        assert offsets(seen) == ["1-1", "1-2"]
        assert sent_of(transport, "subscribe")[-1]["since"] == "1-1"

    run(scenario)


def test_unsubscribing_from_a_publication_handler_stops_the_publications_that_arrived_with_it() -> None:
    """Guards: after unsubscribe() inside a handler, the rest of the batch that arrived with the
    publication in hand was still delivered to the subscription that had ended."""

    async def scenario() -> None:
        server = FakePyrtServer()
        for n in range(3):
            server.publish("feed", n)
        client, _ = make(server)
        seen: list[Publication] = []

        def handler(pub: Publication) -> None:
            seen.append(pub)
            client.unsubscribe("feed")

        await client.connect().wait_open()
        client.subscribe("feed", handler, since="0")
        await until(lambda: seen)
        await settled(client)
        assert offsets(seen) == ["1-1"]

    run(scenario)


# ------------------------------------------------------- the recovery of a session that ended


def test_recovered_publications_of_a_session_that_ended_are_not_delivered_again() -> None:
    """Guards: publications recovered on a connection that ended right after were recovered (and
    delivered) a second time on the next connection."""
    server = FakePyrtServer(overlap=1)  # an at-least-once server: each replay starts one early
    h = online(server)
    received = h.subscribe("feed")
    server.publish("feed", "live")
    server.accepting = False
    h.drop()
    for n in range(3):
        server.publish("feed", n)
    server.accepting = True
    h.advance(5.0)  # the second connection recovers 1-2 .. 1-4 ...
    assert offsets(received) == ["1-1", "1-2", "1-3", "1-4"]
    h.drop(1012, "restarting")  # ... and ends at once
    h.advance(5.0)
    assert len(h.sockets) == 3
    assert h.state is State.OPEN
    server.publish("feed", "after")
    h.pump()
    assert offsets(received) == ["1-1", "1-2", "1-3", "1-4", "1-5"]


def test_a_session_that_ends_while_its_recovered_publications_are_delivered_does_not_repeat_them() -> None:
    """Guards: recovered publications still being handed to the application when their
    connection ended were recovered again, and delivered twice."""

    async def scenario() -> None:
        server = FakePyrtServer()
        client, transport = make(server)
        seen: list[Publication] = []

        def handler(pub: Publication) -> None:
            seen.append(pub)
            if pub.offset == "1-1":  # the first of the recovered batch: its session ends now
                transport.drop(1012, "restarting")

        await client.connect().wait_open()
        client.subscribe("feed", handler)
        await settled(client)  # subscribed at "0"
        server.accepting = False
        transport.drop()
        for n in range(3):
            server.publish("feed", n)
        server.accepting = True
        await until(lambda: len(transport.sockets) >= 3 and client.state is State.OPEN)
        await settled(client)
        assert offsets(seen) == ["1-1", "1-2", "1-3"]
        assert [f["since"] for f in sent_of(transport, "subscribe")] == [None, "0", "1-3"]

    run(scenario)


def test_a_page_that_ends_after_a_recovery_does_not_make_the_next_page_recover_it_again() -> None:
    """Guards: a page that went away right after recovering publications saved the offset from
    before the recovery, and the next page delivered them again."""
    server = FakePyrtServer()
    first = online(server, persist=True)
    received = first.subscribe("feed")
    server.accepting = False
    first.drop()
    for n in range(3):
        server.publish("feed", n)
    server.accepting = True
    first.advance(5.0)
    assert offsets(received) == ["1-1", "1-2", "1-3"]
    first.engine.page_hidden(first.now)
    first.pump()
    second = EngineHarness(server=server, persist=True, store=first.store, heartbeat=None)
    second.restore()
    again = second.subscribe("feed")
    second.connect()
    server.publish("feed", "next")
    second.pump()
    assert offsets(again) == ["1-4"]


# ------------------------------------------------------------------------- token refresh chains


def token_server(ttl: float = 40.0) -> FakePyrtServer:
    return FakePyrtServer(token_ttl=lambda token: ttl)


def refreshes(h: EngineHarness) -> list[str]:
    frames = (json.loads(f) for f in h.sent if isinstance(f, str))
    return [f["token"] for f in frames if f.get("type") == "refresh"]


def test_a_token_refresh_answered_after_a_reconnect_does_not_start_a_second_chain() -> None:
    """Guards: a token refresh whose callable answered after a reconnect was sent anyway and
    left a second refresh schedule running beside the new connection's."""
    server = token_server(ttl=40.0)
    h = online(server, token=lambda: "handshake", defer_refresh=True)
    h.advance(30.0)  # 3/4 of the ttl: the engine asks for a token ...
    assert h.token_requests == 1
    h.drop()  # ... and the connection goes before the callable answers
    h.advance(0.5)
    assert h.state is State.OPEN
    h.token_fetched("late")  # meant for the connection that is gone
    assert refreshes(h) == []
    h.advance(29.0)
    assert h.token_requests == 1  # the new connection's own schedule: 30 s after its welcome
    h.advance(1.0)
    assert h.token_requests == 2
    h.token_fetched("fresh")
    assert refreshes(h) == ["fresh"]
    for _ in range(4):
        h.advance(30.0)
        h.token_fetched("next")
    assert h.token_requests == 6  # one chain: one request per 30 s, never two
    assert len(refreshes(h)) == 5


def test_a_late_token_answer_after_the_next_request_started_sends_one_refresh() -> None:
    """Guards: the late answer of a gone connection's token request, arriving while the new
    connection's request ran, sent a refresh, and the current answer a second one."""
    server = token_server(ttl=40.0)
    h = online(server, token=lambda: "handshake", defer_refresh=True)
    h.advance(30.0)
    assert h.token_requests == 1
    h.drop()
    h.advance(0.5)
    h.advance(30.0)  # the new connection asks for its own token
    assert h.token_requests == 2
    h.engine.token_fetched("late", h.now)  # the first request's answer, at last ...
    h.engine.token_fetched("current", h.now)  # ... and the current one, before any reply
    h.pump()
    assert len(refreshes(h)) == 1
    assert server.refreshed == refreshes(h)
    h.advance(30.0)
    assert h.token_requests == 3
    assert h.errors == []


def test_a_token_refresh_answered_after_a_reconnect_in_the_client_leaves_one_refresh_per_period() -> None:
    """Guards: the same, through the asyncio client and an async token callable (a task that
    outlives its connection)."""

    async def scenario() -> None:
        release = asyncio.Event()
        calls: list[str] = []

        async def token() -> str:
            calls.append(f"t{len(calls) + 1}")
            name = calls[-1]
            if len(calls) == 2:  # the first refresh: held until after the reconnect
                await release.wait()
            return name

        server = token_server(ttl=0.4)
        client, transport = make(server, token=token)
        await client.connect().wait_open()
        await until(lambda: len(calls) == 2)  # the refresh started (at 0.3 s) and hangs
        transport.drop()
        await until(lambda: len(transport.sockets) == 2 and client.state is State.OPEN)
        release.set()  # the stale refresh answers on the new connection
        await until(lambda: client.stats.token_refreshes >= 2)
        await settled(client)
        refreshed = [f["token"] for f in sent_of(transport, "refresh")]
        assert "t2" not in refreshed  # the stale token was never sent
        assert len(refreshed) == len(set(refreshed))
        assert client.stats.token_refreshes == len(refreshed)
        client.close()

    run(scenario)


# ----------------------------------------------------------- subscribing while the token loads


def test_subscribing_while_the_connection_waits_for_its_token_subscribes_once_when_open() -> None:
    """Guards: subscribe() during connect, while the token callable was still running, was lost
    (or sent twice) once the connection opened."""

    async def scenario() -> None:
        release = asyncio.Event()

        async def token() -> str:
            await release.wait()
            return "t1"

        server = FakePyrtServer()
        client, transport = make(server, token=token)
        seen: list[Publication] = []
        client.connect()
        client.subscribe("feed", seen.append)
        client.subscribe("other", seen.append)
        client.unsubscribe("other")
        assert client.state is State.CONNECTING
        assert transport.sockets == []  # still fetching the token
        release.set()
        await client.wait_open()
        await until(lambda: sent_of(transport, "subscribe"))
        server.publish("feed", "hello")
        await until(lambda: seen)
        await settled(client)
        assert [f["channel"] for f in sent_of(transport, "subscribe")] == ["feed"]
        assert sent_of(transport, "unsubscribe") == []
        assert offsets(seen) == ["1-1"]

    run(scenario)


def test_a_subscription_made_while_a_failing_token_loads_is_made_once_on_the_next_attempt() -> None:
    """Guards: a subscription made during connect was dropped when that attempt's token callable
    failed and the client connected on a later attempt."""

    async def scenario() -> None:
        release = asyncio.Event()
        attempts: list[int] = []

        async def token() -> str:
            attempts.append(1)
            if len(attempts) == 1:
                await release.wait()
                raise ConnectionError("auth service down")
            return "t2"

        server = FakePyrtServer()
        client, transport = make(server, token=token)
        errors: list[Exception] = []
        client.on_error(errors.append)
        seen: list[Publication] = []
        client.connect()
        client.subscribe("feed", seen.append)
        release.set()
        await client.wait_open()
        await until(lambda: sent_of(transport, "subscribe"))
        server.publish("feed", "hello")
        await until(lambda: seen)
        assert len(transport.sockets) == 1
        assert len(sent_of(transport, "subscribe")) == 1
        assert any("auth service down" in str(e) for e in errors)

    run(scenario)


# ------------------------------------------------------------ the recovery sync point


def played(**kwargs: Any) -> EngineHarness:
    """Open and welcomed; the test plays the server."""
    kwargs.setdefault("heartbeat", None)
    h = EngineHarness(**kwargs)
    h.connect()
    h.open()
    h.receive(HELLO)
    return h


def test_a_live_duplicate_of_the_last_replayed_publication_is_dropped() -> None:
    """Guards: at the point where the replay hands over to live publications, a publication
    sent both as the last of the replay and live was delivered twice."""
    h = played()
    received = h.subscribe("feed", since="1-1")
    h.receive(subscribed("1-3"))
    h.receive(publication("1-2"))
    h.receive(publication("1-3"))  # the end of the replay ...
    h.receive(publication("1-3"))  # ... and the same publication, live
    h.receive(publication("1-2"))  # a later duplicate of an earlier one
    h.receive(publication("1-4"))
    assert offsets(received) == ["1-2", "1-3", "1-4"]
    assert h.engine.stats_snapshot().duplicates == 2


def test_a_late_publication_of_the_previous_subscription_does_not_swallow_the_replay() -> None:
    """Guards: a live publication of the previous subscription, arriving between a
    re-subscription and its answer, moved the offset past the replay that followed: the replay
    was then dropped as duplicates, and the publications it held were lost."""
    h = played()
    received = h.subscribe("feed")
    h.receive(subscribed("1-1"))
    h.receive(publication("1-2"))
    h.receive(publication("1-3"))
    h.unsubscribe("feed")
    again = h.subscribe("feed", since="1-1")  # a replay from 1-1, please
    assert again is received  # the harness keeps one list per channel
    before = len(received)
    h.receive(publication("1-4"))  # sent live before the server read the unsubscribe
    h.receive('{"type":"unsubscribed","channel":"feed"}')
    h.receive(subscribed("1-4"))
    for offset in ("1-2", "1-3", "1-4", "1-5"):
        h.receive(publication(offset))
    assert offsets(received[before:]) == ["1-2", "1-3", "1-4", "1-5"]


def test_after_a_recovery_that_failed_the_replay_is_delivered_once_and_flagged_once() -> None:
    """Guards: after ``recovered: false`` the position was reset and a late duplicate of the
    replay's last publication was delivered again; or the gap flag was lost or repeated."""
    h = played()
    received = h.subscribe("feed", since="1-2")
    h.receive(subscribed("1-9", recovered=False))
    for offset in ("1-7", "1-8", "1-9", "1-9", "1-10"):
        h.receive(publication(offset))
    assert offsets(received) == ["1-7", "1-8", "1-9", "1-10"]
    assert [p.recovered for p in received] == [False, True, True, True]


# ----------------------------------------------------- the first subscribed reply sets the offset


def test_the_first_subscribed_reply_sets_the_offset_before_any_publication() -> None:
    """Guards: a subscription that had delivered nothing yet resubscribed live only after its
    first reconnect (no offset), missing what was published meanwhile, and ``recovered`` said
    nothing about it."""
    server = FakePyrtServer()
    for n in range(3):
        server.publish("feed", n)
    h = online(server, persist=True)
    received = h.subscribe("feed")  # live: nothing delivered yet
    assert received == []
    assert h.confirmed[-1].offset == "1-3"
    h.advance(0.1)
    assert h.stored().offsets == {"feed": "1-3"}  # persisted too, before any publication
    server.accepting = False
    h.drop()
    server.publish("feed", "missed")
    server.accepting = True
    h.advance(5.0)
    subscribes = [json.loads(f) for f in h.sent if isinstance(f, str) and '"subscribe"' in f]
    assert subscribes[-1]["since"] == "1-3"
    assert h.confirmed[-1].recovered is True
    assert offsets(received) == ["1-4"]
    assert received[0].recovered is True


def test_the_first_subscribed_reply_of_an_empty_channel_recovers_everything_after_it() -> None:
    """Guards: the same for a channel nothing was published into yet (offset ``"0"``)."""
    server = FakePyrtServer()
    h = online(server)
    received = h.subscribe("feed")
    assert h.confirmed[-1].offset == "0"
    server.accepting = False
    h.drop()
    server.publish("feed", "a")
    server.publish("feed", "b")
    server.accepting = True
    h.advance(5.0)
    assert h.confirmed[-1].recovered is True
    assert offsets(received) == ["1-1", "1-2"]


def test_after_the_first_subscribed_reply_a_gap_while_offline_is_flagged() -> None:
    """Guards: with no offset set by the first reply, publications lost while offline (the
    server kept too few) were not reported as a gap after the first reconnect."""
    server = FakePyrtServer(retention=2)
    for n in range(3):
        server.publish("feed", n)
    h = online(server)
    received = h.subscribe("feed")
    server.accepting = False
    h.drop()
    for n in range(4):
        server.publish("feed", n)  # 1-4 .. 1-7; only 1-6 and 1-7 are kept
    server.accepting = True
    h.advance(5.0)
    assert h.confirmed[-1].recovered is False
    assert offsets(received) == ["1-6", "1-7"]
    assert [p.recovered for p in received] == [False, True]
