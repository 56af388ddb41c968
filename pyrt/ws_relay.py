"""Routing for one WebSocket shared by several clients (tabs): who gets which frame.

With ``share=``, one tab (the leader) holds the real connection and every client — the leader's
own included — talks to it over a *link*: each client keeps its own engine (queue, acks with
their ids, retries, subscriptions with their offsets, heartbeat) and sees the link as its socket.
:class:`WsRelay` decides, frame by frame, what crosses between the links and the real connection:

- from a link: a ``ping`` is answered at once (the link's liveness is the leader's); a
  ``subscribe`` joins the channel's one server subscription (a new one, or — for an offset older
  than what the shared subscription delivered — a re-subscription from that offset, whose replay
  every link filters by its own offset); an ``unsubscribe`` leaves it (the server unsubscribes
  when the last link leaves); a frame with an ``id`` is sent and its id remembered, so the ack
  or error goes back to that link only; anything else is sent as it is;
- from the server: ``ping``, ``pong`` and ``welcome`` belong to the real connection (the caller
  gives them to its engine); an ``ack`` or ``error`` with a remembered id goes to its link; a
  ``publication`` to the links subscribed to its channel; ``subscribed`` to the links waiting for
  that answer; everything else (messages from the application, frames of types this module does
  not know) to every link;
- links open only while the real connection is open — from its ``welcome`` on (with ``raw``, as
  soon as it opens: :meth:`WsRelay.server_opened`) — and each gets a ``welcome``; when it is lost,
  every open link is closed, so each client re-sends its unacknowledged messages with their ids
  (the server deduplicates) and resubscribes from its own offsets when its link opens again.

With the ``raw`` protocol nothing is parsed: every frame goes to the server or to every link.
Pure: inputs return :data:`RelayAction` lists for the caller to carry out.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pyrt.offsets import OffsetKey, offset_key
from pyrt.wire import Frame

__all__ = ["CloseLink", "OpenLink", "RelayAction", "ToLink", "ToServer", "WsRelay"]


@dataclass(frozen=True, slots=True)
class ToServer:
    """Send ``frame`` on the real connection."""

    frame: Frame


@dataclass(frozen=True, slots=True)
class ToLink:
    """Deliver ``frame`` to the client at the end of ``link``."""

    link: str
    frame: Frame


@dataclass(frozen=True, slots=True)
class OpenLink:
    """``link`` is open (its client sees its socket open); a ``ToLink`` with a welcome follows."""

    link: str


@dataclass(frozen=True, slots=True)
class CloseLink:
    """``link`` is closed (its client sees its socket close with ``code``/``reason``)."""

    link: str
    code: int
    reason: str


RelayAction = ToServer | ToLink | OpenLink | CloseLink

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _since_key(since: str | None) -> OffsetKey | None:
    return offset_key(since) if since is not None else None


@dataclass(slots=True)
class _Request:
    """A subscribe frame sent for ``since`` and the links waiting for its answer; or, with
    ``unsubscribe``, the unsubscribe frame sent when the last link left (answered too)."""

    since: str | None
    waiting: set[str] = field(default_factory=set)
    unsubscribe: bool = False


@dataclass(slots=True)
class _Channel:
    receiving: set[str] = field(default_factory=set)  # links that get its publications
    latest: str | None = None  # newest offset delivered or confirmed on the real connection
    latest_key: OffsetKey | None = None
    active: bool = False  # the server answered a subscribe on this connection
    requests: deque[_Request] = field(default_factory=deque)  # answers pending, in send order

    def members(self) -> set[str]:
        waiting = set().union(*(r.waiting for r in self.requests)) if self.requests else set()
        return self.receiving | waiting

    def advance(self, offset: Any) -> None:
        if not isinstance(offset, str):
            return
        key = offset_key(offset)
        if key is None or self.latest_key is None or key > self.latest_key:
            self.latest, self.latest_key = offset, key


class WsRelay:
    """See the module docstring. ``parse``: False for the ``raw`` protocol (nothing is parsed)."""

    def __init__(self, parse: bool = True) -> None:
        self.parse = parse
        self.server_open = False
        self.session: str | None = None
        self._links: dict[str, str] = {}  # open link -> its participant
        self._pending: dict[str, str] = {}  # link waiting for the real connection -> participant
        self._channels: dict[str, _Channel] = {}
        self._acks: dict[Any, str] = {}  # message id -> link

    # -- what the caller may ask

    @property
    def links(self) -> int:
        """Open links."""
        return len(self._links)

    def participants(self) -> int:
        """Distinct participants (tabs, workers) with an open or waiting link."""
        return len(set(self._links.values()) | set(self._pending.values()))

    def is_open(self, link: str) -> bool:
        return link in self._links

    # -- links

    def link_requested(self, link: str, participant: str) -> list[RelayAction]:
        """A client asks to open ``link``: at once when the real connection is open."""
        if link in self._links or link in self._pending:
            return []
        if not self.server_open:
            self._pending[link] = participant
            return []
        self._links[link] = participant
        return self._opened(link)

    def link_closed(self, link: str) -> list[RelayAction]:
        """The client closed ``link`` (or its tab went away): forget its subscriptions and ids."""
        self._pending.pop(link, None)
        if self._links.pop(link, None) is None:
            return []
        out: list[RelayAction] = []
        for name in [n for n, c in self._channels.items() if link in c.members()]:
            out += self._leave(name, link)
        for ack_id in [i for i, owner in self._acks.items() if owner == link]:
            del self._acks[ack_id]
        return out

    def link_frame(self, link: str, frame: Frame) -> list[RelayAction]:
        """A frame from the client at ``link``."""
        if link not in self._links:
            return []  # closed meanwhile: as on a socket that is gone, the frame is lost
        if not self.parse or not isinstance(frame, str) or not frame.startswith("{"):
            return [ToServer(frame)]
        try:
            obj = json.loads(frame)
        except ValueError:
            return [ToServer(frame)]
        if not isinstance(obj, dict):
            return [ToServer(frame)]
        kind = obj.get("type")
        if kind == "ping":
            pong = {"type": "pong", "t": obj["t"]} if "t" in obj else {"type": "pong"}
            return [ToLink(link, _encode(pong))]
        if kind == "subscribe" and isinstance(obj.get("channel"), str):
            since = obj.get("since")
            return self._subscribe(link, obj["channel"], since if isinstance(since, str) else None)
        if kind == "unsubscribe" and isinstance(obj.get("channel"), str):
            channel = obj["channel"]
            answer = _encode({"type": "unsubscribed", "channel": channel})
            return [ToLink(link, answer), *self._leave(channel, link)]
        ack_id = obj.get("id")
        if ack_id is not None and isinstance(ack_id, str | int) and not isinstance(ack_id, bool):
            self._acks[ack_id] = link
        return [ToServer(frame)]

    # -- the real connection

    def server_opened(self, session: str | None = None) -> list[RelayAction]:
        """The real connection is open: open every waiting link."""
        self.server_open = True
        self.session = session
        out: list[RelayAction] = []
        pending, self._pending = self._pending, {}
        for link, participant in pending.items():
            self._links[link] = participant
            out += self._opened(link)
        return out

    def server_lost(
        self, code: int = 1006, reason: str = "the shared connection was lost"
    ) -> list[RelayAction]:
        """The real connection is gone: close every open link; their clients reconnect (the
        links wait until the real connection is back) and restore what they had."""
        self.server_open = False
        self.session = None
        self._channels.clear()
        self._acks.clear()
        closing = list(self._links)
        self._links.clear()
        return [CloseLink(link, code, reason) for link in closing]

    def server_frame(self, frame: Frame) -> tuple[list[RelayAction], bool]:
        """A frame from the server. Returns the deliveries, and True when the frame belongs to
        the real connection (``ping``, ``pong``, ``welcome``: give it to its engine)."""
        if not self.parse or not isinstance(frame, str) or not frame.startswith("{"):
            return self._everyone(frame), False
        try:
            obj = json.loads(frame)
        except ValueError:
            return self._everyone(frame), False
        if not isinstance(obj, dict):
            return self._everyone(frame), False
        kind = obj.get("type")
        if kind in ("ping", "pong"):
            return [], True
        if kind == "welcome":  # the pyrt protocol's first frame: the connection is usable
            session = obj.get("session")
            session = session if isinstance(session, str) else None
            if not self.server_open:
                return self.server_opened(session), True
            self.session = session
            return [], True
        if kind == "publication":
            channel = self._channels.get(str(obj.get("channel")))
            if channel is None:
                return [], False
            channel.advance(obj.get("offset"))
            return [ToLink(link, frame) for link in channel.receiving], False
        if kind == "subscribed":
            return self._answered(obj, frame), False
        if kind == "unsubscribed":  # the relay's own (each link had its answer already)
            name = str(obj.get("channel"))
            channel = self._channels.get(name)
            if channel is not None and channel.requests and channel.requests[0].unsubscribe:
                channel.requests.popleft()
                if not channel.requests and not channel.members():
                    del self._channels[name]
            return [], False
        ack_id = obj.get("id")
        if ack_id is not None and not isinstance(ack_id, bool) and isinstance(ack_id, str | int):
            link = self._acks.pop(ack_id, None) if kind in ("ack", "error") else self._acks.get(ack_id)
            if link is not None:
                return ([ToLink(link, frame)] if link in self._links else []), False
        return self._everyone(frame), False

    # -- machinery

    def _opened(self, link: str) -> list[RelayAction]:
        welcome = {"type": "welcome", "session": self.session, "server": "shared"}
        return [OpenLink(link), ToLink(link, _encode(welcome))]

    def _everyone(self, frame: Frame) -> list[RelayAction]:
        return [ToLink(link, frame) for link in self._links]

    def _subscribe(self, link: str, name: str, since: str | None) -> list[RelayAction]:
        """A link subscribes. It receives nothing of the channel until it is answered: at once
        when the shared subscription already covers its offset, else with the server's answer
        to a (re-)subscription, whose replay then follows in order."""
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel()
        channel.receiving.discard(link)
        for request in channel.requests:
            request.waiting.discard(link)  # a link subscribing again waits for the new answer
        key = _since_key(since)
        if channel.requests:
            last = channel.requests[-1]
            if not last.unsubscribe and (since is None or since == last.since or _covers(last.since, key)):
                last.waiting.add(link)
                return []
        elif channel.active and (since is None or _at_or_after(key, channel.latest_key)):
            channel.receiving.add(link)
            answer = {"type": "subscribed", "channel": name, "offset": channel.latest, "recovered": True}
            return [ToLink(link, _encode(answer))]
        channel.requests.append(_Request(since, {link}))
        return [ToServer(_encode({"type": "subscribe", "channel": name, "since": since}))]

    def _answered(self, obj: dict[str, Any], frame: Frame) -> list[RelayAction]:
        name = str(obj.get("channel"))
        channel = self._channels.get(name)
        if channel is None or not channel.requests or channel.requests[0].unsubscribe:
            return []
        request = channel.requests.popleft()
        channel.active = True
        channel.advance(obj.get("offset"))
        answered = [link for link in request.waiting if link in self._links]
        channel.receiving.update(answered)
        return [ToLink(link, frame) for link in answered]

    def _leave(self, name: str, link: str) -> list[RelayAction]:
        channel = self._channels.get(name)
        if channel is None or link not in channel.members():
            return []
        channel.receiving.discard(link)
        for request in channel.requests:
            request.waiting.discard(link)
        if channel.members():
            return []
        if not self.server_open or (not channel.active and not channel.requests):
            del self._channels[name]
            return []
        # Answers still to come keep the channel: a link subscribing meanwhile waits behind them.
        channel.active = False
        channel.latest, channel.latest_key = None, None
        channel.requests.append(_Request(None, unsubscribe=True))
        return [ToServer(_encode({"type": "unsubscribe", "channel": name}))]


def _covers(requested: str | None, key: OffsetKey | None) -> bool:
    """A pending subscription from ``requested`` replays everything after ``key``."""
    if requested is None or key is None:
        return False
    requested_key = offset_key(requested)
    return requested_key is not None and requested_key <= key


def _at_or_after(key: OffsetKey | None, latest: OffsetKey | None) -> bool:
    return key is not None and latest is not None and key >= latest
