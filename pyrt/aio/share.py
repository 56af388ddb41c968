"""One client's membership in a share group: the election, the links, and the hub while leading.

Every client made with ``share=`` is a :class:`Participant` of the group named after it. All of
them queue for the group's lock (:class:`~pyrt.share.channel.ShareChannel`); the one holding it
leads: it runs the hub (:class:`pyrt.aio.hub.Hub`: the real connection and a relay) and tells
the others (``leader``). Every client, the leader's own included, reaches the hub over a *link*
(its shared transport is a :class:`SharedTransport`, one link at a time): messages on the
group's channel (:mod:`pyrt.share.messages`), or direct calls when the hub is in the same
participant (always a turn of the event loop later, as a channel would deliver).

When the leader changes — it closed, its page went away (``bye``), or it crashed and the browser
gave its lock to the next in line (who says ``leader``) — every link to the old one is closed
and every link end is told a leader is ready, so the clients reconnect at once: each re-sends
its unacknowledged messages with their ids and resubscribes from its own offsets, and the new
hub's real connection carries them. Nothing else is shared: each client keeps its own queue,
acks, offsets and handlers.

The hub prunes the links of participants that vanished without a word (a crashed tab): each
participant holds a lock of its own for as long as it lives, and the hub asks which are held
(or requested); one missing from two checks in a row is gone.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from pyrt.share.channel import ShareChannel
from pyrt.share.messages import decode, encode, encode_link

if TYPE_CHECKING:
    from pyrt.share.relay import LinkItem

__all__ = ["HubRole", "LinkEnd", "Participant", "SharedTransport", "Sharing"]

Role = Literal["joining", "leader", "follower"]


class _Checks(Protocol):
    def check_url(self, url: str) -> None: ...


Inner = TypeVar("Inner", bound=_Checks)
PRUNE_INTERVAL = 5.0  # seconds between checks for participants that vanished


@dataclass(frozen=True, slots=True)
class Sharing:
    """How a shared client shares: its group ``name``, its ``role`` (``"leader"`` holds the
    real connection, ``"follower"`` uses the leader's, ``"joining"`` knows no leader yet) and
    how many participants (``tabs``: tabs and workers) use the connection now, and what it runs
    over (``transport``: ``"websocket"``, ``"http"``; ``None`` until it first opens, and for an
    event stream)."""

    name: str
    role: Role
    tabs: int
    transport: str | None = None


class LinkEnd(Protocol):
    """A client's end of its links (a shared transport)."""

    def link_opened(self, link: str, first: LinkItem | None) -> None:
        """``link`` is open; ``first`` came with it (a WebSocket link's welcome)."""

    def link_item(self, link: str, item: LinkItem) -> None: ...

    def link_closed(self, link: str, code: int, reason: str) -> None: ...

    def leader_ready(self) -> None:
        """A leader is known (a new one, or the first): reconnect now if waiting."""


class HubRole(Protocol):
    """The leader's side, as the participant sees it (:class:`pyrt.aio.hub.Hub`)."""

    def start(self) -> None: ...

    def link_requested(self, link: str, participant: str, extra: dict[str, Any]) -> None: ...

    def link_sent(self, link: str, item: LinkItem) -> None: ...

    def link_closed(self, link: str) -> None: ...

    def prune(self, alive: set[str]) -> None:
        """Close the links of participants not in ``alive``."""

    def close(self) -> None:
        """Stop leading: close every link and the real connection."""


class Participant:
    """See the module docstring. ``make_hub`` builds the hub when this participant leads;
    ``name`` is the group's name as the user gave it (default: the channel's)."""

    def __init__(
        self,
        channel: ShareChannel,
        make_hub: Callable[[Participant], HubRole],
        loop: asyncio.AbstractEventLoop,
        rng: Callable[[], float] = random.random,
        name: str | None = None,
    ) -> None:
        self.channel = channel
        self.name = name if name is not None else channel.name  # what Sharing reports
        self.id = f"{int(rng() * 36**8):08x}{int(rng() * 2**32):08x}"
        self._make_hub = make_hub
        self._loop = loop
        self.leader: str | None = None
        self.hub: HubRole | None = None
        self.tabs = 0
        self.transport: str | None = None  # what the real connection runs over, when it says
        self._links: dict[str, tuple[LinkEnd, dict[str, Any], str | None]] = {}  # link -> end, extra, leader
        self._ends: list[LinkEnd] = []
        self._count = 0
        self._started = False
        self._closed = False
        self._leaving = False  # the client is closing: it takes the lead no more
        self._prune_timer: asyncio.TimerHandle | None = None
        self._members: set[str] | None = None  # the participants the last check found
        self._leading_since = 0.0

    @property
    def leading(self) -> bool:
        return self.hub is not None

    def sharing(self) -> Sharing:
        role: Role = "leader" if self.leading else ("follower" if self.leader is not None else "joining")
        return Sharing(self.name, role, self.tabs, self.transport)

    # -- lifecycle

    def start(self) -> None:
        """Join the group: listen, queue for the lock, ask who leads."""
        if self._started:
            return
        self._started = True
        self.channel.join(self.id)
        self.channel.listen(self._on_message)
        self.channel.request_lead(self._granted)
        self._post("hello")

    def close(self) -> None:
        """Leave the group for good (the client closed)."""
        if self._closed:
            return
        self._closed = True
        for link in list(self._links):
            self.close_link(link, 1000, "client closed")
        self._abdicate()
        self.channel.dispose()

    def leaving(self) -> None:
        """The client is closing: withdraw from the election (a lock granted meanwhile is given
        back at once), so it never opens a connection only to close it. A leader keeps leading
        until its client's link is closed (:meth:`close`)."""
        self._leaving = True
        if not self._closed and not self.leading:
            self.channel.resign()

    def resign(self) -> None:
        """Stop leading but stay (the page is going away and may come back): another
        participant takes over; this one queues for the lock again."""
        if self._closed or not self.leading:
            return
        self._abdicate()
        if not self._leaving:
            self.channel.request_lead(self._granted)

    def _abdicate(self) -> None:
        hub = self.hub
        if hub is None:
            return
        self.hub = None
        if self._prune_timer is not None:
            self._prune_timer.cancel()
            self._prune_timer = None
        hub.close()
        self._post("bye")
        self.channel.resign()
        if self.leader == self.id:
            self.leader = None
            self._leader_gone()

    # -- the client's side (a shared transport)

    def add_end(self, end: LinkEnd) -> None:
        """``end`` hears when a leader is ready (its client may reconnect then)."""
        if end not in self._ends:
            self._ends.append(end)

    def new_link(self) -> str:
        self._count += 1
        return f"{self.id}.{self._count}"

    def open_link(self, link: str, end: LinkEnd, extra: dict[str, Any] | None = None) -> None:
        """Open ``link`` to the leader (when one is known; at once otherwise)."""
        self._links[link] = (end, dict(extra or {}), None)
        if self.leader is not None:
            self._request(link)

    def link_send(self, link: str, item: LinkItem) -> None:
        """``item`` on ``link`` to the leader it was opened to (dropped when none)."""
        entry = self._links.get(link)
        if entry is None or entry[2] is None:
            return
        leader = entry[2]
        if leader == self.id:
            self._loop.call_soon(self._at_hub, {"t": "item", "f": self.id, "l": link, "i": item})
        else:
            self.channel.post(encode_link("item", self.id, leader, link, item))

    def close_link(self, link: str, code: int = 1000, reason: str = "") -> None:
        entry = self._links.pop(link, None)
        if entry is not None and entry[2] is not None:
            self._to_hub(entry[2], link, {"t": "close", "f": self.id, "l": link, "c": code, "r": reason})

    # -- the hub's side

    def tell_item(self, participant: str, link: str, item: LinkItem) -> None:
        """``item`` from the hub to ``link`` of ``participant``."""
        self._to_end("item", participant, link, item)

    def tell_opened(self, participant: str, link: str, first: LinkItem | None) -> None:
        """``link`` of ``participant`` is open, with its ``first`` item."""
        self._to_end("opened", participant, link, first)

    def tell_closed(self, participant: str, link: str, code: int, reason: str) -> None:
        """``link`` of ``participant`` is closed."""
        message = {"t": "close", "f": self.id, "to": participant, "l": link, "c": code, "r": reason}
        if participant == self.id:
            self._loop.call_soon(self._at_end, message)
        else:
            self.channel.post(encode("close", self.id, to=participant, l=link, c=code, r=reason))

    def _to_end(self, kind: str, participant: str, link: str, item: LinkItem | None) -> None:
        if participant == self.id:
            message = {"t": kind, "f": self.id, "to": participant, "l": link, "i": item}
            self._loop.call_soon(self._at_end, message)
        else:
            self.channel.post(encode_link(kind, self.id, participant, link, item))

    def connection_ready(self, transport: str | None = None) -> None:
        """The hub's real connection is open (again), over ``transport``: every client waiting
        may reconnect now."""
        self.transport = transport
        self._post("ready", v=transport)
        self._loop.call_soon(self._ready)

    def _ready(self) -> None:
        for end in list(self._ends):
            end.leader_ready()

    def set_tabs(self, tabs: int) -> None:
        """The hub counted ``tabs`` participants: tell every one."""
        if tabs != self.tabs:
            self.tabs = tabs
            self._post("tabs", n=tabs, v=self.transport)

    # -- machinery

    def _post(self, kind: str, **fields: Any) -> None:
        if not self._closed or kind == "bye":
            self.channel.post(encode(kind, self.id, **fields))

    def _granted(self) -> None:
        if self._closed or self.hub is not None:
            return
        if self._leaving:
            self.channel.resign()  # the next in line leads
            return
        self._leading_since = self._loop.time()
        self.hub = self._make_hub(self)
        self._members = None
        self.leader = self.id
        self.tabs = 0
        self.hub.start()
        self._post("leader", e=self._leading_since)
        self._schedule_prune()
        self._leader_changed()

    def _schedule_prune(self) -> None:
        self._prune_timer = self._loop.call_later(PRUNE_INTERVAL, self._prune)

    def _prune(self) -> None:
        self._prune_timer = None
        hub = self.hub
        if hub is None:
            return

        def alive(members: set[str]) -> None:
            # Absent twice in a row: a participant whose lock the query missed once (requested
            # but not granted yet, on a busy machine) is not dropped.
            seen, self._members = self._members, members
            if self.hub is hub and seen is not None:
                hub.prune(members | seen | {self.id})

        self.channel.members(alive)
        self._schedule_prune()

    def _request(self, link: str) -> None:
        end, extra, _ = self._links[link]
        leader = self.leader
        assert leader is not None
        self._links[link] = (end, extra, leader)
        self._to_hub(leader, link, {"t": "open", "f": self.id, "l": link, "x": extra})

    def _to_hub(self, leader: str, link: str, message: dict[str, Any]) -> None:
        if leader == self.id:
            self._loop.call_soon(self._at_hub, message)
        else:
            fields = {k: v for k, v in message.items() if k not in ("t", "f")}
            self.channel.post(encode(message["t"], self.id, to=leader, **fields))

    def _on_message(self, text: str) -> None:
        message = decode(text)
        if message is None or self._closed:
            return
        kind, sender = message["t"], message["f"]
        if kind == "hello":
            if self.leading:
                self._post("leader", e=self._leading_since)
                self._post("tabs", n=self.tabs, v=self.transport)
        elif kind == "leader":
            if sender != self.leader and not self.leading:
                self.leader = sender
                self._leader_changed()
        elif kind == "bye":
            if sender == self.leader:
                self.leader = None
                self._leader_gone()
        elif kind == "tabs":
            if sender == self.leader and isinstance(message.get("n"), int):
                self.tabs = message["n"]
                via = message.get("v")
                self.transport = via if isinstance(via, str) else self.transport
        elif kind == "ready":
            if sender == self.leader:
                via = message.get("v")
                self.transport = via if isinstance(via, str) else None
                self._ready()
        elif message.get("to") == self.id:
            link = message.get("l")
            if isinstance(link, str) and link.startswith(self.id + "."):
                self._at_end(message)  # about one of this participant's own links
            else:
                self._at_hub(message)

    def _at_hub(self, message: dict[str, Any]) -> None:
        hub = self.hub
        link = message.get("l")
        if hub is None or not isinstance(link, str):
            if message["t"] == "open" and isinstance(link, str):  # not leading (any more)
                self.tell_closed(message["f"], link, 1006, "not the leader")
            return
        kind = message["t"]
        if kind == "item":
            hub.link_sent(link, message["i"])
        elif kind == "open":
            extra = message.get("x")
            hub.link_requested(link, message["f"], extra if isinstance(extra, dict) else {})
        elif kind == "close":
            hub.link_closed(link)

    def _at_end(self, message: dict[str, Any]) -> None:
        link = message.get("l")
        entry = self._links.get(link) if isinstance(link, str) else None
        if entry is None or entry[2] != message["f"] or not isinstance(link, str):
            return  # a link closed meanwhile, or a message from a leader it no longer uses
        end = entry[0]
        kind = message["t"]
        if kind == "item":
            end.link_item(link, message["i"])
        elif kind == "opened":
            end.link_opened(link, message["i"])
        elif kind == "close":
            del self._links[link]
            code, reason = message.get("c"), message.get("r")
            code = code if isinstance(code, int) else 1006
            end.link_closed(link, code, reason if isinstance(reason, str) else "")

    def _leader_changed(self) -> None:
        """A (new) leader: links to another one are lost; waiting links go to this one."""
        leader = self.leader
        for link, (end, _, opened_to) in list(self._links.items()):
            if opened_to is not None and opened_to != leader:
                del self._links[link]
                end.link_closed(link, 1006, "the tab holding the shared connection went away")
            elif opened_to is None:
                self._request(link)
        self._ready()

    def _leader_gone(self) -> None:
        for link, (end, _, opened_to) in list(self._links.items()):
            if opened_to is not None:
                del self._links[link]
                end.link_closed(link, 1006, "the tab holding the shared connection went away")


class SharedTransport(Generic[Inner]):
    """What every shared transport is: one link at a time from its client to the leader's hub,
    and a client woken when a leader is ready (``reconnect``: a waiting reconnect happens now).
    ``inner`` is this runtime's real transport of the same kind, lent to the hub while the client
    leads. The kinds say what the link plays (:mod:`pyrt.aio.ws_share`, :mod:`pyrt.aio.sse_share`)."""

    def __init__(
        self,
        participant: Participant,
        inner: Inner,
        loop: asyncio.AbstractEventLoop,
        reconnect: Callable[[], None],
    ) -> None:
        self.participant = participant
        self.inner = inner
        self._loop = loop
        self._reconnect = reconnect
        self.link: str | None = None
        participant.add_end(self)

    def check_url(self, url: str) -> None:
        self.inner.check_url(url)

    def _open(self, extra: dict[str, Any] | None = None) -> None:
        """Open a new link (closing the current one)."""
        self._close_link()
        link = self.link = self.participant.new_link()
        self.participant.open_link(link, self, extra)

    def _close_link(self, code: int = 1000, reason: str = "") -> str | None:
        """Close the current link, if any; returns it."""
        link, self.link = self.link, None
        if link is not None:
            self.participant.close_link(link, code, reason)
        return link

    def leader_ready(self) -> None:
        self._reconnect()

    def link_opened(self, link: str, first: LinkItem | None) -> None:
        raise NotImplementedError

    def link_item(self, link: str, item: LinkItem) -> None:
        raise NotImplementedError

    def link_closed(self, link: str, code: int, reason: str) -> None:
        raise NotImplementedError
