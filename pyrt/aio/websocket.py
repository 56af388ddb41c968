"""``WebSocketClient``: a WebSocket that reconnects, queues, acknowledges and recovers.

The decisions are made by :class:`pyrt.ws_engine.WebSocketEngine`; this module is the asyncio
pump around it: it carries out the engine's actions on a transport (``js.WebSocket`` in the
browser, see :mod:`pyrt.browser.ws_transport`), arms **one** timer for the engine's next
deadline, and hands messages, acks and events to the user's callbacks, futures and
``async for``. It imports nothing from ``js`` itself, so it also runs on CPython with another
transport (for example :class:`pyrt.testing.FakeTransport`).

Hot paths: an inbound frame costs one engine call and direct calls of the ``on_message``
handlers (no future, no task); ``send`` hands the frame to the native socket when nothing is
queued; a future exists only for ``send_with_ack`` / ``publish``, resolved directly by the
engine's ack action.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from pyrt.backoff import Backoff
from pyrt.close_policy import ShouldReconnect
from pyrt.errors import ClientClosedError, InvalidStateError
from pyrt.heartbeat import Heartbeat
from pyrt.outbox import Overflow
from pyrt.persist import Storage, loads
from pyrt.protocol import WireProtocol
from pyrt.states import CLOSED, CLOSING, CONNECTING, OPEN, State, ready_state
from pyrt.subscriptions import Publication
from pyrt.transport import Transport
from pyrt.wire import Frame
from pyrt.ws_engine import (
    NO_MESSAGE,
    Action,
    Closed,
    CloseSocket,
    DeliverPublication,
    OpenSocket,
    Reconnecting,
    RejectAck,
    ReportError,
    ResolveAck,
    SaveState,
    SendFrame,
    StateChanged,
    Stats,
    SubscriptionConfirmed,
    WebSocketEngine,
)

__all__ = ["WebSocketClient"]

log = logging.getLogger("pyrt.websocket")

UrlSource = str | Callable[[], str] | Callable[[], Awaitable[str]]
ProtocolsSource = str | Sequence[str] | Callable[[], str | Sequence[str]] | None
Handler = Callable[..., Any]

_EVENTS: Final = ("message", "open", "close", "error", "reconnecting", "state")

if TYPE_CHECKING:
    _FutureBase = asyncio.Future[Any]
else:
    _FutureBase = asyncio.futures._PyFuture  # the pure-Python Future: its scheduling is ours to override


class AckFuture(_FutureBase):
    """The future of :meth:`WebSocketClient.send_with_ack` and :meth:`~WebSocketClient.publish`:
    an asyncio future (``await`` it, ``asyncio.wait_for`` it, add callbacks) whose waiters resume
    at once when the client settles it outside any running task (an ack frame arrived, a timer
    fired), instead of one event-loop turn later — in Pyodide each turn is a browser task
    (~50-90 us). Inside a running task it schedules its callbacks as any future does."""

    _direct = False  # True only while the client settles it from outside any task

    def _Future__schedule_callbacks(self) -> None:
        if not self._direct:
            super()._Future__schedule_callbacks()  # type: ignore[misc]
            return
        callbacks = self._callbacks[:]
        self._callbacks[:] = []
        for callback, context in callbacks:
            try:
                context.run(callback, self)
            except Exception as exc:  # what the loop does for a callback that raised
                self.get_loop().call_exception_handler(
                    {"message": "exception in a pyrt ack future callback", "exception": exc, "future": self}
                )


class WebSocketClient:
    """A resilient WebSocket client. See the README for a tour; the short version::

        client = WebSocketClient("/ws")
        client.on_message(print)
        client.connect()
        reply = await client.send_with_ack({"hello": "world"})

    ``url``: a str (``ws://``, ``wss://``, or a path like ``"/ws"`` on the page's own host — in a
    browser only), or a callable (sync or async) returning one, called before every attempt
    (fresh tokens). Outside Pyodide the client runs over the ``websockets`` library
    (:mod:`pyrt.cpython.ws_transport`).
    ``protocols``: WebSocket subprotocols to offer besides the wire protocol's own (``pyrt.v1``).
    ``protocol``: the wire protocol — ``"pyrt"`` (default), ``"raw"`` (any server) or
    ``"json-ack"``, or a :class:`~pyrt.protocol.WireProtocol`.
    ``persist``: a storage key; unacknowledged messages and channel offsets then survive page
    reloads (in ``localStorage``; on CPython in a JSON file, see :mod:`pyrt.cpython.storage`).
    The other options are those of :class:`~pyrt.ws_engine.WebSocketEngine`.
    """

    CONNECTING: Final = CONNECTING
    OPEN: Final = OPEN
    CLOSING: Final = CLOSING
    CLOSED: Final = CLOSED

    def __init__(
        self,
        url: UrlSource,
        protocols: ProtocolsSource = None,
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
        persist: str | None = None,
        high_water: int = 1 << 20,
        rng: Callable[[], float] | None = None,
        transport: Transport | None = None,
        storage: Storage | None = None,
    ) -> None:
        if not (isinstance(url, str) or callable(url)):
            raise TypeError(f"url must be a str or a callable returning one, got {type(url).__name__}")
        self.url = url
        self.protocols = protocols
        self.persist = persist
        self._engine = WebSocketEngine(
            protocol=protocol,
            backoff=backoff,
            heartbeat=heartbeat,
            queue_limit=queue_limit,
            queue_bytes=queue_bytes,
            overflow=overflow,
            ack_timeout=ack_timeout,
            ack_retries=ack_retries,
            connect_timeout=connect_timeout,
            close_timeout=close_timeout,
            should_reconnect=should_reconnect,
            high_water=high_water,
            persist=persist is not None,
            rng=rng,
        )
        self._transport = transport
        self._storage = storage
        self._handlers: dict[str, list[Handler]] = {name: [] for name in _EVENTS}
        self._message_handlers = self._handlers["message"]  # the hot list, looked up once
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clock: Callable[[], float] = _not_connected
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._pumping = False
        self._paused = False
        self._buffer: deque[Any] | None = None  # exists once someone iterates
        self._waiters: list[asyncio.Future[None]] = []
        self._closed: Closed | None = None
        self._opening: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._settled: list[tuple[AckFuture, Any, BaseException | None]] = []

    # ------------------------------------------------------------------------- properties

    @property
    def state(self) -> State:
        """The client's :class:`~pyrt.states.State`."""
        return self._engine.state

    @property
    def ready_state(self) -> int:
        """0..3 as JavaScript's ``readyState`` (``CONNECTING``, ``OPEN``, ``CLOSING``, ``CLOSED``);
        reconnecting counts as ``CONNECTING``."""
        return ready_state(self._engine.state)

    @property
    def stats(self) -> Stats:
        """A snapshot of the counters (sent, received, queued, dropped, acked, ack_timeouts,
        retried, reconnects, duplicates, queue_length, pending_acks, rtt, srtt)."""
        return self._engine.stats_snapshot()

    @property
    def session(self) -> str | None:
        """The pyrt server's id of the current connection (from its ``welcome`` frame)."""
        return self._engine.session

    @property
    def close_event(self) -> Closed | None:
        """How the client ended, once it is CLOSED."""
        return self._closed

    # ------------------------------------------------------------------------- handlers

    def on_message(self, handler: Handler) -> Handler:
        """Call ``handler(message)`` for every application message (decorator)."""
        return self._add("message", handler)

    def on_open(self, handler: Handler) -> Handler:
        """Call ``handler()`` each time a socket opens (first connect and every reconnect)."""
        return self._add("open", handler)

    def on_close(self, handler: Handler) -> Handler:
        """Call ``handler(event)`` once, when the client is closed for good (a
        :class:`~pyrt.ws_engine.Closed` with ``code``, ``reason``, ``by_client``, ``detail``)."""
        return self._add("close", handler)

    def on_error(self, handler: Handler) -> Handler:
        """Call ``handler(error)`` for problems that are not the exception of a call: dropped
        messages, server ``error`` frames, unreadable frames, handlers that raised."""
        return self._add("error", handler)

    def on_reconnecting(self, handler: Handler) -> Handler:
        """Call ``handler(attempt, delay, reason)`` each time the socket is lost and a reconnect
        is scheduled."""
        return self._add("reconnecting", handler)

    def on_state(self, handler: Handler) -> Handler:
        """Call ``handler(state)`` on every state change."""
        return self._add("state", handler)

    def off(self, event: str, handler: Handler) -> None:
        """Remove a handler added with ``on_<event>``; unknown handlers are ignored."""
        handlers = self._handlers.get(event)
        if handlers is None:
            raise ValueError(f"unknown event {event!r}; one of {_EVENTS}")
        if handler in handlers:
            handlers.remove(handler)

    def _add(self, event: str, handler: Handler) -> Handler:
        if not callable(handler):
            raise TypeError(f"on_{event} needs a callable, got {type(handler).__name__}")
        self._handlers[event].append(handler)
        return handler

    # ------------------------------------------------------------------------- user calls

    def connect(self) -> Self:
        """Start connecting and return at once (like ``new WebSocket``). Call it once: the client
        reconnects by itself. Must run inside an event loop (any Pyodide code does)."""
        self._loop = _running_loop()
        self._clock = self._loop.time
        if self._transport is None:
            self._transport = _default_transport(self.url)
        if self.persist is not None:
            if self._storage is None:
                self._storage = self._transport.storage()
            if self._storage is not None and self._engine.state is State.IDLE:
                self._engine.restore(loads(self._storage.getItem(self.persist)))
        self._engine.connect(self._loop.time())
        self._transport.watch_page(self)
        self._pump()
        return self

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
        frame = engine.send(data, self._now(), buffered)
        if frame is not None:
            assert transport is not None  # a frame comes back only while open
            transport.send(frame)
        if engine.has_actions or frame is None:
            self._pump()

    def send_with_ack(self, data: Any, timeout: float | None = None) -> asyncio.Future[Any]:
        """Send ``data`` and return a future of the server's ack payload.

        The message is sent at once (or queued), re-sent after a reconnect and after each
        ``timeout`` (default ``ack_timeout``) up to ``ack_retries`` times, and deduplicated by
        id on the server. The future fails with :class:`~pyrt.errors.AckTimeout`,
        :class:`~pyrt.errors.AckError`, :class:`~pyrt.errors.QueueFull` or
        :class:`~pyrt.errors.ClientClosedError`. It is an :class:`AckFuture`: asyncio's
        pure-Python future (``asyncio.isfuture`` is true; ``isinstance(f, asyncio.Future)`` is
        not, as for any future not made by the C accelerator), whose waiters resume as soon as
        the ack frame is handled.
        """
        future = AckFuture(loop=self._ensure_loop())
        self._engine.send_with_ack(data, self._now(), future, timeout, self._buffered())
        self._pump()
        return future

    def publish(
        self, channel: str, data: Any, event: str | None = None, timeout: float | None = None
    ) -> asyncio.Future[str]:
        """Publish ``data`` into ``channel``; the future resolves with its offset. Acked, retried
        and deduplicated like :meth:`send_with_ack`."""
        future = AckFuture(loop=self._ensure_loop())
        self._engine.publish(channel, data, self._now(), future, event, timeout, self._buffered())
        self._pump()
        return future

    def subscribe(
        self, channel: str, handler: Callable[[Publication], Any], since: str | None = None
    ) -> None:
        """Call ``handler(publication)`` for every publication in ``channel``, in order, each once.

        After a reconnect the subscription is restored and what was missed is replayed; when
        the server could not replay everything, the next publication has ``recovered=False``.
        ``since="0"`` also replays what the server retains from before.
        """
        if not callable(handler):
            raise TypeError(f"subscribe needs a callable handler, got {type(handler).__name__}")
        self._engine.subscribe(channel, handler, self._now(), since)
        self._pump()

    def unsubscribe(self, channel: str) -> bool:
        """Stop a subscription; returns False when there was none."""
        done = self._engine.unsubscribe(channel, self._now())
        self._pump()
        return done

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close for good: no reconnect; pending acks fail with a clear error, queued messages
        are dropped (each reported to ``on_error``), every proxy is destroyed. Browsers allow
        code 1000 or 3000-4999. Closing twice does nothing."""
        self._engine.close(self._now(), code, reason)
        self._pump()

    def pause(self) -> None:
        """Go offline on purpose: close the socket cleanly and stay disconnected, queueing every
        send (within ``queue_limit``) and keeping pending acks and subscriptions, until
        :meth:`resume`. The page's own ``pageshow`` does not end a pause."""
        if self._engine.state in (State.IDLE, State.CLOSING, State.CLOSED):
            raise InvalidStateError(f"cannot pause a client that is {self._engine.state.name}")
        self._paused = True
        self._engine.page_hidden(self._now())
        self._pump()

    def resume(self) -> None:
        """End a :meth:`pause`: connect at once, then flush the queue in order and recover
        subscriptions. Does nothing when the client is not paused."""
        if not self._paused:
            return
        self._paused = False
        self._engine.page_shown(self._now())
        self._pump()

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._paused

    async def wait_open(self, timeout: float | None = None) -> None:
        """Wait until the client is open; raises :class:`~pyrt.errors.ClientClosedError` if it
        closes for good first, and ``TimeoutError`` after ``timeout`` seconds."""
        await asyncio.wait_for(
            self._wait(lambda: self._engine.state is State.OPEN, raise_closed=True), timeout
        )

    async def wait_closed(self, timeout: float | None = None) -> Closed:
        """Wait until the client is CLOSED and return how it ended."""
        await asyncio.wait_for(self._wait(lambda: self._engine.state is State.CLOSED), timeout)
        assert self._closed is not None
        return self._closed

    async def __aenter__(self) -> Self:
        if self._engine.state is State.IDLE:
            self.connect()
        await self.wait_open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        if self._engine.state is not State.CLOSED:
            await self.wait_closed()

    def __aiter__(self) -> AsyncIterator[Any]:
        """Iterate over messages until the client closes (connects if needed).

        Messages are buffered from the first ``__aiter__`` on. Iteration ends after
        :meth:`close`, and raises :class:`~pyrt.errors.ClientClosedError` when the client stopped
        for another reason (a "do not retry" close code, attempts exhausted).
        """
        if self._buffer is None:
            self._buffer = deque()
        if self._engine.state is State.IDLE:
            self.connect()
        return self

    async def __anext__(self) -> Any:
        buffer = self._buffer
        if buffer is None:
            buffer = self._buffer = deque()
        while not buffer:
            if self._engine.state is State.CLOSED:
                closed = self._closed
                if closed is not None and not closed.by_client:
                    raise ClientClosedError(closed.detail)
                raise StopAsyncIteration
            await self._wake_future()
        return buffer.popleft()

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
            for handler in self._message_handlers:
                try:
                    result = handler(message)
                except Exception as exc:
                    self._handler_failed(handler, exc)
                else:
                    if result is not None and inspect.isawaitable(result):
                        self._spawn(result)
            buffer = self._buffer
            if buffer is not None:
                buffer.append(message)
                if self._waiters:
                    self._wake()
        if engine.has_actions:
            self._pump()

    def socket_closed(self, code: int, reason: str, was_clean: bool) -> None:
        if self._loop is None:
            return
        self._engine.closed(code, reason, self._loop.time(), was_clean)
        self._pump()

    # ------------------------------------------------------------------------- page events

    def page_online(self) -> None:
        self._engine.network_online(self._now())
        self._pump()

    def page_visible(self) -> None:
        self._engine.page_visible(self._now(), self._buffered())
        self._pump()

    def page_hidden(self) -> None:
        self._engine.page_hidden(self._now())
        self._pump()

    def page_shown(self) -> None:
        if self._paused:
            return
        self._engine.page_shown(self._now())
        self._pump()

    # ------------------------------------------------------------------------- the pump

    def _pump(self) -> None:
        """Carry out the engine's actions (re-entrant calls fold into the running pump), then
        re-arm the one timer."""
        if self._pumping:
            return
        self._pumping = True
        try:
            while True:
                actions = self._engine.actions()
                if not actions:
                    break
                for action in actions:
                    self._perform(action)
        finally:
            self._pumping = False
        self._arm()
        if self._settled:
            self._settle()

    def _settle(self) -> None:
        """Resolve or reject the ack futures of the actions just performed, after the pump:
        outside any task their waiters resume right here (see :class:`AckFuture`)."""
        settled, self._settled = self._settled, []
        direct = asyncio.current_task(self._loop) is None
        for future, value, error in settled:
            if future.done():
                continue
            future._direct = direct
            try:
                if error is None:
                    future.set_result(value)
                else:
                    future.set_exception(error)
            finally:
                future._direct = False

    def _perform(self, action: Action) -> None:
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
            if callable(handler):
                self._call(handler, action.publication)
        elif type(action) is OpenSocket:
            self._open(action.attempt)
        elif type(action) is CloseSocket:
            if self._opening is not None:
                self._opening.cancel()
                self._opening = None
            if transport is not None:
                transport.close(action.code, action.reason, action.detach)
        elif type(action) is StateChanged:
            log.debug("pyrt websocket %s -> %s", action.old.name, action.new.name)
            self._emit("state", action.new)
            if action.new is State.OPEN:
                self._emit("open")
            self._wake()
        elif type(action) is Reconnecting:
            log.info(
                "pyrt websocket: %s; reconnect attempt %d in %.3f s",
                action.reason,
                action.attempt,
                action.delay,
            )
            self._emit("reconnecting", action.attempt, action.delay, action.reason)
        elif type(action) is ReportError:
            log.warning("pyrt websocket: %s", action.error)
            self._emit("error", action.error)
        elif type(action) is SaveState:
            if self._storage is not None and self.persist is not None:
                try:
                    self._storage.setItem(self.persist, action.text)
                except Exception as exc:  # storage full or forbidden: report, keep going
                    self._emit("error", exc)
        elif type(action) is Closed:
            self._closed = action
            log.info("pyrt websocket closed: %s", action.detail)
            self._cancel_timer()
            if self._opening is not None:
                self._opening.cancel()
                self._opening = None
            if transport is not None:
                transport.dispose()
            self._emit("close", action)
            self._wake()
        elif type(action) is SubscriptionConfirmed:
            log.debug("pyrt websocket: subscribed to %r at %s", action.channel, action.offset)

    def _open(self, attempt: int) -> None:
        url = self.url
        protocols = self.protocols
        if isinstance(url, str) and not callable(protocols):
            self._open_now(url, protocols)
            return
        self._opening = self._ensure_loop().create_task(self._resolve_and_open(attempt))

    async def _resolve_and_open(self, attempt: int) -> None:
        try:
            url = self.url if isinstance(self.url, str) else self.url()
            if inspect.isawaitable(url):
                url = await url
            protocols = self.protocols() if callable(self.protocols) else self.protocols
            if not isinstance(url, str):
                raise TypeError(f"the url callable returned {type(url).__name__}, not str")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._opening = None
            self._emit("error", exc)
            self.socket_closed(1006, f"resolving the url failed: {exc}", False)
            return
        self._opening = None
        if self._engine.state is State.CONNECTING:
            self._open_now(url, protocols)

    def _open_now(self, url: str, protocols: str | Sequence[str] | None) -> None:
        offered: list[str] = []
        own = self._engine.protocol.subprotocol
        if own:
            offered.append(own)
        if isinstance(protocols, str):
            offered.append(protocols)
        elif protocols:
            offered.extend(protocols)
        assert self._transport is not None
        try:
            self._transport.open(url, offered, self)
        except Exception as exc:  # a malformed URL, a refused subprotocol list
            self._emit("error", exc)
            self.socket_closed(1006, f"could not open the socket: {exc}", False)

    # ------------------------------------------------------------------------- timer

    def _arm(self) -> None:
        deadline = self._engine.next_deadline()
        if deadline is None:
            if self._timer is not None and self._engine.state is State.CLOSED:
                self._cancel_timer()
            return
        if self._timer_at is not None and self._timer_at <= deadline:
            return  # the armed timer fires first; tick() then re-arms
        self._cancel_timer()
        loop = self._loop
        if loop is not None:
            self._timer_at = deadline
            # call_later, not call_at: Pyodide's loop refuses a deadline already in the past.
            self._timer = loop.call_later(max(0.0, deadline - loop.time()), self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._engine.tick(self._now(), self._buffered())
        self._pump()

    # ------------------------------------------------------------------------- helpers

    def _now(self) -> float:
        return self._ensure_loop().time()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = _running_loop()
        return self._loop

    def _buffered(self) -> int:
        transport = self._transport
        if transport is None or self._engine.state is not State.OPEN:
            return 0
        return transport.buffered_amount()

    def _emit(self, event: str, *args: Any) -> None:
        for handler in tuple(self._handlers[event]):
            self._call(handler, *args)

    def _call(self, handler: Handler, *args: Any) -> None:
        try:
            result = handler(*args)
        except Exception as exc:
            self._handler_failed(handler, exc)
            return
        if result is not None and inspect.isawaitable(result):
            self._spawn(result)

    def _handler_failed(self, handler: Handler, exc: Exception) -> None:
        log.error("pyrt websocket handler %r raised", handler, exc_info=exc)
        if handler not in self._handlers["error"]:
            self._emit("error", exc)

    def _spawn(self, awaitable: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("pyrt websocket handler task failed", exc_info=exc)
            if isinstance(exc, Exception):
                self._emit("error", exc)

    async def _wait(self, done: Callable[[], bool], raise_closed: bool = False) -> None:
        while not done():
            if self._engine.state is State.CLOSED:
                if raise_closed:
                    detail = self._closed.detail if self._closed is not None else "closed"
                    raise ClientClosedError(f"the client closed before opening: {detail}")
                return
            await self._wake_future()

    def _wake_future(self) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self._ensure_loop().create_future()
        self._waiters.append(future)
        return future

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)


def _not_connected() -> float:
    raise RuntimeError("the client is not connected: call connect() first")


def _running_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        if sys.platform == "emscripten":  # Pyodide's WebLoop is always there
            return asyncio.get_event_loop()
        raise RuntimeError(
            "WebSocketClient must be used from code running in an asyncio event loop"
        ) from None


def _default_transport(url: UrlSource) -> Transport:
    """``js.WebSocket`` in Pyodide, the ``websockets`` library on CPython (where a relative URL
    cannot resolve: it raises :class:`~pyrt.urls.RelativeURLError` at once)."""
    if sys.platform == "emscripten":
        from pyrt.browser.ws_transport import BrowserTransport

        return BrowserTransport()
    from pyrt.cpython.ws_transport import CPythonTransport
    from pyrt.urls import websocket_url

    if isinstance(url, str):
        websocket_url(url)
    return CPythonTransport()
