"""A WebSocket shared by every tab of a site: the client's link, and the leader's hub.

:class:`SharedWebSocketTransport` is what a ``WebSocketClient(share=...)`` uses as its
transport: its "socket" is a link to the hub of the group's leader (:mod:`pyrt.aio.share`), so the
client's own engine keeps doing everything it does on a real socket — queue, acks with their
ids, retries, subscriptions with their offsets, heartbeat — and a link lost when the leader
changes looks like a dropped connection: it reconnects (at once, a leader being ready), re-sends
what was not acknowledged and resubscribes. The transport also watches the page for its client
and, while this client leads, for the hub's connection.

:class:`WebSocketHub` is the leader's side: a ``WebSocketClient`` of its own on the real
socket, with the leader client's URL, heartbeat and backoff, whose transport passes every
inbound frame through a :class:`~pyrt.share.ws_relay.WsRelay` first: frames for the links go to them,
the connection's own (ping, pong, welcome) to the hub's client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pyrt.aio.share import HubPage, PageFanOut, Participant
from pyrt.engine.states import State
from pyrt.share.messages import frame_fields, frame_of
from pyrt.share.ws_relay import CloseLink, OpenLink, RelayAction, ToLink, ToServer, WsRelay
from pyrt.wire.types import Frame

if TYPE_CHECKING:
    from pyrt.aio.websocket import WebSocketClient
    from pyrt.persist.records import RecordStore
    from pyrt.ports.transport import PageEvents, SocketEvents, Transport

__all__ = ["SharedWebSocketTransport", "WebSocketHub"]


class SharedWebSocketTransport(PageFanOut):
    """The link end of a shared client (see the module docstring). ``inner`` is this runtime's
    real transport: it watches the page, offers storage, and carries the real socket while the
    client leads."""

    def __init__(self, participant: Participant, inner: Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.participant = participant
        self.inner = inner
        self._loop = loop
        self._link: str | None = None
        self._events: SocketEvents | None = None
        participant.add_end(self)

    # -- Transport

    def check_url(self, url: str) -> None:
        self.inner.check_url(url)

    def open(self, url: str, protocols: Sequence[str], events: SocketEvents) -> None:
        if self._link is not None:
            self.close(1000, "replaced", detach=True)
        self._events = events
        link = self._link = self.participant.new_link()
        self.participant.open_link(link, self)

    def send(self, frame: Frame) -> None:
        if self._link is None:
            raise RuntimeError("no open link to send on")
        self.participant.link_send(self._link, "frame", **frame_fields(frame))

    def buffered_amount(self) -> int:
        return 0

    def close(self, code: int, reason: str, detach: bool) -> None:
        link, self._link = self._link, None
        if link is None:
            return
        self.participant.close_link(link, code, reason)
        events = self._events
        if not detach and events is not None:
            self._loop.call_soon(events.socket_closed, code, reason, True)

    def watch_page(self, events: PageEvents) -> None:
        self._page = events
        self.inner.watch_page(self)

    def storage(self) -> RecordStore | None:
        return self.inner.storage()

    def dispose(self) -> None:
        self.close(1000, "", detach=True)
        self._events = None
        self.participant.close()
        self.inner.dispose()

    # -- LinkEnd

    def link_opened(self, link: str) -> None:
        if link == self._link and self._events is not None:
            self._events.socket_opened()

    def link_message(self, link: str, message: dict[str, Any]) -> None:
        if link == self._link and self._events is not None and message["t"] == "frame":
            frame = frame_of(message)
            if frame is not None:
                self._events.socket_message(frame)

    def link_closed(self, link: str, code: int, reason: str) -> None:
        if link == self._link:
            self._link = None
            if self._events is not None:
                self._events.socket_closed(code, reason, False)


class _HubEvents:
    """The hub client's socket events, routed first: frames for the links go to the relay."""

    def __init__(self, hub: WebSocketHub, events: SocketEvents) -> None:
        self.hub = hub
        self.events = events

    def socket_opened(self) -> None:
        self.events.socket_opened()

    def socket_message(self, data: Frame) -> None:
        own = self.hub.from_server(data)
        for frame in own:
            self.events.socket_message(frame)  # ping, pong, welcome: the connection's own
        if not own:
            self.hub.client.socket_alive()

    def socket_closed(self, code: int, reason: str, was_clean: bool) -> None:
        self.hub.last_close = (code, reason)  # what the links are told when they close
        self.events.socket_closed(code, reason, was_clean)


class _HubTransport:
    """The real transport, lent to the hub: its frames pass the relay, its page events come
    through the shared transport, and giving it back closes the socket only."""

    def __init__(self, hub: WebSocketHub, shared: SharedWebSocketTransport) -> None:
        self.hub = hub
        self.shared = shared
        self.inner = shared.inner

    def check_url(self, url: str) -> None:
        self.inner.check_url(url)

    def open(self, url: str, protocols: Sequence[str], events: SocketEvents) -> None:
        self.inner.open(url, protocols, _HubEvents(self.hub, events))

    def send(self, frame: Frame) -> None:
        self.inner.send(frame)

    def buffered_amount(self) -> int:
        return self.inner.buffered_amount()

    def close(self, code: int, reason: str, detach: bool) -> None:
        self.inner.close(code, reason, detach)

    def watch_page(self, events: PageEvents) -> None:
        self.shared.hub_watch(HubPage(self.hub.participant, events))

    def storage(self) -> RecordStore | None:
        return None

    def dispose(self) -> None:
        self.shared.hub_watch(None)
        self.inner.close(1000, "", detach=True)


class WebSocketHub:
    """The leader's real WebSocket and its relay (see the module docstring)."""

    def __init__(
        self, participant: Participant, leader: WebSocketClient, shared: SharedWebSocketTransport
    ) -> None:
        self.participant = participant
        self.relay = WsRelay(parse=leader.protocol_name == "pyrt")
        self.client: WebSocketClient = type(leader)(
            leader.url,
            leader.protocols,
            options=leader.options,  # not persist, storage or share: the hub's connection is its own
            transport=_HubTransport(self, shared),
            token=leader.token,  # the connection is opened, and its token refreshed, with the leader's
            async_handlers=leader.async_handlers,
        )
        self.client.on_state(self._state)
        self._state_now = State.IDLE
        self.last_close: tuple[int, str] | None = None  # the real socket's last close event
        self._owners: dict[str, str] = {}  # link -> participant
        self._closing = False

    # -- Hub

    def start(self) -> None:
        self.client.connect()

    def link_requested(self, link: str, participant: str, extra: dict[str, Any]) -> None:
        self._owners[link] = participant
        self._run(self.relay.link_requested(link, participant))
        self._count()

    def link_message(self, link: str, message: dict[str, Any]) -> None:
        if message["t"] == "frame":
            frame = frame_of(message)
            if frame is not None:
                self._run(self.relay.link_frame(link, frame))

    def link_closed(self, link: str) -> None:
        self._owners.pop(link, None)
        self._run(self.relay.link_closed(link))
        self._count()

    def prune(self, alive: set[str]) -> None:
        for link, owner in list(self._owners.items()):
            if owner not in alive:
                self.link_closed(link)
                # Gone, as far as the locks tell: should it still be there, it reconnects.
                self.participant.to_link(owner, link, "close", c=1006, r="the tab was not seen")

    def close(self) -> None:
        self._closing = True
        self._run(self.relay.server_lost(1001, "the tab holding the shared connection is leaving"))
        self.relay = WsRelay(parse=self.relay.parse)  # forget every waiting link too
        self._owners.clear()
        self.client.close()

    # -- the real connection

    def from_server(self, message: Frame) -> list[Frame]:
        """Route a message from the server; returns the frames that are the connection's own."""
        relay = self.relay
        was_open = relay.server_open
        actions, own = relay.server_message(message)
        self._run(actions)
        if relay.server_open and not was_open:
            self.participant.connection_ready()
        return own

    def _state(self, new: State) -> None:
        old, self._state_now = self._state_now, new
        if self._closing:
            return
        if new is State.OPEN:
            self.last_close = None
            if not self.relay.parse:
                self._run(self.relay.server_opened())  # raw: no welcome to wait for
                self.participant.connection_ready()
        elif old is State.OPEN:
            self._run(self.relay.server_lost(1006, self._lost_reason()))

    def _lost_reason(self) -> str:
        """Why the links close, as the real connection closed: a tab then reads what an unshared
        client would ("closed with code 1006"), not that a connection it may hold alone was
        "shared". The links' code stays 1006, and a server's ``reconnect_window=`` hint stays
        with the hub: a link always reconnects at once, and the hub decides when the real
        connection comes back."""
        if self.last_close is None:  # abandoned by the hub's engine (a heartbeat or connect timeout)
            return "the connection to the server was lost"
        code, reason = self.last_close
        if code == 1006:
            return reason if "=" not in reason else ""
        return f"the server closed the connection with code {code}"

    # -- machinery

    def _run(self, actions: list[RelayAction]) -> None:
        participant = self.participant
        welcomed: ToLink | None = None
        for n, action in enumerate(actions):
            if action is welcomed:
                continue  # sent with its OpenLink
            if type(action) is ToServer:
                if self.client.state is not State.CLOSED:
                    self.client.send_frame(action.frame)
            elif type(action) is ToLink:
                owner = self._owners.get(action.link)
                if owner is not None:
                    participant.to_link(owner, action.link, "frame", **frame_fields(action.frame))
            elif type(action) is OpenLink:
                owner = self._owners.get(action.link)
                after = actions[n + 1] if n + 1 < len(actions) else None
                first: dict[str, Any] = {}
                if type(after) is ToLink and after.link == action.link:
                    welcomed, first = after, frame_fields(after.frame)  # one message: the
                    # client is never OPEN without its welcome (its session, its limits)
                if owner is not None:
                    participant.to_link(owner, action.link, "opened", **first)
            elif type(action) is CloseLink:
                owner = self._owners.pop(action.link, None)
                if owner is not None:
                    participant.to_link(owner, action.link, "close", c=action.code, r=action.reason)

    def _count(self) -> None:
        self.participant.set_tabs(self.relay.participants())
