"""The asyncio pump shared by the three clients: one of everything an engine needs around it.

A client (:class:`~pyrt.WebSocketClient`, :class:`~pyrt.EventSourceClient`,
:class:`~pyrt.FetchEventSource`) is a :class:`Driver` around one sans-I/O engine
(:mod:`pyrt.engine.websocket`, :mod:`pyrt.engine.sse`), one transport and the runtime's
services (:mod:`pyrt.ports.services`: given as ``services=``, else the transport's, else the
runtime's). The driver:

- finds the event loop (:func:`running_loop`) and reads its clock;
- pumps the engine: drains :meth:`actions` and hands each to the client's ``_perform`` (a call
  made while pumping folds into the running pump), then arms **one** timer (the services'
  ``call_later``) for :meth:`next_deadline`; a timer that fires early only re-arms;
- watches the page through the services for the clients that care (and stops when CLOSED);
- reports what every engine reports alike: state changes (``on_state``, ``on_open``) and the
  end (``on_close``, ``close_event``, ``wait_closed()``);
- calls handlers and routes their errors (:mod:`pyrt.aio.handlers`);
- feeds ``async for`` and the waiters of :meth:`wait_open` / :meth:`wait_closed`;
- notices that the machine slept (:mod:`pyrt.engine.wake`: the wall clock jumped ahead of the loop's)
  whenever its timer fires (at least every :data:`~pyrt.engine.wake.CHECK_EVERY` seconds while the
  client is connecting, open or reconnecting) or the page becomes visible or online, and tells
  the engine (``woke``), which replaces a connection that cannot have survived.

It imports asyncio and the pure core only: never ``js``, ``pyodide``, ``websockets`` or ``httpx``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol, Self, TypeVar, overload

from pyrt.aio import runtime
from pyrt.aio.handlers import AsyncHandlers, DomHandler, Handler, HandlerAttribute, Handlers
from pyrt.engine.states import ReadyState, State, StateChanged, ready_state
from pyrt.engine.wake import CHECK_EVERY, WakeDetector
from pyrt.errors import ClientClosedError, PyrtError

__all__ = ["Driver", "running_loop"]

H = TypeVar("H", bound=Handler)


if TYPE_CHECKING:  # annotations only (a Protocol class costs import time in Pyodide)
    from pyrt.aio.inspector import Inspector
    from pyrt.engine.states import CloseEvent
    from pyrt.ports.services import Cancellable, PageEvents, Services, Timers, Watching

    class Engine(Protocol):
        """What the driver needs from an engine."""

        @property
        def state(self) -> State: ...

        def actions(self) -> Sequence[Any]: ...

        def next_deadline(self) -> float | None: ...

        def woke(self, now: float, slept: float) -> None: ...


_LIVE: Final = frozenset({State.CONNECTING, State.OPEN, State.RECONNECTING})  # a sleep can kill these


def running_loop() -> asyncio.AbstractEventLoop:
    """The running event loop (Pyodide's WebLoop is always there); a clear error elsewhere."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        if sys.platform == "emscripten":
            return asyncio.get_event_loop()
        raise RuntimeError("pyrt clients must be used from code running in an asyncio event loop") from None


def wall_time() -> float:
    """The wall clock (seconds since the epoch): compared with the loop's to notice sleeps."""
    return time.time()


def _not_connected() -> float:
    raise RuntimeError("the client is not connected: call connect() first")


class Driver:
    """The event API and the asyncio pump of every pyrt client. See the module docstring.

    Events (``on_<event>`` adds a handler — also as a decorator — and ``on_<event> = f`` sets the
    one property handler, like JavaScript's ``onmessage = f``; ``on(event, f)`` / ``off(event, f)``
    do the same by name):

    - ``open`` ``()``: connected (first time and after every reconnect);
    - ``message`` ``(message)``: an application message (WebSocket) or an event of type
      ``"message"`` (SSE);
    - ``error`` ``(error)``: a problem that is not the exception of a call;
    - ``reconnecting`` ``(attempt, delay, reason)``: the connection is gone; attempt ``attempt``
      follows in ``delay`` seconds;
    - ``state`` ``(state)``: every :class:`~pyrt.engine.states.State` change;
    - ``close`` ``(event)``: once, when the client is closed for good.
    """

    CONNECTING: Final = ReadyState.CONNECTING
    OPEN: Final = ReadyState.OPEN
    CLOSING: Final = ReadyState.CLOSING
    CLOSED: Final = ReadyState.CLOSED

    on_open = HandlerAttribute("open")
    on_message = HandlerAttribute("message")
    on_error = HandlerAttribute("error")
    on_close = HandlerAttribute("close")
    on_state = HandlerAttribute("state")
    on_reconnecting = HandlerAttribute("reconnecting")
    onopen = DomHandler("open")
    onmessage = DomHandler("message")
    onerror = DomHandler("error")
    onclose = DomHandler("close")

    _EVENTS: ClassVar[tuple[str, ...]] = ("message", "open", "close", "error", "reconnecting", "state")
    _OPEN_ENDED: ClassVar[bool] = False  # SSE: any other name is an event type of the stream
    _CLOSE_ON_CANCEL: ClassVar[bool] = False  # SSE: cancelling the iterating task closes the client
    _LOG: ClassVar[logging.Logger] = logging.getLogger("pyrt")

    _engine: Engine
    _inspector: Inspector | None = None  # the open inspector (see inspect())

    def __init__(
        self, async_handlers: AsyncHandlers = "concurrent", services: Services | None = None
    ) -> None:
        self._handlers = Handlers(
            self._EVENTS,
            log=self._LOG,
            loop=self._ensure_loop,
            async_handlers=async_handlers,
            open_ended=self._OPEN_ENDED,
            on_change=self._type_changed,
        )
        self._message_handlers = self._handlers.of("message")  # the hot list, looked up once
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clock: Callable[[], float] = _not_connected
        self._services = services  # chosen for good at connect() (see _use_services)
        self._watching: Watching | None = None  # the page, while watched
        self._timers: Timers | None = None  # from the services, on the first arm
        self._timer: Cancellable | None = None
        self._timer_at: float | None = None
        self._pumping = False
        self._buffer: deque[Any] | None = None  # exists once someone iterates
        self._waiters: list[asyncio.Future[None]] = []
        self._closed: CloseEvent | None = None
        self._stopping = False  # close() was called: async for ends at once
        self._sleeps = WakeDetector()
        self._problem = ""  # the last failed attempt's reason or error, for wait_open's timeout

    # ------------------------------------------------------------------------- state

    @property
    def state(self) -> State:
        """The client's :class:`~pyrt.engine.states.State`."""
        return self._engine.state

    @property
    def ready_state(self) -> ReadyState:
        """``CONNECTING`` (0), ``OPEN`` (1), ``CLOSING`` (2) or ``CLOSED`` (3), JavaScript's
        ``WebSocket.readyState`` numbers; reconnecting and paused count as ``CONNECTING``, not
        connected yet as ``CLOSED``."""
        return ready_state(self._engine.state)

    @property
    def close_event(self) -> CloseEvent | None:
        """How the client ended, once it is CLOSED (what ``on_close`` received)."""
        return self._closed

    def inspect(self, limit: int = 50) -> Inspector:
        """A live view of this client: states and why they changed, round trips, the queue and
        pending acks, channels, pacing, the last ``limit`` frames decoded (:mod:`pyrt.aio.inspector`).
        ``print()`` it, make it a notebook cell's value, or ``mount()`` it in a page; ``close()``
        it when done. The open one is returned while it is open. No cost while none is open."""
        inspector = self._inspector
        if inspector is None:
            from pyrt.aio.inspector import Inspector

            inspector = self._inspector = Inspector(self, limit)
        return inspector

    # ------------------------------------------------------------------------- handlers

    @overload
    def on(self, event: str, handler: None = None) -> Callable[[H], H]: ...
    @overload
    def on(self, event: str, handler: H) -> H: ...
    def on(self, event: str, handler: H | None = None) -> H | Callable[[H], H]:
        """Call ``handler`` for every ``event`` (one of the events above; on the SSE clients also
        any event type of the stream); without ``handler``, a decorator. Returns the handler."""
        if handler is None:
            self._handlers.of(event)  # an unknown event fails here, not at decoration
            return self._handlers.adder(event, f"on({event!r})")
        return self._handlers.add(event, handler, f"on({event!r})")

    def off(self, event: str, handler: Handler | None = None) -> None:
        """Remove ``handler`` from ``event`` (or all of ``event``'s handlers, the property
        handler too, when ``None``); a handler that is not registered is ignored."""
        self._handlers.remove(event, handler)

    # ------------------------------------------------------------------------- waiting

    async def wait_open(self, timeout: float | None = None) -> None:
        """Wait until the client is open. Raises what ``async for`` would raise if the client
        stops first (:class:`~pyrt.errors.ClientClosedError` after ``close()``), and
        ``TimeoutError`` after ``timeout`` seconds, saying the state and the last problem
        (why the last attempt failed, the last error)."""
        try:
            await asyncio.wait_for(self._wait(self._is_open, raise_closed=True), timeout)
        except TimeoutError as exc:
            if timeout is None or isinstance(exc, PyrtError):
                raise  # the client stopped with an error of its own (an AckTimeout is one)
            if self._engine.state is State.OPEN:  # opened as the deadline passed
                return
            raise TimeoutError(self._not_open_yet(timeout)) from None

    def _not_open_yet(self, timeout: float) -> str:
        what = f"{type(self).__name__} not open after {timeout:g} s (state {self._engine.state.value}"
        if self._engine.state is State.IDLE:
            return f"{what}: call connect() first)"
        if self._engine.state is State.PAUSED:
            return f"{what}: resume() connects again)"
        if self._problem:
            return f"{what}; last problem: {self._problem})"
        if getattr(self._engine, "socket_open", False):
            return f"{what}; the socket is open but the server's welcome has not come)"
        return f"{what}; no error reported yet: the server has not answered)"

    async def wait_closed(self, timeout: float | None = None) -> CloseEvent:
        """Wait until the client is CLOSED and return how it ended."""
        await asyncio.wait_for(self._wait(self._is_closed), timeout)
        assert self._closed is not None
        return self._closed

    async def __aenter__(self) -> Self:
        """Connect (if not yet) and wait until open."""
        if self._engine.state is State.IDLE:
            self.connect()
        await self.wait_open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        await self.wait_closed()

    def __aiter__(self) -> AsyncIterator[Any]:
        """Iterate over messages (WebSocket) or events (SSE) until the client stops; connects if
        needed. They are buffered from the first ``__aiter__`` on.

        Iteration ends at once after :meth:`close` (what was received and not taken yet is
        dropped). When the client stops by itself it first yields what was received, then ends
        quietly (a 204 from an SSE server) or raises why it stopped
        (:class:`~pyrt.errors.ClientClosedError` for a WebSocket, the SSE error otherwise).
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
        try:
            while not buffer or self._stopping:
                if self._stopping:
                    raise StopAsyncIteration
                if self._engine.state is State.CLOSED:
                    error = self._closed.error if self._closed is not None else None
                    if error is not None:
                        raise error
                    raise StopAsyncIteration
                await self._wake_future()
        except asyncio.CancelledError:
            if self._CLOSE_ON_CANCEL:
                self.close()
            raise
        return buffer.popleft()

    # ------------------------------------------------------------------------- for the clients

    def connect(self) -> Self:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _perform(self, action: Any) -> None:
        """Carry out one engine action."""
        raise NotImplementedError

    def _after_pump(self) -> None:
        """Hook: runs after every pump (the WebSocket client settles ack futures here)."""

    def _release(self) -> None:
        """Hook: let go of the transport once the client is CLOSED."""

    def _tick(self, now: float) -> None:
        """The timer fired: tell the engine."""
        raise NotImplementedError

    def _woke(self, now: float, slept: float) -> None:
        """The machine slept ``slept`` seconds: tell the engine."""
        self._engine.woke(now, slept)

    def _check_wake(self) -> None:
        """Compare the clocks (see :mod:`pyrt.engine.wake`); on a sleep, tell the engine and pump."""
        loop = self._loop
        if loop is None or self._engine.state in (State.IDLE, State.CLOSED):
            return
        now = loop.time()
        slept = self._sleeps.check(now, wall_time())
        if slept is not None:
            self._LOG.info("pyrt %s: the machine slept %.1f s", type(self).__name__, slept)
            self._woke(now, slept)
            self._pump()

    def _type_changed(self, type: str, present: bool) -> None:
        """Hook: an open-ended event type got its first handler (or lost its last one)."""

    def _use_services(self, transport: object) -> Services:
        """The services this client runs with, chosen for good: the ones given, else those
        ``transport`` carries (a fake transport carries fake ones), else the runtime's."""
        services = self._services
        if services is None:
            services = self._services = getattr(transport, "services", None) or runtime.services()
        return services

    def _services_now(self) -> Services:
        return self._services if self._services is not None else runtime.services()

    def _watch_page(self, events: PageEvents) -> None:
        """Hear the page's events (once; until the client is CLOSED)."""
        if self._watching is None and self._engine.state is not State.CLOSED:
            self._watching = self._services_now().watch_page(events)

    def _start_loop(self) -> asyncio.AbstractEventLoop:
        """Bind to the running loop (``connect()``); its clock becomes the engine's ``now``."""
        loop = self._loop = running_loop()
        self._clock = loop.time
        return loop

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = running_loop()
        return loop

    def _now(self) -> float:
        return self._ensure_loop().time()

    def _stop_iterating(self) -> None:
        """``close()`` was called: ``async for`` ends at once and keeps nothing."""
        self._stopping = True
        if self._buffer is not None:
            self._buffer.clear()
        self._wake()

    def _pump(self) -> None:
        """Carry out the engine's actions (re-entrant calls fold into the running pump), then
        re-arm the one timer."""
        if self._pumping:
            return
        self._pumping = True
        try:
            engine = self._engine
            perform = self._perform
            while True:
                actions = engine.actions()
                if not actions:
                    break
                for action in actions:
                    perform(action)
        finally:
            self._pumping = False
        self._arm()
        self._after_pump()

    def _state_changed(self, action: StateChanged) -> None:
        self._LOG.debug("pyrt %s %s -> %s", type(self).__name__, action.old.name, action.new.name)
        self._handlers.emit("state", action.new)
        if action.new is State.OPEN:
            self._handlers.emit("open")
        self._wake()

    def _finished(self, closed: CloseEvent) -> None:
        """The engine is CLOSED: release everything, report ``close``, end the waits."""
        self._closed = closed
        self._LOG.info("pyrt %s closed: %s", type(self).__name__, closed.detail)
        self._cancel_timer()
        if self._timers is not None:
            self._timers.dispose()
        if self._watching is not None:
            self._watching.stop()
            self._watching = None
        self._release()
        self._handlers.emit("close", closed)
        self._wake()

    # ------------------------------------------------------------------------- timer

    def _arm(self) -> None:
        deadline = self._engine.next_deadline()
        loop = self._loop
        if loop is not None and self._engine.state in _LIVE:
            # Compare the clocks at least every CHECK_EVERY seconds (see pyrt.engine.wake).
            check_at = loop.time() + CHECK_EVERY
            if deadline is None or check_at < deadline:
                deadline = check_at
        if deadline is None:
            if self._timer is not None and self._engine.state is State.CLOSED:
                self._cancel_timer()
            return
        if self._timer_at is not None and self._timer_at <= deadline:
            return  # the armed timer fires first; the tick then re-arms
        self._cancel_timer()
        if loop is not None and self._engine.state is not State.CLOSED:
            timers = self._timers
            if timers is None:
                timers = self._timers = self._services_now().timers(loop)
                self._sleeps.check(loop.time(), wall_time())  # the clocks' first reading
            self._timer_at = deadline
            # A delay, not a deadline: Pyodide's loop refuses a deadline already in the past.
            self._timer = timers.call_later(max(0.0, deadline - loop.time()), self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._check_wake()
        self._tick(self._now())
        self._pump()

    # ------------------------------------------------------------------------- waits

    def _is_open(self) -> bool:
        return self._engine.state is State.OPEN

    def _is_closed(self) -> bool:
        return self._engine.state is State.CLOSED

    async def _wait(self, done: Callable[[], bool], raise_closed: bool = False) -> None:
        while not done():
            if self._engine.state is State.CLOSED:
                if raise_closed:
                    raise self._not_open_error()
                return
            await self._wake_future()

    def _not_open_error(self) -> Exception:
        closed = self._closed
        if closed is not None and closed.error is not None:
            return closed.error
        detail = closed.detail if closed is not None else "closed"
        return ClientClosedError(f"the client closed before opening: {detail}")

    def _wake_future(self) -> asyncio.Future[None]:
        """A future of the next wake-up; each waiter has its own, so cancelling one waiter
        never cancels another."""
        future: asyncio.Future[None] = self._ensure_loop().create_future()
        self._waiters.append(future)
        return future

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)
