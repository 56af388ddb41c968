"""``WebSocketClient``: a WebSocket that reconnects, queues, acknowledges and recovers.

The decisions are made by :class:`pyrt.engine.websocket.WebSocketEngine`; the pump around it is the
shared :class:`~pyrt.aio.driver.Driver`. This module carries out the engine's actions on a
:class:`~pyrt.ports.transport.Transport` (``js.WebSocket`` in the browser, the ``websockets`` library
on CPython, :class:`pyrt.testing.FakeTransport` in tests; :mod:`pyrt.aio.runtime` picks the
default), hears the page and finds its storage through the runtime's
:class:`~pyrt.ports.services.Services`, and turns acks into futures.

Hot paths: an inbound frame costs one engine call and direct calls of the ``message``
handlers (no future, no task); ``send`` hands the frame to the native socket when nothing is
queued; a future exists only for ``send_with_ack`` / ``publish``, resolved directly by the
engine's ack action (:mod:`pyrt.aio.ack_future`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pyrt.aio.ack_future import AckFuture, settle
from pyrt.aio.continuity import Continuity
from pyrt.aio.driver import Driver
from pyrt.aio.handlers import AsyncHandlers, Handler, HandlerAttribute
from pyrt.aio.opening import Opening, ProtocolsSource, TokenSource, UrlSource
from pyrt.aio.transports import ClientTransports, resolve_order
from pyrt.engine.options import WebSocketOptions
from pyrt.engine.states import State
from pyrt.engine.websocket import (
    NO_MESSAGE,
    Closed,
    CloseProbe,
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
    Stats,
    SubscriptionConfirmed,
    WebSocketEngine,
)
from pyrt.errors import InvalidStateError
from pyrt.wire.frames import Publication
from pyrt.wire.protocols import get_protocol
from pyrt.wire.types import Frame

if TYPE_CHECKING:
    from pyrt.aio.persistence import Persistence
    from pyrt.aio.share import Participant
    from pyrt.aio.state_stream import SyncedState
    from pyrt.engine.history import HistoryPage
    from pyrt.persist.records import RecordStore, Storage
    from pyrt.ports.services import Services
    from pyrt.ports.transport import Transport
    from pyrt.share.channel import ShareChannel
    from pyrt.wire.frames import Member

__all__ = ["AckFuture", "WebSocketClient"]

log = logging.getLogger("pyrt.websocket")


class WebSocketClient(Opening, Continuity):
    """A resilient WebSocket client. See the README for a tour; the short version::

        client = WebSocketClient("/ws")
        client.on_message(print)
        client.connect()
        reply = await client.send_with_ack({"hello": "world"})

    ``url``: a str (``ws://``, ``wss://``, or a path like ``"/ws"`` on the page's own host — in a
    browser only), or a callable (sync or async) returning one, called before every attempt.
    ``protocols``: WebSocket subprotocols to offer besides the wire protocol's own
    (``pyrt.v1.batch, pyrt.v1``),
    or a callable (sync or async) returning them, called before every attempt.
    ``token``: a callable (sync or async) returning a token, called before every attempt (sent
    as the subprotocol ``bearer.<token>``, never in the URL) and again before the token expires:
    a pyrt server says how long it lasts, and the new one is sent in a ``refresh`` frame, so the
    connection stays up (:mod:`pyrt.engine.credentials`). Failures reach ``on_error`` as
    :class:`~pyrt.errors.TokenError`.
    ``persist``: a storage key; unacknowledged messages and channel offsets then survive page
    reloads: in the browser in ``localStorage`` on a page's main thread and in IndexedDB in a
    worker (:mod:`pyrt.browser.storage`), on CPython in a file (:mod:`pyrt.cpython.storage`).
    Each change is written at the next turn of the event loop (see :meth:`persisted`).
    ``storage``: where ``persist`` state goes instead (a :class:`~pyrt.persist.records.RecordStore`, or
    any object with ``getItem``/``setItem``/``removeItem``).
    ``share``: a name: every client with the same name and URL in this browser (tabs, workers)
    shares one connection, held by one of them (see :mod:`pyrt.aio.share`); the API stays the same.
    ``transport``: where WebSocket sockets come from (default: the runtime's, see
    :mod:`pyrt.aio.runtime`); ``http_transport``: where the HTTP binding's come from (default:
    :class:`~pyrt.aio.http_transport.HttpTransport` over the runtime's ``fetch``). With the pyrt
    protocol a client falls back to HTTP where WebSockets do not pass and probes its way back
    (``transports=``, :mod:`pyrt.engine.transport_choice`); :attr:`transport` says which is in use.
    ``services``: the runtime around the client — page events, the default storage of
    ``persist``, timers, the share channel (:mod:`pyrt.ports.services`; default: those the
    transport carries, as the fakes of :mod:`pyrt.testing` do, else the runtime's).
    ``async_handlers``: ``"concurrent"`` or ``"ordered"`` (see :mod:`pyrt.aio.handlers`).
    The other keywords are the options of :class:`~pyrt.engine.options.WebSocketOptions`
    (``protocol``, ``backoff``, ``heartbeat``, ``queue_limit``, ``ack_timeout``, ``pacing``...),
    each described there; ``options=`` takes such an object whole (the keywords then change it).

    Events: see :class:`~pyrt.aio.driver.Driver` (``on_close`` receives a
    :class:`~pyrt.engine.websocket.Closed` with ``code``, ``reason``, ``by_client``, ``detail``), and
    ``restored`` ``(message)``: a message a previous page saved (``persist``) and this client
    sent again was acknowledged or failed (a :class:`~pyrt.persist.records.RestoredMessage`).
    """

    _LOG: ClassVar[logging.Logger] = log
    _EVENTS: ClassVar[tuple[str, ...]] = (*Driver._EVENTS, "restored")
    on_restored = HandlerAttribute("restored")
    _engine: WebSocketEngine

    def __init__(
        self,
        url: UrlSource,
        protocols: ProtocolsSource = None,
        *,
        options: WebSocketOptions | None = None,
        token: TokenSource | None = None,
        persist: str | None = None,
        storage: Storage | RecordStore | None = None,
        share: str | ShareChannel | None = None,
        transport: Transport | None = None,
        http_transport: Transport | None = None,
        services: Services | None = None,
        async_handlers: AsyncHandlers = "concurrent",
        **changes: Any,
    ) -> None:
        _check_arguments(url, token, persist, share)
        self.options = WebSocketOptions.of(options, **changes)
        super().__init__(async_handlers, services)
        self.url = url
        self.protocols = protocols
        self.token = token
        self.persist = persist
        self.share = share
        self.async_handlers: AsyncHandlers = async_handlers
        #: The transports of the real connection (with ``share``: of the connection the tab
        #: holding it opens; this client's own is its link to it).
        self._wanted = resolve_order(
            self.options.transports,
            get_protocol(self.options.protocol),
            transport is not None,
            http_transport is not None,
        )
        self._engine = WebSocketEngine(
            self.options,
            persist=persist is not None,
            token_refresh=token is not None,
            transports=("websocket",) if share is not None else self._wanted,
        )
        self._sockets = ClientTransports(transport, http_transport)
        self._transport = transport
        self._last_open: tuple[str, list[str]] | None = None  # what the probe opens
        self._storage = storage
        self._persistence: Persistence | None = None
        self._participant: Participant | None = None
        self._loading = False  # connect() waits for the saved state to load
        self._opening: asyncio.Task[None] | None = None
        self._fetching: asyncio.Task[None] | None = None
        self._settled: list[tuple[AckFuture, Any, BaseException | None]] = []

    # ------------------------------------------------------------------------- properties

    @property
    def stats(self) -> Stats:
        """A snapshot of the counters (sent, received, queued, dropped, acked, ack_timeouts,
        retried, reconnects, duplicates, queue_length, pending_acks, rtt, srtt)."""
        return self._engine.stats_snapshot()

    @property
    def transport(self) -> str:
        """The transport of the current (or next) connection: ``"websocket"``, or ``"http"`` where
        WebSockets do not pass (see :attr:`transports`). With ``share``: that of the connection
        the tabs share, once it opened."""
        participant = self._participant
        if participant is not None and participant.transport is not None:
            return participant.transport
        return self._engine.transport

    @property
    def transports(self) -> tuple[str, ...]:
        """The transports this client tries, in order (with ``share``: that the tab holding the
        connection tries)."""
        return self._wanted

    @property
    def session(self) -> str | None:
        """The pyrt server's id of the current connection (from its ``welcome`` frame)."""
        return self._engine.session

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._engine.paused

    @property
    def protocol_name(self) -> str:
        """The wire protocol's name (``"pyrt"``, ``"raw"``, ``"json-ack"``...)."""
        return self._engine.protocol.name

    # ------------------------------------------------------------------------- user calls

    def connect(self) -> Self:
        """Start connecting and return at once (like ``new WebSocket``). Call it once: the client
        reconnects by itself. Must run inside an event loop (any Pyodide code does). A URL the
        runtime can never open (``"/ws"`` outside a browser) raises
        :class:`~pyrt.errors.RelativeURLError` here, and the client stays IDLE."""
        engine = self._engine
        if self._loading:
            raise InvalidStateError("connect() was already called (loading the saved state)")
        loop = self._start_loop()
        if self._transport is None:
            self._transport = self._sockets.socket("websocket")
        services = self._use_services(self._transport)
        if engine.state is State.IDLE and len(engine.transports.choice.order) > 1:
            engine.remembered(ClientTransports.recall(services, self.url))
        if isinstance(self.url, str):
            self._transport.check_url(self.url)
        if self.share is not None and self._participant is None and engine.state is State.IDLE:
            self._join(self.share, services, loop)
        if self.persist is not None and engine.state is State.IDLE:
            self._persistence = self._open_storage(self.persist, services, loop)  # may raise: still IDLE
            self._loading = True
            self._persistence.load(self._loaded)  # connects when loaded, maybe right now
            return self
        self._begin()
        return self

    def _begin(self) -> None:
        self._engine.connect(self._now())
        self._watch_page(self)
        self._pump()

    def send(self, data: Any) -> None:
        """Send ``data``: str as text, bytes-like as binary (raw mode), dict/list as JSON.

        While the client is not open (or the browser's buffer is over ``high_water``), the
        message waits in the queue and goes out in order on (re)open. Raises
        :class:`~pyrt.errors.ClientClosedError`, :class:`~pyrt.errors.EncodeError` or
        :class:`~pyrt.errors.QueueFull` (``overflow="raise"``).
        """
        engine = self._engine
        transport = self._transport
        buffered = transport.buffered_amount() if transport is not None and engine.state is State.OPEN else 0
        self._transmit(engine.send(data, self._now(), buffered))

    def forward(self, frame: Frame) -> bool:
        """Send ``frame`` as it is, a frame another client encoded (the hub of a shared
        connection forwards its links' frames), when the connection can take it now: open,
        under ``high_water`` and within the server's limits (the pacer spends a token for it).
        Returns False otherwise; nothing is queued: keep it, in order, and try again at
        :meth:`forward_at` (or when the server answers)."""
        engine = self._engine
        if engine.forward(frame, self._now(), self._buffered()):
            transport = self._transport
            assert transport is not None  # open
            transport.send(frame)
            return True
        if engine.has_actions:
            self._pump()  # a ping asking the server how far it has read
        return False

    def forward_at(self) -> float | None:
        """When :meth:`forward` may take a frame again (the loop's time), or ``None``: when the
        server answers (a pong), or never (not open)."""
        return self._engine.forward_at(self._now(), self._buffered())

    def socket_alive(self) -> None:
        """A frame arrived that the transport gave elsewhere (a shared connection's link): it
        still proves the connection alive."""
        self._engine.alive(self._clock())
        if self._engine.has_actions:
            self._pump()

    def _ask(self, request: Callable[[AckFuture], object]) -> AckFuture:
        """A future that ``request`` gives the engine as the handle of what it asks; then pump."""
        future = AckFuture(loop=self._ensure_loop())
        request(future)
        self._pump()
        return future

    def _transmit(self, frame: Frame | None) -> None:
        """Hand a frame the engine let through to the socket; pump when it queued instead."""
        if frame is not None:
            transport = self._transport
            assert transport is not None  # a frame comes back only while open
            transport.send(frame)
        if frame is None or self._engine.has_actions:
            self._pump()

    def send_with_ack(self, data: Any, timeout: float | None = None) -> asyncio.Future[Any]:
        """Send ``data`` and return a future of the server's ack payload.

        The message is sent at once (or queued), re-sent after a reconnect and after each
        ``timeout`` (default ``ack_timeout``) up to ``ack_retries`` times, and deduplicated by
        id on the server. The future fails with :class:`~pyrt.errors.AckTimeout`,
        :class:`~pyrt.errors.AckError`, :class:`~pyrt.errors.QueueFull` or
        :class:`~pyrt.errors.ClientClosedError`. It is an :class:`~pyrt.aio.ack_future.AckFuture`,
        whose waiters resume as soon as the ack frame is handled.
        """
        return self._ask(
            lambda f: self._engine.send_with_ack(data, self._now(), f, timeout, self._buffered())
        )

    def publish(
        self, channel: str, data: Any, event: str | None = None, timeout: float | None = None
    ) -> asyncio.Future[str]:
        """Publish ``data`` into ``channel``; the future resolves with its offset. Acked, retried
        and deduplicated like :meth:`send_with_ack`."""
        return self._ask(
            lambda f: self._engine.publish(channel, data, self._now(), f, event, timeout, self._buffered())
        )

    def history(
        self,
        channel: str,
        limit: int | None = None,
        since: str | None = None,
        reverse: bool = False,
        timeout: float | None = None,
    ) -> asyncio.Future[HistoryPage]:
        """A page of ``channel``'s retained publications (:mod:`pyrt.engine.history`), a future of a
        :class:`~pyrt.engine.history.HistoryPage`: forward from ``since`` (the oldest retained when
        ``None``), or with ``reverse=True`` backwards from it (the newest when ``None``). At most
        ``limit`` publications (the server's default when ``None``, 100 with ``serve.py``). Sent
        at once or when connected, re-sent after a reconnect; fails like :meth:`send_with_ack`
        (:class:`~pyrt.errors.AckError` with code ``forbidden`` for a channel you may not read)."""
        return self._ask(
            lambda f: self._engine.history(
                channel, self._now(), f, limit, since, reverse, timeout, self._buffered()
            )
        )

    def subscribe(
        self,
        channel: str,
        handler: Callable[[Publication], Any],
        since: str | None = None,
        *,
        on_join: Callable[[Member], Any] | None = None,
        on_leave: Callable[[Member], Any] | None = None,
    ) -> None:
        """Call ``handler(publication)`` for every publication in ``channel``, in order, each once.

        After a reconnect the subscription is restored and what was missed is replayed; when
        the server could not replay everything, the next publication has ``recovered=False``.
        ``since="0"`` also replays what the server retains from before.

        With ``on_join`` / ``on_leave`` the subscription follows the channel's presence
        (:mod:`pyrt.engine.presence`): ``on_join(member)`` for every member there when it starts and
        every one that joins (or changes its info) later, ``on_leave(member)`` for every one
        that leaves; after a reconnect, the changes missed meanwhile. :meth:`members` is the
        list now.
        """
        if not callable(handler):
            raise TypeError(f"subscribe needs a callable handler, got {type(handler).__name__}")
        for name, callback in (("on_join", on_join), ("on_leave", on_leave)):
            if callback is not None and not callable(callback):
                raise TypeError(f"{name} must be callable, got {type(callback).__name__}")
        watching = (on_join, on_leave) if on_join is not None or on_leave is not None else None
        self._engine.subscribe(channel, handler, self._now(), since, watching)
        self._pump()

    def join(self, channel: str, info: Any = None, timeout: float | None = None) -> asyncio.Future[str]:
        """Be in ``channel``'s presence with ``info`` (a small JSON value others see, such as
        ``{"name": "alice"}``) until :meth:`leave` or :meth:`close`; the future resolves with
        this client's member id. The client joins again after every reconnect as the same
        member. Joining again changes ``info``. Fails with :class:`~pyrt.errors.ChannelRefused`
        when the server refuses (not allowed, the channel's presence is full, ``info`` too big).
        """
        return self._ask(lambda f: self._engine.join(channel, info, self._now(), f, timeout))

    def leave(self, channel: str, timeout: float | None = None) -> asyncio.Future[None]:
        """Leave ``channel``'s presence (others see this member leave at once)."""
        return self._ask(lambda f: self._engine.leave(channel, self._now(), f, timeout, self._buffered()))

    def presence(self, channel: str, timeout: float | None = None) -> asyncio.Future[list[Member]]:
        """Who is in ``channel``'s presence now, asked of the server: a future of a list of
        :class:`~pyrt.engine.presence.Member` (no subscription needed; reading it needs the right to
        subscribe)."""
        return self._ask(lambda f: self._engine.presence(channel, self._now(), f, timeout, self._buffered()))

    async def state_then_stream(
        self,
        channel: str,
        load: Callable[[], Any],
        apply: Callable[[Any, Publication], Any],
        *,
        on_change: Callable[[Any], Any] | None = None,
        on_error: Callable[[Exception], Any] | None = None,
    ) -> SyncedState[Any]:
        """Load application state, then follow ``channel`` from the offset it reflects, never
        missing or applying twice a publication (:mod:`pyrt.aio.state_stream`).

        ``load()`` (sync or async) returns ``(state, offset)``; ``apply(state, publication)``
        returns the next state. Returns a :class:`~pyrt.aio.state_stream.SyncedState` once the
        first snapshot is loaded and the subscription made (errors of that first ``load`` are
        raised here); read its ``state``, or get ``on_change(state)`` calls. A gap (the server no
        longer has what the state misses) loads a new snapshot by itself.
        """
        from pyrt.aio.state_stream import SyncedState  # loaded by clients that use it

        synced: SyncedState[Any] = SyncedState(self, channel, load, apply, on_change, on_error)
        return await synced.start()

    def members(self, channel: str) -> list[Member]:
        """The members of ``channel`` as a subscription with ``on_join``/``on_leave`` knows them
        now (no round trip; empty without such a subscription)."""
        return self._engine.members(channel)

    def unsubscribe(self, channel: str) -> bool:
        """Stop a subscription; returns False when there was none."""
        done = self._engine.unsubscribe(channel, self._now())
        self._pump()
        return done

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close for good: no reconnect; pending acks fail with a clear error, queued messages
        are dropped (each reported to ``on_error``), ``async for`` ends, every proxy is
        destroyed. Browsers allow code 1000 or 3000-4999. Closing twice does nothing."""
        self._engine.close(self._now(), code, reason)
        if self._participant is not None:
            self._participant.leaving()  # never takes the shared connection over now
        self._stop_iterating()
        self._pump()

    def pause(self) -> None:
        """Go offline on purpose (state PAUSED): close the socket cleanly and stay disconnected,
        queueing every send (within ``queue_limit``) and keeping pending acks and subscriptions,
        until :meth:`resume`. The page's own ``pageshow`` does not end a pause."""
        self._engine.pause(self._now())
        self._pump()

    def resume(self) -> None:
        """End a :meth:`pause`: connect at once, then flush the queue in order and recover
        subscriptions. Does nothing when the client is not paused."""
        self._engine.resume(self._now())
        self._pump()

    # ------------------------------------------------------------------------- transport events

    def socket_opened(self) -> None:
        if self._loop is None:
            return
        self._engine.opened(self._loop.time())
        self._pump()

    def socket_message(self, data: Frame) -> None:
        """The hot path: one engine call, then the handlers, directly."""
        engine = self._engine
        message = engine.received(data, self._clock())
        if message is not NO_MESSAGE:
            self._deliver(message)
        if engine.has_actions:
            self._pump()

    def _deliver(self, message: Any) -> None:
        handlers = self._handlers
        if handlers.pending is not None:  # ordered mode, an async handler still runs
            handlers.emit("message", message)
        else:
            for handler in self._message_handlers:
                try:
                    result = handler(message)
                except Exception as exc:
                    handlers.failed(handler, exc)
                else:
                    if result is not None and inspect.isawaitable(result):
                        handlers.started(handler, result)
        buffer = self._buffer
        if buffer is not None:
            buffer.append(message)
            if self._waiters:
                self._wake()

    def socket_closed(self, code: int, reason: str, was_clean: bool) -> None:
        if self._loop is None:
            return
        self._engine.closed(code, reason, self._loop.time(), was_clean)
        self._pump()

    # ------------------------------------------------------------------------- page events

    def page_online(self) -> None:
        self._check_wake()
        self._engine.network_online(self._now())
        self._pump()

    def page_visible(self) -> None:
        self._check_wake()
        self._engine.page_visible(self._now(), self._buffered())
        self._pump()

    def page_backgrounded(self) -> None:
        """A background tab keeps its socket: the heartbeat decides whether it still lives."""

    def page_hidden(self) -> None:
        self._engine.page_hidden(self._now())
        self._pump()

    def page_shown(self) -> None:
        self._engine.page_shown(self._now())
        self._pump()

    # ------------------------------------------------------------------------- the driver's hooks

    def _tick(self, now: float) -> None:
        self._engine.tick(now, self._buffered())

    def _after_pump(self) -> None:
        if self._settled:
            settled, self._settled = self._settled, []
            for future, value, error in settled:
                settle(future, value, error)

    def _release(self) -> None:
        if self._opening is not None:
            self._opening.cancel()
            self._opening = None
        if self._fetching is not None:
            self._fetching.cancel()
            self._fetching = None
        if self._transport is not None and self._participant is not None:
            self._transport.dispose()  # a link end; the sockets are the transports'
        self._sockets.dispose()
        if self._persistence is not None:
            self._persistence.close()

    def _perform(self, action: Any) -> None:
        transport = self._transport
        if type(action) is SendFrame:
            assert transport is not None
            transport.send(action.frame)
        elif type(action) is ResolveAck:
            future = action.handle
            assert isinstance(future, AckFuture)
            self._settled.append((future, action.value, None))
        elif type(action) is RejectAck:
            future = action.handle
            assert isinstance(future, AckFuture)
            self._settled.append((future, None, action.error))
        elif type(action) is DeliverPublication:
            handler = action.handler
            if callable(handler) and not action.cancelled:
                self._handlers.call(handler, action.publication)
        elif type(action) is DeliverPresence:
            callbacks: tuple[Handler | None, Handler | None] = action.handler  # type: ignore[assignment]
            on_join, on_leave = callbacks  # the pair subscribe() gave the engine
            for member in action.left:
                if on_leave is not None:
                    self._handlers.call(on_leave, member)
            for member in action.joined:
                if on_join is not None:
                    self._handlers.call(on_join, member)
        elif type(action) is DeliverMessage:
            self._deliver(action.data)
        elif type(action) is OpenSocket:
            if self._participant is None:  # a shared connection's tab has its link, whatever the transport
                self._transport = self._sockets.socket(action.transport)
            self._open(action.attempt)
        elif type(action) is CloseSocket:
            if self._opening is not None:
                self._opening.cancel()
                self._opening = None
            if transport is not None:
                transport.close(action.code, action.reason, action.detach)
        elif type(action) is StateChanged:
            self._state_changed(action)
        elif type(action) is Reconnecting:
            attempt, delay = action.attempt, action.delay
            log.info("pyrt websocket: %s; reconnect attempt %d in %.3f s", action.reason, attempt, delay)
            self._problem = action.reason
            self._handlers.emit("reconnecting", action.attempt, action.delay, action.reason)
        elif type(action) is ReportError:
            log.warning("pyrt websocket: %s", action.error)
            self._handlers.emit("error", action.error)
        elif type(action) is SaveState:
            if self._persistence is not None:
                self._persistence.save(action.changes)
        elif type(action) is ReportRestored:
            self._handlers.emit("restored", action.message)
        elif type(action) is Closed:
            self._finished(action)
        elif type(action) is SubscriptionConfirmed:
            log.debug("pyrt websocket: subscribed to %r at %s", action.channel, action.offset)
        elif type(action) is OpenProbe:
            self._open_probe(action.transport)
        elif type(action) is CloseProbe:
            self._sockets.close_probe()
        elif type(action) is RememberTransport:
            ClientTransports.remember(self._services_now(), self.url, action.transport, action.seconds)
        elif type(action) is FetchToken:
            if self._fetching is not None:
                self._fetching.cancel()  # a newer request makes it moot: the engine would ignore it
            self._fetching = self._ensure_loop().create_task(self._refresh_token(action.request))

    def _buffered(self) -> int:
        transport = self._transport
        if transport is None or self._engine.state is not State.OPEN:
            return 0
        return transport.buffered_amount()


# ----------------------------------------------------------------------------- what an attempt needs


def _check_arguments(url: object, token: object, persist: object, share: object) -> None:
    if not (isinstance(url, str) or callable(url)):
        raise TypeError(f"url must be a str or a callable returning one, got {type(url).__name__}")
    if share is not None and persist is not None:
        raise ValueError(
            "persist= cannot be combined with share= yet: every tab would write the same "
            "records; persist in one client, or share without persist"
        )
    if isinstance(share, str) and not share:
        raise ValueError("share must be a non-empty name")
    if token is not None and not callable(token):
        raise TypeError(
            f"token must be a callable returning the token (called before each connection and "
            f"refresh), got {type(token).__name__}"
        )
