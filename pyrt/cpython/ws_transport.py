"""The CPython transport of :class:`~pyrt.WebSocketClient`: the ``websockets`` asyncio client.

Thin on purpose, like :mod:`pyrt.browser.ws_transport`: it opens one connection at a time,
reports its events to the client, sends frames and reports its write buffer. Every decision
(reconnect, heartbeat, queue, acks, recovery) stays in the engine, so ``websockets``' own
keepalive pings, open timeout and reconnect loop are all off.

It behaves as ``js.WebSocket`` does where the client can tell:

- :meth:`CPythonTransport.send` is synchronous and never waits: the frame goes into the
  connection's write buffer at once (``buffered_amount`` is that buffer's size, the client's
  ``high_water`` bounds it), in order;
- a connection that fails to open, or breaks without a closing handshake, is reported as code
  1006 (with a short description of the failure as the reason, which browsers hide); a
  handshake refused with ``Retry-After`` (a server restarting, 429, 503) adds
  ``retry_after=S`` to it, which the engine honours (:mod:`pyrt.wire.reconnect_window`);
- sending on a connection that is closing silently drops the frame;
- no message size limit by default (``max_size=None``), like browsers; permessage-deflate is
  offered (``compression="deflate"``) as browsers do.

The library's debug log of these connections is the logger ``pyrt.websocket.wire``, with
tokens redacted (:mod:`pyrt.redact`). The page (none here), ``persist=`` files and timers are
the runtime's services (:mod:`pyrt.cpython.services`). What it needs from under the library's
public API goes through :mod:`pyrt.cpython.ws_private`.

Cheap to create: the ``websockets`` import happens once per process, TLS contexts are shared,
and each connection costs one task. Hundreds of clients in one process are fine.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyrt.cpython import ws_private
from pyrt.cpython.services import CPythonServices
from pyrt.engine.urls import websocket_url
from pyrt.ports.transport import SocketEvents
from pyrt.redact import RedactSecrets
from pyrt.wire.reconnect_window import close_reason
from pyrt.wire.types import Frame

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = ["CPythonTransport", "shared_ssl_context"]

log = logging.getLogger("pyrt.websocket")
#: The ``websockets`` library's own debug log of pyrt's connections (handshakes, frames), with
#: tokens redacted: the handshake carries one in ``bearer.<token>``, a refresh frame another.
wire_log = logging.getLogger("pyrt.websocket.wire")
wire_log.addFilter(RedactSecrets())

INSTALL_HINT = 'pip install "pyrt[cpython]"'


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One default TLS context for every ``wss://`` connection (creating one per connection
    reads the system's CA store each time)."""
    return ssl.create_default_context()


@functools.cache
def _websockets() -> Any:
    """The ``websockets`` modules pyrt uses, imported once, with a clear error when missing."""
    try:
        import websockets.asyncio.client as client
        import websockets.exceptions as exceptions
        import websockets.protocol as protocol
    except ImportError as exc:  # pragma: no cover - the test environment has websockets
        raise ImportError(
            f"pyrt's CPython WebSocket transport needs the websockets library: {INSTALL_HINT}"
        ) from exc
    return client, exceptions, protocol.State.OPEN


#: Handshake headers: a mapping, or a callable (sync or async) returning one, called per attempt.
HeadersSource = (
    Mapping[str, str] | Callable[[], Mapping[str, str]] | Callable[[], Awaitable[Mapping[str, str]]]
)


async def _resolve(source: HeadersSource) -> dict[str, str]:
    """This attempt's headers (a callable's failure is this attempt's)."""
    chosen = source() if callable(source) else source
    if inspect.isawaitable(chosen):
        chosen = await chosen
    if not isinstance(chosen, Mapping):
        raise TypeError(f"the headers callable returned {type(chosen).__name__}, not a mapping")
    return {str(name): str(value) for name, value in chosen.items()}


class _Socket:
    """One connection (or attempt) and where its events go."""

    __slots__ = ("conn", "detached", "events", "task")

    def __init__(self, events: SocketEvents) -> None:
        self.events = events
        self.conn: ClientConnection | None = None
        self.task: asyncio.Task[None] | None = None
        self.detached = False  # the client let go of it: report nothing more


class CPythonTransport:
    """``websockets`` for :class:`~pyrt.WebSocketClient` on CPython (picked automatically).

    Options beyond what a browser offers, for ``WebSocketClient(..., transport=CPythonTransport(...))``:
    ``headers`` are sent with every opening handshake (``Authorization``, ``Cookie``, ``Origin``;
    a browser cannot do this): a mapping, or a callable (sync or async) returning one, called
    before every attempt (a failure fails that attempt, reported as 1006 with its reason, and
    the client retries with backoff); ``compression`` is ``"deflate"`` or ``None``; ``max_size`` limits
    an incoming message (bytes, ``None``: no limit); ``ssl`` replaces the default TLS context
    for ``wss://``; ``close_timeout`` bounds the closing handshake of a connection the client let
    go of (a dead one after a heartbeat timeout, say) before its TCP connection is aborted.
    ``storage_dir`` (where ``persist="key"`` files go) is kept for code written before the
    runtime services: it gives the transport :attr:`services`, a
    :class:`~pyrt.cpython.services.CPythonServices` with that directory, which a client given no
    ``services=`` uses (``services=CPythonServices(storage_dir=...)`` says the same).
    """

    def __init__(
        self,
        *,
        headers: HeadersSource | None = None,
        compression: str | None = "deflate",
        max_size: int | None = None,
        ssl: ssl.SSLContext | None = None,
        close_timeout: float = 2.0,
        storage_dir: str | Path | None = None,
    ) -> None:
        self._ws_client, self._exceptions, self._open_state = _websockets()
        self.headers: HeadersSource = headers if callable(headers) else dict(headers or {})
        self.compression = compression
        self.max_size = max_size
        self.ssl = ssl
        self.close_timeout = close_timeout
        self.services = CPythonServices(storage_dir) if storage_dir is not None else None
        self._socket: _Socket | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # -- the Transport protocol

    def check_url(self, url: str) -> None:
        """A relative URL raises :class:`~pyrt.errors.RelativeURLError` (there is no page)."""
        websocket_url(url)

    def open(self, url: str, protocols: Sequence[str], events: SocketEvents) -> None:
        if self._socket is not None:
            self.close(1000, "replaced", detach=True)
        url = websocket_url(url)  # a relative or foreign URL raises; the client reports it
        socket = _Socket(events)
        socket.task = asyncio.get_running_loop().create_task(self._run(socket, url, list(protocols)))
        self._socket = socket

    def send(self, frame: Frame) -> None:
        socket = self._socket
        conn = socket.conn if socket is not None else None
        if conn is None:
            raise RuntimeError("no open socket to send on")
        ws_private.send_now(conn, frame, self._open_state)  # closing: dropped, the close event follows

    def buffered_amount(self) -> int:
        socket = self._socket
        conn = socket.conn if socket is not None else None
        if conn is None:
            return 0
        return ws_private.write_buffer_size(conn)

    def close(self, code: int, reason: str, detach: bool) -> None:
        socket = self._socket
        if socket is None:
            return
        conn = socket.conn
        if detach or conn is None:
            self._socket = None
            socket.detached = True
            if socket.task is not None:
                socket.task.cancel()
            if conn is not None:
                self._spawn(self._close_quietly(conn, code, reason))
            elif not detach:
                # Closing a socket that is not open yet fails it, as in the browser (1006).
                events = socket.events
                asyncio.get_running_loop().call_soon(events.socket_closed, 1006, "", False)
            return
        self._spawn(self._close_quietly(conn, code, reason))  # the reader reports the close

    def dispose(self) -> None:
        self.close(1000, "", detach=True)

    # -- internals

    async def _run(self, socket: _Socket, url: str, protocols: list[str]) -> None:
        """Open the connection, report it, pump its messages, report its close."""
        events = socket.events
        try:
            headers = await _resolve(self.headers)
            conn = await self._ws_client.connect(
                url,
                subprotocols=protocols or None,
                additional_headers=headers or None,
                compression=self.compression,
                max_size=self.max_size,
                open_timeout=None,  # the engine's connect_timeout decides
                ping_interval=None,  # the engine's heartbeat decides
                close_timeout=self.close_timeout,
                ssl=(self.ssl or shared_ssl_context()) if url.startswith("wss:") else None,
                logger=wire_log,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("pyrt websocket: could not connect to %s: %r", url, exc)
            if not socket.detached:
                self._forget(socket)
                events.socket_closed(1006, _describe(exc), False)
            return
        socket.conn = conn
        if socket.detached:  # pragma: no cover - detaching cancels this task first
            await self._close_quietly(conn, 1000, "")
            return
        events.socket_opened()
        deliver = events.socket_message
        recv = conn.recv
        closed = self._exceptions.ConnectionClosed
        while True:
            try:
                message = await recv()
            except closed:
                break
            except asyncio.CancelledError:
                if not socket.detached:  # the loop is shutting down: do not leak the connection
                    ws_private.abort(conn)
                raise
            try:
                deliver(message)
            except Exception:  # the client reports handler errors itself; this is a bug
                log.exception("pyrt websocket: delivering a message failed")
        if socket.detached:
            return
        self._forget(socket)
        code = conn.close_code if conn.close_code is not None else 1006
        reason = conn.close_reason or ""
        clean = ws_private.closed_cleanly(conn)
        events.socket_closed(int(code), reason, clean)

    def _forget(self, socket: _Socket) -> None:
        if self._socket is socket:
            self._socket = None

    async def _close_quietly(self, conn: ClientConnection, code: int, reason: str) -> None:
        """The closing handshake, bounded by ``close_timeout``; the TCP connection is aborted if
        it fails or if the loop shuts down meanwhile."""
        try:
            await conn.close(code, reason)
        except asyncio.CancelledError:
            ws_private.abort(conn)
            raise
        except Exception as exc:  # an invalid code, a broken pipe: abort instead
            log.debug("pyrt websocket: closing failed (%r); aborting", exc)
            ws_private.abort(conn)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    response = getattr(exc, "response", None)  # websockets.InvalidStatus: the refused handshake
    headers = getattr(response, "headers", None)
    if headers is not None and headers.get("Retry-After") is not None:
        from pyrt.engine.sse import parse_retry_after  # only on a refusal: keeps SSE code unloaded

        wait = parse_retry_after(headers.get("Retry-After"), time.time())
        if wait is not None:
            return close_reason(described, after=wait)
    return described
