"""The connection core of the WebSocket engine: states, the socket, heartbeat, reconnect.

:class:`ConnectionCore` decides what happens to the connection itself — open a socket, give up
on a silent one, reconnect after a backoff delay or stop, close — and runs the two hot paths
(:meth:`~ConnectionCore.send` returns the frame, :meth:`~ConnectionCore.received` returns the
message). Everything else is a feature with its own module, which the core tells when a
connection opens (:meth:`opened`), when it is lost and when the client stops:

- sending — the queue, the lane ahead of it, pacing: :mod:`pyrt.engine.sending`;
- requests and their answers: :mod:`pyrt.engine.requests`;
- channels, presence, history: :mod:`pyrt.engine.channels`;
- token refresh in place: :mod:`pyrt.engine.token_refresh`;
- persistence: :mod:`pyrt.engine.persisted`.

An inbound frame is decoded once and handed to the one handler its type has in
:attr:`ConnectionCore.frames`, the table the features fill (``ack`` → requests, ``publication``
→ channels...); the core keeps ``ping``, ``pong``, ``welcome`` and routes ``error`` frames (a
transient refusal to the pacer, one naming a request to it, one naming a channel to the
channels). States move along :data:`~pyrt.engine.states.WEBSOCKET`: the core says what happened
(an :class:`~pyrt.engine.states.Input`), the table says where that leads.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from pyrt.engine.actions import (
    NO_MESSAGE,
    Action,
    Closed,
    CloseSocket,
    DeliverMessage,
    OpenSocket,
    Reconnecting,
    ReportError,
    Stats,
)
from pyrt.engine.backoff import Backoff
from pyrt.engine.close_policy import CloseInfo, default_should_reconnect, validate_close_code
from pyrt.engine.heartbeat import HeartbeatMonitor, Verdict
from pyrt.engine.outbox import Outbox, Queued, frame_size
from pyrt.engine.pacing import Pacer, Pacing
from pyrt.engine.reconnect import ReconnectScheduler
from pyrt.engine.sending import Sender
from pyrt.engine.states import Input, State, StateChanged, StateMachine
from pyrt.engine.transports import Transports
from pyrt.errors import ClientClosedError, FrameError, InvalidCloseCode, InvalidStateError, ServerError
from pyrt.wire.frames import BadFrame, ErrorFrame, Message, Ping, Pong, Welcome
from pyrt.wire.protocols import get_protocol, with_traceparent
from pyrt.wire.reconnect_window import parse_reason
from pyrt.wire.refusals import is_retryable
from pyrt.wire.types import Frame

if TYPE_CHECKING:
    from pyrt.engine.channels import Channels
    from pyrt.engine.options import WebSocketOptions
    from pyrt.engine.persisted import PersistedState
    from pyrt.engine.requests import Requests
    from pyrt.engine.token_refresh import TokenRefresher

__all__ = ["ABANDON_CODE", "MAX_REASON_BYTES", "MAX_SERVER_DELAY", "ConnectionCore", "FrameHandler"]

ABANDON_CODE: Final = 4000  # sent when pyrt gives up on a socket it believes dead
MAX_REASON_BYTES: Final = 123  # the WebSocket limit on a close reason
MAX_SERVER_DELAY: Final = 300.0  # the longest wait a server's reconnect hint can impose
_EMPTY: Final[tuple[Action, ...]] = ()

FrameHandler = Callable[[Any, float], None]


class ConnectionCore:
    """The connection of one WebSocket client (see the module docstring); the features are
    attached by :class:`~pyrt.engine.websocket.WebSocketEngine`. They are parts of the engine,
    not clients of it: they read the state (``_sm``) and append to ``_actions`` directly, as
    the core does, so a publication or an ack costs no extra call."""

    requests: Requests
    channels: Channels
    token: TokenRefresher | None
    persisted: PersistedState | None

    def __init__(self, options: WebSocketOptions, drain_interval: float) -> None:
        self.options = options
        self.protocol = protocol = get_protocol(options.protocol)
        if options.traceparent is not None:
            self.protocol = protocol = with_traceparent(protocol, options.traceparent)
        self.rng = rng = options.rng if options.rng is not None else random.random
        pacing = options.pacing
        if pacing == "auto":
            pacing = Pacing() if protocol.flow_control else None
        pacer = Pacer(pacing) if isinstance(pacing, Pacing) else None
        outbox = Outbox(options.queue_limit, options.queue_bytes, options.overflow)
        backoff = options.backoff if options.backoff is not None else Backoff()
        heartbeat = options.heartbeat
        high_water = self._high_water = options.high_water
        ack_timeout = self.ack_timeout = options.ack_timeout
        self.stats = Stats()
        self.session: str | None = None  # the pyrt server's name for the current connection
        self._actions: list[Action] = []
        self._rearm = False  # next_deadline() moved earlier without an action (see has_actions)
        self._sm = StateMachine()
        self._backoff = backoff
        self._heartbeat = heartbeat
        self._should_reconnect = options.should_reconnect or default_should_reconnect
        self._connect_timeout = options.connect_timeout
        self._close_timeout = options.close_timeout
        self.sender = Sender(
            self,
            outbox,
            pacer,
            high_water=high_water,
            drain_interval=drain_interval,
            ack_timeout=ack_timeout,
            rng=rng,
        )
        self._outbox = outbox  # the hot paths look at the queue, the lane and the pacer directly
        self._ahead = self.sender.ahead
        self._pacer = pacer
        self._hb = HeartbeatMonitor(heartbeat) if heartbeat is not None else None
        self._pong_match: Callable[[Frame], bool] | None = None
        if heartbeat is not None:
            self._pong_match = heartbeat.pong_matcher() or protocol.pong_matcher()
        self._raw = protocol.raw_inbound
        order = options.transports
        if order == "auto":
            order = ("websocket",)
        self.transports = Transports(self, tuple(order), options.transport_policy)
        self._reconnect = ReconnectScheduler(backoff, rng)
        self._window = 0.0  # the server's reconnect window, until a connection opens
        self._paused = False  # pause() was called and resume() not yet
        self._sockets = 0  # sockets opened so far
        self._open_at: float | None = None
        self._reconnect_at: float | None = None
        self._connect_deadline: float | None = None
        self._socket_open = False  # the current socket opened (with pyrt: welcome may be due)
        self._close_deadline: float | None = None
        #: Inbound frame type -> the handler that owns it (the features add theirs).
        self.frames: dict[type, FrameHandler] = {
            Pong: self._on_pong,
            Ping: self._on_ping,
            Welcome: self._on_welcome,
            ErrorFrame: self._on_error,
            BadFrame: self._on_bad_frame,
        }

    # ------------------------------------------------------------------------------ outputs

    @property
    def state(self) -> State:
        return self._sm.state

    @property
    def socket_open(self) -> bool:
        """The current socket opened (while CONNECTING: the server's welcome is still due)."""
        return self._socket_open

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
            deadline = _earlier(deadline, self.requests.next_deadline())
            deadline = _earlier(deadline, self.sender.drain_at)
            deadline = _earlier(deadline, self.transports.next_deadline())
            if self.token is not None:
                deadline = _earlier(deadline, self.token.next_deadline())
        elif state is State.RECONNECTING:
            deadline = self._reconnect_at
        elif state is State.CONNECTING:
            deadline = self._connect_deadline
        elif state is State.CLOSING:
            deadline = self._close_deadline
        if self.persisted is not None:
            deadline = _earlier(deadline, self.persisted.next_deadline())
        return deadline

    # ------------------------------------------------------------------------------ the user

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
        if self.persisted is not None:
            self.persisted.connecting(now)
        self._open_socket(Input.CONNECT, now)

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
        self._abort_all("close() was called", now)
        if state in (State.CONNECTING, State.OPEN):
            self._move(Input.CLOSE)  # to CLOSING: wait for the socket
            self._actions.append(CloseSocket(code, reason, False))
            self._close_deadline = now + self._close_timeout
            self._off_the_wire()
            return
        self._finish(
            Input.CLOSE,
            CloseInfo(code, reason, True, None),
            by_client=True,
            detail="closed by the client",
            now=now,
        )

    def send(self, data: Any, now: float, buffered: int = 0) -> Frame | None:
        """Send a fire-and-forget message.

        Returns the frame to transmit now, or None when it was queued (not open yet, earlier
        messages still queued, or ``buffered`` — the socket's ``bufferedAmount`` — over the
        high-water mark). Raises :class:`ClientClosedError` when closing or closed,
        :class:`~pyrt.errors.EncodeError` for data the protocol cannot carry and
        :class:`~pyrt.errors.QueueFull` when the queue is full and the overflow policy is ``"raise"``.
        """
        self.check_sendable()
        frame = self.protocol.encode(data)
        sender = self.sender
        if sender.max_bytes is not None and len(frame) * 4 > sender.max_bytes:
            sender.check_size(frame, None)
        if (
            self._sm.state is State.OPEN
            and not self._outbox
            and not self._ahead
            and buffered <= self._high_water
        ):
            pacer = self._pacer
            if pacer is None:
                self.stats.sent += 1
                return frame
            if pacer.allows(now):
                pacer.spend(now)
                self.stats.sent += 1
                return frame
        sender.enqueue(_queued(frame), now)
        return None

    def check_sendable(self) -> None:
        state = self._sm.state
        if state is State.CLOSED:
            raise ClientClosedError("cannot send on a closed client; create a new one")
        if state is State.CLOSING:
            raise ClientClosedError("cannot send on a closing client; create a new one")

    # ------------------------------------------------------------------------------ the socket

    def opened(self, now: float) -> None:
        """The current socket opened. With a protocol whose server welcomes (pyrt), the
        connection is up only when the ``welcome`` arrives, within the connect timeout; else now.
        Then subscriptions are restored, unacknowledged messages sent again, the queue flushed —
        all before any new send."""
        if self._sm.state is not State.CONNECTING or self._socket_open:
            return
        self._socket_open = True
        if not self.protocol.welcomes:
            self._up(now)

    def _up(self, now: float, welcome: Welcome | None = None) -> None:
        """The connection is up (state OPEN), with the server's ``welcome`` when it sent one."""
        self._move(Input.OPENED)
        self._open_at = now
        self._connect_deadline = None
        if self._hb is not None:
            self._hb.start(now)
        if self._pacer is not None:
            self._pacer.start(now, welcome=self.protocol.flow_control and not self.protocol.welcomes)
        if welcome is not None:
            self._welcomed(welcome, now)  # its limits apply from the first frame sent
        self._window = 0.0
        self.transports.up(now)
        self.channels.opened(now)  # the subscriptions first, and the presence joins at once
        self.requests.opened(now)  # then what was sent and not answered
        self.sender.flush(now, 0)

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
        event: Any = None
        if (type(frame) is str and "\n" in frame) or type(frame) is bytes:
            events = self.protocol.decode_batch(frame)
            if events is not None and len(events) == 1:  # a binary message of one frame
                event = events[0]
            elif events is not None:  # several frames (pyrt.v1.batch): every one in order, as actions
                self.stats.received += len(events) - 1
                for event in events:
                    if type(event) is Message:
                        self._actions.append(DeliverMessage(event.data))
                    else:
                        handler = self.frames.get(type(event))
                        if handler is not None:
                            handler(event, now)
                return NO_MESSAGE
        if event is None:
            event = self.protocol.decode(frame)
        if type(event) is Message:
            return event.data
        handler = self.frames.get(type(event))
        if handler is not None:
            handler(event, now)
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
            info = CloseInfo(code, reason, was_clean, None)
            self._finish(Input.SOCKET_CLOSED, info, by_client=True, detail="closed by the client", now=now)
        elif state in (State.CONNECTING, State.OPEN):
            what = f"closed with code {code}" + (f" ({reason})" if reason else "")
            self._lost(CloseInfo(code, reason, was_clean, self._uptime(now)), now, what)

    def prepare_failed(self, why: str, now: float) -> None:
        """The attempt failed before a socket was opened (the token, URL or subprotocol callable
        raised): a failed attempt, reconnected with backoff, but not the transport's fault."""
        if self._sm.state is State.CONNECTING:
            info = CloseInfo(1006, why, False, None)
            self._lost(info, now, f"closed with code 1006 ({why})", transport=False)

    def tick(self, now: float, buffered: int = 0) -> None:
        """The timer fired (at or after :meth:`next_deadline`). ``buffered``: the current
        socket's ``bufferedAmount`` (0 when unknown)."""
        state = self._sm.state
        if state is State.OPEN:
            self._tick_open(now, buffered)
        elif state is State.RECONNECTING:
            if self._reconnect_at is not None and now >= self._reconnect_at:
                self._open_socket(Input.RETRY, now)
        elif state is State.CONNECTING:
            if self._connect_deadline is not None and now >= self._connect_deadline:
                timeout = self._connect_timeout
                if self._socket_open:
                    why = f"the socket opened but no welcome came within {timeout:g} s: frames do not pass"
                else:
                    why = f"not open after {timeout:g} s (connect timeout)"
                self._abandon(now, why)
        elif state is State.CLOSING and self._close_deadline is not None and now >= self._close_deadline:
            self._close_deadline = None
            self._actions.append(CloseSocket(1000, "close timeout", True))
            detail = (
                f"closed by the client (the socket did not finish closing within {self._close_timeout:g} s)"
            )
            self._finish(
                Input.SOCKET_CLOSED, CloseInfo(1006, "", False, None), by_client=True, detail=detail, now=now
            )
        if self.persisted is not None:
            self.persisted.tick(now)

    def _tick_open(self, now: float, buffered: int) -> None:
        hb = self._hb
        if hb is not None:
            verdict = hb.check(now)
            if verdict is Verdict.PING:
                self._send_ping(now)
            elif verdict is Verdict.DEAD:
                self._abandon(
                    now, f"no frame within {hb.config.timeout:g} s of a ping (heartbeat timeout)", silent=True
                )
                return
        self.requests.tick(now)
        sender = self.sender
        if sender.drain_at is not None and now >= sender.drain_at:
            sender.drain_at = None
        if self._outbox or self._ahead:
            sender.flush(now, buffered)
        if self.token is not None:
            self.token.tick(now)
        self.transports.tick(now)

    # ------------------------------------------------------------------------------ the environment

    def network_online(self, now: float) -> None:
        """The browser says the network is back: retry at once, or check an open connection."""
        state = self._sm.state
        if state is State.RECONNECTING:
            self._open_socket(Input.RETRY, now)
        elif state is State.OPEN:
            self._probe(now)

    def woke(self, now: float, slept: float) -> None:
        """The machine slept ``slept`` seconds (:mod:`pyrt.engine.wake`). A connection that was silent
        that long is presumed dead — the server's heartbeat and any NAT on the way drop idle
        ones — so when it outlasted the heartbeat (``interval + timeout``, 60 s without one) the
        socket is replaced at once; a shorter sleep only probes it. A pending reconnect happens
        now."""
        state = self._sm.state
        hb = self._heartbeat
        limit = hb.interval + hb.timeout if hb is not None else 60.0
        if state is State.RECONNECTING:
            self._open_socket(Input.RETRY, now)
        elif state in (State.OPEN, State.CONNECTING) and slept >= limit:
            self._abandon(now, f"the machine slept for {slept:.0f} s")
            if self._sm.state is State.RECONNECTING:
                self._open_socket(Input.RETRY, now)
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
        if self.persisted is not None and state is not State.CLOSED:
            self.persisted.save()

    def page_shown(self, now: float) -> None:
        """The page is shown again after :meth:`page_hidden`: reconnect at once, unless
        :meth:`pause` was called (only :meth:`resume` ends that)."""
        if self._sm.state is State.PAUSED and not self._paused:
            self._open_socket(Input.RESUME, now)

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._paused

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
        if self.persisted is not None:
            self.persisted.save()

    def resume(self, now: float) -> None:
        """End a :meth:`pause`: connect at once (the queue then flushes in order and the
        subscriptions recover). Does nothing when not paused."""
        if not self._paused:
            return
        self._paused = False
        if self._sm.state is State.PAUSED:
            self._open_socket(Input.RESUME, now)

    def _go_quiet(self, why: str) -> None:
        """Let go of the socket (if any) and wait in PAUSED with no timer."""
        if self._sm.state in (State.OPEN, State.CONNECTING):
            self._actions.append(CloseSocket(1000, why, True))
            self._off_the_wire()
            self._open_at = None
            self._connect_deadline = None
        self._reconnect_at = None
        self._move(Input.QUIET)

    # ------------------------------------------------------------------------------ frames the core owns

    def _on_pong(self, event: Pong, now: float) -> None:
        if self._hb is not None:
            self._hb.pong(now, event.t)
        if self._pacer is not None and self._pacer.pong(event.t):
            self.sender.wake(now)

    def _on_ping(self, event: Ping, now: float) -> None:
        if self._sm.state is State.OPEN:
            self.sender.emit_now(self.protocol.encode_pong(event.t), now)

    def _on_welcome(self, event: Welcome, now: float) -> None:
        if self._sm.state is State.CONNECTING:
            if not self._socket_open:
                return  # a welcome before the socket says it opened: not of this connection
            self._up(now, event)
            return
        self._welcomed(event, now)

    def _welcomed(self, event: Welcome, now: float) -> None:
        self.session = event.session
        limits = event.limits
        self.sender.max_bytes = limits.max_bytes if limits is not None else None
        if self._pacer is not None:
            self._pacer.advertise(limits, now)
            self.sender.wake(now)
        if self.token is not None:
            self.token.welcomed(event, now)

    def _on_error(self, event: ErrorFrame, now: float) -> None:
        """A transient refusal goes to the pacer (:meth:`Sender.refused`); otherwise the request
        or the channel it names fails; an error naming neither is reported."""
        if is_retryable(event.code):
            entry = self.requests.get(event.id) if event.id is not None else None
            self.sender.refused(event.code, event.message, entry, event.retry_after, event.channel, now)
        elif not self.requests.on_error(event, now) and not self.channels.refused(event, now):
            self._actions.append(ReportError(ServerError(event.code, event.message)))

    def _on_bad_frame(self, event: BadFrame, now: float) -> None:
        self._actions.append(ReportError(FrameError(event.reason, event.frame)))

    # ------------------------------------------------------------------------------ moves

    def _move(self, event: Input) -> None:
        old = self._sm.on(event)
        self._actions.append(StateChanged(old, self._sm.state))

    def _uptime(self, now: float) -> float | None:
        return None if self._open_at is None else now - self._open_at

    def _open_socket(self, why: Input, now: float) -> None:
        self._move(why)
        self._sockets += 1
        if self._sockets > 1:
            self.stats.reconnects += 1
        self._reconnect_at = None
        self._connect_deadline = now + self._connect_timeout
        self._socket_open = False
        self._actions.append(OpenSocket(self._sockets, self.transports.current))

    def _send_ping(self, now: float) -> None:
        assert self._hb is not None
        frame = self._heartbeat.ping_frame() if self._heartbeat is not None else None
        if frame is None:
            frame = self.protocol.encode_ping(self._hb.pings)
            if self._pacer is not None:
                self._pacer.ping_sent(self._hb.pings)
        self.sender.emit_now(frame, now)

    def _probe(self, now: float) -> None:
        if self._hb is not None and self._hb.check_now(now) is Verdict.PING:
            self._send_ping(now)

    def _off_the_wire(self) -> None:
        """The socket is gone (or going): what was tied to it is forgotten."""
        self.requests.lost()
        self.channels.lost()
        if self.token is not None:
            self.token.lost()
        self.transports.off_the_wire()
        self.sender.off_the_wire()  # on the next open: subscriptions and unacked messages again
        if self._hb is not None:
            self._hb.ping_sent_at = None

    def _abandon(self, now: float, why: str, silent: bool = False) -> None:
        """Give up on the socket (``silent``: it stopped passing frames: the heartbeat's verdict)."""
        self._actions.append(CloseSocket(ABANDON_CODE, why[:MAX_REASON_BYTES], True))
        self._lost(CloseInfo(1006, why, False, self._uptime(now)), now, why, silent=silent)

    def _lost(
        self, info: CloseInfo, now: float, what: str, transport: bool = True, silent: bool = False
    ) -> None:
        """The socket is gone without close() having been called: reconnect or stop
        (``transport``: the transport may be to blame, see :mod:`pyrt.engine.transports`;
        ``silent``: an open connection stopped passing frames)."""
        self._open_at = None
        self._connect_deadline = None
        self._off_the_wire()
        if not self._should_reconnect(info):
            self._finish(Input.STOPPED, info, by_client=False, detail=f"{what}; not reconnecting", now=now)
            return
        if transport:
            up, transports = info.uptime, self.transports
            if up is None:
                switch = transports.failed(what)
                what = switch or what  # it says what happened, and where the next attempt goes
            elif (switch := transports.lost(up, silent)) is not None:
                what = f"{what}; {switch}"
        hint = parse_reason(info.reason) if info.reason else None
        if hint is not None and hint.window > 0:
            self._window = min(hint.window, MAX_SERVER_DELAY)  # this attempt and the failed ones after it
        floor = min(hint.after, MAX_SERVER_DELAY) if hint is not None else 0.0
        scheduler = self._reconnect
        delay = scheduler.failed(info.uptime, floor, window=self._window)
        if delay is None:
            tries = scheduler.attempts_made
            detail = (
                f"gave up after {tries} reconnect attempt{'s' if tries != 1 else ''} "
                f"(max_attempts={self._backoff.max_attempts}); last: {what}"
            )
            self._finish(Input.STOPPED, info, by_client=False, detail=detail, now=now)
            return
        self._move(Input.LOST)
        self._reconnect_at = now + delay
        self._actions.append(Reconnecting(scheduler.failures, delay, what))

    def move_over(self, now: float, why: str) -> None:
        """Leave an open connection for another transport at once (a probe came up): a
        reconnect, which re-sends unacknowledged messages and recovers the subscriptions."""
        self._actions.append(CloseSocket(ABANDON_CODE, why[:MAX_REASON_BYTES], True))
        self._open_at = None
        self._off_the_wire()
        self._move(Input.LOST)
        self._actions.append(Reconnecting(self._reconnect.failures + 1, 0.0, why))
        self._open_socket(Input.RETRY, now)

    def _abort_all(self, why: str, now: float) -> None:
        """Reject every pending request and drop every queued message, reporting each."""
        self.sender.abort(why)
        self.requests.abort(why, now)
        self.channels.abort(why)
        if self.persisted is not None:
            self.persisted.dirty(now)

    def _finish(self, why: Input, info: CloseInfo, *, by_client: bool, detail: str, now: float) -> None:
        if not by_client:
            self._abort_all(f"the client stopped ({detail})", now)
        self._open_at = None
        self._reconnect_at = None
        self._move(why)
        if self.persisted is not None:
            self.persisted.save()  # before Closed: the client releases its storage once closed
        error = None if by_client else ClientClosedError(detail)
        self._actions.append(Closed(error, detail, by_client, info.code, info.reason, info.was_clean))


def _earlier(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None or a <= b else b


def _queued(frame: Frame) -> Queued:
    return Queued(frame, frame_size(frame))
