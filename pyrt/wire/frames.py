"""Every frame of the pyrt protocol (docs/protocol.md), as a small frozen dataclass per type.

One type per frame and direction; ``Ping``, ``Pong`` and ``Message`` travel both ways. The
codec (:mod:`pyrt.wire.codec`) turns them into text and back; no other module writes or parses
a frame. Values that are already JSON text (a publication's stored data, a presence member the
server encoded once) travel as :class:`RawJSON` and are written as they are.

Client to server: :class:`Ping`, :class:`Pong`, :class:`Message`, :class:`Subscribe`,
:class:`Unsubscribe`, :class:`Publish`, :class:`HistoryRequest`, :class:`PresenceRequest`,
:class:`PresenceJoin`, :class:`PresenceLeave`, :class:`Refresh`.

Server to client: :class:`Welcome`, :class:`Ping`, :class:`Pong`, :class:`Message`, :class:`Ack`,
:class:`Subscribed`, :class:`Unsubscribed`, :class:`Publication`, :class:`PresenceDiff`,
:class:`ErrorFrame`. A frame a client cannot read decodes to :class:`BadFrame`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pyrt.wire.limits import ServerLimits
from pyrt.wire.types import AckId, Frame

__all__ = [
    "Ack",
    "BadFrame",
    "ClientFrame",
    "ErrorFrame",
    "HistoryPage",
    "HistoryRequest",
    "Inbound",
    "Member",
    "Message",
    "Ping",
    "Pong",
    "PresenceDiff",
    "PresenceJoin",
    "PresenceLeave",
    "PresenceRequest",
    "Publication",
    "Publish",
    "RawJSON",
    "Refresh",
    "ServerFrame",
    "Subscribe",
    "Subscribed",
    "Unsubscribe",
    "Unsubscribed",
    "Welcome",
    "read_members",
    "read_presence",
]


@dataclass(frozen=True, slots=True)
class RawJSON:
    """A value that is JSON text already: written into a frame as it is, never parsed again."""

    text: str


# ------------------------------------------------------------------------------ payload types


@dataclass(frozen=True, slots=True)
class Member:
    """One member of a channel's presence: ``client`` names one client object (a tab, a process)
    and stays the same across its reconnects; ``user`` is its token's subject (``None`` without
    authentication); ``info`` is what the server let others see."""

    channel: str
    client: str
    user: str | None
    info: Any


def read_members(channel: str, members: Any) -> list[Member]:
    """The members in a server frame's list (:class:`ValueError` when it is not one)."""
    if not isinstance(members, list):
        raise ValueError("the presence answer holds no list of members")
    out = []
    for item in members:
        if not isinstance(item, dict) or not isinstance(item.get("client"), str):
            raise ValueError("a presence member has no client id")
        user = item.get("user")
        out.append(Member(channel, item["client"], user if isinstance(user, str) else None, item.get("info")))
    return out


def read_presence(channel: str, data: Any) -> list[Member]:
    """The members in the answer to a ``presence`` request (its ack's ``data``)."""
    if not isinstance(data, dict):
        raise ValueError("the presence answer is not an object")
    return read_members(channel, data.get("members"))


#: Members as a client reads them (:class:`Member`) or a server writes them (each encoded once,
#: :class:`RawJSON`).
M = TypeVar("M", Member, RawJSON)


# --------------------------------------------------------------------------------- both ways


@dataclass(frozen=True, slots=True)
class Ping:
    """A liveness probe; the peer answers with a :class:`Pong` carrying the same ``t``."""

    t: Any = None


@dataclass(frozen=True, slots=True)
class Pong:
    """The answer to a ping; ``t`` is the ping's."""

    t: Any = None


@dataclass(frozen=True, slots=True)
class Message:
    """An application message. From a client, with an ``id`` it wants an :class:`Ack` (and the
    server handles it once per id); from a server it carries no id. ``traceparent``: the W3C
    Trace Context of the sender's span, sent only by clients that trace (servers ignore it or
    open their spans under it)."""

    data: Any
    id: AckId | None = None
    traceparent: str | None = None


# --------------------------------------------------------------------------- client to server


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Follow ``channel`` from after offset ``since`` (``None``: live only; ``"0"``: everything
    retained); ``presence``: also its members and their changes."""

    channel: str
    since: str | None = None
    presence: bool = False


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    channel: str


@dataclass(frozen=True, slots=True)
class Publish:
    """Publish ``data`` into ``channel`` as ``event`` (``None``: ``"message"``); with an ``id``
    the server acks with the offset, once per id. ``traceparent`` as for :class:`Message`."""

    channel: str
    data: Any
    id: AckId | None = None
    event: str | None = None
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    """A page of ``channel``'s retained publications (``type: history``), answered by an ack."""

    id: AckId
    channel: str
    limit: int | None = None
    since: str | None = None
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class PresenceRequest:
    """Who is in ``channel``'s presence (``type: presence``), answered by an ack."""

    id: AckId
    channel: str


@dataclass(frozen=True, slots=True)
class PresenceJoin:
    """Enter (or update) ``channel``'s presence with ``info`` as the member named by ``key``."""

    channel: str
    info: Any = None
    key: str = ""
    id: AckId | None = None


@dataclass(frozen=True, slots=True)
class PresenceLeave:
    channel: str
    key: str = ""
    id: AckId | None = None


@dataclass(frozen=True, slots=True)
class Refresh:
    """A new token for the open connection."""

    id: AckId | None
    token: str


# --------------------------------------------------------------------------- server to client


@dataclass(frozen=True, slots=True)
class Welcome:
    """The first frame after open: the connection's ``session`` name, the server's heartbeat
    interval, the ``limits`` it must respect, the seconds its token still lasts (``ttl``) and,
    over HTTP, the ``key`` the client posts its frames with."""

    session: str | None = None
    server: str | None = None
    heartbeat: float | None = None
    limits: ServerLimits | None = None
    ttl: float | None = None
    #: Over the HTTP binding only: what the client's frames are POSTed with (``?key=``), a secret
    #: of this connection.
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    """The answer to a message or request that named an ``id``. A failed one (``ok`` false) may
    carry a ``code``: a retryable one (:mod:`pyrt.wire.refusals`) asks to send it again, after
    ``retry_after`` seconds when given; ``duplicate``: the answer to a re-sent id whose first
    answer was too large to keep."""

    id: Any
    ok: bool
    data: Any = None
    error: Any = None
    code: str | None = None
    retry_after: float | None = None
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Publication:
    """One publication of a channel (on the client, what a subscription handler receives:
    ``recovered`` false means publications may have been missed just before this one)."""

    channel: str
    data: Any
    offset: str | None = None
    event: str = "message"
    recovered: bool = True


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """The data of the ack to a ``history`` request (docs/protocol.md, "History on demand"): the
    ``publications`` in the order asked for, the channel's latest ``offset``, whether a forward
    page starts right after its ``since`` (``recovered``) and whether ``more`` follow."""

    publications: Sequence[Publication]
    offset: str
    recovered: bool
    more: bool


@dataclass(frozen=True, slots=True)
class Subscribed(Generic[M]):
    """A subscription took effect at ``offset`` (the channel's latest then); ``recovered`` false:
    the replay that follows could not start right after ``since``. ``presence``: the channel's
    members and their version, when the subscription asked for them."""

    channel: str
    offset: str | None
    recovered: bool = True
    presence: tuple[Sequence[M], str] | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    channel: str


@dataclass(frozen=True, slots=True)
class PresenceDiff(Generic[M]):
    """Members that joined (or changed) and left a channel's presence, at ``version``."""

    channel: str
    version: str
    joins: Sequence[M]
    leaves: Sequence[M]


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    """The server refused a frame; ``id`` names the message when it had one, ``channel`` the
    channel of a refused (or revoked) subscription; ``retry_after`` (seconds) comes with a
    transient refusal."""

    code: str
    message: str
    id: Any = None
    retry_after: float | None = None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame that cannot be read; reported through ``on_error``, never delivered."""

    reason: str
    frame: Frame


ClientFrame = (
    Ping
    | Pong
    | Message
    | Subscribe
    | Unsubscribe
    | Publish
    | HistoryRequest
    | PresenceRequest
    | PresenceJoin
    | PresenceLeave
    | Refresh
)
"""A frame a client sends."""

ServerFrame = (
    Welcome
    | Ping
    | Pong
    | Message
    | Ack
    | Subscribed[Any]
    | Unsubscribed
    | Publication
    | PresenceDiff[Any]
    | ErrorFrame
)
"""A frame a server sends."""

Inbound = (
    Welcome
    | Ping
    | Pong
    | Message
    | Ack
    | Subscribed[Member]
    | Unsubscribed
    | Publication
    | PresenceDiff[Member]
    | ErrorFrame
    | BadFrame
)
"""What a client reads from a frame a server sent."""
