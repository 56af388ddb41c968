"""What a WebSocket engine asks its adapter to do: the actions, and the counters it keeps.

Every action is a small frozen dataclass; :meth:`~pyrt.engine.websocket.WebSocketEngine.actions`
returns them in the order they must be performed (see the engine's module docstring).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from pyrt.engine.states import Closed, StateChanged
from pyrt.wire.frames import Member, Publication
from pyrt.wire.types import Frame

if TYPE_CHECKING:
    from pyrt.engine.subscriptions import Subscription
    from pyrt.persist.records import Changes, RestoredMessage

__all__ = [
    "NO_MESSAGE",
    "Action",
    "CloseProbe",
    "CloseSocket",
    "Closed",
    "DeliverMessage",
    "DeliverPresence",
    "DeliverPublication",
    "FetchToken",
    "OpenProbe",
    "OpenSocket",
    "Reconnecting",
    "RejectAck",
    "RememberTransport",
    "ReportError",
    "ReportRestored",
    "ResolveAck",
    "SaveState",
    "SendFrame",
    "StateChanged",
    "Stats",
    "SubscriptionConfirmed",
]


class _NoMessage:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_MESSAGE"


NO_MESSAGE: Final = _NoMessage()
"""What :meth:`WebSocketEngine.received` returns when the frame carried no application message."""


@dataclass(frozen=True, slots=True)
class OpenSocket:
    """Open a new socket over ``transport`` (``"websocket"``, ``"http"``). ``attempt`` counts
    sockets opened by this client (1 = first connect); resolve the URL (and subprotocols) for
    this attempt when they are callables."""

    attempt: int
    transport: str = "websocket"


@dataclass(frozen=True, slots=True)
class OpenProbe:
    """Open a second socket over ``transport`` beside the current one, to see whether it comes
    up here: report its events with ``probe_opened``, ``probe_received`` and ``probe_closed``."""

    transport: str


@dataclass(frozen=True, slots=True)
class CloseProbe:
    """Close the probe socket (it came up, or failed, or the connection it probed for is gone)."""


@dataclass(frozen=True, slots=True)
class RememberTransport:
    """Remember for this origin that ``transport`` works (for ``seconds``); ``None``: forget."""

    transport: str | None
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class SendFrame:
    """Send ``frame`` on the current socket (it is open)."""

    frame: Frame


@dataclass(frozen=True, slots=True)
class CloseSocket:
    """Close the current socket with ``code``/``reason``.

    ``detach=True``: pyrt has given up on it — drop its handlers now and report nothing more
    about it. ``detach=False`` (a manual close): report its ``close`` event as usual.
    """

    code: int
    reason: str
    detach: bool


@dataclass(frozen=True, slots=True)
class DeliverMessage:
    """Deliver ``data`` to the message handlers, as :meth:`WebSocketEngine.received` returns a
    message: for the messages of a batch, which arrive together with other frames and must keep
    their order among them."""

    data: Any


@dataclass(frozen=True, slots=True)
class DeliverPublication:
    """Call the subscription's ``handler`` with ``publication`` — unless :attr:`cancelled`."""

    handler: object
    publication: Publication
    subscription: Subscription | None = field(default=None, compare=False, repr=False)

    @property
    def cancelled(self) -> bool:
        """True when the subscription ended after the publication arrived (``unsubscribe()``
        from a handler called for an earlier publication of the same message): skip it."""
        sub = self.subscription
        return sub is not None and sub.ended


@dataclass(frozen=True, slots=True)
class DeliverPresence:
    """Call the subscription's presence ``handler`` with the members that ``joined`` (or changed
    their info) and those that ``left`` (:mod:`pyrt.engine.presence`)."""

    handler: object
    joined: tuple[Member, ...]
    left: tuple[Member, ...]


@dataclass(frozen=True, slots=True)
class ResolveAck:
    """The message behind ``handle`` was acknowledged: resolve it with ``value``."""

    handle: object
    value: Any


@dataclass(frozen=True, slots=True)
class RejectAck:
    """The message behind ``handle`` failed: reject it with ``error``."""

    handle: object
    error: Exception


@dataclass(frozen=True, slots=True)
class Reconnecting:
    """The socket is gone; attempt number ``attempt`` starts in ``delay`` seconds."""

    attempt: int
    delay: float
    reason: str


@dataclass(frozen=True, slots=True)
class ReportError:
    """Something the user should know about that is not an exception of any call."""

    error: Exception


@dataclass(frozen=True, slots=True)
class SaveState:
    """Write ``changes`` to the records of the client's persistence key (see :mod:`pyrt.persist.records`)."""

    changes: Changes


@dataclass(frozen=True, slots=True)
class ReportRestored:
    """A message restored from a previous page was acknowledged or failed: report ``message``."""

    message: RestoredMessage


@dataclass(frozen=True, slots=True)
class FetchToken:
    """Call the client's token callable for an in-place refresh; report the result with
    :meth:`WebSocketEngine.token_fetched` or :meth:`WebSocketEngine.token_failed`, naming
    ``request``. A newer request makes an older one moot: its answer is ignored (an adapter may
    cancel the call)."""

    request: int = 0


@dataclass(frozen=True, slots=True)
class SubscriptionConfirmed:
    """The server confirmed the subscription to ``channel`` at ``offset``; ``recovered`` is False
    when it could not replay everything since the subscription's offset."""

    channel: str
    offset: str | None
    recovered: bool


Action = (
    OpenSocket
    | SendFrame
    | CloseSocket
    | DeliverMessage
    | DeliverPublication
    | ResolveAck
    | RejectAck
    | StateChanged
    | Reconnecting
    | Closed
    | ReportError
    | SaveState
    | ReportRestored
    | SubscriptionConfirmed
    | FetchToken
    | DeliverPresence
    | OpenProbe
    | CloseProbe
    | RememberTransport
)


@dataclass(slots=True)
class Stats:
    """Counters of one client (``queue_length`` and ``pending_acks`` are current sizes)."""

    sent: int = 0  # frames handed to the socket (messages, resends, protocol frames)
    received: int = 0  # frames received
    queued: int = 0  # messages that had to wait in the queue
    dropped: int = 0  # messages dropped by the overflow policy or by a close
    acked: int = 0  # acknowledgements received for pending messages
    ack_timeouts: int = 0  # messages given up after their retries
    retried: int = 0  # messages sent again (after a timeout or a reconnect)
    reconnects: int = 0  # reconnect attempts started
    duplicates: int = 0  # publications and acks dropped because they were seen already
    restored: int = 0  # messages a previous page saved and this client sends again
    token_refreshes: int = 0  # tokens refreshed in place (the connection stayed up)
    refused: int = 0  # frames the server refused for now (rate_limited, unavailable: pyrt.wire.refusals)
    fallbacks: int = 0  # connections that came up on a transport after the first (WebSockets failed)
    upgrades: int = 0  # moves back to the first transport after a probe came up
    queue_length: int = 0
    pending_acks: int = 0
    rtt: float | None = None  # last heartbeat round trip, seconds
    srtt: float | None = None  # smoothed round trip, seconds

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}
