"""The event relay: each link caught up from its own last event id, then every event once."""

from __future__ import annotations

import pytest

from pyrt.share.relay import KEEP_ALIVE, CloseLink, EventTypes, Listen, OpenLink, RelayAction, ToLink
from pyrt.share.sse_relay import KEEPALIVE_EVERY, EventRelay
from pyrt.wire.sse import ServerSentEvent


def ev(ident: str, data: str = "") -> ServerSentEvent:
    return ServerSentEvent(data=data or f"d{ident}", id=ident)


def got(actions: list[RelayAction], link: str) -> list[str]:
    events = [a.item for a in actions if isinstance(a, ToLink) and a.link == link]
    return [event.id for event in events if isinstance(event, ServerSentEvent)]


def ask(relay: EventRelay, link: str, tab: str, last: str) -> list[RelayAction]:
    return relay.link_requested(link, tab, {"last": last})


def test_links_wait_for_the_stream_then_get_every_event_once() -> None:
    relay = EventRelay()
    assert ask(relay, "a", "tab1", "") == []
    assert relay.stream_opened() == [OpenLink("a")]
    ask(relay, "b", "tab2", "")
    out = relay.event(ev("1-1")) + relay.event(ev("1-2"))
    assert got(out, "a") == got(out, "b") == ["1-1", "1-2"]
    assert relay.participants() == 2
    assert relay.links == 2


def test_a_link_is_caught_up_from_the_ring_after_its_last_id() -> None:
    relay = EventRelay()
    relay.stream_opened()
    for n in range(1, 6):
        relay.event(ev(f"1-{n}"))
    out = ask(relay, "late", "tab", "1-3")
    assert out[0] == OpenLink("late")
    assert got(out, "late") == ["1-4", "1-5"]
    assert got(relay.event(ev("1-4")), "late") == []  # a replay of what it had: dropped
    assert got(relay.event(ev("1-6")), "late") == ["1-6"]


def test_a_link_further_behind_than_the_ring_gets_all_of_it() -> None:
    relay = EventRelay(ring=3)
    relay.stream_opened()
    for n in range(1, 11):
        relay.event(ev(f"1-{n}"))
    assert got(ask(relay, "old", "tab", "1-2"), "old") == ["1-8", "1-9", "1-10"]
    assert got(ask(relay, "ahead", "tab", "1-9"), "ahead") == ["1-10"]


def test_ids_without_order_not_in_the_ring_go_on_live() -> None:
    relay = EventRelay()
    relay.stream_opened()
    relay.event(ev("alpha"))
    relay.event(ev("beta"))
    assert got(ask(relay, "x", "tab", "alpha"), "x") == ["beta"]
    assert got(ask(relay, "y", "tab", "gone"), "y") == []
    out = relay.event(ev("gamma"))
    assert got(out, "x") == got(out, "y") == ["gamma"]
    assert got(relay.event(ev("gamma")), "x") == ["gamma"]  # an event repeating the id: its own


def test_a_new_leader_starts_with_what_its_client_had_seen() -> None:
    relay = EventRelay(seen=(ev("1-1"), ev("1-2"), ev("1-3")))
    relay.stream_opened()
    assert got(ask(relay, "behind", "tab", "1-1"), "behind") == ["1-2", "1-3"]


def test_losing_the_stream_closes_every_link() -> None:
    relay = EventRelay()
    relay.stream_opened()
    ask(relay, "a", "tab", "")
    assert relay.lost() == [CloseLink("a", 1006, "the shared stream was lost")]
    assert relay.event(ev("1-1")) == []
    ask(relay, "a", "tab", "")
    relay.link_closed("a")
    assert relay.stream_opened() == []


def test_the_ring_must_hold_something() -> None:
    with pytest.raises(ValueError, match="ring must be >= 1"):
        EventRelay(ring=0)


def test_keep_alives_reach_the_open_links_at_most_once_in_a_while() -> None:
    relay = EventRelay()
    ask(relay, "waiting", "tab", "")
    assert relay.keep_alive(10.0) == []  # no link is open yet
    relay.stream_opened()
    ask(relay, "b", "tab2", "")
    assert relay.keep_alive(11.0) == [ToLink("waiting", KEEP_ALIVE), ToLink("b", KEEP_ALIVE)]
    assert relay.keep_alive(11.0 + KEEPALIVE_EVERY / 2) == []  # the same burst
    assert len(relay.keep_alive(12.0)) == 2


def test_the_real_stream_is_asked_for_every_event_type_a_link_listens_to() -> None:
    relay = EventRelay()
    assert relay.link_requested("a", "tab1", {"last": "", "types": ["tick", "message"]}) == [Listen("tick")]
    relay.stream_opened()
    assert relay.link_requested("b", "tab2", {"types": ["tick", "tock"]})[0] == Listen("tock")
    assert relay.link_sent("a", EventTypes(("tick", "news"))) == [Listen("news")]
    assert relay.link_sent("a", EventTypes(())) == []  # never unlistened: others may need it
    assert relay.link_sent("gone", EventTypes(("x",))) == []
    assert relay.types() == {"tick", "tock", "news"}
