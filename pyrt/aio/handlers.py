"""Event handlers of a client: registering them, the DOM-like property handler, calling them.

The rules every client follows:

- the handlers of one event run in the order they were added; the *property handler*
  (``client.on_message = f`` or ``client.onmessage = f``, one per event, like the DOM's
  ``onmessage``) runs at the place where it was first set; assigning again replaces it there,
  assigning ``None`` removes it; handlers added with ``@client.on_message`` / ``client.on(...)``
  stay until :meth:`Handlers.remove`;
- a handler that raises is logged and reported to the ``error`` handlers (unless it is an
  ``error`` handler itself); the other handlers still run;
- a handler may be ``async`` (any handler returning an awaitable). With
  ``async_handlers="concurrent"`` (the default) each call runs as a task at once: the next event
  does not wait for it, tasks start in event order, and two of them interleave at their
  ``await``\\ s. With ``async_handlers="ordered"`` one handler call finishes before the next
  starts: while an async handler runs, later calls (sync ones too) wait in a queue, in order.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, overload

__all__ = ["ASYNC_HANDLERS", "AsyncHandlers", "DomHandler", "Handler", "HandlerAttribute", "Handlers"]

Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)
AsyncHandlers = Literal["concurrent", "ordered"]
ASYNC_HANDLERS: tuple[AsyncHandlers, ...] = ("concurrent", "ordered")


class Handlers:
    """The handlers of one client, by event name. See the module docstring for the rules.

    ``events`` are the client's own events; with ``open_ended`` any other non-empty name is
    accepted too (an SSE event type), and ``on_change(name, present)`` hears when such a name
    gets its first handler or loses its last one.
    """

    __slots__ = (
        "_events",
        "_lists",
        "_log",
        "_loop",
        "_on_change",
        "_open_ended",
        "_props",
        "ordered",
        "pending",
        "tasks",
    )

    def __init__(
        self,
        events: Iterable[str],
        *,
        log: logging.Logger,
        loop: Callable[[], asyncio.AbstractEventLoop],
        async_handlers: AsyncHandlers = "concurrent",
        open_ended: bool = False,
        on_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        if async_handlers not in ASYNC_HANDLERS:
            raise ValueError(f"async_handlers must be one of {ASYNC_HANDLERS}, got {async_handlers!r}")
        self._lists: dict[str, list[Handler]] = {name: [] for name in events}
        self._events = tuple(self._lists)
        self._props: dict[str, Handler] = {}
        self._open_ended = open_ended
        self._on_change = on_change
        self._log = log
        self._loop = loop
        self.ordered = async_handlers == "ordered"
        # Ordered mode: the calls waiting for the running async handler (None: nothing runs).
        # A hot path that calls handlers itself must go through call() while this is not None.
        self.pending: deque[tuple[Handler, tuple[Any, ...]]] | None = None
        self.tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------------- registering

    def of(self, event: str) -> list[Handler]:
        """The live list of ``event``'s handlers (hot paths keep it and iterate it directly)."""
        return self._handlers(event)

    def get(self, event: str) -> list[Handler] | None:
        """The handlers of ``event``, or ``None`` when it has none (no validation: for delivery)."""
        return self._lists.get(event)

    def named(self) -> set[str]:
        """The open-ended names (not the client's own events) that have handlers."""
        return {name for name, handlers in self._lists.items() if handlers and name not in self._events}

    def add(self, event: str, handler: H, what: str | None = None) -> H:
        """Add ``handler`` for ``event`` (after the others); returns it, so this is a decorator."""
        if not callable(handler):
            raise TypeError(f"{what or f'on({event!r})'} needs a callable, got {type(handler).__name__}")
        handlers = self._handlers(event)
        handlers.append(handler)
        if len(handlers) == 1:
            self._changed(event, True)
        return handler

    def remove(self, event: str, handler: Handler | None = None) -> None:
        """Remove ``handler`` (its first registration), or every handler of ``event`` when
        ``None``; handlers that are not registered are ignored."""
        handlers = self._handlers(event)
        if not handlers:
            return
        if handler is None:
            handlers.clear()
            self._props.pop(event, None)
        else:
            index = _index(handlers, handler)
            if index is None:
                return
            del handlers[index]
            if self._props.get(event) is handler:
                del self._props[event]
        if not handlers:
            self._changed(event, False)

    def set_property(self, event: str, handler: Handler | None, what: str) -> None:
        """``client.on_<event> = handler``: set, replace (in place) or, with ``None``, remove
        the one property handler of ``event``."""
        if handler is not None and not callable(handler):
            raise TypeError(f"{what} must be set to a callable or None, got {type(handler).__name__}")
        handlers = self._handlers(event)
        old = self._props.get(event)
        index = _index(handlers, old) if old is not None else None
        if handler is None:
            if index is not None:
                del handlers[index]
                del self._props[event]
                if not handlers:
                    self._changed(event, False)
            return
        self._props[event] = handler
        if index is not None:
            handlers[index] = handler
        else:
            handlers.append(handler)
            if len(handlers) == 1:
                self._changed(event, True)

    def get_property(self, event: str) -> Handler | None:
        """The property handler of ``event``, or ``None``."""
        self._handlers(event)
        return self._props.get(event)

    def adder(self, event: str, what: str) -> Callable[[H], H]:
        """``client.on_<event>``: a function adding its argument as a handler and returning it."""

        def add(handler: H) -> H:
            return self.add(event, handler, what)

        add.__name__ = add.__qualname__ = what
        add.__doc__ = f"Add a handler for {event!r} events (usable as a decorator); returns the handler."
        return add

    # ------------------------------------------------------------------------- calling

    def emit(self, event: str, *args: Any) -> None:
        """Call every handler of ``event`` with ``args``."""
        handlers = self._lists.get(event)
        if handlers:
            for handler in tuple(handlers):
                self.call(handler, *args)

    def call(self, handler: Handler, *args: Any) -> None:
        """Call one handler by the rules of the module docstring."""
        pending = self.pending
        if pending is not None:
            pending.append((handler, args))
            return
        try:
            result = handler(*args)
        except Exception as exc:
            self.failed(handler, exc)
            return
        if result is not None and inspect.isawaitable(result):
            self.started(handler, result)

    def started(self, handler: Handler, awaitable: Awaitable[Any]) -> None:
        """``handler`` returned ``awaitable``: run it as a task (ordered mode: queue what follows)."""
        if self.ordered:
            self.pending = deque()
            self._track(self._in_order(handler, awaitable), handler)
        else:
            self._track(awaitable, handler)

    def failed(self, handler: Handler, exc: BaseException) -> None:
        """``handler`` raised ``exc``: log it, and report it unless an error handler failed."""
        self._log.error("pyrt: handler %r raised", handler, exc_info=exc)
        errors = self._lists.get("error")
        if isinstance(exc, Exception) and errors is not None and _index(errors, handler) is None:
            self.emit("error", exc)

    # ------------------------------------------------------------------------- internals

    def _handlers(self, event: str) -> list[Handler]:
        handlers = self._lists.get(event)
        if handlers is not None:
            return handlers
        if not self._open_ended:
            raise ValueError(f"unknown event {event!r}; one of {self._events}")
        if not isinstance(event, str) or not event:
            raise ValueError(f"an event type must be a non-empty str, got {event!r}")
        handlers = self._lists[event] = []
        return handlers

    def _changed(self, event: str, present: bool) -> None:
        if self._on_change is not None and event not in self._events:
            self._on_change(event, present)

    def _track(self, awaitable: Awaitable[Any], handler: Handler) -> None:
        task = asyncio.ensure_future(awaitable, loop=self._loop())
        self.tasks.add(task)
        task.add_done_callback(lambda done: self._task_done(done, handler))

    def _task_done(self, task: asyncio.Task[Any], handler: Handler) -> None:
        self.tasks.discard(task)
        if not task.cancelled():
            exc = task.exception()
            if exc is not None:
                self.failed(handler, exc)

    async def _in_order(self, handler: Handler, awaitable: Awaitable[Any]) -> None:
        """Await ``awaitable``, then make the queued calls one after the other."""
        try:
            while True:
                try:
                    await awaitable
                except Exception as exc:
                    self.failed(handler, exc)
                next_call = self._next_async()
                if next_call is None:
                    return
                handler, awaitable = next_call
        finally:
            self.pending = None

    def _next_async(self) -> tuple[Handler, Awaitable[Any]] | None:
        """Make queued calls until one returns an awaitable (returned) or none is left."""
        pending = self.pending
        while pending:
            handler, args = pending.popleft()
            try:
                result = handler(*args)
            except Exception as exc:
                self.failed(handler, exc)
                continue
            if result is not None and inspect.isawaitable(result):
                return handler, result
        return None


def _index(handlers: list[Handler], handler: Handler) -> int | None:
    for index, registered in enumerate(handlers):
        if registered is handler:
            return index
    return None


if TYPE_CHECKING:

    class _HasHandlers(Protocol):
        _handlers: Handlers


class _Slot:
    """A class attribute naming one event of the client; assigning to it sets the event's
    property handler."""

    prefix = "on_"

    def __init__(self, event: str) -> None:
        self.event = event
        self.name = f"{self.prefix}{event}"

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __set__(self, obj: _HasHandlers, handler: Handler | None) -> None:
        obj._handlers.set_property(self.event, handler, self.name)


class HandlerAttribute(_Slot):
    """``client.on_<event>``: call it (or decorate with it) to add a handler; assign to it to
    set the event's one property handler, as ``onmessage = f`` does in JavaScript."""

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> HandlerAttribute: ...
    @overload
    def __get__(self, obj: _HasHandlers, owner: type | None = None) -> Callable[[H], H]: ...
    def __get__(
        self, obj: _HasHandlers | None, owner: type | None = None
    ) -> HandlerAttribute | Callable[[H], H]:
        if obj is None:
            return self
        return obj._handlers.adder(self.event, self.name)


class DomHandler(_Slot):
    """``client.on<event>`` (JavaScript's spelling): the event's property handler itself —
    reading returns it (or ``None``), assigning sets it; the same slot as ``client.on_<event> = f``."""

    prefix = "on"

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> DomHandler: ...
    @overload
    def __get__(self, obj: _HasHandlers, owner: type | None = None) -> Handler | None: ...
    def __get__(self, obj: _HasHandlers | None, owner: type | None = None) -> DomHandler | Handler | None:
        if obj is None:
            return self
        return obj._handlers.get_property(self.event)
