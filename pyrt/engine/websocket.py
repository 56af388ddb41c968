"""The WebSocket client engine: every decision of a reconnecting client, with no I/O.

:class:`WebSocketEngine` is a state machine in the "sans-I/O" style. The adapter (browser,
CPython, or the fakes in :mod:`pyrt.testing`) feeds it what happened and carries out what it
asks for:

Inputs (``now`` is the adapter's monotonic clock in seconds):

- :meth:`~WebSocketEngine.connect`, :meth:`~WebSocketEngine.close`, :meth:`~WebSocketEngine.send`,
  :meth:`~WebSocketEngine.send_with_ack`, :meth:`~WebSocketEngine.subscribe`,
  :meth:`~WebSocketEngine.unsubscribe`, :meth:`~WebSocketEngine.publish`,
  :meth:`~WebSocketEngine.history`, :meth:`~WebSocketEngine.presence`,
  :meth:`~WebSocketEngine.join`, :meth:`~WebSocketEngine.leave` — the user's calls;
- :meth:`~WebSocketEngine.opened`, :meth:`~WebSocketEngine.received`,
  :meth:`~WebSocketEngine.closed` — the current socket's events (:meth:`~WebSocketEngine.alive`
  for a frame the adapter routed itself, :meth:`~WebSocketEngine.send_frame` for one encoded
  already: a connection shared by several clients, see :mod:`pyrt.share.ws_relay`);
- :meth:`~WebSocketEngine.save_now` — write the persisted state now;
- :meth:`~WebSocketEngine.tick` — the timer fired;
- :meth:`~WebSocketEngine.pause`, :meth:`~WebSocketEngine.resume` — going offline on purpose;
- :meth:`~WebSocketEngine.token_fetched`, :meth:`~WebSocketEngine.token_failed` — the answer to
  a :class:`FetchToken` action (clients made with ``token_refresh=True``);
- :meth:`~WebSocketEngine.network_online`, :meth:`~WebSocketEngine.page_visible`,
  :meth:`~WebSocketEngine.page_hidden`, :meth:`~WebSocketEngine.page_shown`,
  :meth:`~WebSocketEngine.woke` — the environment.

Outputs:

- :meth:`~WebSocketEngine.actions` — a drained list of :data:`Action` objects, to perform in order;
- :meth:`~WebSocketEngine.next_deadline` — when to call :meth:`~WebSocketEngine.tick` next. Arm
  **one** timer for it after every call; a timer that fires early or late is harmless.
- Two hot paths skip the action list: :meth:`~WebSocketEngine.received` *returns* the
  application message to deliver (or :data:`NO_MESSAGE`), and :meth:`~WebSocketEngine.send`
  *returns* the frame to transmit at once (or ``None`` when it was queued). The messages of a
  batched message (several frames in one, ``pyrt.v1.batch``) come as :class:`DeliverMessage`
  actions instead, in order with the other frames' actions.

Flow control (``pacing``, on by default for the pyrt protocol; :mod:`pyrt.engine.pacing`): on a new
connection frames wait for the server's ``welcome`` and its limits, then go out no faster than the
pacer allows; until then they wait in the queue (bounded by ``queue_limit``, counted in
``stats.queued``). Subscriptions being restored and acked messages sent again go before the queue;
heartbeat pings and pongs never wait. A transient refusal (:mod:`pyrt.wire.refusals`) of an acked
message puts it back in its place and sends it again after ``retry_after``; the caller hears of
it only after ``ack_retries`` such re-sends (an :class:`AckError` naming the server's code); a refused
fire-and-forget message is reported (``ReportError``, ``stats.refused``/``stats.dropped``). A
close reason or failed attempt carrying a reconnect hint (:mod:`pyrt.wire.reconnect_window`) spreads
the reconnect over the server's window.

Adapter contract: after :class:`CloseSocket` with ``detach=True``, report nothing more about that
socket (drop its handlers). Report events of the current socket only. Acks and subscription
handlers are opaque ``handle``/``handler`` objects the engine hands back in actions; it never
calls them.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Final, Literal

from pyrt.engine.acks import PERSISTED_KINDS, AckIds, Kind, Pending, PendingAcks
from pyrt.engine.backoff import Backoff
from pyrt.engine.close_policy import (
    CloseInfo,
    ShouldReconnect,
    default_should_reconnect,
    validate_close_code,
)
from pyrt.engine.credentials import TokenRefresh
from pyrt.engine.heartbeat import Heartbeat, HeartbeatMonitor, Verdict
from pyrt.engine.outbox import Outbox, Overflow, Queued, frame_size
from pyrt.engine.pacing import Pacer, Pacing
from pyrt.engine.presence import PresenceView
from pyrt.engine.reconnect import ReconnectScheduler
from pyrt.engine.states import State, StateChanged, StateMachine
from pyrt.engine.subscriptions import Subscription, Subscriptions
from pyrt.errors import (
    AckError,
    AckTimeout,
    ChannelRefused,
    ClientClosedError,
    FrameError,
    InvalidCloseCode,
    InvalidStateError,
    MessageTooLarge,
    QueueFull,
    ServerError,
    TokenError,
    UnsupportedByProtocol,
)
from pyrt.wire.frames import (
    Ack,
    BadFrame,
    ErrorFrame,
    Member,
    Message,
    Ping,
    Pong,
    PresenceDiff,
    Publication,
    Subscribed,
    Welcome,
    read_presence,
)
from pyrt.wire.names import CHANNEL_RULE, is_channel_name
from pyrt.wire.offsets import offset_key
from pyrt.wire.protocols import WireProtocol, get_protocol
from pyrt.wire.reconnect_window import parse_reason
from pyrt.wire.refusals import RATE_LIMITED, is_retryable
from pyrt.wire.types import AckId, Frame

if TYPE_CHECKING:  # persistence loads only for clients that use it (an import costs in Pyodide)
    from pyrt.persist.journal import Journal
    from pyrt.persist.records import Changes, RestoredMessage, Snapshot

__all__ = [
    "ABANDON_CODE",
    "NO_MESSAGE",
    "Action",
    "CloseSocket",
    "Closed",
    "DeliverMessage",
    "DeliverPresence",
    "DeliverPublication",
    "FetchToken",
    "OpenSocket",
    "Reconnecting",
    "RejectAck",
    "ReportError",
    "ReportRestored",
    "ResolveAck",
    "SaveState",
    "SendFrame",
    "StateChanged",
    "Stats",
    "SubscriptionConfirmed",
    "WebSocketEngine",
]


ABANDON_CODE: Final = 4000  # sent when pyrt gives up on a socket it believes dead
MAX_REASON_BYTES: Final = 123  # the WebSocket limit on a close reason
MAX_SERVER_DELAY: Final = 300.0  # the longest wait a server's reconnect hint can impose
RATE_HOLD: Final = 0.5  # seconds to hold after a rate_limited refusal that names no retry_after


class _NoMessage:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_MESSAGE"


NO_MESSAGE: Final = _NoMessage()
"""What :meth:`WebSocketEngine.received` returns when the frame carried no application message."""

_RESTORED: Final = object()  # the handle of a message restored from storage: its fate is reported


# --------------------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class OpenSocket:
    """Open a new socket. ``attempt`` counts sockets opened by this client (1 = first connect);
    resolve the URL (and subprotocols) for this attempt when they are callables."""

    attempt: int


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
class Closed:
    """The client is closed for good (state CLOSED). ``detail`` says why, in words; ``error`` is
    what ``async for`` raises (``None`` after ``close()``)."""

    code: int
    reason: str
    was_clean: bool
    by_client: bool
    detail: str
    error: Exception | None = field(default=None, compare=False)


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
    refused: int = 0  # frames the server refused for now (rate_limited, unavailable); see ws_engine
    queue_length: int = 0
    pending_acks: int = 0
    rtt: float | None = None  # last heartbeat round trip, seconds
    srtt: float | None = None  # smoothed round trip, seconds

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


# ---------------------------------------------------------------------------------------- engine

_EMPTY: Final[tuple[Action, ...]] = ()
_KEY_CHARS: Final = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(slots=True)
class _Join:
    """A channel whose presence the client wants to be in (joined again after every reconnect)."""

    info: Any
    handles: list[object]  # the callers waiting for the server to confirm it


@dataclass(slots=True)
class _Again:
    """A frame that goes before the queue: a subscription being restored, or an acked message
    sent again (after a reconnect, a timeout or a transient refusal), not before ``not_before``."""

    frame: Frame
    entry: Pending | None = None
    not_before: float = 0.0


@dataclass(slots=True)
class _Config:
    backoff: Backoff
    heartbeat: Heartbeat | None
    ack_timeout: float
    connect_timeout: float
    close_timeout: float
    high_water: int
    drain_interval: float
    persist: bool
    persist_interval: float
    should_reconnect: ShouldReconnect


def _nothing(channel: str, data: Any) -> None:
    """The answer to a leave carries nothing."""
    return None


class WebSocketEngine:
    """All the decisions of one reconnecting WebSocket client. See the module docstring."""

    def __init__(
        self,
        *,
        protocol: str | WireProtocol = "pyrt",
        backoff: Backoff | None = None,
        heartbeat: Heartbeat | None = Heartbeat(),  # noqa: B008 (frozen, shared safely)
        queue_limit: int = 1000,
        queue_bytes: int = 1 << 20,
        overflow: Overflow = "drop_oldest",
        ack_timeout: float = 10.0,
        ack_retries: int = 3,
        connect_timeout: float = 10.0,
        close_timeout: float = 2.0,
        should_reconnect: ShouldReconnect | None = None,
        high_water: int = 1 << 20,
        drain_interval: float = 0.05,
        persist: bool = False,
        persist_interval: float = 0.0,
        token_refresh: bool = False,
        rng: Callable[[], float] | None = None,
        pacing: Pacing | Literal["auto"] | None = "auto",
    ) -> None:
        if not ack_timeout > 0:
            raise ValueError(f"ack_timeout must be > 0, got {ack_timeout!r}")
        if not connect_timeout > 0:
            raise ValueError(f"connect_timeout must be > 0, got {connect_timeout!r}")
        self.protocol = get_protocol(protocol)
        rng = rng if rng is not None else random.random
        self._cfg = _Config(
            backoff=backoff if backoff is not None else Backoff(),
            heartbeat=heartbeat,
            ack_timeout=ack_timeout,
            connect_timeout=connect_timeout,
            close_timeout=close_timeout,
            high_water=high_water,
            drain_interval=drain_interval,
            persist=persist,
            persist_interval=persist_interval,
            should_reconnect=should_reconnect or default_should_reconnect,
        )
        self._sm = StateMachine()
        self._actions: list[Action] = []
        self._outbox = Outbox(queue_limit, queue_bytes, overflow)
        if pacing == "auto":
            pacing = Pacing() if self.protocol.flow_control else None
        elif pacing is not None and not isinstance(pacing, Pacing):
            raise TypeError(f"pacing must be a Pacing, None or 'auto', got {pacing!r}")
        self._pacer = Pacer(pacing) if pacing is not None else None
        self._again: deque[_Again] = deque()  # goes out before the queue, in order
        self._max_bytes: int | None = None  # the server's frame size limit, once advertised
        self._probes = 0  # pings sent to learn how far the server has read
        self._rearm = False  # next_deadline() moved earlier without an action (see has_actions)
        self._window = 0.0  # the server's reconnect window, until a connection opens
        self._acks = PendingAcks(ack_retries)
        self._ids = AckIds(rng, numeric=self.protocol.numeric_ids)
        self._subs = Subscriptions()
        self._restored_offsets: dict[str, str] = {}
        self._hb = HeartbeatMonitor(heartbeat) if heartbeat is not None else None
        self._pong_match: Callable[[Frame], bool] | None = None
        if heartbeat is not None:
            self._pong_match = heartbeat.pong_matcher() or self.protocol.pong_matcher()
        self._raw = self.protocol.raw_inbound
        self._reconnect = ReconnectScheduler(self._cfg.backoff, rng)
        self._paused = False  # pause() was called and resume() not yet
        self._sockets = 0  # sockets opened so far
        self._open_at: float | None = None
        self._reconnect_at: float | None = None
        self._connect_deadline: float | None = None
        self._close_deadline: float | None = None
        self._drain_at: float | None = None
        self._save_at: float | None = None
        self._journal: Journal | None = None
        if persist:
            from pyrt.persist.journal import Journal

            self._journal = Journal()
        self._last_close: CloseInfo | None = None
        self.session: str | None = None  # the pyrt server's name for the current connection
        #: When to refresh the connection's token (``token_refresh=True``: the client has a
        #: token callable; see :mod:`pyrt.engine.credentials`).
        self._token = TokenRefresh() if token_refresh else None
        self._rearm = False  # next_deadline() moved with no action to say so (see has_actions)
        self._joins: dict[str, _Join] = {}  # presence the client is in, by channel
        self._join_ids: dict[AckId, str] = {}  # join frames in flight -> their channel
        #: This client's name for its presence members: the same across its reconnects.
        self.presence_key = "".join(_KEY_CHARS[int(rng() * 36) % 36] for _ in range(16))
        self.stats = Stats()

    # ------------------------------------------------------------------------------ properties

    @property
    def state(self) -> State:
        return self._sm.state

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._paused

    @property
    def queue_length(self) -> int:
        return len(self._outbox)

    @property
    def pending_acks(self) -> int:
        return len(self._acks)

    @property
    def has_actions(self) -> bool:
        """True when :meth:`actions` has something to drain, or :meth:`next_deadline` moved
        earlier (cheap check for hot paths: call :meth:`actions`, then re-arm the timer)."""
        return bool(self._actions) or self._rearm

    def actions(self) -> list[Action] | tuple[Action, ...]:
        """Take the actions produced since the last call, in the order they must be performed."""
        self._rearm = False
        if not self._actions:
            return _EMPTY
        taken = self._actions
        self._actions = []
        return taken

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must run next (None: no timer needed)."""
        state = self._sm.state
        deadline: float | None = None
        if state is State.OPEN:
            if self._hb is not None:
                deadline = self._hb.next_deadline()
            ack = self._acks.next_deadline()
            if ack is not None and (deadline is None or ack < deadline):
                deadline = ack
            if self._drain_at is not None and (deadline is None or self._drain_at < deadline):
                deadline = self._drain_at
            token = self._token.next_deadline() if self._token is not None else None
            if token is not None and (deadline is None or token < deadline):
                deadline = token
        elif state is State.RECONNECTING:
            deadline = self._reconnect_at
        elif state is State.CONNECTING:
            deadline = self._connect_deadline
        elif state is State.CLOSING:
            deadline = self._close_deadline
        if self._save_at is not None and (deadline is None or self._save_at < deadline):
            deadline = self._save_at
        return deadline

    def stats_snapshot(self) -> Stats:
        """A copy of :attr:`stats` with the current sizes and round-trip times filled in."""
        stats = replace(self.stats)
        stats.queue_length = len(self._outbox)
        stats.pending_acks = len(self._acks)
        stats.duplicates = self.stats.duplicates + self._subs.duplicates
        if self._hb is not None:
            stats.rtt = self._hb.rtt
            stats.srtt = self._hb.srtt
        return stats

    # ----------------------------------------------------------------------------- user calls

    def connect(self, now: float) -> None:
        """Start connecting (state IDLE -> CONNECTING). A client connects once; it reconnects
        by itself after that."""
        state = self._sm.state
        if state is not State.IDLE:
            if state is State.CLOSED:
                raise ClientClosedError("cannot connect a closed client; create a new one")
            raise InvalidStateError(
                f"connect() was already called (state {state.name}); the client reconnects by itself"
            )
        if self._journal is not None and self._journal.held:
            self._journal.release()  # nothing was restored: there was nothing to restore
            self._dirty(now)
        self._open_socket(now)

    def close(self, now: float, code: int = 1000, reason: str = "") -> None:
        """Close for good: no reconnect; pending acks are rejected and queued messages dropped
        (each reported). Closing a closing or closed client does nothing."""
        validate_close_code(code)
        if len(reason.encode("utf-8")) > MAX_REASON_BYTES:
            raise InvalidCloseCode(
                f"close reason must be at most {MAX_REASON_BYTES} bytes of UTF-8, "
                f"got {len(reason.encode('utf-8'))}"
            )
        state = self._sm.state
        if state in (State.CLOSING, State.CLOSED):
            return
        detail = "closed by the client"
        self._abort_all(ClientClosedError, "close() was called", now)
        if state in (State.CONNECTING, State.OPEN):
            self._set(State.CLOSING)
            self._actions.append(CloseSocket(code, reason, False))
            self._close_deadline = now + self._cfg.close_timeout
            self._off_the_wire()
            return
        self._finish(CloseInfo(code, reason, True, None), by_client=True, detail=detail, now=now)

    def send(self, data: Any, now: float, buffered: int = 0) -> Frame | None:
        """Send a fire-and-forget message.

        Returns the frame to transmit now, or None when it was queued (not open yet, earlier
        messages still queued, or ``buffered`` — the socket's ``bufferedAmount`` — over the
        high-water mark). Raises :class:`ClientClosedError` when closing or closed,
        :class:`~pyrt.errors.EncodeError` for data the protocol cannot carry and
        :class:`QueueFull` when the queue is full and the overflow policy is ``"raise"``.
        """
        self._check_sendable()
        frame = self.protocol.encode(data)
        if self._max_bytes is not None and len(frame) * 4 > self._max_bytes:
            self._check_size(frame, None)
        if (
            self._sm.state is State.OPEN
            and not self._outbox
            and not self._again
            and buffered <= self._cfg.high_water
        ):
            pacer = self._pacer
            if pacer is None:
                self.stats.sent += 1
                return frame
            if pacer.allows(now):
                pacer.spend(now)
                self.stats.sent += 1
                return frame
        self._enqueue(Queued(frame, frame_size(frame)), now)
        return None

    def send_frame(self, frame: Frame, now: float, buffered: int = 0) -> Frame | None:
        """Send a frame encoded already (a shared connection forwards its clients' frames).
        Like :meth:`send`: returns it to transmit now, or ``None`` when it was queued."""
        self._check_sendable()
        if self._sm.state is State.OPEN and not self._outbox and buffered <= self._cfg.high_water:
            self.stats.sent += 1
            return frame
        self._enqueue(Queued(frame, frame_size(frame)), now)
        return None

    def send_with_ack(
        self,
        data: Any,
        now: float,
        handle: object,
        timeout: float | None = None,
        buffered: int = 0,
    ) -> AckId:
        """Send a message that wants an acknowledgement; returns its id.

        ``handle`` comes back in exactly one :class:`ResolveAck` (with the server's reply data) or
        :class:`RejectAck` (:class:`AckTimeout`, :class:`AckError`, :class:`QueueFull`,
        :class:`ClientClosedError`). ``timeout`` overrides ``ack_timeout`` for this message: how
        long to wait for the ack of each transmission before sending it again.
        """
        self._check_sendable()
        self._check_acks()
        ack_id = self._ids.next()
        frame = self.protocol.encode_acked(ack_id, data)
        entry = Pending(ack_id, frame, handle, "message", self._timeout(timeout))
        self._submit(entry, now, buffered)
        return ack_id

    def publish(
        self,
        channel: str,
        data: Any,
        now: float,
        handle: object,
        event: str | None = None,
        timeout: float | None = None,
        buffered: int = 0,
    ) -> AckId:
        """Publish into a channel; ``handle`` resolves with the publication's offset. Acked,
        retried and deduplicated like :meth:`send_with_ack`."""
        self._check_sendable()
        self._check_channels()
        ack_id = self._ids.next()
        frame = self.protocol.encode_publish(ack_id, channel, data, event)
        entry = Pending(ack_id, frame, handle, "publish", self._timeout(timeout))
        self._submit(entry, now, buffered)
        return ack_id

    def history(
        self,
        channel: str,
        now: float,
        handle: object,
        limit: int | None = None,
        since: str | None = None,
        reverse: bool = False,
        timeout: float | None = None,
        buffered: int = 0,
    ) -> AckId:
        """Ask for a page of ``channel``'s history (:mod:`pyrt.engine.history`); ``handle`` resolves
        with a :class:`~pyrt.engine.history.HistoryPage`. Sent at once or queued, re-sent after a
        reconnect, never persisted; fails like :meth:`send_with_ack`."""
        from pyrt.engine.history import check_query, read_page  # loaded by clients that read history

        check_query(channel, limit, since, reverse)

        def encode(ack_id: AckId, channel: str) -> Frame:
            return self.protocol.encode_history(ack_id, channel, limit, since, reverse)

        return self._request(
            channel, now, handle, timeout, buffered, encode, partial(read_page, reverse=reverse)
        )

    def presence(
        self, channel: str, now: float, handle: object, timeout: float | None = None, buffered: int = 0
    ) -> AckId:
        """Ask who is in ``channel``'s presence; ``handle`` resolves with a list of
        :class:`~pyrt.engine.presence.Member`. A request like :meth:`history`."""
        return self._request(
            channel, now, handle, timeout, buffered, self.protocol.encode_presence, read_presence
        )

    def join(
        self,
        channel: str,
        info: Any,
        now: float,
        handle: object = None,
        timeout: float | None = None,
    ) -> None:
        """Be in ``channel``'s presence with ``info`` (a JSON value) until :meth:`leave`:
        joined when connected, and again after every reconnect under the same key
        (:attr:`presence_key`), so the server keeps one member. ``handle`` resolves with the
        member's id once the server confirmed it, or fails (``forbidden``: not allowed, or the
        channel's presence is full; the join is then given up). Joining again updates ``info``."""
        self._check_sendable()
        self._check_channels()
        self._check_channel(channel)
        self.protocol.encode_join("probe", channel, info, self.presence_key)  # EncodeError now
        join = self._joins.get(channel)
        handles = [] if join is None else join.handles
        if handle is not None:
            handles.append(handle)
        self._joins[channel] = _Join(info, handles)
        if self._sm.state is State.OPEN:
            self._send_join(channel, now, timeout)

    def leave(
        self, channel: str, now: float, handle: object = None, timeout: float | None = None, buffered: int = 0
    ) -> AckId:
        """Leave ``channel``'s presence (also when joined by an earlier connection of this
        client); ``handle`` resolves with ``None``. A join still waiting for its answer fails."""
        self._check_channel(channel)
        join = self._joins.pop(channel, None)
        if join is not None:
            for waiting in join.handles:
                self._actions.append(
                    RejectAck(waiting, ClientClosedError(f"left {channel!r} before the join was confirmed"))
                )
        key = self.presence_key
        return self._request(
            channel,
            now,
            handle,
            timeout,
            buffered,
            lambda ack_id, ch: self.protocol.encode_leave(ack_id, ch, key),
            _nothing,
        )

    def members(self, channel: str) -> list[Member]:
        """The members of ``channel`` as a subscription with presence knows them (empty when
        there is none, or before the server sent them)."""
        sub = self._subs.get(channel)
        if sub is None or sub.view is None:
            return []
        return list(sub.view.members.values())

    def _request(
        self,
        channel: str,
        now: float,
        handle: object,
        timeout: float | None,
        buffered: int,
        encode: Callable[[AckId, str], Frame],
        decode: Callable[[str, Any], Any],
    ) -> AckId:
        self._check_sendable()
        self._check_channels()
        self._check_channel(channel)
        ack_id = self._ids.next()
        entry = Pending(ack_id, encode(ack_id, channel), handle, "request", self._timeout(timeout))
        entry.decode = partial(decode, channel)
        self._submit(entry, now, buffered)
        return ack_id

    def _send_join(self, channel: str, now: float, timeout: float | None = None) -> None:
        join = self._joins[channel]
        ack_id = self._ids.next()
        frame = self.protocol.encode_join(ack_id, channel, join.info, self.presence_key)
        entry = Pending(ack_id, frame, None, "join", self._timeout(timeout))
        self._acks.add(entry)
        self._join_ids[ack_id] = channel
        self._transmit(entry, now)  # at once (ahead of the queue), counted by the pacer

    def _join_answered(self, entry: Pending, event: Ack | ErrorFrame | None) -> None:
        """A join frame was answered (``None``: it timed out after its retries)."""
        channel = self._join_ids.pop(entry.id, None)
        join = self._joins.get(channel) if channel is not None else None
        if channel is None or join is None:
            return  # left meanwhile
        if isinstance(event, Ack) and event.ok:
            data = event.data if isinstance(event.data, dict) else {}
            handles, join.handles = join.handles, []
            for handle in handles:
                self._actions.append(ResolveAck(handle, data.get("client")))
            return
        del self._joins[channel]  # refused: asking again after every reconnect would be refused again
        if event is None:
            error: Exception = AckTimeout(entry.id, entry.attempts, entry.timeout)
        elif isinstance(event, ErrorFrame):
            error = ChannelRefused(event.code, event.message, channel)
        else:
            error = ChannelRefused("refused", str(event.error), channel)
        if not join.handles:
            self._actions.append(ReportError(error))
        for handle in join.handles:
            self._actions.append(RejectAck(handle, error))

    def _check_channel(self, channel: object) -> None:
        if not is_channel_name(channel):
            raise ValueError(f"{CHANNEL_RULE}, got {channel!r}")

    def subscribe(
        self, channel: str, handler: object, now: float, since: str | None = None, on_presence: object = None
    ) -> None:
        """Subscribe to ``channel``; publications come back as :class:`DeliverPublication` with
        ``handler``. ``since``: an offset (or ``"0"``) to replay from; by default live only, or
        the offset saved by a previous page when persistence is on. Restored after every
        reconnect, resuming after the last delivered publication. With ``on_presence`` the
        subscription follows the channel's presence too: joins and leaves come back as
        :class:`DeliverPresence` (after a reconnect, the differences the client missed)."""
        self._check_sendable()
        self._check_channels()
        if not isinstance(channel, str) or not channel:
            raise ValueError(f"channel must be a non-empty str, got {channel!r}")
        if since is None:
            since = self._restored_offsets.pop(channel, None)
        sub = self._subs.add(channel, handler, since, on_presence)
        if self._sm.state is State.OPEN:
            frame = self.protocol.encode_subscribe(channel, sub.offset, on_presence is not None)
            self._send_again(_Again(frame), now)
        self._offsets_moved(now)

    def unsubscribe(self, channel: str, now: float) -> bool:
        """Stop a subscription; returns False when there was none."""
        sub = self._subs.remove(channel)
        if sub is None:
            return False
        if self._sm.state is State.OPEN:
            self._send_again(_Again(self.protocol.encode_unsubscribe(channel)), now)
        self._offsets_moved(now)
        return True

    def restore(self, snapshot: Snapshot) -> None:
        """Load what a previous page saved (before :meth:`connect`): its unacknowledged messages
        are sent first with their original ids — before anything sent since the client was
        made — and its channel offsets resume the same subscriptions, whether they are made
        again after this call or were made before it without an explicit ``since``. The fate of
        each restored message that wanted an ack comes back as a :class:`ReportRestored`."""
        if self._sm.state is not State.IDLE:
            raise InvalidStateError("restore() must be called before connect()")
        journal = self._journal
        waiting = self._outbox.clear()  # sent while the saved state was loading: after it
        for saved in snapshot.frames:
            if saved.ack_id is not None and saved.ack_id in self._acks:
                continue  # the same message twice (a corrupt store): keep the first
            item = Queued(saved.frame, frame_size(saved.frame), saved.ack_id)
            if saved.ack_id is not None:
                kind: Kind = "publish" if saved.kind == "publish" else "message"
                self._acks.add(Pending(saved.ack_id, saved.frame, _RESTORED, kind, self._cfg.ack_timeout))
            if journal is not None:
                journal.restored(item if saved.ack_id is None else saved.ack_id, saved)
            self.stats.restored += 1
            for dropped in self._outbox.push(item):
                self._drop(dropped, "restoring saved messages")
        for item in waiting:
            for dropped in self._outbox.push(item):
                self._drop(dropped, "restoring saved messages")
        if journal is not None:
            journal.release()
        for channel, offset in snapshot.offsets.items():
            sub = self._subs.get(channel)
            if sub is None:
                self._restored_offsets[channel] = offset
            elif sub.offset is None:  # subscribed before restore(), live only: resume instead
                sub.offset, sub.key = offset, offset_key(offset)

    def save_now(self, now: float) -> bool:
        """Write what changed at once instead of at the next save (a :class:`SaveState` follows
        when something did). Returns False when persistence is off."""
        if self._journal is None:
            return False
        self._save()
        return True

    def snapshot(self) -> Snapshot:
        """What persistence saves now: unacknowledged and unsent messages, in send order, and
        the resume offset of every channel."""
        from pyrt.persist.records import SavedFrame, Snapshot

        frames = [
            SavedFrame(e.frame, e.id, e.kind) for e in self._acks.in_flight() if e.kind in PERSISTED_KINDS
        ]
        for item in self._outbox:
            kind: str = "message"
            if item.ack_id is not None:
                entry = self._acks.get(item.ack_id)
                kind = entry.kind if entry is not None else "message"
            if kind in PERSISTED_KINDS:  # reads and token refreshes die with the page
                frames.append(SavedFrame(item.frame, item.ack_id, kind))
        offsets = dict(self._restored_offsets)
        offsets.update(self._subs.offsets())
        return Snapshot(tuple(frames), offsets)

    # ------------------------------------------------------------------------- socket events

    def opened(self, now: float) -> None:
        """The current socket opened. Subscriptions are restored, unacknowledged messages sent
        again, then the queue is flushed — all before any new send."""
        if self._sm.state is not State.CONNECTING:
            return
        self._set(State.OPEN)
        self._open_at = now
        self._connect_deadline = None
        if self._hb is not None:
            self._hb.start(now)
        if self._pacer is not None:
            self._pacer.start(now, welcome=self.protocol.flow_control)
        self._window = 0.0
        again = self._again
        for sub in self._subs.all():
            again.append(
                _Again(self.protocol.encode_subscribe(sub.channel, sub.offset, sub.on_presence is not None))
            )
        for entry in self._acks.in_flight():
            again.append(_Again(entry.frame, entry))
        for channel in self._joins:  # presence again, as the same member
            self._send_join(channel, now)
        self._flush(now, 0)

    def received(self, frame: Frame, now: float) -> Any:
        """A frame arrived. Returns the application message to deliver, or :data:`NO_MESSAGE`
        (control frames act through :meth:`actions`)."""
        self.stats.received += 1
        hb = self._hb
        if hb is not None:
            hb.last_seen = now
            match = self._pong_match
            if match is not None and match(frame):
                hb.pong(now)
                return NO_MESSAGE
        if self._raw:
            return frame
        if type(frame) is str and "\n" in frame:
            events = self.protocol.decode_batch(frame)
            if events is not None:  # several frames (pyrt.v1.batch): every one in order, as actions
                self.stats.received += len(events) - 1
                for event in events:
                    if type(event) is Message:
                        self._actions.append(DeliverMessage(event.data))
                    else:
                        self._control(event, now)
                return NO_MESSAGE
        event = self.protocol.decode(frame)
        if type(event) is Message:
            return event.data
        self._control(event, now)
        return NO_MESSAGE

    def alive(self, now: float) -> None:
        """A frame arrived that the adapter handled itself (a shared connection routing it to
        its clients): counted, and proof of life for the heartbeat."""
        self.stats.received += 1
        if self._hb is not None:
            self._hb.last_seen = now

    def closed(self, code: int, reason: str, now: float, was_clean: bool | None = None) -> None:
        """The current socket closed (its ``close`` event, or a failed connection: 1006)."""
        if was_clean is None:
            was_clean = code != 1006
        state = self._sm.state
        if state is State.CLOSING:
            self._close_deadline = None
            self._finish(
                CloseInfo(code, reason, was_clean, None),
                by_client=True,
                detail="closed by the client",
                now=now,
            )
        elif state in (State.CONNECTING, State.OPEN):
            what = f"closed with code {code}" + (f" ({reason})" if reason else "")
            self._lost(CloseInfo(code, reason, was_clean, self._uptime(now)), now, what)

    # ------------------------------------------------------------------------------ timers

    def tick(self, now: float, buffered: int = 0) -> None:
        """The timer fired (at or after :meth:`next_deadline`). ``buffered``: the current
        socket's ``bufferedAmount`` (0 when unknown)."""
        state = self._sm.state
        if state is State.OPEN:
            self._tick_open(now, buffered)
        elif state is State.RECONNECTING:
            if self._reconnect_at is not None and now >= self._reconnect_at:
                self._open_socket(now)
        elif state is State.CONNECTING:
            if self._connect_deadline is not None and now >= self._connect_deadline:
                self._abandon(now, f"not open after {self._cfg.connect_timeout:g} s (connect timeout)")
        elif state is State.CLOSING and self._close_deadline is not None and now >= self._close_deadline:
            self._close_deadline = None
            self._actions.append(CloseSocket(1000, "close timeout", True))
            self._finish(
                CloseInfo(1006, "", False, None),
                by_client=True,
                detail=(
                    f"closed by the client (the socket did not finish closing within "
                    f"{self._cfg.close_timeout:g} s)"
                ),
                now=now,
            )
        if self._save_at is not None and now >= self._save_at:
            self._save()

    def _tick_open(self, now: float, buffered: int) -> None:
        hb = self._hb
        if hb is not None:
            verdict = hb.check(now)
            if verdict is Verdict.PING:
                self._send_ping(now)
            elif verdict is Verdict.DEAD:
                self._abandon(now, f"no frame within {hb.config.timeout:g} s of a ping (heartbeat timeout)")
                return
        for entry in self._acks.due(now):
            if entry.kind == "refresh":  # a new token is fetched instead of re-sending this one
                self._acks.discard(entry)
                self._refresh_failed(now, TokenError("the server did not answer the token refresh in time"))
                continue
            if entry.kind == "join" and self._acks.exhausted(entry):
                self._acks.discard(entry)
                self._join_answered(entry, None)
                continue
            if self._acks.exhausted(entry):
                self._acks.discard(entry)
                self._forget(entry, now)
                self.stats.ack_timeouts += 1
                self._reject(entry, AckTimeout(entry.id, entry.attempts, entry.timeout))
            else:
                self._again_in_order(_Again(entry.frame, entry))
        if self._drain_at is not None and now >= self._drain_at:
            self._drain_at = None
        if self._outbox or self._again:
            self._flush(now, buffered)
        token = self._token
        if token is not None and token.due(now):
            self._actions.append(FetchToken(token.started()))

    # ------------------------------------------------------------------------- credentials

    def token_fetched(self, token: str, now: float, request: int | None = None) -> None:
        """The token callable returned ``token`` for :class:`FetchToken` ``request`` (``None``:
        the latest): send it in a ``refresh`` frame at once, ahead of anything queued. Ignored
        when the connection it was meant for is gone (the next one starts with a fresh token),
        when a newer request started, and when that request was answered already."""
        schedule = self._token
        if schedule is None or self._sm.state is not State.OPEN or not schedule.takes(request):
            return
        ack_id = self._ids.next()
        entry = Pending(
            ack_id, self.protocol.encode_refresh(ack_id, token), None, "refresh", self._cfg.ack_timeout
        )
        self._acks.add(entry)
        self._transmit(entry, now)  # at once (ahead of the queue), counted by the pacer

    def token_failed(self, error: Exception, now: float, request: int | None = None) -> None:
        """The token callable raised ``error`` (or returned something unusable) for
        :class:`FetchToken` ``request``: report it and try again later
        (:mod:`pyrt.engine.credentials`). Ignored like a late :meth:`token_fetched`."""
        schedule = self._token
        if schedule is None or not schedule.takes(request):
            return
        if not isinstance(error, TokenError):
            wrapped = TokenError(f"the token callable failed: {error}")
            wrapped.__cause__ = error
            error = wrapped
        self._refresh_failed(now, error)

    def _refresh_failed(self, now: float, error: Exception) -> None:
        if self._token is not None:
            self._token.failed(now)
        self._actions.append(ReportError(error))

    def _refresh_answered(self, event: Ack | ErrorFrame, now: float) -> None:
        if self._token is None:
            return
        if isinstance(event, Ack) and event.ok:
            data = event.data if isinstance(event.data, dict) else {}
            ttl = data.get("ttl")
            if isinstance(ttl, int | float) and not isinstance(ttl, bool) and ttl >= 0:
                self._token.expires_in(float(ttl), now)
                self._rearm = True
            else:
                self._token.reset()  # the server says the connection does not expire
            self.stats.token_refreshes += 1
            return
        why = event.error if isinstance(event, Ack) else event.message
        self._refresh_failed(now, TokenError(f"the server refused the refreshed token: {why}"))

    # ------------------------------------------------------------------------- environment

    def network_online(self, now: float) -> None:
        """The browser says the network is back: retry at once, or check an open connection."""
        state = self._sm.state
        if state is State.RECONNECTING:
            self._open_socket(now)
        elif state is State.OPEN:
            self._probe(now)

    def woke(self, now: float, slept: float) -> None:
        """The machine slept ``slept`` seconds (:mod:`pyrt.engine.wake`). A connection that was silent
        that long is presumed dead — the server's heartbeat and any NAT on the way drop idle
        ones — so when it outlasted the heartbeat (``interval + timeout``, 60 s without one) the
        socket is replaced at once; a shorter sleep only probes it. A pending reconnect happens
        now."""
        state = self._sm.state
        hb = self._cfg.heartbeat
        limit = hb.interval + hb.timeout if hb is not None else 60.0
        if state is State.RECONNECTING:
            self._open_socket(now)
        elif state in (State.OPEN, State.CONNECTING) and slept >= limit:
            self._abandon(now, f"the machine slept for {slept:.0f} s")
            if self._sm.state is State.RECONNECTING:
                self._open_socket(now)
        elif state is State.OPEN:
            self._probe(now)

    def page_visible(self, now: float, buffered: int = 0) -> None:
        """The page became visible: check liveness at once and catch up on late timers."""
        if self._sm.state is State.OPEN:
            self._probe(now)
        self.tick(now, buffered)

    def page_hidden(self, now: float) -> None:
        """The page is going away (``pagehide``): save state, close the socket cleanly and stay
        PAUSED until :meth:`page_shown` (back from the back/forward cache)."""
        state = self._sm.state
        if state in (State.OPEN, State.CONNECTING, State.RECONNECTING):
            self._go_quiet("page hidden")
        if self._cfg.persist and state is not State.CLOSED:
            self._save()

    def page_shown(self, now: float) -> None:
        """The page is shown again after :meth:`page_hidden`: reconnect at once, unless
        :meth:`pause` was called (only :meth:`resume` ends that)."""
        if self._sm.state is State.PAUSED and not self._paused:
            self._open_socket(now)

    def pause(self, now: float) -> None:
        """Go offline on purpose (state PAUSED): close the socket cleanly and stay disconnected,
        queueing sends and keeping pending acks and subscriptions, until :meth:`resume`. The
        page coming back (:meth:`page_shown`) does not end a pause."""
        state = self._sm.state
        if state in (State.IDLE, State.CLOSING, State.CLOSED):
            raise InvalidStateError(f"cannot pause a client that is {state.name}")
        self._paused = True
        if state is not State.PAUSED:
            self._go_quiet("paused")
        if self._cfg.persist:
            self._save()

    def resume(self, now: float) -> None:
        """End a :meth:`pause`: connect at once (the queue then flushes in order and the
        subscriptions recover). Does nothing when not paused."""
        if not self._paused:
            return
        self._paused = False
        if self._sm.state is State.PAUSED:
            self._open_socket(now)

    def _go_quiet(self, why: str) -> None:
        """Let go of the socket (if any) and wait in PAUSED with no timer."""
        if self._sm.state in (State.OPEN, State.CONNECTING):
            self._actions.append(CloseSocket(1000, why, True))
            self._off_the_wire()
            self._open_at = None
            self._connect_deadline = None
        self._reconnect_at = None
        self._set(State.PAUSED)

    # ------------------------------------------------------------------------------ helpers

    def _set(self, new: State) -> None:
        old = self._sm.to(new)
        self._actions.append(StateChanged(old, new))

    def _uptime(self, now: float) -> float | None:
        return None if self._open_at is None else now - self._open_at

    def _timeout(self, timeout: float | None) -> float:
        if timeout is None:
            return self._cfg.ack_timeout
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout!r}")
        return timeout

    def _check_sendable(self) -> None:
        state = self._sm.state
        if state is State.CLOSED:
            raise ClientClosedError("cannot send on a closed client; create a new one")
        if state is State.CLOSING:
            raise ClientClosedError("cannot send on a closing client; create a new one")

    def _check_acks(self) -> None:
        if not self.protocol.acks:
            raise UnsupportedByProtocol(
                f"the {self.protocol.name!r} protocol has no acknowledgements; use "
                "protocol='pyrt' or 'json-ack', or send() without an ack"
            )

    def _check_channels(self) -> None:
        if not self.protocol.channels:
            raise UnsupportedByProtocol(
                f"the {self.protocol.name!r} protocol has no channels; use protocol='pyrt' "
                "with a pyrt server for subscribe/publish"
            )

    def _open_socket(self, now: float) -> None:
        self._set(State.CONNECTING)
        self._sockets += 1
        if self._sockets > 1:
            self.stats.reconnects += 1
        self._reconnect_at = None
        self._connect_deadline = now + self._cfg.connect_timeout
        self._actions.append(OpenSocket(self._sockets))

    def _emit_frame(self, frame: Frame) -> None:
        self.stats.sent += 1
        self._actions.append(SendFrame(frame))

    def _emit_now(self, frame: Frame, now: float) -> None:
        """A frame that never waits for the pacer (pings, pongs): it still spends a token."""
        if self._pacer is not None:
            self._pacer.force(now)
        self._emit_frame(frame)

    def _send_ping(self, now: float) -> None:
        assert self._hb is not None
        frame = self._cfg.heartbeat.ping_frame() if self._cfg.heartbeat is not None else None
        if frame is None:
            frame = self.protocol.encode_ping(self._hb.pings)
            if self._pacer is not None:
                self._pacer.ping_sent(self._hb.pings)
        self._emit_now(frame, now)

    def _probe(self, now: float) -> None:
        if self._hb is not None and self._hb.check_now(now) is Verdict.PING:
            self._send_ping(now)

    def _probe_reads(self, now: float) -> None:
        """Ask how far the server has read (a ping; its pong confirms what went before), when
        the pacer waits for that."""
        pacer = self._pacer
        if pacer is not None and self._sm.state is State.OPEN and pacer.probe_due(now):
            self._probes += 1
            t = -self._probes  # heartbeat pings count up from 1: the two never meet
            pacer.ping_sent(t)
            self._emit_now(self.protocol.encode_ping(t), now)

    def _check_size(self, frame: Frame, ack_id: AckId | None) -> None:
        limit = self._max_bytes
        if limit is not None:
            size = frame_size(frame)
            if size > limit:
                raise MessageTooLarge(size, limit, ack_id)

    def _submit(self, entry: Pending, now: float, buffered: int) -> None:
        if self._max_bytes is not None and len(entry.frame) * 4 > self._max_bytes:
            self._check_size(entry.frame, entry.id)
        self._acks.add(entry)
        journal = self._journal if entry.kind in PERSISTED_KINDS else None  # reads die with the page
        if journal is not None:
            journal.add(entry.id, self._saved(entry.frame, entry.id, entry.kind))
        pacer = self._pacer
        if (
            self._sm.state is State.OPEN
            and not self._outbox
            and not self._again
            and buffered <= self._cfg.high_water
            and (pacer is None or pacer.allows(now))
        ):
            self._transmit(entry, now)
        else:
            try:
                self._enqueue(Queued(entry.frame, frame_size(entry.frame), entry.id), now)
            except QueueFull:
                self._acks.discard(entry)
                if journal is not None:
                    journal.remove(entry.id)
                raise
        self._dirty(now)

    def _transmit(self, entry: Pending, now: float) -> None:
        """Send an acked message (the first time or again) and start its timeout."""
        if self._pacer is not None:
            entry.seq = self._pacer.spend(now)
        self._emit_frame(entry.frame)
        self._acks.sent(entry, now)

    def _send_again(self, item: _Again, now: float) -> None:
        """Send ``item`` ahead of the queue, as soon as the pacer allows."""
        self._again.append(item)
        self._flush(now, 0)

    def _enqueue(self, item: Queued, now: float) -> None:
        dropped = self._outbox.push(item)
        if not dropped or dropped[-1] is not item:
            self.stats.queued += 1
            if item.ack_id is None and self._journal is not None:
                self._journal.add(item, self._saved(item.frame))
        for lost in dropped:
            self._drop(lost, f"the queue is full (overflow policy {self._outbox.overflow!r})")
        if self._sm.state is State.OPEN and self._drain_at is None:
            pacer = self._pacer
            if pacer is None:
                self._drain_at = now + self._cfg.drain_interval
            else:
                self._drain_at = pacer.ready_at(now)
                self._probe_reads(now)
        self._dirty(now)

    def _drop(self, item: Queued, why: str) -> None:
        self.stats.dropped += 1
        if self._journal is not None:
            self._journal.remove(item if item.ack_id is None else item.ack_id)
        error = QueueFull(
            f"dropped an unsent {item.size}-byte message"
            + (f" (id {item.ack_id!r})" if item.ack_id is not None else "")
            + f": {why}"
        )
        if item.ack_id is not None:
            entry = self._acks.pop(item.ack_id)
            if entry is not None:
                self._reject(entry, error)
                return
        self._actions.append(ReportError(error))

    def _flush(self, now: float, buffered: int) -> None:
        """Send what waits, in order — first :attr:`_again`, then the queue — as far as the
        pacer, the socket's buffer and any ``not_before`` allow; then set the next drain time."""
        outbox = self._outbox
        again = self._again
        pacer = self._pacer
        high_water = self._cfg.high_water
        journal = self._journal
        drain_at: float | None = None
        while again or outbox:
            if buffered > high_water:
                drain_at = now + self._cfg.drain_interval
                break
            if again and again[0].not_before > now:
                drain_at = again[0].not_before
                break
            if pacer is not None and not pacer.allows(now):
                drain_at = pacer.ready_at(now)  # None: an answer from the server will call back
                break
            if again:
                item = again.popleft()
                entry = item.entry
                if entry is None:
                    if pacer is not None:
                        pacer.spend(now)
                    self._emit_frame(item.frame)
                elif self._acks.get(entry.id) is entry:  # not acked or given up meanwhile
                    self._transmit(entry, now)
                    self.stats.retried += 1
                else:
                    continue
                buffered += frame_size(item.frame)
                continue
            queued = outbox.popleft()
            if self._max_bytes is not None and queued.size > self._max_bytes:
                self._too_large(queued, self._max_bytes, now)
                continue
            buffered += queued.size
            if queued.ack_id is not None:
                entry = self._acks.get(queued.ack_id)
                if entry is not None:
                    self._transmit(entry, now)
                    continue
            if pacer is not None:
                pacer.spend(now)
            self._emit_frame(queued.frame)
            if queued.ack_id is None and journal is not None:
                journal.remove(queued)  # sent: a fire-and-forget message is not kept
        self._drain_at = drain_at
        self._probe_reads(now)
        self._dirty(now)

    def _too_large(self, item: Queued, limit: int, now: float) -> None:
        """A queued frame turned out larger than the server accepts: fail it, never send it."""
        self.stats.dropped += 1
        error = MessageTooLarge(item.size, limit, item.ack_id)
        entry = self._acks.pop(item.ack_id) if item.ack_id is not None else None
        if entry is not None:
            self._forget(entry, now)
            self._reject(entry, error)  # its future, on_restored for a restored one, or on_error
            return
        if item.ack_id is None and self._journal is not None:
            self._journal.remove(item)
            self._dirty(now)
        self._actions.append(ReportError(error))

    def _wake_drain(self, now: float) -> None:
        """Something the pacer waited for arrived: drain at the next tick (which knows the
        socket's buffer) instead of waiting for a timer."""
        if (self._outbox or self._again) and (self._drain_at is None or self._drain_at > now):
            self._drain_at = now
            self._rearm = True

    def _control(self, event: object, now: float) -> None:
        if type(event) is Publication:
            sub = self._subs.accept(event.channel, event.offset)
            if sub is None:
                return
            if sub.gap_pending:
                sub.gap_pending = False
                event = replace(event, recovered=False)
            self._actions.append(DeliverPublication(sub.handler, event, sub))
            if self._journal is not None:
                self._offsets_moved(now)
        elif type(event) is Ack:
            if not event.ok and is_retryable(event.code):
                entry = self._acks.get(event.id)
                self._refused(event.code, str(event.error), entry, event.retry_after, None, now)
                return
            entry = self._acks.pop(event.id)
            if entry is None:
                self.stats.duplicates += 1
                return
            pacer = self._pacer
            if pacer is not None and entry.deadline is not None and pacer.confirm(entry.seq):
                self._wake_drain(now)
            if entry.kind == "refresh":
                self._refresh_answered(event, now)
                return
            if entry.kind == "join":
                self._join_answered(entry, event)
                return
            self._forget(entry, now)
            if event.ok:
                if entry.kind in PERSISTED_KINDS:  # messages and publications, not reads
                    self.stats.acked += 1
                value = event.data
                if entry.kind == "publish" and isinstance(value, dict):
                    value = value.get("offset")
                elif entry.decode is not None:
                    try:
                        value = entry.decode(value)
                    except ValueError as exc:
                        self._reject(entry, AckError(entry.id, f"malformed answer: {exc}"))
                        return
                handle = entry.handle
                if handle is _RESTORED:
                    self._report_restored(entry, value, None)
                elif handle is not None:
                    self._actions.append(ResolveAck(handle, value))
            else:
                self._reject(entry, AckError(entry.id, event.error))
        elif type(event) is Pong:
            if self._hb is not None:
                self._hb.pong(now, event.t)
            if self._pacer is not None and self._pacer.pong(event.t):
                self._wake_drain(now)
        elif type(event) is Ping:
            if self._sm.state is State.OPEN:
                self._emit_now(self.protocol.encode_pong(event.t), now)
        elif type(event) is Subscribed:
            sub = self._subs.confirmed(event.channel, event.offset, event.recovered)
            if sub is not None:
                self._actions.append(SubscriptionConfirmed(event.channel, event.offset, event.recovered))
                self._offsets_moved(now)
                if sub.on_presence is not None and event.presence is not None:
                    if sub.view is None:
                        sub.view = PresenceView(sub.channel)
                    joined, left = sub.view.snapshot(*event.presence)
                    if joined or left:
                        self._actions.append(DeliverPresence(sub.on_presence, tuple(joined), tuple(left)))
        elif type(event) is PresenceDiff:
            sub = self._subs.get(event.channel)
            if sub is not None and sub.view is not None and sub.on_presence is not None:
                joined, left = sub.view.diff(event.version, event.joins, event.leaves)
                if joined or left:
                    self._actions.append(DeliverPresence(sub.on_presence, tuple(joined), tuple(left)))
        elif type(event) is Welcome:
            self.session = event.session
            limits = event.limits
            self._max_bytes = limits.max_bytes if limits is not None else None
            if self._pacer is not None:
                self._pacer.advertise(limits, now)
                self._wake_drain(now)
            if self._token is not None and event.ttl is not None:
                self._token.expires_in(event.ttl, now)
                self._rearm = True
        elif type(event) is ErrorFrame:
            if is_retryable(event.code):
                entry = self._acks.get(event.id) if event.id is not None else None
                self._refused(event.code, event.message, entry, event.retry_after, event.channel, now)
                return
            entry = self._acks.pop(event.id) if event.id is not None else None
            if entry is not None and entry.kind == "refresh":
                self._refresh_answered(event, now)
            elif entry is not None and entry.kind == "join":
                self._join_answered(entry, event)
            elif entry is not None:
                self._forget(entry, now)
                self._reject(entry, AckError(entry.id, event.message, event.code))
            elif event.code == "forbidden" and event.channel is not None and event.channel in self._subs:
                # refused or revoked: asking again after every reconnect would only be refused again
                self._subs.remove(event.channel)
                self._offsets_moved(now)
                self._actions.append(ReportError(ChannelRefused(event.code, event.message, event.channel)))
            else:
                self._actions.append(ReportError(ServerError(event.code, event.message)))
        elif type(event) is BadFrame:
            self._actions.append(ReportError(FrameError(event.reason, event.frame)))

    def _refused(
        self,
        code: str | None,
        message: str,
        entry: Pending | None,
        retry_after: float | None,
        channel: str | None,
        now: float,
    ) -> None:
        """The server refused a frame for now (:mod:`pyrt.wire.refusals`): send it again later, in
        its order, unless its retries ran out; a fire-and-forget frame is reported as lost.

        ``rate_limited`` also holds the pacer: nothing more goes out before ``retry_after``, nor
        before everything in flight has come back (the server refuses it all during its hold),
        so the refused frames go again in their order, ahead of anything newer."""
        self.stats.refused += 1
        pacer = self._pacer
        rate = code == RATE_LIMITED
        if rate and pacer is not None:
            if entry is not None and entry.deadline is not None:
                pacer.confirm(entry.seq)
            pacer.hold(now + (retry_after if retry_after is not None else RATE_HOLD), now)
        held = rate and pacer is not None  # the pacer holds everything: no per-frame wait
        if entry is not None:
            self._acks.recall(entry)
            entry.refusals += 1
            if entry.refusals > self._acks.retries:
                self._acks.discard(entry)
                self._forget(entry, now)
                if entry.kind == "refresh":
                    self._refresh_answered(ErrorFrame(str(code), message, entry.id), now)
                elif entry.kind == "join":
                    self._join_answered(entry, ErrorFrame(str(code), message, entry.id))
                else:
                    self._reject(entry, AckError(entry.id, message, code))
            else:
                wait = 0.0 if held else self._retry_delay(entry, retry_after)
                self._again_in_order(_Again(entry.frame, entry, now + wait))
        elif channel is not None and self.protocol.channels:
            sub = self._subs.get(channel)
            frame = (
                self.protocol.encode_subscribe(channel, sub.offset)
                if sub is not None
                else self.protocol.encode_unsubscribe(channel)
            )
            wait = 0.0 if held else self._retry_delay(None, retry_after)
            self._again.append(_Again(frame, None, now + wait))
        else:
            self.stats.dropped += 1
            self._actions.append(ReportError(ServerError(str(code), message)))
        if self._sm.state is State.OPEN:
            self._wake_drain(now)
            self._probe_reads(now)

    def _again_in_order(self, item: _Again) -> None:
        """Put a refused message back where its send order says: after the messages sent before
        it that wait too, before those queued after it (a second refusal can come while some
        refused in the first one still wait)."""
        again = self._again
        assert item.entry is not None
        order = item.entry.order
        for index, other in enumerate(again):
            if other.entry is not None and other.entry.order > order:
                again.insert(index, item)
                return
        again.append(item)

    def _retry_delay(self, entry: Pending | None, retry_after: float | None) -> float:
        """How long a refused frame waits (``unavailable``; ``rate_limited`` without a pacer):
        the server's ``retry_after``, else 0.5 s doubling with each refusal (up to the ack
        timeout), with equal jitter."""
        if retry_after is not None:
            return retry_after
        attempts = entry.refusals if entry is not None else 1
        base = min(self._cfg.ack_timeout, 0.5 * 2.0 ** min(max(attempts - 1, 0), 16))
        return base / 2 + base / 2 * self._reconnect.rng()

    def _reject(self, entry: Pending, error: Exception) -> None:
        handle = entry.handle
        if handle is _RESTORED:
            self._report_restored(entry, None, error)
            self._actions.append(ReportError(error))
        elif handle is not None:
            self._actions.append(RejectAck(handle, error))
        else:
            self._actions.append(ReportError(error))

    def _report_restored(self, entry: Pending, reply: Any, error: Exception | None) -> None:
        from pyrt.persist.records import RestoredMessage, describe

        data, channel = describe(entry.frame)
        message = RestoredMessage(entry.id, entry.kind, data, channel, error is None, reply, error)
        self._actions.append(ReportRestored(message))

    def _off_the_wire(self) -> None:
        for entry in self._acks.entries():
            if entry.kind in ("refresh", "join"):  # the next connection gets its own
                self._acks.discard(entry)
        self._join_ids.clear()
        if self._token is not None:
            self._token.reset()
        self._acks.off_the_wire()
        self._subs.disconnected()
        self._again.clear()  # on the next open: subscriptions and unacked messages again
        self._drain_at = None
        if self._hb is not None:
            self._hb.ping_sent_at = None

    def _abandon(self, now: float, why: str) -> None:
        self._actions.append(CloseSocket(ABANDON_CODE, why[:MAX_REASON_BYTES], True))
        self._lost(CloseInfo(1006, why, False, self._uptime(now)), now, why)

    def _lost(self, info: CloseInfo, now: float, what: str) -> None:
        """The socket is gone without close() having been called: reconnect or stop."""
        self._open_at = None
        self._connect_deadline = None
        self._off_the_wire()
        self._last_close = info
        if not self._cfg.should_reconnect(info):
            self._finish(info, by_client=False, detail=f"{what}; not reconnecting", now=now)
            return
        hint = parse_reason(info.reason) if info.reason else None
        if hint is not None and hint.window > 0:
            self._window = min(hint.window, MAX_SERVER_DELAY)  # this attempt and the failed ones after it
        floor = min(hint.after, MAX_SERVER_DELAY) if hint is not None else 0.0
        scheduler = self._reconnect
        delay = scheduler.failed(info.uptime, floor, window=self._window)
        if delay is None:
            tries = scheduler.attempts_made
            self._finish(
                info,
                by_client=False,
                detail=f"gave up after {tries} reconnect attempt{'s' if tries != 1 else ''} "
                f"(max_attempts={self._cfg.backoff.max_attempts}); last: {what}",
                now=now,
            )
            return
        self._set(State.RECONNECTING)
        self._reconnect_at = now + delay
        self._actions.append(Reconnecting(scheduler.failures, delay, what))

    def _abort_all(self, error: type[ClientClosedError], why: str, now: float) -> None:
        """Reject every pending ack and drop every queued message, reporting each."""
        journal = self._journal
        for item in self._outbox.clear():
            if item.ack_id is None:
                self.stats.dropped += 1
                if journal is not None:
                    journal.remove(item)
                self._actions.append(
                    ReportError(error(f"{why}: a queued {item.size}-byte message was never sent"))
                )
        for entry in self._acks.clear():
            if entry.kind == "join":
                continue  # its callers wait in the join itself, below
            self._forget(entry, now)
            self._reject(entry, error(f"{why} before message {entry.id!r} was acknowledged"))
        for channel, join in self._joins.items():
            handles, join.handles = join.handles, []
            for handle in handles:
                self._actions.append(
                    RejectAck(handle, error(f"{why} before joining {channel!r} was confirmed"))
                )
        self._join_ids.clear()
        self._again.clear()
        self._drain_at = None
        self._dirty(now)

    def _finish(self, info: CloseInfo, *, by_client: bool, detail: str, now: float) -> None:
        if not by_client:
            self._abort_all(ClientClosedError, f"the client stopped ({detail})", now)
        self._open_at = None
        self._reconnect_at = None
        self._set(State.CLOSED)
        if self._cfg.persist:
            self._save()  # before Closed: the client releases its storage once closed
        error = None if by_client else ClientClosedError(detail)
        self._actions.append(Closed(info.code, info.reason, info.was_clean, by_client, detail, error))

    def _saved(self, frame: Frame, ack_id: AckId | None = None, kind: str = "message") -> Any:
        from pyrt.persist.records import SavedFrame

        return SavedFrame(frame, ack_id, kind)

    def _forget(self, entry: Pending, now: float) -> None:
        """``entry`` left the pending set (acknowledged, failed, dropped)."""
        journal = self._journal
        if journal is not None:
            journal.remove(entry.id)
            self._dirty(now)

    def _offsets_moved(self, now: float) -> None:
        journal = self._journal
        if journal is not None:
            journal.offsets_changed()
            self._dirty(now)

    def _dirty(self, now: float) -> None:
        journal = self._journal
        if journal is not None and self._save_at is None and journal.dirty:
            self._save_at = now + self._cfg.persist_interval

    def _offsets(self) -> dict[str, str]:
        offsets = dict(self._restored_offsets)
        offsets.update(self._subs.offsets())
        return offsets

    def _save(self) -> None:
        self._save_at = None
        journal = self._journal
        if journal is None:
            return
        changes = journal.take(self._offsets)
        if changes is not None:
            self._actions.append(SaveState(changes))
