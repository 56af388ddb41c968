"""Runs a :class:`~pyrt.engine.websocket.WebSocketEngine` the way an adapter does, against fake sockets."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from pyrt.engine.states import State
from pyrt.engine.websocket import (
    NO_MESSAGE,
    Action,
    Closed,
    CloseSocket,
    DeliverMessage,
    DeliverPresence,
    DeliverPublication,
    FetchToken,
    OpenProbe,
    OpenSocket,
    Reconnecting,
    RejectAck,
    RememberTransport,
    ReportError,
    ReportRestored,
    ResolveAck,
    SaveState,
    SendFrame,
    StateChanged,
    SubscriptionConfirmed,
    WebSocketEngine,
)
from pyrt.persist.records import (
    Changes,
    MemoryRecordStore,
    RestoredMessage,
    Snapshot,
)
from pyrt.testing.clock import FakeClock
from pyrt.testing.fake_server import FakePyrtServer
from pyrt.testing.transports import FakeSocket
from pyrt.wire import codec
from pyrt.wire.frames import Member, Publication, Welcome
from pyrt.wire.types import Frame

# ----------------------------------------------------------------------------------- the harness


class AckWaiter:
    """The handle of one acked send: records how it ended (and how many times, to catch bugs)."""

    __slots__ = ("error", "outcomes", "value")

    def __init__(self) -> None:
        self.value: Any = None
        self.error: Exception | None = None
        self.outcomes = 0

    @property
    def done(self) -> bool:
        return self.outcomes > 0

    def __repr__(self) -> str:
        return f"AckWaiter(value={self.value!r}, error={self.error!r}, outcomes={self.outcomes})"


class EngineHarness:
    """Drives a :class:`WebSocketEngine` like an adapter, with fake sockets and a fake clock.

    With a ``server``, sockets open at once while ``server.accepting`` (and fail with 1006 while
    not), frames reach the server and its replies come back, unless the socket is blackholed.
    Without one, the test plays the server: :meth:`open`, :meth:`receive`, :meth:`drop`.
    ``token`` plays a client's token callable: called for every socket (offered as
    ``bearer.<token>``) and for every :class:`FetchToken`; an exception it raises is reported
    to the engine as a failed fetch. With ``defer_refresh=True`` a :class:`FetchToken` is only
    counted in :attr:`token_requests`: the test answers it when it chooses, with
    :meth:`token_fetched` or :meth:`token_failed` (a slow token service). Extra keyword arguments
    go to :class:`WebSocketEngine`
    (``rng`` defaults to a fixed 0.5).
    With ``persist=True`` every :class:`SaveState` is applied to ``store`` (a durable
    :class:`~pyrt.persist.records.MemoryRecordStore` under the key ``"test"`` unless given): pass the
    same store to a second harness and :meth:`restore` plays a page reload.
    """

    def __init__(
        self,
        engine: WebSocketEngine | None = None,
        *,
        clock: FakeClock | None = None,
        server: FakePyrtServer | None = None,
        store: MemoryRecordStore | None = None,
        token: Callable[[], str] | None = None,
        defer_refresh: bool = False,
        **engine_kwargs: Any,
    ) -> None:
        engine_kwargs.setdefault("rng", lambda: 0.5)
        engine_kwargs.setdefault("token_refresh", token is not None)
        self.token = token
        self.defer_refresh = defer_refresh
        self.token_requests = 0  # FetchToken actions seen (answered at once unless deferred)
        self.store = store if store is not None else MemoryRecordStore(durable=True)
        self.engine = engine if engine is not None else WebSocketEngine(**engine_kwargs)
        self.clock = clock if clock is not None else FakeClock()
        self.server = server
        if server is not None and server.clock is None:
            server.clock = self.clock
        self.sockets: list[FakeSocket] = []
        self.messages: list[Any] = []
        self.publications: dict[str, list[Publication]] = {}
        #: Presence events of subscriptions made with ``presence=True``: ("join" | "leave", member).
        self.presence_events: dict[str, list[tuple[str, Member]]] = {}
        self.states: list[State] = [self.engine.state]
        self.reconnects: list[Reconnecting] = []
        self.errors: list[Exception] = []
        self.closes: list[Closed] = []
        self.saved: list[Changes] = []
        self.restored: list[RestoredMessage] = []
        self.confirmed: list[SubscriptionConfirmed] = []
        #: Transports that do not work here: ``"refuse"`` (the upgrade is refused: the socket
        #: fails) or ``"silent"`` (it opens, then passes nothing: "101 then silence").
        self.blocked: dict[str, str] = {}
        self.probes: list[str] = []  # the transports the engine probed
        self.remembered: list[RememberTransport] = []
        self.actions_seen: list[Action] = []
        self._events: deque[Callable[[], None]] = deque()

    # ------------------------------------------------------------------------- observations

    @property
    def now(self) -> float:
        return self.clock.now

    @property
    def state(self) -> State:
        return self.engine.state

    @property
    def socket(self) -> FakeSocket | None:
        """The socket the engine currently uses (not closed, not given up), if any."""
        if self.sockets and self.sockets[-1].state != "closed":
            return self.sockets[-1]
        return None

    @property
    def sent(self) -> list[Frame]:
        """Every frame sent on every socket, in order."""
        return [frame for sock in self.sockets for frame in sock.sent]

    # ------------------------------------------------------------------------- user's calls

    def connect(self) -> None:
        self.engine.connect(self.now)
        self.pump()

    def restore(self) -> Snapshot:
        """Load what ``store`` holds into the engine (a reloaded page, before :meth:`connect`)."""
        loaded: list[Snapshot] = []
        self.store.load("test", loaded.append, self._load_failed)
        self.engine.restore(loaded[0])
        self.pump()
        return loaded[0]

    def stored(self) -> Snapshot:
        """What ``store`` holds now."""
        loaded: list[Snapshot] = []
        self.store.load("test", loaded.append, self._load_failed)
        return loaded[0]

    @staticmethod
    def _load_failed(error: Exception) -> None:
        raise error

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.engine.close(self.now, code, reason)
        self.pump()

    def send(self, data: Any) -> None:
        sock = self.socket
        frame = self.engine.send(data, self.now, sock.buffered_amount if sock else 0)
        if frame is not None:
            self._transmit(frame)
        self.pump()

    def send_with_ack(self, data: Any, timeout: float | None = None) -> AckWaiter:
        waiter = AckWaiter()
        sock = self.socket
        self.engine.send_with_ack(data, self.now, waiter, timeout, sock.buffered_amount if sock else 0)
        self.pump()
        return waiter

    def publish(self, channel: str, data: Any, event: str | None = None) -> AckWaiter:
        waiter = AckWaiter()
        self.engine.publish(channel, data, self.now, waiter, event)
        self.pump()
        return waiter

    def subscribe(self, channel: str, since: str | None = None, presence: bool = False) -> list[Publication]:
        """Subscribe; returns the list the channel's publications are appended to. With
        ``presence``, its joins and leaves go to :attr:`presence_events`."""
        received = self.publications.setdefault(channel, [])
        on_presence = None
        if presence:
            events = self.presence_events.setdefault(channel, [])

            def on_presence(joined: tuple[Member, ...], left: tuple[Member, ...]) -> None:
                events.extend(("leave", member) for member in left)
                events.extend(("join", member) for member in joined)

        self.engine.subscribe(channel, received.append, self.now, since, on_presence)
        self.pump()
        return received

    def join(self, channel: str, info: Any = None) -> AckWaiter:
        waiter = AckWaiter()
        self.engine.join(channel, info, self.now, waiter)
        self.pump()
        return waiter

    def leave(self, channel: str) -> AckWaiter:
        waiter = AckWaiter()
        self.engine.leave(channel, self.now, waiter)
        self.pump()
        return waiter

    def presence(self, channel: str) -> AckWaiter:
        waiter = AckWaiter()
        self.engine.presence(channel, self.now, waiter)
        self.pump()
        return waiter

    def unsubscribe(self, channel: str) -> None:
        self.engine.unsubscribe(channel, self.now)
        self.pump()

    def token_fetched(self, token: str) -> None:
        """The token callable answered (``defer_refresh``): whatever the engine asked last."""
        self.engine.token_fetched(token, self.now)
        self.pump()

    def token_failed(self, error: Exception) -> None:
        self.engine.token_failed(error, self.now)
        self.pump()

    # ---------------------------------------------------------------------- the peer's side

    def open(self, welcome: bool = True) -> None:
        """The current socket opens; with a protocol whose server welcomes (pyrt) and
        ``welcome``, a ``welcome`` that advertises nothing arrives with it (as from a server
        without limits), so the connection is up. ``welcome=False``: only the socket opens."""
        sock = self._current("open")
        sock.state = "open"
        self.engine.opened(self.now)
        self.pump()
        if welcome and self.engine.protocol.welcomes and sock.conn is None:
            self.receive(codec.encode(Welcome(session=f"h{sock.attempt}")))

    def receive(self, frame: Frame) -> None:
        """The current socket receives ``frame``."""
        self._current("receive on")
        self._deliver(frame)
        self.pump()

    def drop(self, code: int = 1006, reason: str = "", was_clean: bool | None = None) -> None:
        """The current socket closes from the other side (1006: the network broke)."""
        sock = self._current("drop")
        self._kill(sock, code, reason)
        self.engine.closed(code, reason, self.now, was_clean)
        self.pump()

    def blackhole(self) -> None:
        """From now on the current socket carries nothing either way, and never closes."""
        self._current("blackhole").blackholed = True

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass: the engine's timers fire at their deadlines, in order."""
        target = self.now + seconds
        spins = 0
        while True:
            deadline = self.engine.next_deadline()
            if deadline is None or deadline > target:
                break
            spins = spins + 1 if deadline <= self.now else 0
            if spins > 1000:
                raise RuntimeError(f"the engine's deadline {deadline} does not move past {self.now}")
            self.clock.now = max(self.now, deadline)
            self.tick()
        self.clock.now = target
        self.tick()

    def tick(self) -> None:
        sock = self.socket
        self.engine.tick(self.now, sock.buffered_amount if sock else 0)
        self.pump()

    # --------------------------------------------------------------------------- machinery

    def pump(self) -> None:
        """Carry out the engine's actions and the events they cause, until quiet; a timer
        already due fires too (as a zero-delay timer of a real event loop would)."""
        spins = 0
        while True:
            for action in self.engine.actions():
                self.actions_seen.append(action)
                self._perform(action)
            self._flush_server()
            if self._events:
                self._events.popleft()()
                continue
            if self.engine.has_actions:
                continue
            deadline = self.engine.next_deadline()
            if deadline is None or deadline > self.now:
                return
            spins += 1
            if spins > 1000:
                raise RuntimeError(f"the engine's deadline {deadline} does not move past {self.now}")
            sock = self.socket
            self.engine.tick(self.now, sock.buffered_amount if sock else 0)

    def _current(self, what: str) -> FakeSocket:
        sock = self.socket
        if sock is None:
            raise RuntimeError(f"cannot {what} the socket: there is no current socket")
        return sock

    def _deliver(self, frame: Frame) -> None:
        message = self.engine.received(frame, self.now)
        if message is not NO_MESSAGE:
            self.messages.append(message)

    def _transmit(self, frame: Frame) -> None:
        sock = self.socket
        if sock is None or sock.state != "open":
            raise AssertionError(f"the engine sent {frame!r} while no socket was open")
        sock.sent.append(frame)
        if sock.conn is not None and not sock.blackholed:
            sock.conn.handle(frame)

    def _flush_server(self) -> None:
        sock = self.socket
        if sock is None or sock.conn is None or sock.blackholed or sock.state != "open":
            return
        conn = sock.conn
        while conn.outgoing and sock.state == "open" and not sock.detached:
            frame = conn.take()
            self._deliver(frame)
            for action in self.engine.actions():
                self.actions_seen.append(action)
                self._perform(action)
        if conn.close_code is not None and sock.state == "open" and not sock.detached:
            code, reason = conn.close_code, conn.close_reason
            self._kill(sock, code, reason)
            self.engine.closed(code, reason, self.now, True)

    @staticmethod
    def _write_done(error: Exception | None) -> None:
        if error is not None:
            raise error

    def _blocked(self, sock: FakeSocket, mode: str) -> None:
        """A socket over a transport that does not work here."""
        if sock.state != "connecting" or sock.detached:
            return
        if mode == "silent":
            sock.state = "open"
            sock.blackholed = True
            self.engine.opened(self.now)
        else:
            self._kill(sock, 1006, "")
            self.engine.closed(1006, "", self.now)

    def _probe(self, transport: str) -> None:
        """The engine's probe socket: a welcome where the transport works, else a failure."""
        if transport in self.blocked:
            self.engine.probe_closed(self.now)
        else:
            self.engine.probe_received(codec.encode(Welcome(session="probe")), self.now)

    def _kill(self, sock: FakeSocket, code: int, reason: str) -> None:
        sock.state = "closed"
        sock.close_code = code
        sock.close_reason = reason
        if sock.conn is not None:
            sock.conn.closed(code)

    def _perform(self, action: Action) -> None:
        if isinstance(action, SendFrame):
            self._transmit(action.frame)
        elif isinstance(action, OpenSocket):
            protocols = ("bearer." + self.token(),) if self.token is not None else ()
            sock = FakeSocket(action.attempt, protocols=protocols, transport=action.transport)
            self.sockets.append(sock)
            blocked = self.blocked.get(action.transport)
            if blocked is not None:
                self._events.append(partial(self._blocked, sock, blocked))
            elif self.server is not None:
                server = self.server
                if server.accepting:

                    def accept() -> None:
                        if sock.state == "connecting" and not sock.detached:
                            sock.conn = server.accept((*self.engine.protocol.subprotocols, *sock.protocols))
                            sock.state = "open"
                            self.engine.opened(self.now)

                    self._events.append(accept)
                else:

                    def refuse() -> None:
                        if sock.state == "connecting" and not sock.detached:
                            self._kill(sock, 1006, "")
                            self.engine.closed(1006, "", self.now)

                    self._events.append(refuse)
        elif isinstance(action, CloseSocket):
            sock = self._current("close")
            if action.detach:
                self._kill(sock, action.code, action.reason)
                sock.detached = True
                return
            sock.state = "closing"
            sock.close_code, sock.close_reason = action.code, action.reason
            if not sock.blackholed:  # a half-open socket never finishes its close handshake

                def finish() -> None:
                    if sock.state == "closing":
                        self._kill(sock, action.code, action.reason)
                        self.engine.closed(action.code, action.reason, self.now, True)

                self._events.append(finish)
        elif isinstance(action, DeliverPublication):
            handler = action.handler
            assert callable(handler)
            if not action.cancelled:
                handler(action.publication)
        elif isinstance(action, DeliverPresence):
            handler = action.handler
            assert callable(handler)
            handler(action.joined, action.left)
        elif isinstance(action, DeliverMessage):
            self.messages.append(action.data)
        elif isinstance(action, ResolveAck | RejectAck):
            waiter = action.handle
            assert isinstance(waiter, AckWaiter)
            waiter.outcomes += 1
            if isinstance(action, ResolveAck):
                waiter.value = action.value
            else:
                waiter.error = action.error
        elif isinstance(action, StateChanged):
            assert action.old is self.states[-1], f"state jumped from {self.states[-1]} to {action.old}"
            self.states.append(action.new)
        elif isinstance(action, Reconnecting):
            self.reconnects.append(action)
        elif isinstance(action, OpenProbe):
            self.probes.append(action.transport)
            self._events.append(partial(self._probe, action.transport))
        elif isinstance(action, RememberTransport):
            self.remembered.append(action)
        elif isinstance(action, ReportError):
            self.errors.append(action.error)
        elif isinstance(action, Closed):
            self.closes.append(action)
        elif isinstance(action, SaveState):
            self.saved.append(action.changes)
            self.store.write("test", action.changes, self._write_done)
        elif isinstance(action, ReportRestored):
            self.restored.append(action.message)
        elif isinstance(action, SubscriptionConfirmed):
            self.confirmed.append(action)
        elif isinstance(action, FetchToken):
            self.token_requests += 1
            if self.defer_refresh:
                return
            assert self.token is not None, "FetchToken from an engine without a token callable"
            try:
                token = self.token()
            except Exception as exc:
                self.engine.token_failed(exc, self.now, action.request)
            else:
                self.engine.token_fetched(token, self.now, action.request)
