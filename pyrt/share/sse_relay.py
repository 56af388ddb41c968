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
- when the real stream is lost, every open link is closed and its client reconnects; the links
  wait until the stream is back. A new leader starts with the ring of events its own client saw,
  so the others catch up from it.

Pure: inputs return :data:`EventRelayAction` lists for the caller to carry out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from pyrt.wire.offsets import OffsetKey, offset_key
from pyrt.wire.sse import ServerSentEvent

__all__ = ["CloseStream", "Deliver", "EventRelay", "EventRelayAction", "OpenStream"]


@dataclass(frozen=True, slots=True)
class OpenStream:
    """``link`` is open: its client sees its stream open."""

    link: str


@dataclass(frozen=True, slots=True)
class Deliver:
    """Give ``event`` to the client at ``link``."""

    link: str
    event: ServerSentEvent


@dataclass(frozen=True, slots=True)
class CloseStream:
    """``link`` is closed: its client sees its stream fail with ``reason`` (and reconnects)."""

    link: str
    reason: str


EventRelayAction = OpenStream | Deliver | CloseStream


class _Link:
    __slots__ = ("key", "last_id", "participant")

    def __init__(self, participant: str, last_id: str) -> None:
        self.participant = participant
        self.last_id = last_id
        self.key: OffsetKey | None = offset_key(last_id) if last_id else None

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

    @property
    def links(self) -> int:
        return len(self._links)

    def participants(self) -> int:
        """Distinct participants with an open or waiting link."""
        return len({link.participant for link in (*self._links.values(), *self._pending.values())})

    def link_requested(self, link: str, participant: str, last_event_id: str) -> list[EventRelayAction]:
        """A client asks to open ``link``, having seen events up to ``last_event_id``."""
        if link in self._links or link in self._pending:
            return []
        state = _Link(participant, last_event_id)
        if not self.stream_open:
            self._pending[link] = state
            return []
        self._links[link] = state
        return self._catch_up(link, state)

    def link_closed(self, link: str) -> None:
        self._links.pop(link, None)
        self._pending.pop(link, None)

    def stream_opened(self) -> list[EventRelayAction]:
        """The real stream is open: open the waiting links and catch them up."""
        self.stream_open = True
        self._last_id = ""  # a replay repeating the last id seen is a duplicate, not inheritance
        out: list[EventRelayAction] = []
        pending, self._pending = self._pending, {}
        for link, state in pending.items():
            self._links[link] = state
            out += self._catch_up(link, state)
        return out

    def stream_lost(self, reason: str = "the shared stream was lost") -> list[EventRelayAction]:
        """The real stream is gone: close every open link (their clients reconnect)."""
        self.stream_open = False
        closing = list(self._links)
        self._links.clear()
        return [CloseStream(link, reason) for link in closing]

    def event(self, event: ServerSentEvent) -> list[EventRelayAction]:
        """An event of the real stream: into the ring, and to every link that lacks it."""
        self.ring.append(event)
        inherited = bool(event.id) and event.id == self._last_id
        self._last_id = event.id
        out: list[EventRelayAction] = []
        for link, state in self._links.items():
            if inherited or state.wants(event):
                state.got(event)
                out.append(Deliver(link, event))
        return out

    def _catch_up(self, link: str, state: _Link) -> list[EventRelayAction]:
        out: list[EventRelayAction] = [OpenStream(link)]
        if not state.last_id or not self.ring:
            return out
        ring = self.ring
        index = next((i for i in range(len(ring) - 1, -1, -1) if ring[i].id == state.last_id), None)
        if index is not None:
            for event in list(ring)[index + 1 :]:
                state.got(event)
                out.append(Deliver(link, event))
            return out
        if state.key is None:
            return out  # an id without order, not in the ring: nothing tells what the link lacks
        for event in ring:  # behind the ring (a gap before it) or ahead of it: what the link lacks
            if state.wants(event):
                state.got(event)
                out.append(Deliver(link, event))
        return out
