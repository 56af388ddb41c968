"""The leader's side of a share group, for any kind of connection: the links, a relay, the real connection.

The participant that leads a group (:mod:`pyrt.aio.share`) runs one :class:`Hub`. The hub is the
same for a WebSocket and for an event stream; what differs is given to it:

- a **relay** (:class:`~pyrt.share.relay.Relay`, pure): the WebSocket one
  (:class:`~pyrt.share.ws_relay.WsRelay`) or the event-stream one
  (:class:`~pyrt.share.sse_relay.EventRelay`), which decides what crosses between the links
  and the real connection;
- an **upstream** (:class:`Upstream`): the real connection, a client of the leader's kind on
  the leader's own transport (:class:`~pyrt.aio.ws_share.WebSocketUpstream`,
  :class:`~pyrt.aio.sse_share.StreamUpstream`), which feeds the relay what the server sends.

The hub keeps which participant owns each link, hands the links' requests, items and closes to
the relay, and carries out what the relay decides: items to links (over the group's channel, or
directly to its own participant's links), links opened and closed, event types to listen to, and
frames onto the real connection. Those frames go as they are, encoded once by the client that sent
them: the upstream only asks the connection's pacer (``forward``). When the connection cannot
take one now (the server's limits, a full socket buffer), it waits here, and so does everything
after it that must stay in order (frames, and answers such as a pong that confirm them), until the
upstream calls :meth:`Hub.drain`. What waits is dropped when the connection is lost: the links
close with it, and their clients send again what was not acknowledged.

It prunes the links of participants that vanished (:meth:`Hub.prune`, called by the participant)
and hears the page of the tab it runs in: ``pagehide`` hands the lead to another tab
(:meth:`Participant.resign`); the page's other events go to the upstream's client.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from pyrt.errors import ShareUnavailable
from pyrt.share.relay import CloseLink, Listen, OpenLink, RelayAction, ToLink, ToServer

if TYPE_CHECKING:
    import asyncio

    from pyrt.aio.share import Participant
    from pyrt.persist.records import RecordStore
    from pyrt.ports.services import PageEvents, Preferences, Services, Timers, Watching
    from pyrt.share.channel import ShareChannel
    from pyrt.share.relay import LinkItem, Relay
    from pyrt.wire.types import Frame

__all__ = ["Hub", "HubServices", "Upstream"]


class Upstream(Protocol):
    """The real connection of a hub (see the module docstring). ``client`` is the hub's own
    client on it; ``page`` receives the page's events (``None``: it has no use for them);
    ``what`` names it to the links' clients (``"connection"``, ``"stream"``)."""

    client: Any
    page: PageEvents | None
    what: str

    def start(self) -> None: ...

    def transport(self) -> str | None:
        """What the real connection runs over now (``None``: it does not say)."""

    def forward(self, frame: Frame) -> bool:
        """Send ``frame`` as it is, if the connection can take it now; False: it cannot, and
        the upstream calls :meth:`Hub.drain` when it may."""
        ...

    def listen(self, type: str) -> None:
        """Have the real stream report events of ``type``."""

    def close(self) -> None: ...


class Hub:
    """See the module docstring. ``connect(hub)`` makes the upstream."""

    def __init__(
        self,
        participant: Participant,
        relay: Relay,
        services: Services,
        connect: Callable[[Hub], Upstream],
    ) -> None:
        self.participant = participant
        self.relay = relay
        self.services = services
        self.closing = False
        self._owners: dict[str, str] = {}  # link -> its participant
        self._held: deque[RelayAction] = deque()  # waiting for the connection, in order
        self._draining = False
        self._watching: Watching | None = None
        self.upstream = connect(self)

    @property
    def client(self) -> Any:
        """The hub's own client on the real connection."""
        return self.upstream.client

    @property
    def holding(self) -> int:
        """How many actions wait for the real connection to take a frame."""
        return len(self._held)

    # -- the participant's side

    def start(self) -> None:
        self.upstream.start()
        self._watching = self.services.watch_page(self)

    def link_requested(self, link: str, participant: str, extra: dict[str, Any]) -> None:
        self._owners[link] = participant
        self.run(self.relay.link_requested(link, participant, extra))
        self._count()

    def link_sent(self, link: str, item: LinkItem) -> None:
        self.run(self.relay.link_sent(link, item))

    def link_closed(self, link: str) -> None:
        self._owners.pop(link, None)
        self.run(self.relay.link_closed(link))
        self._count()

    def prune(self, alive: set[str]) -> None:
        """Close the links of participants not in ``alive``."""
        for link, owner in list(self._owners.items()):
            if owner not in alive:
                self.link_closed(link)
                # Gone, as far as the locks tell: should it still be there, it reconnects.
                self.participant.tell_closed(owner, link, 1006, "the tab was not seen")

    def close(self) -> None:
        """Stop leading: close every link and the real connection."""
        if self.closing:
            return
        self.closing = True
        if self._watching is not None:
            self._watching.stop()
            self._watching = None
        self._held.clear()
        self.run(self.relay.lost(1001, f"the tab holding the shared {self.upstream.what} is leaving"))
        self._owners.clear()
        self.upstream.close()

    # -- the upstream's side

    def run(self, actions: list[RelayAction]) -> None:
        """Carry out what the relay decided, in order (see the module docstring)."""
        held = self._held
        upstream = self.upstream
        for action in actions:
            if type(action) is ToServer:
                if held or not upstream.forward(action.frame):
                    held.append(action)
            elif type(action) is ToLink and held and action.in_turn:
                held.append(action)
            else:
                self._perform(action)

    def drain(self) -> None:
        """The real connection may take frames again: send what waits, in order."""
        if self._draining:
            return
        self._draining = True
        try:
            held = self._held
            while held:
                action = held[0]
                if type(action) is ToServer and not self.upstream.forward(action.frame):
                    return
                held.popleft()
                if type(action) is not ToServer:
                    self._perform(action)
        finally:
            self._draining = False

    def ready(self) -> None:
        """The real connection is open (again): the waiting clients may reconnect now."""
        self.participant.connection_ready(self.upstream.transport())

    def lost(self, code: int, reason: str) -> None:
        """The real connection is gone: what waited for it is dropped, every link closes."""
        self._held.clear()
        self.run(self.relay.lost(code, reason))

    # -- the page of the tab the hub runs in (PageEvents)

    def page_online(self) -> None:
        if self.upstream.page is not None:
            self.upstream.page.page_online()

    def page_visible(self) -> None:
        if self.upstream.page is not None:
            self.upstream.page.page_visible()

    def page_backgrounded(self) -> None:
        if self.upstream.page is not None:
            self.upstream.page.page_backgrounded()

    def page_hidden(self) -> None:
        """The page is going away: another tab takes the connection over."""
        self.participant.resign()

    def page_shown(self) -> None:
        """Back from the back/forward cache: this participant queued for the lead again."""

    # -- machinery

    def _perform(self, action: RelayAction) -> None:
        participant = self.participant
        if type(action) is ToLink:
            owner = self._owners.get(action.link)
            if owner is not None:
                participant.tell_item(owner, action.link, action.item)
        elif type(action) is OpenLink:
            owner = self._owners.get(action.link)
            if owner is not None:
                participant.tell_opened(owner, action.link, action.first)
        elif type(action) is CloseLink:
            owner = self._owners.pop(action.link, None)
            if owner is not None:
                participant.tell_closed(owner, action.link, action.code, action.reason)
        elif type(action) is Listen:
            self.upstream.listen(action.type)

    def _count(self) -> None:
        self.participant.set_tabs(self.relay.participants())


class _NotWatching:
    def stop(self) -> None:
        """Nothing to release."""


class HubServices:
    """The services of a hub's own client: the runtime's timers and preferences (the transport
    that works, for every tab), and nothing else — no page (the hub hears it and passes it on),
    no storage, no sharing."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def watch_page(self, events: PageEvents) -> Watching:
        return _NotWatching()

    def record_store(self) -> RecordStore | None:
        return None

    def timers(self, loop: asyncio.AbstractEventLoop) -> Timers:
        return self.services.timers(loop)

    def share_channel(self, name: str) -> ShareChannel:
        raise ShareUnavailable("a hub's own connection is not shared again")

    def preferences(self) -> Preferences | None:
        return self.services.preferences()
