"""A WebSocket shared by every tab of a site: the client's link, and the real socket of the hub.

:class:`SharedWebSocketTransport` is what a ``WebSocketClient(share=...)`` uses as its
transport: its "socket" is a link to the hub of the group's leader (:mod:`pyrt.aio.share`), so the
client's own engine keeps doing everything it does on a real socket — queue, acks with their
ids, retries, pacing, subscriptions with their offsets, heartbeat — and a link lost when the
leader changes looks like a dropped connection: it reconnects (at once, a leader being ready),
re-sends what was not acknowledged and resubscribes.

:class:`WebSocketUpstream` is the real connection of the leader's hub (:class:`pyrt.aio.hub.Hub`
with a :class:`~pyrt.share.ws_relay.WsRelay`): a ``WebSocketClient`` of its own on the leader's
real transport, with the leader client's URL, heartbeat, backoff and token. Its engine keeps the
connection's own frames only (welcome, ping, pong, its token refresh): every inbound frame passes
the relay first, and the links' frames go onto the socket as they are (:meth:`WebSocketClient.forward`:
the connection's pacer decides when, nothing decodes or queues them again). :func:`join` makes a
client's participant and its link end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from pyrt.aio.driver import running_loop
from pyrt.aio.hub import Hub, HubServices
from pyrt.aio.share import Participant, SharedTransport
from pyrt.engine.states import State
from pyrt.ports.transport import Transport
from pyrt.share.ws_relay import WsRelay
from pyrt.wire.types import Frame

if TYPE_CHECKING:
    from pyrt.aio.websocket import WebSocketClient
    from pyrt.ports.services import Cancellable, PageEvents, Services, Timers
    from pyrt.ports.transport import SocketEvents
    from pyrt.share.channel import ShareChannel
    from pyrt.share.relay import LinkItem

__all__ = ["SharedWebSocketTransport", "WebSocketUpstream", "join"]


def join(
    client: WebSocketClient,
    channel: ShareChannel,
    inner: Transport,
    services: Services,
    loop: asyncio.AbstractEventLoop,
) -> tuple[Participant, SharedWebSocketTransport]:
    """``client``'s participant in the group of ``channel``, and the link end that becomes its
    transport; ``inner`` is this runtime's real transport, the real socket while it leads."""

    def lead(participant: Participant) -> Hub:
        relay = WsRelay(parse=client.protocol_name == "pyrt")
        return Hub(participant, relay, services, lambda hub: WebSocketUpstream(hub, relay, client, inner))

    name = client.share if isinstance(client.share, str) else None
    participant = Participant(channel, lead, loop, name=name)
    return participant, SharedWebSocketTransport(participant, inner, loop, client.page_online)


class SharedWebSocketTransport(SharedTransport[Transport]):
    """The link end of a shared client (see the module docstring)."""

    _events: SocketEvents | None = None  # the client's, once it opens

    # -- Transport

    def open(self, url: str, protocols: Sequence[str], events: SocketEvents) -> None:
        self._close_link(1000, "replaced")
        self._events = events
        self._open()

    def send(self, frame: Frame) -> None:
        if self.link is None:
            raise RuntimeError("no open link to send on")
        self.participant.link_send(self.link, frame)

    def buffered_amount(self) -> int:
        return 0

    def close(self, code: int, reason: str, detach: bool) -> None:
        if self._close_link(code, reason) is None:
            return
        events = self._events
        if not detach and events is not None:
            self._loop.call_soon(events.socket_closed, code, reason, True)

    def dispose(self) -> None:
        self.close(1000, "", detach=True)
        self._events = None
        self.participant.close()
        self.inner.dispose()

    # -- LinkEnd

    def link_opened(self, link: str, first: LinkItem | None) -> None:
        events = self._events
        if link == self.link and events is not None:
            events.socket_opened()
            if isinstance(first, str | bytes):  # the welcome: never open without it
                events.socket_message(first)

    def link_item(self, link: str, item: LinkItem) -> None:
        if link == self.link and self._events is not None and isinstance(item, str | bytes):
            self._events.socket_message(item)

    def link_closed(self, link: str, code: int, reason: str) -> None:
        if link == self.link:
            self.link = None
            if self._events is not None:
                self._events.socket_closed(code, reason, False)


class _HubEvents:
    """The hub client's socket events, routed first: frames for the links go to the relay."""

    def __init__(self, upstream: WebSocketUpstream, events: SocketEvents) -> None:
        self.upstream = upstream
        self.events = events

    def socket_opened(self) -> None:
        self.events.socket_opened()

    def socket_message(self, data: Frame) -> None:
        upstream = self.upstream
        own = upstream.from_server(data)
        for frame in own:
            self.events.socket_message(frame)  # ping, pong, welcome: the connection's own
        if not own:
            upstream.client.socket_alive()
        elif upstream.hub.holding:
            upstream.hub.drain()  # a pong may let waiting frames go

    def socket_closed(self, code: int, reason: str, was_clean: bool) -> None:
        self.upstream.last_close = (code, reason)  # what the links are told when they close
        self.events.socket_closed(code, reason, was_clean)


class _HubTransport:
    """The real transport, lent to the hub: its frames pass the relay, and giving it back
    closes the socket only. ``fresh()`` makes one apart from it (a probe's)."""

    def __init__(
        self, upstream: WebSocketUpstream, inner: Transport, fresh: Callable[[], Transport | None]
    ) -> None:
        self.upstream = upstream
        self.inner = inner
        self.fresh = fresh

    def check_url(self, url: str) -> None:
        self.inner.check_url(url)

    def open(self, url: str, protocols: Sequence[str], events: SocketEvents) -> None:
        self.inner.open(url, protocols, _HubEvents(self.upstream, events))

    def send(self, frame: Frame) -> None:
        self.inner.send(frame)

    def buffered_amount(self) -> int:
        return self.inner.buffered_amount()

    def close(self, code: int, reason: str, detach: bool) -> None:
        if detach:  # abandoned by the hub's engine: no close event will say why
            self.upstream.abandoned = reason
        self.inner.close(code, reason, detach)

    def dispose(self) -> None:
        self.inner.close(1000, "", detach=True)


class WebSocketUpstream:
    """The leader's real WebSocket (see the module docstring)."""

    what = "connection"

    def __init__(self, hub: Hub, relay: WsRelay, leader: WebSocketClient, inner: Transport) -> None:
        self.hub = hub
        self.relay = relay
        sockets, wanted = leader._sockets, leader._wanted
        self.client: WebSocketClient = type(leader)(
            leader.url,
            leader.protocols,
            # not persist, storage or share: the hub's connection is its own. It speaks the JSON
            # binding: the relay reads the server's frames to route them to the tabs.
            options=(
                replace(leader.options, protocol="pyrt-json")
                if leader.options.protocol == "pyrt"
                else leader.options
            ),
            transport=_HubTransport(self, inner, lambda: sockets.fresh("websocket")),
            # where WebSockets do not pass, the connection every tab uses goes over HTTP
            http_transport=(
                _HubTransport(self, sockets.socket("http"), lambda: sockets.fresh("http"))
                if "http" in wanted
                else None
            ),
            transports=wanted,
            services=HubServices(hub.services),
            token=leader.token,  # the connection is opened, and its token refreshed, with the leader's
            async_handlers=leader.async_handlers,
        )
        self.page: PageEvents | None = self.client
        self.client.on_state(self._state)
        self._state_now = State.IDLE
        self.last_close: tuple[int, str] | None = None  # the real socket's last close event
        self.abandoned = ""  # why the hub's engine last gave its socket up (a heartbeat, a move)
        self._timers: Timers | None = None
        self._timer: Cancellable | None = None

    def start(self) -> None:
        self.client.connect()

    def transport(self) -> str | None:
        return self.client.transport

    def forward(self, frame: Frame) -> bool:
        client = self.client
        if client.forward(frame):
            return True
        at = client.forward_at()
        if at is not None and self._timer is None:  # None: the pong of the pacer's ping drains
            loop = running_loop()
            if self._timers is None:
                self._timers = self.hub.services.timers(loop)
            self._timer = self._timers.call_later(max(0.0, at - loop.time()), self._ready)
        return False

    def listen(self, type: str) -> None:
        """A WebSocket has no event types."""

    def close(self) -> None:
        if self._timers is not None:
            self._timers.dispose()
            self._timers = self._timer = None
        self.client.close()

    # -- the real connection

    def from_server(self, message: Frame) -> list[Frame]:
        """Route a message from the server; returns the frames that are the connection's own."""
        relay = self.relay
        was_open = relay.server_open
        actions, own = relay.server_message(message)
        if relay.server_open and not was_open:
            # First the group hears what the connection runs over, then the waiting links open:
            # a tab's on_open then reads the shared connection's transport, not its own.
            self.hub.ready()
        self.hub.run(actions)
        return own

    def _ready(self) -> None:
        self._timer = None
        self.hub.drain()

    def _state(self, new: State) -> None:
        old, self._state_now = self._state_now, new
        if self.hub.closing:
            return
        if new is State.OPEN:
            self.last_close = None
            self.abandoned = ""
            if not self.relay.parse:
                self.hub.run(self.relay.server_opened())  # raw: no welcome to wait for
                self.hub.ready()
        elif old is State.OPEN:
            self.hub.lost(1006, self._lost_reason())

    def _lost_reason(self) -> str:
        """Why the links close, as the real connection closed: a tab then reads what an unshared
        client would ("closed with code 1006"), not that a connection it may hold alone was
        "shared". The links' code stays 1006, and a server's ``reconnect_window=`` hint stays
        with the hub: a link always reconnects at once, and the hub decides when the real
        connection comes back."""
        if self.last_close is None:  # abandoned by the hub's engine (a heartbeat, a move to a transport)
            return self.abandoned or "the connection to the server was lost"
        code, reason = self.last_close
        if code == 1006:
            return reason if "=" not in reason else ""
        return f"the server closed the connection with code {code}"
