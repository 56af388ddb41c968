"""The browser transport of :class:`~pyrt.browser.websocket.WebSocketClient`: ``js.WebSocket``.

Thin on purpose: it opens native sockets (``binaryType = "arraybuffer"``), forwards their events,
sends frames (binary in one bulk copy), watches the page (``online``, ``visibilitychange``,
``pagehide``, ``pageshow``) and offers ``localStorage``. Every proxy it creates belongs to a
:class:`~pyrt.browser.proxies.ProxyOwner` — one per socket, released when that socket is done,
and one for the page listeners, released by :meth:`BrowserTransport.dispose`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import js
from pyodide.ffi import JsException, to_js

from pyrt.browser.proxies import ProxyOwner
from pyrt.persist import Storage
from pyrt.transport import PageEvents, SocketEvents

__all__ = ["BrowserTransport", "absolute_ws_url"]

Frame = str | bytes


def absolute_ws_url(url: str) -> str:
    """``"/ws"`` -> ``"ws://<this page's host>/ws"`` (``wss`` on https pages); ``http(s)://``
    becomes ``ws(s)://``; ``ws(s)://`` URLs are returned as they are."""
    if url.startswith("/") and not url.startswith("//"):
        location = js.location
        scheme = "wss:" if location.protocol == "https:" else "ws:"
        return f"{scheme}//{location.host}{url}"
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    return url


class _Socket:
    """One native socket and the proxies listening to it."""

    __slots__ = ("owner", "ws")

    def __init__(self, ws: Any, owner: ProxyOwner) -> None:
        self.ws = ws
        self.owner = owner

    def release(self) -> None:
        ws = self.ws
        ws.onopen = None
        ws.onmessage = None
        ws.onclose = None
        ws.onerror = None
        self.owner.destroy_all()


class BrowserTransport:
    """``js.WebSocket`` for :class:`~pyrt.browser.websocket.WebSocketClient` (Pyodide only)."""

    def __init__(self) -> None:
        self._socket: _Socket | None = None
        self._page = ProxyOwner()
        self._listeners: list[tuple[Any, str, Any]] = []

    def open(self, url: str, protocols: Sequence[str], events: SocketEvents) -> None:
        if self._socket is not None:
            self.close(1000, "replaced", detach=True)
        url = absolute_ws_url(url)
        ws = js.WebSocket.new(url, to_js(list(protocols))) if protocols else js.WebSocket.new(url)
        ws.binaryType = "arraybuffer"
        owner = ProxyOwner()
        socket = _Socket(ws, owner)
        deliver = events.socket_message

        def on_message(event: Any) -> None:
            data = event.data
            deliver(data if type(data) is str else data.to_bytes())

        def on_open(event: Any) -> None:
            events.socket_opened()

        def on_close(event: Any) -> None:
            code, reason, clean = int(event.code), str(event.reason), bool(event.wasClean)
            if self._socket is socket:
                self._socket = None
            socket.release()
            events.socket_closed(code, reason, clean)

        def on_error(event: Any) -> None:
            return None  # a close event with the details always follows

        ws.onmessage = owner.proxy(on_message)
        ws.onopen = owner.proxy(on_open)
        ws.onclose = owner.proxy(on_close)
        ws.onerror = owner.proxy(on_error)
        self._socket = socket

    def send(self, frame: Frame) -> None:
        socket = self._socket
        if socket is None:
            raise RuntimeError("no open socket to send on")
        if type(frame) is str:
            socket.ws.send(frame)
        else:
            socket.ws.send(to_js(frame))  # one bulk copy into a Uint8Array

    def buffered_amount(self) -> int:
        socket = self._socket
        return int(socket.ws.bufferedAmount) if socket is not None else 0

    def close(self, code: int, reason: str, detach: bool) -> None:
        socket = self._socket
        if socket is None:
            return
        if detach:
            self._socket = None
            socket.release()
        try:
            socket.ws.close(code, reason)
        except JsException:  # already closed, or the browser refused the code
            if not detach:
                self._socket = None
                socket.release()

    def watch_page(self, events: PageEvents) -> None:
        if self._listeners:
            return
        document = getattr(js, "document", None)
        target = js.globalThis

        def on_visibility(event: Any) -> None:
            if document is not None and document.visibilityState == "visible":
                events.page_visible()

        def on_pageshow(event: Any) -> None:
            if getattr(event, "persisted", False):
                events.page_shown()

        listen: list[tuple[Any, str, Callable[[Any], None]]] = [
            (target, "online", lambda event: events.page_online()),
            (target, "pagehide", lambda event: events.page_hidden()),
            (target, "pageshow", on_pageshow),
        ]
        if document is not None:
            listen.append((document, "visibilitychange", on_visibility))
        for where, name, func in listen:
            proxy = self._page.proxy(func)
            where.addEventListener(name, proxy)
            self._listeners.append((where, name, proxy))

    def storage(self) -> Storage | None:
        try:
            return cast(Storage, js.localStorage)
        except (AttributeError, JsException):  # workers and sandboxed frames have none
            return None

    def dispose(self) -> None:
        self.close(1000, "", detach=True)
        for where, name, proxy in self._listeners:
            where.removeEventListener(name, proxy)
        self._listeners.clear()
        self._page.destroy_all()
