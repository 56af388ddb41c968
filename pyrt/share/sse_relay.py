"""Routing for one event stream shared by several SSE clients (tabs): who gets which event.

With ``share=``, the leader holds the one real stream (a ``fetch`` or a native ``EventSource``)
and every client — the leader's own included — reads it over a *link* that plays its stream:
the client's own engine still parses, tracks the last event id, reconnects with backoff.
:class:`EventRelay` decides what each link gets:

- a link opens while the real stream is open, with the last event id its client has; the relay
  keeps the newest events in a ring (``ring`` events) and first replays those after that id,
  then the live ones. A client further behind than the ring (when ids are ordered offsets) gets
  the whole ring: what came before it is a gap; with ids that have no order, a client whose id
  is not in the ring goes on live, since the relay cannot tell what it lacks;
- every event goes once to every open link, in order; a link never gets an event at or before
  the last one it got (ordered offsets) or the same id twice in a row (opaque ids) — except
  events without an id of their own (they carry the previous event's, on the same connection),
  which go to every link;
- bytes without an event (a keep-alive comment) reach every open link as a
  :data:`~pyrt.share.relay.KEEP_ALIVE`, at most once every :data:`KEEPALIVE_EVERY` seconds, so
  each client's stall timer sees its stream alive;
- the relay keeps the event types each link's client listens to, and asks the real stream to
  report every type one of them needs (:class:`~pyrt.share.relay.Listen`: a native
  ``EventSource`` reports only the types someone listens to);
- when the real stream is lost, every open link is closed and its client reconnects; the links
  wait until the stream is back. A new leader starts with the ring of events its own client saw,
  so the others catch up from it.

Pure, one of the hub's two strategies (:class:`~pyrt.share.relay.Relay`): every input returns
the actions the hub carries out.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from pyrt.share.relay import (
    KEEP_ALIVE,
    CloseLink,
    EventTypes,
    LinkItem,
    Listen,
    OpenLink,
    RelayAction,
    ToLink,
)
from pyrt.wire.offsets import OffsetKey, offset_key
from pyrt.wire.sse import ServerSentEvent

__all__ = ["KEEPALIVE_EVERY", "EventRelay"]

KEEPALIVE_EVERY = 0.05  # at least this many seconds between keep-alives given to the links


class _Link:
    __slots__ = ("key", "last_id", "participant", "types")

    def __init__(self, participant: str, last_id: str, types: frozenset[str]) -> None:
        self.participant = participant
        self.last_id = last_id
        self.key: OffsetKey | None = offset_key(last_id) if last_id else None
        self.types = types

    def wants(self, event: ServerSentEvent) -> bool:
        """True unless the link had ``event`` already."""
        if not event.id:
            return True
        key = offset_key(event.id)
        if key is not None and self.key is not None:
            return key > self.key
        return event.id != self.last_id

    def got(self, event: ServerSentEvent) -> None:
        if event.id:
            self.last_id = event.id
            key = offset_key(event.id)
            if key is not None:
                self.key = key


class EventRelay:
    """See the module docstring. ``seen``: events this participant's own client received
    before it led (the ring starts with them)."""

    def __init__(self, ring: int = 1000, seen: tuple[ServerSentEvent, ...] = ()) -> None:
        if ring < 1:
            raise ValueError(f"ring must be >= 1, got {ring!r}")
        self.ring: deque[ServerSentEvent] = deque(seen, maxlen=ring)
        self.stream_open = False
        self._links: dict[str, _Link] = {}
        self._pending: dict[str, _Link] = {}
        self._last_id = ""  # the id of the stream's previous event: repeated, it was inherited
        self._types: set[str] = set()  # the named types the real stream was asked to report
        self._alive_at: float | None = None  # when the links last got a keep-alive

    @property
    def links(self) -> int:
        return len(self._links)

    def participants(self) -> int:
        """Distinct participants with an open or waiting link."""
        return len({link.participant for link in (*self._links.values(), *self._pending.values())})

    def types(self) -> set[str]:
        """The named event types the links' clients listen to."""
        return set(self._types)

    def link_requested(self, link: str, participant: str, extra: Mapping[str, Any]) -> list[RelayAction]:
        """A client asks to open ``link``, having seen events up to ``extra["last"]`` (an event
        id) and listening to the event types ``extra["types"]``."""
        if link in self._links or link in self._pending:
            return []
        last = extra.get("last")
        state = _Link(participant, last if isinstance(last, str) else "", _named(extra.get("types")))
        out = self._listen(state.types)
        if not self.stream_open:
            self._pending[link] = state
            return out
        self._links[link] = state
        return out + self._catch_up(link, state)

    def link_sent(self, link: str, item: LinkItem) -> list[RelayAction]:
        """From a link: the event types its client listens to now (:class:`EventTypes`)."""
        state = self._links.get(link) or self._pending.get(link)
        if state is None or not isinstance(item, EventTypes):
            return []
        state.types = _named(list(item.types))
        return self._listen(state.types)

    def link_closed(self, link: str) -> list[RelayAction]:
        self._links.pop(link, None)
        self._pending.pop(link, None)
        return []

    def stream_opened(self) -> list[RelayAction]:
        """The real stream is open: open the waiting links and catch them up."""
        self.stream_open = True
        self._last_id = ""  # a replay repeating the last id seen is a duplicate, not inheritance
        out: list[RelayAction] = []
        pending, self._pending = self._pending, {}
        for link, state in pending.items():
            self._links[link] = state
            out += self._catch_up(link, state)
        return out

    def lost(self, code: int = 1006, reason: str = "the shared stream was lost") -> list[RelayAction]:
        """The real stream is gone: close every open link (their clients reconnect)."""
        self.stream_open = False
        closing = list(self._links)
        self._links.clear()
        return [CloseLink(link, code, reason) for link in closing]

    def event(self, event: ServerSentEvent) -> list[RelayAction]:
        """An event of the real stream: into the ring, and to every link that lacks it."""
        self.ring.append(event)
        inherited = bool(event.id) and event.id == self._last_id
        self._last_id = event.id
        out: list[RelayAction] = []
        for link, state in self._links.items():
            if inherited or state.wants(event):
                state.got(event)
                out.append(ToLink(link, event))
        return out

    def keep_alive(self, now: float) -> list[RelayAction]:
        """Bytes without an event arrived at ``now``: a keep-alive for every open link (a burst
        of them only once per :data:`KEEPALIVE_EVERY` seconds)."""
        if self._alive_at is not None and now - self._alive_at < KEEPALIVE_EVERY:
            return []
        self._alive_at = now
        return [ToLink(link, KEEP_ALIVE) for link in self._links]

    def _listen(self, types: frozenset[str]) -> list[RelayAction]:
        added = sorted(types - self._types)
        self._types.update(added)
        return [Listen(type) for type in added]

    def _catch_up(self, link: str, state: _Link) -> list[RelayAction]:
        out: list[RelayAction] = [OpenLink(link)]
        if not state.last_id or not self.ring:
            return out
        ring = self.ring
        index = next((i for i in range(len(ring) - 1, -1, -1) if ring[i].id == state.last_id), None)
        if index is not None:
            for event in list(ring)[index + 1 :]:
                state.got(event)
                out.append(ToLink(link, event))
            return out
        if state.key is None:
            return out  # an id without order, not in the ring: nothing tells what the link lacks
        for event in ring:  # behind the ring (a gap before it) or ahead of it: what the link lacks
            if state.wants(event):
                state.got(event)
                out.append(ToLink(link, event))
        return out


def _named(types: object) -> frozenset[str]:
    """The named event types of a list (``"message"`` is always reported)."""
    if not isinstance(types, list | tuple):
        return frozenset()
    return frozenset(t for t in types if isinstance(t, str) and t != "message")
