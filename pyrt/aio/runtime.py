"""The one place that picks the runtime: the browser's objects in Pyodide, libraries on CPython.

A client given no ``transport=`` asks here when it connects (not before: creating clients
loads nothing), and so does one given no ``services=`` whose transport carries none
(:mod:`pyrt.ports.services`). Pyodide (``sys.platform == "emscripten"``) gets the transports
of :mod:`pyrt.browser` (``js.WebSocket``, ``fetch``, ``js.EventSource``) and its services
(:class:`~pyrt.browser.services.BrowserServices`: the page, ``localStorage``/IndexedDB, timers
hidden tabs do not throttle, Web Locks); anything else gets those of :mod:`pyrt.cpython`
(``websockets``, ``httpx``; :class:`~pyrt.cpython.services.CPythonServices`: no page, files,
the loop's timers). Pass a transport or services to choose yourself, as
``httpx.AsyncClient(transport=...)`` does (:mod:`pyrt.testing` has in-memory ones).

The adapter modules are imported inside the functions, so importing :mod:`pyrt` never imports
``js`` on CPython nor ``websockets``/``httpx`` in the browser, and no adapter imports this layer.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: choosing a WebSocket transport loads no SSE code
    from pyrt.aio.inspector import Sink
    from pyrt.ports.services import Services
    from pyrt.ports.sse_transport import EventSourceTransport, FetchTransport
    from pyrt.ports.transport import Transport

__all__ = [
    "dom_view",
    "eventsource_transport",
    "fetch_transport",
    "in_browser",
    "services",
    "websocket_transport",
]

_services: Services | None = None


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


def services() -> Services:
    """This runtime's services, one object for every client (it holds nothing itself: each
    watcher, timer, store and share channel it makes belongs to the client that asked)."""
    global _services
    if _services is None:
        if in_browser():
            from pyrt.browser.services import BrowserServices

            _services = BrowserServices()
        else:
            from pyrt.cpython.services import CPythonServices

            _services = CPythonServices()
    return _services


def dom_view(target: object) -> Sink:
    """A live view rendered into the page's element ``target`` (an element or a CSS selector);
    Pyodide only (:mod:`pyrt.browser.inspector_view`)."""
    if not in_browser():
        raise RuntimeError("mount() needs a page (Pyodide); on CPython print() the inspector")
    from pyrt.browser.inspector_view import DomView

    return DomView(target)
