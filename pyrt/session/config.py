"""What a server session needs to know of its server: limits, hooks, shared quotas and counters.

:class:`SessionConfig` holds the per-connection limits (``serve.py`` builds it from its settings,
:class:`pyrt.testing.FakePyrtServer` from its arguments); the protocols say what a session asks of
the objects the server shares between its connections: an :class:`Authority` that verifies tokens
and decides who may do what in which channel, and :class:`Quota` buckets keyed by client identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pyrt.wire.limits import ServerLimits

__all__ = ["Authority", "Grant", "Peer", "Quota", "SessionConfig", "Unlimited"]


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """The limits of one connection (``0`` turns a rate off). See docs/server.md for each."""

    server: str = "pyrt"  # the name in ``welcome``
    heartbeat: float = 20.0  # seconds of silence before the server pings; 3x drops the client
    limits: ServerLimits | None = None  # advertised in ``welcome``
    max_message_chars: int = 1024 * 1024  # a longer frame closes the connection with 1009
    rate: float = 0.0  # frames per second (the admission bucket, pyrt.session.admission)
    burst: int = 1
    window: int = 1000
    abuse_limit: int = 100
    refresh_rate: float = 1.0  # ``refresh`` frames per second
    refresh_burst: int = 5
    max_subscriptions: int = 256
    max_presence_joins: int = 16  # members one connection holds
    max_presence: int = 1000  # members in one channel
    max_presence_per_identity: int = 16  # members of one identity in one channel
    max_presence_info_bytes: int = 512
    history_page_limit: int = 1000
    history_page_bytes: int = 1024 * 1024
    #: Publications of one connection in flight to the broker at once (a broker round trip each
    #: would otherwise cap one publisher at one per round trip), and their bytes: a larger one
    #: goes alone. What a connection holds beyond the frame it is handling.
    publish_window: int = 1024
    publish_window_bytes: int = 64 * 1024


@dataclass(frozen=True, slots=True)
class Peer:
    """The connection as the driver knows it: ``session`` (its name in ``welcome``), ``identity``
    (who the client is for dedup and quotas: the token's subject, else its address) and
    ``owner`` (this connection among every server instance, for presence entries)."""

    session: str
    identity: str
    owner: str


class Grant(Protocol):
    """What a verified token grants: its ``subject``, when it was issued and when it expires
    (Unix seconds). The :class:`Authority` reads the rest (capabilities)."""

    @property
    def subject(self) -> str | None: ...

    @property
    def issued(self) -> float: ...

    @property
    def expires(self) -> float: ...


class Authority(Protocol):
    """Tokens and rights. ``tokens``: whether authentication is on (a session without it lasts
    forever and a ``refresh`` is answered ``ttl: null``)."""

    @property
    def tokens(self) -> bool: ...

    def verify(self, token: str, wall: float) -> Grant | None:
        """The grant of ``token`` at Unix time ``wall``; ``None`` for a bad or expired one."""
        ...

    def allowed(self, grant: Grant | None, channel: str, action: str) -> bool:
        """Whether a client holding ``grant`` may ``action`` (``subscribe``, ``publish``,
        ``join``) in ``channel``."""
        ...


class Quota(Protocol):
    """Buckets keyed by client identity, shared by every connection of a server."""

    def wait(self, key: str, now: float, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens of ``key``'s bucket (0.0) or return the seconds until they are
        due."""
        ...


class Unlimited:
    """A :class:`Quota` that never says wait."""

    def wait(self, key: str, now: float, cost: float = 1.0) -> float:
        return 0.0
