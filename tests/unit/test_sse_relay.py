"""The event relay: each link caught up from its own last event id, then every event once."""

from __future__ import annotations

import pytest

from pyrt.share.sse_relay import CloseStream, Deliver, EventRelay, EventRelayAction, OpenStream
from pyrt.wire.sse import ServerSentEvent


def ev(ident: str, data: str = "") -> ServerSentEvent:
    return ServerSentEvent(data=data or f"d{ident}", id=ident)


def got(actions: list[EventRelayAction], link: str) -> list[str]:
    return [a.event.id for a in actions if isinstance(a, Deliver) and a.link == link]


def test_links_wait_for_the_stream_then_get_every_event_once() -> None:
    relay = EventRelay()
    assert relay.link_requested("a", "tab1", "") == []
    assert relay.stream_opened() == [OpenStream("a")]
    relay.link_requested("b", "tab2", "")
    out = relay.event(ev("1-1")) + relay.event(ev("1-2"))
    assert got(out, "a") == got(out, "b") == ["1-1", "1-2"]
    assert relay.participants() == 2
    assert relay.links == 2


def test_a_link_is_caught_up_from_the_ring_after_its_last_id() -> None:
    relay = EventRelay()
    relay.stream_opened()
    for n in range(1, 6):
        relay.event(ev(f"1-{n}"))
    out = relay.link_requested("late", "tab", "1-3")
    assert out[0] == OpenStream("late")
    assert got(out, "late") == ["1-4", "1-5"]
    assert got(relay.event(ev("1-4")), "late") == []  # a replay of what it had: dropped
    assert got(relay.event(ev("1-6")), "late") == ["1-6"]


def test_a_link_further_behind_than_the_ring_gets_all_of_it() -> None:
    relay = EventRelay(ring=3)
    relay.stream_opened()
    for n in range(1, 11):
        relay.event(ev(f"1-{n}"))
    assert got(relay.link_requested("old", "tab", "1-2"), "old") == ["1-8", "1-9", "1-10"]
    assert got(relay.link_requested("ahead", "tab", "1-9"), "ahead") == ["1-10"]


def test_ids_without_order_not_in_the_ring_go_on_live() -> None:
    relay = EventRelay()
    relay.stream_opened()
    relay.event(ev("alpha"))
    relay.event(ev("beta"))
    assert got(relay.link_requested("x", "tab", "alpha"), "x") == ["beta"]
    assert got(relay.link_requested("y", "tab", "gone"), "y") == []
    out = relay.event(ev("gamma"))
    assert got(out, "x") == got(out, "y") == ["gamma"]
    assert got(relay.event(ev("gamma")), "x") == ["gamma"]  # an event repeating the id: its own


def test_a_new_leader_starts_with_what_its_client_had_seen() -> None:
    relay = EventRelay(seen=(ev("1-1"), ev("1-2"), ev("1-3")))
    relay.stream_opened()
    assert got(relay.link_requested("behind", "tab", "1-1"), "behind") == ["1-2", "1-3"]


def test_losing_the_stream_closes_every_link() -> None:
    relay = EventRelay()
    relay.stream_opened()
    relay.link_requested("a", "tab", "")
    assert relay.stream_lost() == [CloseStream("a", "the shared stream was lost")]
    assert relay.event(ev("1-1")) == []
    relay.link_requested("a", "tab", "")
    relay.link_closed("a")
    assert relay.stream_opened() == []


def test_the_ring_must_hold_something() -> None:
    with pytest.raises(ValueError, match="ring must be >= 1"):
        EventRelay(ring=0)
