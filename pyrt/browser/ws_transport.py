"""The browser transport of :class:`~pyrt.WebSocketClient`: ``js.WebSocket``.

Thin on purpose: it opens native sockets (``binaryType = "arraybuffer"``), forwards their events,
sends frames (binary in one bulk copy) and hands inbound frames to Python in batches during
bursts (see :class:`_Socket`); the page, storage and timers are the runtime's services
(:mod:`pyrt.browser.services`). Every proxy it creates belongs to a
:class:`~pyrt.browser.proxies.ProxyOwner`, one per socket, released when that socket is done.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import js
from pyodide.ffi import JsException, to_js

from pyrt.browser.proxies import ProxyOwner
from pyrt.ports.transport import SocketEvents
from pyrt.wire.types import Frame

__all__ = ["BrowserTransport", "absolute_ws_url", "close_socket"]


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


_data_of: Any = None  # JS (event) => event.data, made of built-ins (no eval: any CSP allows it)


def _event_data_getter() -> Any:
    global _data_of
    if _data_of is None:
        getter = js.Reflect.get(js.Object.getOwnPropertyDescriptor(js.MessageEvent.prototype, "data"), "get")
        _data_of = js.Function.prototype.call.bind(getter)
    return _data_of


class _Socket:
    """One native socket and the proxies listening to it.

    Inbound frames cross into Python in batches during bursts, since each JS -> Python call
    costs more than the rest of a small message's trip. Two ``message`` listeners, in this order:
    ``queue.push`` (a built-in: no Python) keeps every event in a JS array, and ``wake`` (Python,
    registered with ``once``) fires for the first frame after a quiet spell: it delivers that
    frame at once (no added latency) and posts one follow-up task on a MessageChannel. Frames
    arriving before that task runs (a burst: the browser dispatches queued socket messages
    first) only go into the array; the task (:meth:`drain`) hands them over in one crossing and
    posts itself again while frames keep coming; when none came it registers ``wake`` again.
    No eval, so a Content-Security-Policy without ``'unsafe-eval'`` allows it.
    """

    __slots__ = ("channel", "deliver", "delivered", "listen", "owner", "post", "push", "queue", "wake", "ws")

    def __init__(self, ws: Any, owner: ProxyOwner, deliver: Callable[[Frame], None]) -> None:
        self.ws = ws
        self.owner = owner
        self.deliver = deliver
        self.queue = js.Array.new()
        self.delivered = 0  # frames at the head of the queue that ``wake`` delivered already
        self.push = self.queue.push.bind(self.queue)
        self.wake = owner.proxy(self._wake)
        self.channel = js.MessageChannel.new()
        self.channel.port1.onmessage = owner.proxy(self._tick)
        # Bound once: every attribute of a JS object read from Python is a crossing of its own.
        port2 = self.channel.port2
        self.post = port2.postMessage.bind(port2, 0)
        once = js.Object.new()
        once.once = True
        self.listen = ws.addEventListener.bind(ws, "message", self.wake, once)
        ws.addEventListener("message", self.push)
        self.listen()

    def _wake(self, event: Any) -> None:
        self.delivered += 1
        try:
            data = event.data
            self.deliver(data if type(data) is str else data.to_bytes())
        finally:
            self.post()

    def _tick(self, event: Any) -> None:
        if self.drain():
            self.post()
        else:
            self.listen()

    def drain(self) -> bool:
        """Deliver the frames waiting in the queue; False when there were none."""
        queue = self.queue
        if queue is None:
            return False  # released
        delivered = self.delivered
        if queue.length <= delivered:
            if delivered >= 64:  # frames delivered by ``wake`` stay queued for a while: cheaper
                queue.length = 0
                self.delivered = 0
            return False
        batch = js.Array.from_(queue.splice(0), _event_data_getter()).to_py(depth=1)
        self.delivered = 0
        deliver = self.deliver
        for data in batch[delivered:] if delivered else batch:
            if self.queue is None:
                break  # released by a handler of an earlier frame of this batch
            deliver(data if type(data) is str else data.to_bytes())
        return True

    def release(self) -> None:
        ws = self.ws
        ws.onopen = None
        ws.onclose = None
        ws.onerror = None
        ws.removeEventListener("message", self.push)
        ws.removeEventListener("message", self.wake)
        self.channel.port1.onmessage = None
        self.channel.port1.close()
        self.queue = None
        self.owner.destroy_all()


def close_socket(ws: Any, code: int, reason: str) -> None:
    """Close the native socket ``ws``; one still connecting is closed as soon as it opens.

    Chromium keeps the TCP connection of a socket closed while connecting when the server had
    accepted it already: the server then counts a connection nobody uses until its heartbeat
    gives up on it (tens of seconds). Closing on ``open`` ends it with a close handshake instead,
    and a socket that never opens fails by itself. The listener is ``WebSocket.close`` bound in
    JavaScript (no proxy to own), and it runs once.
    """
    if ws.readyState == 0:  # CONNECTING
        bound = js.Reflect.apply(
            js.Function.prototype.bind, js.WebSocket.prototype.close, to_js([ws, code, reason])
        )
        ws.addEventListener("open", bound, to_js({"once": True}, dict_converter=js.Object.fromEntries))
    else:
        ws.close(code, reason)


class BrowserTransport:
    """``js.WebSocket`` for :class:`~pyrt.WebSocketClient` (Pyodide only)."""

    def __init__(self) -> None:
        self._socket: _Socket | None = None

    def check_url(self, url: str) -> None:
        """Any URL: a relative one resolves against the page (:func:`absolute_ws_url`)."""

    def open(self, url: str, protocols: Sequence[str], events: SocketEvents) -> None:
        if self._socket is not None:
            self.close(1000, "replaced", detach=True)
        url = absolute_ws_url(url)
        ws = js.WebSocket.new(url, to_js(list(protocols))) if protocols else js.WebSocket.new(url)
        ws.binaryType = "arraybuffer"
        owner = ProxyOwner()
        socket = _Socket(ws, owner, events.socket_message)

        def on_open(event: Any) -> None:
            events.socket_opened()

        def on_close(event: Any) -> None:
            code, reason, clean = int(event.code), str(event.reason), bool(event.wasClean)
            socket.drain()  # frames that arrived before the close come first
            if self._socket is socket:
                self._socket = None
            socket.release()
            events.socket_closed(code, reason, clean)

        def on_error(event: Any) -> None:
            return None  # a close event with the details always follows

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
            close_socket(socket.ws, code, reason)
        except JsException:  # already closed, or the browser refused the code
            if not detach:
                self._socket = None
                socket.release()

    def dispose(self) -> None:
        self.close(1000, "", detach=True)
