"""The browser transport of :class:`~pyrt.EventSourceClient`: the native ``js.EventSource``.

Events cross into Python in batches during bursts, as the WebSocket transport's frames do
(:mod:`pyrt.browser.ws_transport`): each JS -> Python call, and each attribute read of a JS
event, costs more than the rest of a small event's trip. See :class:`_Native`.

Each native object gets its own proxies (the wake-up, the batch task, ``open`` and ``error``),
released when it is destroyed — deferred to the next loop turn, because that often happens
inside one of those very proxies (the ``error`` listener) — and all destroyed by
:meth:`BrowserEventSourceTransport.dispose`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import js
from pyodide.ffi import to_js

from pyrt.browser.proxies import ProxyOwner
from pyrt.ports.sse_transport import EventSourceEvents

__all__ = ["BrowserEventSourceTransport"]

_CLOSED = 2  # EventSource.CLOSED: the native object gave up for good


_getters: dict[str, Any] = {}


def _getter(prototype: str, name: str) -> Any:
    """JS ``(event) => event[name]`` made of built-ins (no eval: any CSP allows it), for
    ``Array.from``: the field of every event of a batch in one crossing."""
    getter = _getters.get(name)
    if getter is None:
        descriptor = js.Object.getOwnPropertyDescriptor(getattr(js, prototype).prototype, name)
        getter = _getters[name] = js.Function.prototype.call.bind(js.Reflect.get(descriptor, "get"))
    return getter


class _Native:
    """One native ``EventSource``, the proxies listening to it, and its batches.

    For every event type listened to, two listeners, in this order: ``queue.push`` (a built-in:
    no Python) keeps every event in a JS array, and ``wake`` (Python, registered with ``once``)
    fires for the first event after a quiet spell: it delivers what is queued at once (no added
    latency) and posts one follow-up task on a MessageChannel. Events arriving before that task
    runs (a burst: the browser dispatches the stream's queued events first) only go into the
    array; the task (:meth:`drain`) hands them over with one crossing per field (``type``,
    ``data``, ``lastEventId``) for the whole batch, and posts itself again while events keep
    coming; when none came it registers ``wake`` again.
    """

    __slots__ = (
        "deliver",
        "es",
        "listeners",
        "once",
        "port",
        "post",
        "push",
        "queue",
        "source",
        "tick",
        "ticking",
        "types",
        "wake",
    )

    def __init__(
        self, source: int, es: Any, owner: ProxyOwner, deliver: Callable[[str, str, str], None]
    ) -> None:
        self.source = source
        self.es = es
        self.deliver = deliver
        self.listeners: list[tuple[str, Any]] = []  # open and error
        self.types: list[str] = []  # the event types listened to ("message" and named ones)
        self.queue = js.Array.new()
        self.push = self.queue.push.bind(self.queue)
        self.wake = owner.proxy(self._wake)
        self.ticking = False
        channel = js.MessageChannel.new()
        self.port = channel.port1
        self.tick = owner.proxy(self._tick)
        self.port.onmessage = self.tick
        port2 = channel.port2
        self.post = port2.postMessage.bind(port2, 0)
        self.once = js.Object.new()
        self.once.once = True

    def add_type(self, type: str) -> None:
        self.types.append(type)
        self.es.addEventListener(type, self.push)
        self.es.addEventListener(type, self.wake, self.once)

    def remove_type(self, type: str) -> None:
        if type in self.types:
            self.types.remove(type)
            self.es.removeEventListener(type, self.push)
            self.es.removeEventListener(type, self.wake, self.once)

    def _wake(self, event: Any) -> None:
        try:
            self.drain()
        finally:
            if not self.ticking and self.queue is not None:
                self.ticking = True
                self.post()

    def _tick(self, event: Any) -> None:
        if self.drain():
            self.post()
            return
        self.ticking = False
        if self.queue is not None:  # quiet: the next event wakes Python again
            for type in self.types:  # (a wake still registered is not added twice)
                self.es.addEventListener(type, self.wake, self.once)

    def drain(self) -> bool:
        """Deliver the events waiting in the queue; False when there were none."""
        queue = self.queue
        if queue is None or not queue.length:
            return False
        events = queue.splice(0)
        types = js.Array.from_(events, _getter("Event", "type")).to_py(depth=1)
        data = js.Array.from_(events, _getter("MessageEvent", "data")).to_py(depth=1)
        ids = js.Array.from_(events, _getter("MessageEvent", "lastEventId")).to_py(depth=1)
        deliver = self.deliver
        for index, type in enumerate(types):
            if self.queue is None:
                break  # destroyed by a handler of an earlier event of this batch
            deliver(type, data[index], ids[index])
        return True

    def release(self) -> list[Any]:
        """Stop listening; the proxies to release (not now: one of them may be running)."""
        es = self.es
        for type in list(self.types):
            self.remove_type(type)
        for type, proxy in self.listeners:
            es.removeEventListener(type, proxy)
        self.port.onmessage = None
        self.port.close()
        self.queue = None
        return [proxy for _, proxy in self.listeners] + [self.wake, self.tick]


class BrowserEventSourceTransport:
    """``js.EventSource`` for :class:`~pyrt.EventSourceClient` (Pyodide only)."""

    def __init__(self) -> None:
        self._owner = ProxyOwner()
        self._native: _Native | None = None
        self._types: set[str] = set()

    def check_url(self, url: str) -> None:
        """Any URL: ``EventSource`` resolves a relative one against the page."""

    def create(self, source: int, url: str, with_credentials: bool, events: EventSourceEvents) -> None:
        options = to_js({"withCredentials": with_credentials}, dict_converter=js.Object.fromEntries)
        es = js.EventSource.new(url, options)
        report = events.source_event

        def deliver(type: str, data: str, last_event_id: str) -> None:
            report(source, type, data, last_event_id)

        def on_open(_event: Any) -> None:
            events.source_opened(source)

        def on_error(_event: Any) -> None:
            native.drain()  # events that arrived before the error come first
            events.source_error(source, int(es.readyState) == _CLOSED)

        native = _Native(source, es, self._owner, deliver)
        self._native = native
        for type, func in (("open", on_open), ("error", on_error)):
            proxy = self._owner.proxy(func)
            es.addEventListener(type, proxy)
            native.listeners.append((type, proxy))
        native.add_type("message")
        for type in self._types:
            native.add_type(type)

    def destroy(self, source: int) -> None:
        native = self._native
        if native is None or native.source != source:
            return
        self._native = None
        native.es.close()
        proxies = native.release()
        asyncio.get_running_loop().call_soon(_release_all, self._owner, proxies)

    def listen(self, type: str) -> None:
        if type == "message" or type in self._types:
            return
        self._types.add(type)
        if self._native is not None:
            self._native.add_type(type)

    def unlisten(self, type: str) -> None:
        if type not in self._types:
            return
        self._types.discard(type)
        if self._native is not None:
            self._native.remove_type(type)

    def dispose(self) -> None:
        if self._native is not None:
            self.destroy(self._native.source)
        # After the deferred releases above have run, nothing may remain.
        asyncio.get_running_loop().call_soon(self._owner.destroy_all)


def _release_all(owner: ProxyOwner, proxies: list[Any]) -> None:
    for proxy in proxies:
        owner.release(proxy)
