"""Routing for one WebSocket shared by several clients (tabs): who gets which frame.

With ``share=``, one tab (the leader) holds the real connection and every client — the leader's
own included — talks to it over a *link*: each client keeps its own engine (queue, acks with
their ids, retries, subscriptions with their offsets, heartbeat) and sees the link as its socket.
:class:`WsRelay` decides, frame by frame, what crosses between the links and the real connection:

- from a link: a ``ping`` is answered by the relay (the link's liveness is the leader's), in
  turn: after the link's frames before it have gone to the server, so its pong confirms them; a
  ``subscribe`` joins the channel's one server subscription (a new one, or — for an offset older
  than what the shared subscription delivered, or for a channel's presence not followed yet — a
  re-subscription, whose replay every link filters by its own offset); an ``unsubscribe`` leaves
  it (the server unsubscribes when the last link leaves); a frame with an ``id`` is sent and its
  id remembered, so the ack or error goes back to that link only; a ``presence_join`` is
  remembered too, so a link that closes leaves the presence it joined (each client is a member
  of its own, several per connection); anything else is sent as it is;
- from the server (a batched message, ``pyrt.v1.batch``, is split into its frames first):
  ``ping``, ``pong`` and ``welcome`` belong to the real connection (the caller
  gives them to its engine), and so does an ``ack`` or ``error`` whose id no link sent (a token
  refresh); an ``ack`` or ``error`` with a remembered id goes to its link; a ``publication`` to
  the links subscribed to its channel; ``subscribed`` to the links waiting for that answer; a
  ``presence_diff`` to the subscribed links that follow the presence (the relay keeps the
  members, so a link that asks later is answered at once); an ``error`` about a channel to the
  links subscribed to it or present in it; everything else (messages from the application,
  frames of types this module does not know) to every link;
- links open only while the real connection is open — from its ``welcome`` on (with ``raw``, as
  soon as it opens: :meth:`WsRelay.server_opened`) — and each gets a ``welcome`` with the
  server's limits, so that each client paces itself and fails a frame too large for the server
  on its own (the hub paces the connection as a whole); when it is lost, every open link is
  closed, so each client re-sends its unacknowledged messages with their ids (the server
  deduplicates) and resubscribes from its own offsets when its link opens again.

With the ``raw`` protocol nothing is parsed: every frame goes to the server or to every link.
Pure: it is a :class:`~pyrt.share.relay.Relay` (inputs return
:data:`~pyrt.share.relay.RelayAction` lists for the hub to carry out).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyrt.engine.presence import PresenceView
from pyrt.share.relay import CloseLink, LinkItem, OpenLink, RelayAction, ToLink, ToServer
from pyrt.wire import codec
from pyrt.wire.frames import (
    Ack,
    ErrorFrame,
    Member,
    Ping,
    Pong,
    PresenceDiff,
    PresenceJoin,
    PresenceLeave,
    Publication,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
    Welcome,
)
from pyrt.wire.ingress import IngressError
from pyrt.wire.limits import ServerLimits
from pyrt.wire.offsets import OffsetKey, offset_key
from pyrt.wire.types import Frame

__all__ = ["WsRelay"]


def _since_key(since: str | None) -> OffsetKey | None:
    return offset_key(since) if since is not None else None


@dataclass(slots=True)
class _Request:
    """A subscribe frame sent for ``since`` and the links waiting for its answer; or, with
    ``unsubscribe``, the unsubscribe frame sent when the last link left (answered too)."""

    since: str | None
    waiting: set[str] = field(default_factory=set)
    unsubscribe: bool = False
    presence: bool = False  # asked for the channel's presence too


@dataclass(slots=True)
class _Channel:
    receiving: set[str] = field(default_factory=set)  # links that get its publications
    latest: str | None = None  # newest offset delivered or confirmed on the real connection
    latest_key: OffsetKey | None = None
    active: bool = False  # the server answered a subscribe on this connection
    requests: deque[_Request] = field(default_factory=deque)  # answers pending, in send order
    presence: bool = False  # the server subscription follows the channel's presence
    watching: set[str] = field(default_factory=set)  # links that asked for the presence
    view: PresenceView | None = None  # the members as the shared subscription knows them
    version: str | None = None  # the view's version, as the server wrote it

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
        self.limits: ServerLimits | None = None  # what the server's welcome advertised
        self._links: dict[str, str] = {}  # open link -> its participant
        self._pending: dict[str, str] = {}  # link waiting for the real connection -> participant
        self._channels: dict[str, _Channel] = {}
        self._acks: dict[Any, str] = {}  # message id -> link
        self._joins: dict[str, dict[str, str]] = {}  # link -> presence it joined: channel -> key

    # -- what the caller may ask

    @property
    def links(self) -> int:
        """Open links."""
        return len(self._links)

    def participants(self) -> int:
        """Distinct participants (tabs, workers) with an open or waiting link."""
        return len(set(self._links.values()) | set(self._pending.values()))

    # -- links

    def link_requested(
        self, link: str, participant: str, extra: Mapping[str, Any] | None = None
    ) -> list[RelayAction]:
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
        for name, key in self._joins.pop(link, {}).items():  # its members leave with it
            out.append(ToServer(codec.encode(PresenceLeave(name, key))))
        return out

    def link_sent(self, link: str, frame: LinkItem) -> list[RelayAction]:
        """A frame from the client at ``link``."""
        if link not in self._links or not isinstance(frame, str | bytes):
            return []  # closed meanwhile: as on a socket that is gone, the frame is lost
        if not self.parse or not isinstance(frame, str) or not frame.startswith("{"):
            return [ToServer(frame)]
        try:
            sent = codec.decode_client_frame(frame)
        except IngressError:
            return [ToServer(frame)]  # the server refuses it, to the frame's own client
        if type(sent) is Ping:
            return [ToLink(link, codec.encode(Pong(sent.t)), in_turn=True)]
        if type(sent) is Subscribe:
            return self._subscribe(link, sent.channel, sent.since, sent.presence)
        if type(sent) is Unsubscribe:
            answer = codec.encode(Unsubscribed(sent.channel))
            return [ToLink(link, answer), *self._leave(sent.channel, link)]
        if type(sent) is PresenceJoin:
            self._joins.setdefault(link, {})[sent.channel] = sent.key
        elif type(sent) is PresenceLeave:
            self._joins.get(link, {}).pop(sent.channel, None)
        ack_id = getattr(sent, "id", None)
        if ack_id is not None:
            self._acks[ack_id] = link
        return [ToServer(frame)]

    # -- the real connection

    def server_opened(
        self, session: str | None = None, limits: ServerLimits | None = None
    ) -> list[RelayAction]:
        """The real connection is open: open every waiting link."""
        self.server_open = True
        self.session = session
        self.limits = limits
        out: list[RelayAction] = []
        pending, self._pending = self._pending, {}
        for link, participant in pending.items():
            self._links[link] = participant
            out += self._opened(link)
        return out

    def lost(self, code: int = 1006, reason: str = "the shared connection was lost") -> list[RelayAction]:
        """The real connection is gone: close every open link; their clients reconnect (the
        links wait until the real connection is back) and restore what they had."""
        self.server_open = False
        self.session = None
        self.limits = None
        self._channels.clear()
        self._acks.clear()
        self._joins.clear()  # the connection's members left with it; each client joins again
        closing = list(self._links)
        self._links.clear()
        return [CloseLink(link, code, reason) for link in closing]

    def server_message(self, message: Frame) -> tuple[list[RelayAction], list[Frame]]:
        """A message from the server: one frame or, with ``pyrt.v1.batch``, several (compact
        JSON, one per line). Returns the deliveries of every frame in order, and the frames that
        belong to the real connection, in order (give each to its engine)."""
        actions: list[RelayAction] = []
        own: list[Frame] = []
        for frame in self._frames(message):
            delivered, mine = self.server_frame(frame)
            actions += delivered
            if mine:
                own.append(frame)
        return actions, own

    def server_frame(self, frame: Frame) -> tuple[list[RelayAction], bool]:
        """A frame from the server. Returns the deliveries, and True when the frame belongs to
        the real connection (``ping``, ``pong``, ``welcome``: give it to its engine)."""
        if not self.parse or not isinstance(frame, str) or not frame.startswith("{"):
            return self._everyone(frame), False
        read = codec.decode_server_frame(frame)
        if type(read) is Ping or type(read) is Pong:
            return [], True
        if type(read) is Welcome:  # the pyrt protocol's first frame: the connection is usable
            session = read.session if isinstance(read.session, str) else None
            if not self.server_open:
                return self.server_opened(session, read.limits), True
            self.session, self.limits = session, read.limits
            return [], True
        if type(read) is Publication:
            channel = self._channels.get(read.channel)
            if channel is None:
                return [], False
            channel.advance(read.offset)
            return [ToLink(link, frame) for link in channel.receiving], False
        if type(read) is Subscribed:
            return self._answered(read, frame), False
        if type(read) is PresenceDiff:
            return self._presence_diff(read, frame), False
        if type(read) is Unsubscribed:  # the relay's own (each link had its answer already)
            channel = self._channels.get(read.channel)
            if channel is not None and channel.requests and channel.requests[0].unsubscribe:
                channel.requests.popleft()
                if not channel.requests and not channel.members():
                    del self._channels[read.channel]
            return [], False
        if type(read) is Ack or type(read) is ErrorFrame:
            ack_id = read.id
            if ack_id is not None and not isinstance(ack_id, bool) and isinstance(ack_id, str | int):
                link = self._acks.pop(ack_id, None)
                if link is not None:
                    return ([ToLink(link, frame)] if link in self._links else []), False
                # No link sent it: the connection's own (a token refresh), or the answer for a
                # link that closed meanwhile (which its client's engine would drop too).
                return [], True
            if type(read) is ErrorFrame and read.channel is not None:
                return self._channel_error(read.channel, frame), False
        return self._everyone(frame), False

    # -- machinery

    def _frames(self, message: Frame) -> list[Frame]:
        """The frames of a batch, or the message alone."""
        if not self.parse or not isinstance(message, str) or codec.BATCH_SEPARATOR not in message:
            return [message]
        lines = codec.split_batch(message)
        return [message] if lines is None else list(lines)

    def _opened(self, link: str) -> list[RelayAction]:
        welcome = Welcome(session=self.session, server="shared", limits=self.limits)
        return [OpenLink(link, codec.encode(welcome))]

    def _everyone(self, frame: Frame) -> list[RelayAction]:
        return [ToLink(link, frame) for link in self._links]

    def _subscribe(self, link: str, name: str, since: str | None, presence: bool) -> list[RelayAction]:
        """A link subscribes (with ``presence``: following the channel's presence too). It
        receives nothing of the channel until it is answered: at once when the shared
        subscription already covers its offset (and its presence, with the members the relay
        knows), else with the server's answer to a (re-)subscription, whose replay then follows
        in order. Once one link asked for the presence, every (re-)subscription asks for it."""
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel()
        channel.receiving.discard(link)
        for request in channel.requests:
            request.waiting.discard(link)  # a link subscribing again waits for the new answer
        if presence:
            channel.watching.add(link)
        else:
            channel.watching.discard(link)
        key = _since_key(since)
        covered = since is None or _at_or_after(key, channel.latest_key)
        if channel.requests:
            last = channel.requests[-1]
            if (
                not last.unsubscribe
                and (since is None or since == last.since or _covers(last.since, key))
                and (last.presence or not presence)
            ):
                last.waiting.add(link)
                return []
        elif channel.active and covered and (not presence or channel.view is not None):
            channel.receiving.add(link)
            snapshot = None
            if presence and channel.view is not None:
                snapshot = (list(channel.view.members.values()), str(channel.version))
            answer: Subscribed[Member] = Subscribed(name, channel.latest, True, snapshot)
            return [ToLink(link, codec.encode(answer))]
        if channel.active and covered:
            since = channel.latest  # only for the presence: replay nothing the others have
        channel.presence = channel.presence or presence
        channel.requests.append(_Request(since, {link}, presence=channel.presence))
        return [ToServer(codec.encode(Subscribe(name, since, channel.presence)))]

    def _answered(self, answer: Subscribed[Member], frame: Frame) -> list[RelayAction]:
        name = answer.channel
        channel = self._channels.get(name)
        if channel is None or not channel.requests or channel.requests[0].unsubscribe:
            return []
        request = channel.requests.popleft()
        channel.active = True
        channel.advance(answer.offset)
        answered = [link for link in request.waiting if link in self._links]
        out: list[RelayAction] = []
        if request.presence and answer.presence is not None:
            members, version = answer.presence
            view = channel.view if channel.view is not None else PresenceView(name)
            channel.view, channel.version = view, version
            joined, left = view.snapshot(members, version)
            if joined or left:  # what the links following the presence already missed
                diff = codec.encode(PresenceDiff(name, version, joined, left))
                out += [ToLink(link, diff) for link in channel.receiving & channel.watching]
        channel.receiving.update(answered)
        return out + [ToLink(link, frame) for link in answered]

    def _presence_diff(self, diff: PresenceDiff[Member], frame: Frame) -> list[RelayAction]:
        """A change of a channel's presence: the relay's view follows, and the links that asked
        for the presence get it."""
        channel = self._channels.get(diff.channel)
        if channel is None:
            return []
        if channel.view is not None:
            before = channel.view.version
            channel.view.diff(diff.version, diff.joins, diff.leaves)
            if channel.view.version != before:
                channel.version = diff.version
        return [ToLink(link, frame) for link in channel.receiving & channel.watching]

    def _channel_error(self, name: str, frame: Frame) -> list[RelayAction]:
        """An error about a channel (a refused subscription, a revoked right): to the links that
        subscribed to it or joined its presence. A refusal answers the oldest subscription
        waiting: its links are answered (they ask again, or give up)."""
        targets = {link for link, joins in self._joins.items() if name in joins}
        channel = self._channels.get(name)
        if channel is not None:
            targets |= channel.members()
            if channel.requests and not channel.requests[0].unsubscribe:
                channel.requests.popleft()
                if not channel.requests and not channel.active:
                    del self._channels[name]
        return [ToLink(link, frame) for link in targets if link in self._links]

    def _leave(self, name: str, link: str) -> list[RelayAction]:
        channel = self._channels.get(name)
        if channel is None or link not in channel.members():
            return []
        channel.receiving.discard(link)
        channel.watching.discard(link)
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
        channel.presence, channel.view, channel.version = False, None, None
        channel.requests.append(_Request(None, unsubscribe=True))
        return [ToServer(codec.encode(Unsubscribe(name)))]


def _covers(requested: str | None, key: OffsetKey | None) -> bool:
    """A pending subscription from ``requested`` replays everything after ``key``."""
    if requested is None or key is None:
        return False
    requested_key = offset_key(requested)
    return requested_key is not None and requested_key <= key


def _at_or_after(key: OffsetKey | None, latest: OffsetKey | None) -> bool:
    return key is not None and latest is not None and key >= latest
