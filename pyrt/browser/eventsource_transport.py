"""The browser transport of :class:`~pyrt.EventSourceClient`: the native ``js.EventSource``.

Each native object gets its own proxies (one for every event type, one each for ``open`` and
``error``), released when it is destroyed — deferred to the next loop turn, because that often
happens inside one of those very proxies (the ``error`` listener) — and all destroyed by
:meth:`BrowserEventSourceTransport.dispose`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import js
from pyodide.ffi import to_js

from pyrt.browser.proxies import ProxyOwner
from pyrt.ports.sse_transport import EventSourceEvents

__all__ = ["BrowserEventSourceTransport"]

_CLOSED = 2  # EventSource.CLOSED: the native object gave up for good


class _Native:
    """One native ``EventSource`` and the proxies listening to it."""

    __slots__ = ("es", "listeners", "on_event", "source")

    def __init__(self, source: int, es: Any, on_event: Any) -> None:
        self.source = source
        self.es = es
        self.on_event = on_event  # one proxy, listening to "message" and every named type
        self.listeners: list[tuple[str, Any]] = []


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

        def on_event(event: Any) -> None:
            report(source, event.type, event.data, event.lastEventId)

        def on_open(_event: Any) -> None:
            events.source_opened(source)

        def on_error(_event: Any) -> None:
            events.source_error(source, int(es.readyState) == _CLOSED)

        native = _Native(source, es, self._owner.proxy(on_event))
        self._native = native
        for type, func in (("open", on_open), ("error", on_error)):
            proxy = self._owner.proxy(func)
            es.addEventListener(type, proxy)
            native.listeners.append((type, proxy))
        es.addEventListener("message", native.on_event)
        for type in self._types:
            es.addEventListener(type, native.on_event)

    def destroy(self, source: int) -> None:
        native = self._native
        if native is None or native.source != source:
            return
        self._native = None
        es = native.es
        es.close()
        for type, proxy in native.listeners:
            es.removeEventListener(type, proxy)
        es.removeEventListener("message", native.on_event)
        for type in self._types:
            es.removeEventListener(type, native.on_event)
        proxies = [proxy for _, proxy in native.listeners] + [native.on_event]
        asyncio.get_running_loop().call_soon(_release_all, self._owner, proxies)

    def listen(self, type: str) -> None:
        if type == "message" or type in self._types:
            return
        self._types.add(type)
        if self._native is not None:
            self._native.es.addEventListener(type, self._native.on_event)

    def unlisten(self, type: str) -> None:
        if type not in self._types:
            return
        self._types.discard(type)
        if self._native is not None:
            self._native.es.removeEventListener(type, self._native.on_event)

    def dispose(self) -> None:
        if self._native is not None:
            self.destroy(self._native.source)
        # After the deferred releases above have run, nothing may remain.
        asyncio.get_running_loop().call_soon(self._owner.destroy_all)


def _release_all(owner: ProxyOwner, proxies: list[Any]) -> None:
    for proxy in proxies:
        owner.release(proxy)
