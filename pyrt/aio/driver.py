"""What both SSE clients share: handlers, ``async for``, the one timer, and action pumping.

Runtime-neutral (asyncio only, no ``js``), so a CPython adapter can subclass it too. A subclass
owns an engine from :mod:`pyrt.sse_policy` and implements :meth:`_SSEClient._carry_out` for the
transport-specific actions.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Protocol, Self, overload

from pyrt.errors import SSEError
from pyrt.sse import ServerSentEvent
from pyrt.sse_policy import Closed, Disconnected, Opened, ReadyState, SSEAction, SSEState, SSEStats

__all__: list[str] = []

log = logging.getLogger("pyrt.sse")

EventHandler = Callable[[ServerSentEvent], Any]
ErrorHandler = Callable[[SSEError], Any]
OpenHandler = Callable[[], Any]


class _Engine(Protocol):
    @property
    def state(self) -> SSEState: ...
    @property
    def ready_state(self) -> ReadyState: ...
    @property
    def last_event_id(self) -> str: ...
    @property
    def stats(self) -> SSEStats: ...
    def actions(self) -> list[SSEAction]: ...
    def next_deadline(self) -> float | None: ...
    def connect(self, now: float) -> None: ...
    def close(self, now: float) -> None: ...
    def tick(self, now: float) -> None: ...


class _SSEClient:
    """Event API shared by :class:`EventSourceClient` and :class:`FetchEventSource`."""

    CONNECTING = ReadyState.CONNECTING
    OPEN = ReadyState.OPEN
    CLOSED = ReadyState.CLOSED

    _engine: _Engine

    def __init__(self, url: str) -> None:
        self.url = url
        #: Called with no argument each time the stream opens (first time and after reconnects).
        self.on_open: OpenHandler | None = None
        #: Called with an :class:`~pyrt.sse_policy.SSEError` each time the connection is lost
        #: (the client reconnects) and once more if it stops for good because of an error.
        self.on_error: ErrorHandler | None = None
        #: Called with every event of type ``"message"`` (events without an ``event:`` field).
        self.on_message: EventHandler | None = None
        self._handlers: dict[str, list[EventHandler]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._buffer: deque[ServerSentEvent] | None = None  # exists once someone iterates
        self._waiter: asyncio.Future[None] | None = None
        self._final_error: SSEError | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- public API

    @property
    def ready_state(self) -> ReadyState:
        """``CONNECTING`` (0), ``OPEN`` (1) or ``CLOSED`` (2), as ``EventSource.readyState``."""
        return self._engine.ready_state

    @property
    def state(self) -> SSEState:
        """The finer state (``idle``, ``connecting``, ``open``, ``waiting``, ``paused``, ``closed``)."""
        return self._engine.state

    @property
    def last_event_id(self) -> str:
        """The id a reconnect resumes from (``""``: none yet)."""
        return self._engine.last_event_id

    @property
    def stats(self) -> SSEStats:
        return self._engine.stats

    @property
    def error(self) -> SSEError | None:
        """The error the client stopped with, if it stopped because of one."""
        return self._final_error

    @overload
    def on(self, type: str, handler: None = None) -> Callable[[EventHandler], EventHandler]: ...
    @overload
    def on(self, type: str, handler: EventHandler) -> EventHandler: ...
    def on(
        self, type: str, handler: EventHandler | None = None
    ) -> EventHandler | Callable[[EventHandler], EventHandler]:
        """Call ``handler(event)`` for every event of ``type``; usable as a decorator.

        Handlers stay registered across reconnects (and re-created native objects) until
        :meth:`off`. A handler may be a coroutine function: it then runs as a task.
        """
        if handler is None:

            def decorator(func: EventHandler) -> EventHandler:
                self.on(type, func)
                return func

            return decorator
        handlers = self._handlers.setdefault(type, [])
        handlers.append(handler)
        if len(handlers) == 1:
            self._type_added(type)
        return handler

    def off(self, type: str, handler: EventHandler | None = None) -> None:
        """Remove ``handler`` for ``type`` (or every handler of ``type`` when ``None``)."""
        handlers = self._handlers.get(type)
        if not handlers:
            return
        if handler is None:
            handlers.clear()
        else:
            try:
                handlers.remove(handler)
            except ValueError:
                return
        if not handlers:
            del self._handlers[type]
            self._type_removed(type)

    def connect(self) -> Self:
        """Start connecting (call from code running in the event loop); returns the client."""
        self._loop = _running_loop()
        self._before_connect()
        self._engine.connect(self._loop.time())
        self._pump()
        return self

    def close(self) -> None:
        """Stop for good: abort what is in flight, cancel reconnects, end ``async for``.

        Events received but not yet taken by ``async for`` are dropped. (When the client stops
        by itself — 204, a fatal error — ``async for`` first yields what was received.)
        """
        if self._loop is None:
            self._loop = _running_loop()
        if self._buffer is not None:
            self._buffer.clear()
        self._engine.close(self._loop.time())
        self._pump()

    async def wait_open(self, timeout: float | None = None) -> None:
        """Wait until the stream is open; raises the final error if the client stopped."""

        async def opened() -> None:
            while self._engine.ready_state is not ReadyState.OPEN:
                if self._engine.ready_state is ReadyState.CLOSED:
                    raise self._final_error or SSEError("the client is closed")
                waiter = self._wake_future()
                await waiter

        await asyncio.wait_for(opened(), timeout)

    async def __aenter__(self) -> Self:
        if self._engine.state is SSEState.IDLE:
            self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[ServerSentEvent]:
        """Iterate over every event (of the types this client sees) until the client stops.

        Connects if needed. Events are buffered from the first ``__aiter__`` on. Iteration ends
        after :meth:`close` or a 204, and raises the error the client stopped with otherwise.
        Cancelling the task that iterates closes the client (and aborts the request).
        """
        if self._buffer is None:
            self._buffer = deque()
        if self._engine.state is SSEState.IDLE:
            self.connect()
        return self

    async def __anext__(self) -> ServerSentEvent:
        buffer = self._buffer
        if buffer is None:
            buffer = self._buffer = deque()
        try:
            while not buffer:
                if self._engine.state is SSEState.CLOSED:
                    if self._final_error is not None:
                        raise self._final_error
                    raise StopAsyncIteration
                await self._wake_future()
        except asyncio.CancelledError:
            self.close()
            raise
        return buffer.popleft()

    # -- for subclasses

    def _before_connect(self) -> None:
        """Hook: attach page listeners etc. before the engine's first input."""

    def _after_close(self) -> None:
        """Hook: release everything (listeners, proxies) once the engine is CLOSED."""

    def _type_added(self, type: str) -> None:
        """Hook: a first handler for ``type`` was registered."""

    def _type_removed(self, type: str) -> None:
        """Hook: the last handler for ``type`` was removed."""

    def _carry_out(self, action: SSEAction) -> None:
        raise NotImplementedError

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _dispatch(self, event: ServerSentEvent) -> None:
        """Deliver one event to its handlers and to ``async for``."""
        if event.type == "message" and self.on_message is not None:
            self._call(self.on_message, event)
        handlers = self._handlers.get(event.type)
        if handlers:
            for handler in tuple(handlers):
                self._call(handler, event)
        if self._buffer is not None:
            self._buffer.append(event)
            self._wake()

    def _pump(self) -> None:
        """Carry out the engine's actions, then re-arm the timer."""
        for action in self._engine.actions():
            if isinstance(action, Opened):
                if self.on_open is not None:
                    self._call(self.on_open)
                self._wake()
            elif isinstance(action, Disconnected):
                if self.on_error is not None:
                    self._call(self.on_error, action.error)
            elif isinstance(action, Closed):
                self._final_error = action.error
                self._cancel_timer()
                self._after_close()
                if action.error is not None and self.on_error is not None:
                    self._call(self.on_error, action.error)
                self._wake()
            else:
                self._carry_out(action)
        self._arm()

    # -- internals

    def _call(self, func: Callable[..., Any], *args: Any) -> None:
        try:
            result = func(*args)
        except Exception:
            log.exception("pyrt SSE handler %r raised", func)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("pyrt SSE handler task failed", exc_info=task.exception())

    def _wake_future(self) -> asyncio.Future[None]:
        if self._waiter is None or self._waiter.done():
            self._waiter = _running_loop().create_future()
        return self._waiter

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _arm(self) -> None:
        deadline = self._engine.next_deadline()
        if deadline == self._timer_at:
            return
        self._cancel_timer()
        if deadline is not None and self._loop is not None:
            self._timer_at = deadline
            # Pyodide's WebLoop refuses call_at() for a moment already past: use a delay.
            delay = max(0.0, deadline - self._loop.time())
            self._timer = self._loop.call_later(delay, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._engine.tick(self._now())
        self._pump()


def _running_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.get_event_loop()
