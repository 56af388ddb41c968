"""What a :class:`~pyrt.session.server.ServerSession` asks its driver to do, and what comes back.

The session decides; the driver (``serve.py``'s WebSocket endpoint, :class:`pyrt.testing.
FakePyrtServer`) carries out each action in order. Actions that need the broker or the application
carry a ``ticket``: the driver reports the outcome with the session's matching input
(:meth:`~pyrt.session.server.ServerSession.published` for :class:`Publish`, and so on), in any
order for publications and at once or later for the others; the session never waits by itself.

Frames travel as text, or bytes on the binary binding (:class:`Send`): the session encodes them
with the codec. ``own`` marks an
answer made for this client alone (an ack, a pong, a reply), which a driver may refuse to queue
when the client's connections already hold their identity's budget of unsent bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyrt.wire.offsets import OffsetKey

__all__ = [
    "Abort",
    "Action",
    "Close",
    "HandleMessage",
    "Join",
    "Leave",
    "Publish",
    "ReadHistory",
    "ReadPresence",
    "Release",
    "Send",
    "ShowInfo",
    "Subscribe",
    "Unsubscribe",
]


@dataclass(frozen=True, slots=True)
class Send:
    """Queue ``text`` (one encoded frame: ``str`` on the JSON binding, ``bytes`` on the binary
    one) for the client, after everything queued before it."""

    text: str | bytes
    own: bool = False


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection with ``code`` and ``reason`` after what is queued for it."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Abort:
    """Drop the connection at once, without a close frame (the client is gone or silent)."""


@dataclass(frozen=True, slots=True)
class Publish:
    """Publish ``data_json`` (JSON text) into ``channel`` as ``event``; with ``id``, once per id and
    ``scope`` (the client's identity). Report with ``published`` or ``publish_failed``.
    ``traceparent``: the frame's W3C Trace Context, when it carried one (for the server's spans)."""

    ticket: int
    channel: str
    event: str
    data_json: str
    id: str | None
    scope: str
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class HandleMessage:
    """Run the application's handler for a ``message`` frame: once per ``id`` and identity when it
    has one (``pyrt.session.messages`` makes the ack texts the dedup window keeps). Report with
    ``handled``; a fire-and-forget message (``id`` None) is reported too, with no ack.
    ``traceparent`` as for :class:`Publish`."""

    ticket: int
    id: str | None
    data: Any
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Subscribe the connection to ``channel`` from after ``since`` (``None``: live only), with its
    presence when ``presence``. Report with ``subscribed`` (then replay what the history holds and
    go live) or ``subscribe_failed``."""

    ticket: int
    channel: str
    since: OffsetKey | None
    presence: bool


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """End the connection's subscription to ``channel`` (nothing to report)."""

    channel: str


@dataclass(frozen=True, slots=True)
class ReadHistory:
    """Read a page of ``channel``'s history. Report with ``history_read`` or ``read_failed``."""

    ticket: int
    channel: str
    since: OffsetKey | None
    limit: int
    reverse: bool
    max_bytes: int


@dataclass(frozen=True, slots=True)
class ReadPresence:
    """Read ``channel``'s members. Report with ``presence_read`` or ``read_failed``."""

    ticket: int
    channel: str


@dataclass(frozen=True, slots=True)
class ShowInfo:
    """Ask the application what others may see of a member joining ``channel`` with ``info``
    (its ``presence_info`` hook). Report with ``info_shown`` or ``info_refused``."""

    ticket: int
    channel: str
    subject: str | None
    info: Any


@dataclass(frozen=True, slots=True)
class Join:
    """Enter ``member`` (its JSON text ``member_json``) into ``channel``'s presence, owned by this
    connection (``owner``) for ``identity``, within the limits given. Report with ``joined``."""

    ticket: int
    channel: str
    member: str
    member_json: str
    identity: str
    owner: str
    max_members: int
    max_per_identity: int


@dataclass(frozen=True, slots=True)
class Leave:
    """Remove ``member`` from ``channel``'s presence. Report with ``left``."""

    ticket: int
    channel: str
    member: str


@dataclass(frozen=True, slots=True)
class Release:
    """The connection no longer holds ``member`` of ``channel``: it leaves at once when ``clean``
    (a goodbye), else after the store's grace (the client may come back). Nothing to report."""

    channel: str
    member: str
    owner: str
    clean: bool


Action = (
    Send
    | Close
    | Abort
    | Publish
    | HandleMessage
    | Subscribe
    | Unsubscribe
    | ReadHistory
    | ReadPresence
    | ShowInfo
    | Join
    | Leave
    | Release
)
