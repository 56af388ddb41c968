"""The options of a WebSocket client, declared once.

:class:`WebSocketOptions` is the one place where each option is named, typed, given its default,
described and checked. ``WebSocketClient(url, **options)`` and ``WebSocketEngine(**options)``
take its fields as keywords (an unknown one is a :class:`TypeError` that lists the known ones);
``client.options`` is the frozen object, which a shared connection's hub reuses as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from pyrt.engine.backoff import Backoff
from pyrt.engine.close_policy import ShouldReconnect
from pyrt.engine.heartbeat import Heartbeat
from pyrt.engine.outbox import Overflow
from pyrt.engine.pacing import Pacing
from pyrt.engine.transport_choice import TransportPolicy, check_transports
from pyrt.wire.protocols import WireProtocol

__all__ = ["WebSocketOptions"]


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSocketOptions:
    """How a WebSocket client connects, queues, acknowledges and paces (every field a keyword of
    ``WebSocketClient`` and ``WebSocketEngine``)."""

    #: The wire protocol: ``"pyrt"`` (acks, channels, presence; ``serve.py``), ``"raw"`` (any
    #: server), ``"json-ack"``, or a :class:`~pyrt.wire.protocols.WireProtocol`.
    protocol: str | WireProtocol = "pyrt"
    #: Reconnect delays, attempt limit and minimum uptime (``None``: ``Backoff()``).
    backoff: Backoff | None = None
    #: Pings while idle and the dead-connection verdict (``None``: no heartbeat).
    heartbeat: Heartbeat | None = Heartbeat()  # noqa: RUF009 (frozen, shared safely)
    #: The outgoing queue's bounds (frames, bytes) and what happens when it is full.
    queue_limit: int = 1000
    queue_bytes: int = 1 << 20
    overflow: Overflow = "drop_oldest"
    #: Seconds to wait for each transmission's ack, and the re-sends before giving up.
    ack_timeout: float = 10.0
    ack_retries: int = 3
    #: Seconds a socket may take to open, and to finish closing after ``close()``.
    connect_timeout: float = 10.0
    close_timeout: float = 2.0
    #: Decides from a :class:`~pyrt.engine.close_policy.CloseInfo` whether to reconnect.
    should_reconnect: ShouldReconnect | None = None
    #: Over this many bytes in the socket's buffer (``bufferedAmount``), sends queue.
    high_water: int = 1 << 20
    #: Randomness for ids and jitter (``None``: :func:`random.random`).
    rng: Callable[[], float] | None = None
    #: Sends paced below the server's limits: ``"auto"`` (on for protocols with flow control),
    #: ``None`` (off) or a :class:`~pyrt.engine.pacing.Pacing`.
    pacing: Pacing | Literal["auto"] | None = "auto"
    #: The transports to try, in order: a tuple of ``"websocket"``/``"http"`` (one of them pins
    #: it), or ``"auto"``: a ``WebSocketClient`` tries ``("websocket", "http")`` with the pyrt
    #: protocol, whose servers carry it over plain HTTP too (:func:`pyrt.aio.transports.resolve_order`),
    #: an engine on its own ``("websocket",)``. See :mod:`pyrt.engine.transport_choice`.
    transports: tuple[str, ...] | Literal["auto"] = "auto"
    #: When to move on, probe back and remember (``None``: the defaults).
    transport_policy: TransportPolicy | None = None
    #: Tracing (opt-in): called as each ``message`` and ``publish`` frame is encoded, returns the
    #: W3C ``traceparent`` it carries (``None``: none), e.g. :func:`pyrt.otel.current_traceparent`.
    #: ``None`` (default): frames carry no ``traceparent``. Needs the pyrt protocol.
    traceparent: Callable[[], str | None] | None = None

    def __post_init__(self) -> None:
        if not self.ack_timeout > 0:
            raise ValueError(f"ack_timeout must be > 0, got {self.ack_timeout!r}")
        if not self.connect_timeout > 0:
            raise ValueError(f"connect_timeout must be > 0, got {self.connect_timeout!r}")
        # the queue's bounds and ack_retries are checked by the Outbox and the PendingAcks
        pacing = self.pacing
        if pacing is not None and pacing != "auto" and not isinstance(pacing, Pacing):
            raise TypeError(f"pacing must be a Pacing, None or 'auto', got {pacing!r}")
        if self.transports != "auto":
            check_transports(tuple(self.transports))

    @classmethod
    def of(cls, options: WebSocketOptions | None = None, /, **changes: Any) -> WebSocketOptions:
        """``options`` (default: all defaults) with ``changes``; an unknown name is a clear
        :class:`TypeError`."""
        unknown = sorted(set(changes) - NAMES)
        if unknown:
            raise TypeError(f"unknown option {unknown[0]!r}; the options are {', '.join(sorted(NAMES))}")
        if options is None:
            return cls(**changes)
        return replace(options, **changes) if changes else options


NAMES: frozenset[str] = frozenset(f.name for f in fields(WebSocketOptions))
