"""FetchEventSource and EventSourceClient with share=: one stream for many tabs, each event to every
tab once, and a new leader that resumes from the last event id without a gap or a duplicate."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from pyrt import Backoff, EventSourceClient, FetchEventSource
from pyrt.engine.states import State
from pyrt.testing import FakeEventSourceTransport, FakeFetchTransport, FakeShareBus
from pyrt.wire.sse_encode import encode_comment, encode_event
from tests.unit.loop_support import run, until

FAST = Backoff(initial=0.01, maximum=0.05)


@dataclass
class Tab:
    client: FetchEventSource | EventSourceClient
    transport: Any
    events: list[str] = field(default_factory=list)
    ticks: list[str] = field(default_factory=list)


def fetch_tab(bus: FakeShareBus, **kwargs: Any) -> Tab:
    transport = FakeFetchTransport()
    client = FetchEventSource(
        "http://test/sse", backoff=FAST, transport=transport, share=bus.channel(), **kwargs
    )
    made = Tab(client, transport)
    client.on_message(lambda e: made.events.append(e.id))
    client.on("tick", lambda e: made.ticks.append(e.data))
    return made


def source_tab(bus: FakeShareBus) -> Tab:
    transport = FakeEventSourceTransport()
    client = EventSourceClient("http://test/sse", backoff=FAST, transport=transport, share=bus.channel())
    made = Tab(client, transport)
    client.on_message(lambda e: made.events.append(e.id))
    return made


def leader(tabs: list[Tab]) -> Tab | None:
    found = [t for t in tabs if t.client.sharing is not None and t.client.sharing.role == "leader"]
    return found[0] if len(found) == 1 else None


def reading(tabs: list[Tab], what: str) -> bool:
    """A leader is elected and its real transport has a request (or a native object) live."""
    lead = leader(tabs)
    return lead is not None and getattr(lead.transport, what) is not None


def test_many_fetch_tabs_read_one_stream_and_each_gets_every_event() -> None:
    async def scenario() -> None:
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        tabs = [fetch_tab(bus) for _ in range(7)]
        for t in tabs:
            t.client.connect()
        await until(lambda: reading(tabs, "request"))
        lead = leader(tabs)
        assert lead is not None
        assert sum(1 for t in tabs if t.transport.requests) == 1  # one request for seven tabs
        lead.transport.respond(200, "text/event-stream")
        await until(lambda: all(t.client.state is State.OPEN for t in tabs))
        for n in range(1, 4):
            lead.transport.send(encode_event(f"{n}", id=f"1-{n}"))
        lead.transport.send(encode_event("t1", type="tick", id="1-4"))
        await until(lambda: all(len(t.events) == 3 and t.ticks for t in tabs))
        assert all(t.events == ["1-1", "1-2", "1-3"] and t.ticks == ["t1"] for t in tabs)
        assert all(t.client.last_event_id == "1-4" for t in tabs)
        assert all(t.client.sharing is not None and t.client.sharing.tabs == 7 for t in tabs)

    run(scenario)


def test_a_new_fetch_leader_resumes_from_the_last_event_id_with_no_gap_or_duplicate() -> None:
    async def scenario() -> None:
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        tabs = [fetch_tab(bus) for _ in range(3)]
        for t in tabs:
            t.client.connect()
        await until(lambda: reading(tabs, "request"))
        old = leader(tabs)
        assert old is not None
        old.transport.respond(200, "text/event-stream")
        for n in range(1, 6):
            old.transport.send(encode_event(f"{n}", id=f"1-{n}"))
        others = [t for t in tabs if t is not old]
        await until(lambda: all(len(t.events) == 5 for t in others))
        participant = old.client._participant
        assert participant is not None
        bus.crash(participant.channel)
        await until(lambda: reading(others, "request"))
        new = leader(others)
        assert new is not None
        assert new.transport.request.request.headers["Last-Event-ID"] == "1-5"
        new.transport.respond(200, "text/event-stream")
        new.transport.send(encode_event("5", id="1-5") + encode_event("6", id="1-6"))  # a replay overlaps
        await until(lambda: all(len(t.events) == 6 for t in others))
        assert all(t.events == [f"1-{n}" for n in range(1, 7)] for t in others)

    run(scenario)


def test_keep_alive_comments_reach_the_tabs_so_their_stall_timers_hold() -> None:
    async def scenario() -> None:
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        tabs = [fetch_tab(bus, stall_timeout=0.3) for _ in range(2)]
        for t in tabs:
            t.client.connect()
        await until(lambda: reading(tabs, "request"))
        lead = leader(tabs)
        assert lead is not None
        lead.transport.respond(200, "text/event-stream")
        await until(lambda: all(t.client.state is State.OPEN for t in tabs))
        follower = next(t for t in tabs if t is not lead)
        loop = asyncio.get_running_loop()
        until_at = loop.time() + 0.9  # the scenario is time passing: 0.9 s of heartbeats, no stall
        while loop.time() < until_at:
            lead.transport.send(encode_comment("hb"))
            await asyncio.sleep(0.1)
        assert follower.client.stats.stalls == 0
        assert follower.client.stats.opens == 1

    run(scenario)


def test_eventsource_tabs_share_one_native_object_and_hand_over() -> None:
    async def scenario() -> None:
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        tabs = [source_tab(bus) for _ in range(3)]
        for t in tabs:
            t.client.connect()
        await until(lambda: reading(tabs, "current"))
        old = leader(tabs)
        assert old is not None
        assert sum(1 for t in tabs if t.transport.sources) == 1
        old.transport.open()
        await until(lambda: all(t.client.state is State.OPEN for t in tabs))
        for n in range(1, 4):
            old.transport.send("x", id=f"1-{n}")
        others = [t for t in tabs if t is not old]
        await until(lambda: all(len(t.events) == 3 for t in others))
        participant = old.client._participant
        assert participant is not None
        bus.crash(participant.channel)
        await until(lambda: reading(others, "current"))
        new = leader(others)
        assert new is not None
        assert "lastEventId=1-3" in new.transport.current.url
        new.transport.open()
        new.transport.send("y", id="1-4")
        await until(lambda: all(len(t.events) == 4 for t in others))
        assert all(t.events == ["1-1", "1-2", "1-3", "1-4"] for t in others)

    run(scenario)


def test_a_fetch_tab_that_shares_with_no_one_is_told_why_the_stream_was_lost() -> None:
    async def scenario() -> None:
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        alone = fetch_tab(bus)
        errors: list[str] = []
        alone.client.on_error(lambda error: errors.append(str(error)))
        alone.client.connect()
        await until(lambda: reading([alone], "request"))
        alone.transport.respond(200, "text/event-stream")
        await until(lambda: alone.client.state is State.OPEN)
        alone.transport.fail("ConnectError: [Errno 111] Connection refused")
        await until(lambda: errors)
        assert "Connection refused" in errors[0]
        assert "shared" not in errors[0]
        alone.client.close()

    run(scenario)


def test_the_shared_native_object_reports_every_type_a_tab_listens_to() -> None:
    """A native EventSource reports only the types someone listens to: a follower's handler for
    a named type makes the leader's object listen to it, and the follower gets those events."""

    async def scenario() -> None:
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        tabs = [source_tab(bus) for _ in range(2)]
        for t in tabs:
            t.client.connect()
        await until(lambda: reading(tabs, "current"))
        lead = leader(tabs)
        assert lead is not None
        lead.transport.open()
        await until(lambda: all(t.client.state is State.OPEN for t in tabs))
        follower = next(t for t in tabs if t is not lead)
        follower.client.on("tick", lambda e: follower.ticks.append(e.data))
        await until(lambda: "tick" in lead.transport.types)
        assert lead.transport.send("1", type="tick", id="1-1")
        await until(lambda: follower.ticks == ["1"])
        assert lead.ticks == []  # the leader's own client did not ask for it

    run(scenario)
