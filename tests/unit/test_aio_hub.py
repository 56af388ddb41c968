"""The generic hub: links owned and counted, relay actions carried out, frames waiting in order for
the real connection, and the page of the tab it runs in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from pyrt.aio.hub import Hub, HubServices
from pyrt.errors import ShareUnavailable
from pyrt.share.relay import KEEP_ALIVE, LinkItem
from pyrt.share.sse_relay import EventRelay
from pyrt.share.ws_relay import WsRelay
from pyrt.testing import FakeServices
from pyrt.wire.sse import ServerSentEvent

WELCOME = '{"type":"welcome","session":"s1","server":"x"}'


@dataclass
class Participant:
    """What the hub tells the participant, as (what, participant, link, detail)."""

    told: list[tuple[str, str, str, Any]] = field(default_factory=list)
    tabs: int = 0
    ready: int = 0
    resigned: int = 0

    def tell_item(self, participant: str, link: str, item: LinkItem) -> None:
        self.told.append(("item", participant, link, item))

    def tell_opened(self, participant: str, link: str, first: LinkItem | None) -> None:
        self.told.append(("opened", participant, link, first))

    def tell_closed(self, participant: str, link: str, code: int, reason: str) -> None:
        self.told.append(("closed", participant, link, (code, reason)))

    def set_tabs(self, tabs: int) -> None:
        self.tabs = tabs

    def connection_ready(self, transport: str | None = None) -> None:
        self.ready += 1

    def resign(self) -> None:
        self.resigned += 1


@dataclass
class Page:
    events: list[str] = field(default_factory=list)

    def page_online(self) -> None:
        self.events.append("online")

    def page_visible(self) -> None:
        self.events.append("visible")

    def page_backgrounded(self) -> None:
        self.events.append("backgrounded")


@dataclass
class Upstream:
    """A real connection that takes a frame only while ``taking``."""

    client: Any = None
    page: Any = field(default_factory=Page)
    what: str = "connection"
    taking: bool = True
    sent: list[Any] = field(default_factory=list)
    listened: list[str] = field(default_factory=list)
    started: bool = False
    closed: bool = False

    def start(self) -> None:
        self.started = True

    def transport(self) -> str | None:
        return "websocket"

    def forward(self, frame: Any) -> bool:
        if self.taking:
            self.sent.append(frame)
        return self.taking

    def listen(self, type: str) -> None:
        self.listened.append(type)

    def close(self) -> None:
        self.closed = True


def ws_hub(services: FakeServices | None = None) -> tuple[Hub, WsRelay, Participant, Upstream]:
    relay, participant, upstream = WsRelay(), Participant(), Upstream()
    hub = Hub(participant, relay, services or FakeServices(), lambda hub: upstream)  # type: ignore[arg-type]
    return hub, relay, participant, upstream


def items(participant: Participant, link: str) -> list[Any]:
    return [detail for what, _, to, detail in participant.told if what == "item" and to == link]


def test_links_open_with_their_welcome_and_every_tab_is_counted() -> None:
    hub, relay, participant, upstream = ws_hub()
    hub.start()
    assert upstream.started
    hub.link_requested("p1.1", "p1", {})
    hub.link_requested("p2.1", "p2", {})
    assert participant.tabs == 2
    assert participant.told == []  # the links wait for the real connection
    hub.run(relay.server_frame(WELCOME)[0])
    opened = [(what, who, link) for what, who, link, _ in participant.told]
    assert opened == [("opened", "p1", "p1.1"), ("opened", "p2", "p2.1")]
    assert all('"type":"welcome"' in first for *_, first in participant.told)
    hub.link_closed("p2.1")
    assert participant.tabs == 1


def test_frames_the_connection_cannot_take_wait_in_order_and_a_pong_waits_behind_them() -> None:
    hub, relay, participant, upstream = ws_hub()
    hub.link_requested("a", "p1", {})
    hub.link_requested("b", "p2", {})
    hub.run(relay.server_frame(WELCOME)[0])
    hub.link_sent("a", '{"type":"message","data":1}')
    assert upstream.sent == ['{"type":"message","data":1}']  # as it is, at once
    upstream.taking = False
    hub.link_sent("a", '{"type":"message","data":2}')
    hub.link_sent("b", '{"type":"message","data":3}')
    hub.link_sent("a", '{"type":"ping","t":-1}')
    hub.link_sent("b", '{"type":"unsubscribe","channel":"news"}')  # answered by the relay itself
    assert hub.holding == 3
    assert items(participant, "a") == []  # the pong confirms what "a" sent: not before it is sent
    assert items(participant, "b") == ['{"type":"unsubscribed","channel":"news"}']
    hub.run(relay.server_frame('{"type":"message","data":"news"}')[0])  # the server's go on
    assert items(participant, "a") == ['{"type":"message","data":"news"}']
    hub.drain()  # still not taking: nothing moves
    assert hub.holding == 3
    upstream.taking = True
    hub.drain()
    assert upstream.sent[1:] == ['{"type":"message","data":2}', '{"type":"message","data":3}']
    assert items(participant, "a")[-1] == '{"type":"pong","t":-1}'
    assert hub.holding == 0


def test_a_lost_connection_drops_what_waits_and_closes_every_link() -> None:
    hub, relay, participant, upstream = ws_hub()
    hub.link_requested("a", "p1", {})
    hub.run(relay.server_frame(WELCOME)[0])
    upstream.taking = False
    hub.link_sent("a", '{"type":"message","id":"a-1","data":1}')
    hub.lost(1006, "gone")
    assert hub.holding == 0
    assert participant.told[-1] == ("closed", "p1", "a", (1006, "gone"))
    upstream.taking = True
    hub.drain()
    assert upstream.sent == []  # its client sends it again, with its id, on the next link


def test_links_of_participants_not_seen_are_closed_and_their_clients_told() -> None:
    hub, relay, participant, _ = ws_hub()
    for link, owner in (("p1.1", "p1"), ("p2.1", "p2"), ("p2.2", "p2")):
        hub.link_requested(link, owner, {})
    hub.run(relay.server_frame(WELCOME)[0])
    participant.told.clear()
    hub.prune({"p1"})
    closed = [(link, detail) for what, _, link, detail in participant.told if what == "closed"]
    assert closed == [("p2.1", (1006, "the tab was not seen")), ("p2.2", (1006, "the tab was not seen"))]
    assert participant.tabs == 1
    assert relay.links == 1


def test_closing_closes_the_links_the_connection_and_stops_watching_the_page() -> None:
    services = FakeServices()
    hub, relay, participant, upstream = ws_hub(services)
    hub.start()
    assert services.watchers == [hub]
    hub.link_requested("a", "p1", {})
    hub.run(relay.server_frame(WELCOME)[0])
    hub.close()
    hub.close()
    leaving = (1001, "the tab holding the shared connection is leaving")
    assert participant.told[-1] == ("closed", "p1", "a", leaving)
    assert upstream.closed
    assert services.watchers == []


def test_the_page_going_away_hands_the_lead_over_and_the_rest_goes_to_the_connection() -> None:
    services = FakeServices()
    hub, _, participant, upstream = ws_hub(services)
    hub.start()
    services.page_online()
    services.page_backgrounded()
    services.page_visible()
    services.page_shown()
    assert upstream.page.events == ["online", "backgrounded", "visible"]
    services.page_hidden()
    assert participant.resigned == 1


def test_the_same_hub_carries_an_event_stream() -> None:
    relay, participant, upstream = EventRelay(), Participant(), Upstream()
    hub = Hub(participant, relay, FakeServices(), lambda hub: upstream)  # type: ignore[arg-type]
    hub.link_requested("a", "p1", {"last": "", "types": ["tick"]})
    assert upstream.listened == ["tick"]  # a native EventSource reports only what is listened to
    hub.run(relay.stream_opened())
    event = ServerSentEvent(type="tick", data="1", id="1-1")
    hub.run(relay.event(event))
    hub.run(relay.keep_alive(1.0))
    assert [what for what, *_ in participant.told] == ["opened", "item", "item"]
    assert items(participant, "a") == [event, KEEP_ALIVE]


def test_a_hubs_own_client_gets_timers_and_nothing_else_of_the_runtime() -> None:
    services = HubServices(FakeServices())
    assert services.record_store() is None
    services.watch_page(Page()).stop()  # type: ignore[arg-type]  # the hub hears the page instead
    with pytest.raises(ShareUnavailable, match="not shared again"):
        services.share_channel("x")
