"""The one place that picks the runtime: the browser's objects in Pyodide, libraries on CPython.

A client given no ``transport=`` asks here when it connects (not before: creating clients
loads nothing). Pyodide (``sys.platform == "emscripten"``) gets the transports of
:mod:`pyrt.browser` (``js.WebSocket``, ``fetch``, ``js.EventSource``); anything else gets those
of :mod:`pyrt.cpython` (``websockets``, ``httpx``). Pass a transport to choose yourself, as
``httpx.AsyncClient(transport=...)`` does (:mod:`pyrt.testing` has in-memory ones).

The adapter modules are imported inside the functions, so importing :mod:`pyrt` never imports
``js`` on CPython nor ``websockets``/``httpx`` in the browser, and no adapter imports this layer.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # annotations only: choosing a WebSocket transport loads no SSE code
    from pyrt.ports.sse_transport import EventSourceTransport, FetchTransport
    from pyrt.ports.transport import Transport
    from pyrt.share.channel import ShareChannel

__all__ = [
    "LoopTimers",
    "eventsource_transport",
    "fetch_transport",
    "in_browser",
    "share_channel",
    "timers",
    "websocket_transport",
    "why_no_sharing",
]


def in_browser() -> bool:
    """True inside Pyodide (a browser page, a worker, JupyterLite)."""
    return sys.platform == "emscripten"


def websocket_transport() -> Transport:
    """A new transport for :class:`~pyrt.WebSocketClient`."""
    if in_browser():
        from pyrt.browser.ws_transport import BrowserTransport

        return BrowserTransport()
    from pyrt.cpython.ws_transport import CPythonTransport

    return CPythonTransport()


def fetch_transport() -> FetchTransport:
    """A new transport for :class:`~pyrt.FetchEventSource`."""
    if in_browser():
        from pyrt.browser.fetch_transport import BrowserFetchTransport

        return BrowserFetchTransport()
    from pyrt.cpython.fetch_transport import CPythonFetchTransport

    return CPythonFetchTransport()


def eventsource_transport() -> EventSourceTransport:
    """A new transport for :class:`~pyrt.EventSourceClient`."""
    if in_browser():
        from pyrt.browser.eventsource_transport import BrowserEventSourceTransport

        return BrowserEventSourceTransport()
    from pyrt.cpython.eventsource_transport import CPythonEventSourceTransport

    return CPythonEventSourceTransport()


def share_channel(name: str) -> ShareChannel | None:
    """The lock and channel of share group ``name`` (``None`` where sharing cannot work)."""
    if not in_browser():
        return None
    from pyrt.browser.share_channel import BrowserShareChannel, sharing_supported

    return BrowserShareChannel(name) if sharing_supported() else None


def why_no_sharing() -> str:
    """Why :func:`share_channel` gives nothing here, in words."""
    if not in_browser():
        return "tabs share connections in a browser only"
    return "no Web Locks (navigator.locks needs a secure context) or no BroadcastChannel here"


if TYPE_CHECKING:  # annotations only (a Protocol class costs import time in Pyodide)

    class Cancellable(Protocol):
        def cancel(self) -> None: ...

    class Timers(Protocol):
        """Where a client's one timer comes from (see :func:`timers`)."""

        def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable: ...

        def dispose(self) -> None: ...


class LoopTimers:
    """The event loop's own ``call_later`` (CPython: nothing throttles it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        return self.loop.call_later(delay, callback)

    def dispose(self) -> None:
        """Nothing to release."""


def timers(loop: asyncio.AbstractEventLoop) -> Timers:
    """A client's timer: in a browser, armed so that hidden tabs do not throttle it to once a
    minute (:mod:`pyrt.browser.timers`); elsewhere the loop's ``call_later``."""
    if in_browser():
        from pyrt.browser.timers import BrowserTimers

        return BrowserTimers()
    return LoopTimers(loop)
