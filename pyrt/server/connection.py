"""One client connection's way out: a bounded send queue drained by a writer task made on demand.

An idle connection owns no task of its own (the ASGI server's task waits in ``receive``); the first
queued frame starts a writer, which lingers a moment after the queue empties so bursts reuse it.
Pushing never waits: when the queued bytes pass the limit the client is a slow consumer and is
disconnected (WebSocket close 1013, SSE stream aborted); it recovers by offset on reconnect.

Whatever piled up while the writer waited goes out together: an SSE stream writes its queue in
one body chunk; a WebSocket that negotiated batching (``batch=True``, subprotocol
``pyrt.v1.batch``) sends it as one text frame of newline-separated JSON frames, at most
:data:`BATCH_FRAMES` frames and about :data:`BATCH_BYTES` per frame. Under load a fan-out then
costs one send per connection per turn of the event loop instead of one per publication.

Under ``serve.py`` (uvicorn) a connection also has a *direct* way out (``direct``: a WebSocket's
protocol object, an SSE stream's :class:`~pyrt.server.uvicorn_private.ChunkWriter`): pushes made
during one turn of the event loop are written at the end of it by one shared callback
(:class:`Flusher`), in one socket write per connection, with no task, ASGI message or frame
object per delivery. The writer task takes over whenever the socket cannot take more (its
buffer is over the high-water mark), while the connection is stalled, and to close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections import deque
from typing import Any, Literal, Protocol, cast

from pyrt.server.metrics import Stats

__all__ = [
    "BATCH_BYTES",
    "BATCH_FRAMES",
    "BodyWriter",
    "Connection",
    "DirectWriter",
    "Flusher",
    "Kind",
    "TextWriter",
]

log = logging.getLogger("pyrt.server")

Kind = Literal["ws", "sse", "http"]  # http: the HTTP binding, frames as events of a stream
Send = Any  # the ASGI send callable

_LINGER = 1.0  # seconds an idle writer waits for more work before it exits
_CLOSE_TIMEOUT = 2.0  # seconds to get a close frame out before aborting the socket
#: At most this many JSON frames in one batched WebSocket frame, and about this many bytes (a
#: single larger frame still goes, alone): a batch stays small enough for any client's buffers.
BATCH_FRAMES = 256
BATCH_BYTES = 64 * 1024


class TextWriter(Protocol):
    """A WebSocket's direct way out (``serve.py``'s WebSocket protocol object)."""

    def pyrt_ready(self) -> bool:
        """Whether it can be written to now (open, and the socket's buffer has room)."""

    def pyrt_send_texts(self, texts: list[bytes]) -> None:
        """Write these UTF-8 text messages, in order, in one socket write."""

    def pyrt_unread(self) -> bool:
        """Whether the server holds input of this client unread (made to wait)."""


class BodyWriter(Protocol):
    """An SSE stream's direct way out (:class:`~pyrt.server.uvicorn_private.ChunkWriter`)."""

    def pyrt_ready(self) -> bool:
        """Whether it can be written to now (streaming, and the socket's buffer has room)."""

    def pyrt_send_body(self, body: bytes) -> None:
        """Write this body chunk (one socket write)."""


DirectWriter = TextWriter | BodyWriter


class Flusher:
    """Writes every connection pushed to during one turn of the event loop, at its end, from one
    callback: a fan-out to 10,000 connections schedules one callback, not 10,000."""

    __slots__ = ("_dirty", "_handle")

    def __init__(self) -> None:
        self._dirty: list[Connection] = []
        self._handle: asyncio.Handle | None = None

    def add(self, conn: Connection) -> None:
        self._dirty.append(conn)
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_soon(self._run)

    def _run(self) -> None:
        dirty, self._dirty = self._dirty, []
        self._handle = None
        for conn in dirty:
            try:
                conn._flush()
            except Exception:  # one connection never stops the others' writes
                log.exception("writing to %s failed", conn.session)


class Connection:
    """The sending half of one WebSocket (``kind="ws"``: text frames) or SSE stream (bytes).

    ``transport`` (when the ASGI server exposes it) lets :meth:`abort` drop the socket without a
    close frame. After :meth:`close` or :meth:`abort`, pushes are ignored.
    """

    __slots__ = (
        "__weakref__",
        "_close",
        "_direct",
        "_flusher",
        "_flushing",
        "_limit",
        "_queue",
        "_queued",
        "_room",
        "_send",
        "_stalled_until",
        "_stats",
        "_wake",
        "_writer",
        "batch",
        "binary",
        "cid",
        "client_ip",
        "closed",
        "identity",
        "kind",
        "session",
        "transport",
    )

    def __init__(
        self,
        kind: Kind,
        send: Send,
        *,
        stats: Stats,
        limit_bytes: int,
        session: str,
        cid: str | None = None,
        client_ip: str = "",
        transport: asyncio.Transport | None = None,
        identity: str = "",
        batch: bool = False,
        binary: bool = False,
        direct: DirectWriter | None = None,
        flusher: Flusher | None = None,
    ) -> None:
        self.kind = kind
        #: WebSocket only: the client decodes newline-separated frames (``pyrt.v1.batch``).
        self.batch = batch and kind == "ws"
        #: WebSocket only: the binary binding (``pyrt.v1.msgpack``): frames are ``bytes``, sent as
        #: binary messages (a batch: frames one after another), by the writer task.
        self.binary = binary and kind == "ws"
        #: The client's identity (token subject or address), for per-identity budgets.
        self.identity = identity
        self.session = session
        self.cid = cid
        self.client_ip = client_ip
        self.transport = transport
        #: True once the connection is closing or closed: nothing more is sent.
        self.closed = False
        self._send = send
        self._stats = stats
        self._limit = limit_bytes
        self._queue: deque[str | bytes] = deque()
        self._queued = 0
        self._writer: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._room: asyncio.Event | None = None
        self._close: tuple[int, str] | None = None
        self._stalled_until = 0.0
        self._direct = direct
        self._flusher = flusher or (Flusher() if self._direct is not None else None)
        self._flushing = False  # waiting in the flusher

    # --- sending ------------------------------------------------------------------------------

    def unread(self) -> bool:
        """Whether the server holds input of this client it has not read yet (its address over
        its CPU share, no room for its messages): the client is not silent meanwhile, it is
        being made to wait. Only a direct WebSocket writer (``serve.py``) knows."""
        direct = self._direct
        probe = getattr(direct, "pyrt_unread", None)
        return bool(probe is not None and probe())

    def push(self, item: str | bytes) -> bool:
        """Queue one frame (``str``, WebSocket) or event bytes (SSE). ``False`` if it was dropped.

        Never waits. Over the queue limit the connection is closed as a slow consumer.
        """
        if self.closed:
            return False
        size = len(item)
        if self._queued + size > self._limit and self._queue:
            self._overflow()
            return False
        self._queue.append(item)
        self._queued += size
        if self._writer is None:
            if self._direct is None or self._stalled_until:
                self._writer = asyncio.get_running_loop().create_task(self._write())
            elif not self._flushing:
                self._flushing = True
                self._flusher.add(self)  # type: ignore[union-attr]  # made with the direct writer
        elif self._wake is not None:
            self._wake.set()
        return True

    def _flush(self) -> None:
        """Write the queue through the direct writer (one socket write), or hand it to the task."""
        self._flushing = False
        queue = self._queue
        if self.closed or self._writer is not None or not queue:
            return
        direct = self._direct
        assert direct is not None
        if self._stalled_until or not direct.pyrt_ready():
            self._writer = asyncio.get_running_loop().create_task(self._write())
            return
        if self.kind != "ws":
            count = len(queue)
            body = b"".join(queue)  # type: ignore[arg-type]  # streams queue bytes only
            queue.clear()
            self._queued = 0
            cast(BodyWriter, direct).pyrt_send_body(body)  # an SSE connection gets a BodyWriter
            self._stats.frames_out += count
            if self._room is not None:
                self._room.set()
            return
        texts: list[bytes] = []
        count = 0
        if self.batch:
            while queue:
                item: str | bytes
                if len(queue) > 1:
                    item, taken = self._take_batch()
                else:
                    item, taken = queue.popleft(), 1
                texts.append(_utf8(item))
                count += taken
        else:
            texts = [_utf8(item) for item in queue]
            count = len(queue)
            queue.clear()
        self._queued = 0
        try:
            cast(TextWriter, direct).pyrt_send_texts(texts)  # a WebSocket gets a TextWriter
        except UnicodeError:  # never from pyrt's own frames: checked at ingress
            self._stats.error("unencodable")
            log.error("a frame for %s could not be encoded: dropped", self.session)
            return
        self._stats.frames_out += count
        if self._room is not None:
            self._room.set()

    async def wait_room(self) -> None:
        """Wait until the queue is at most half full (replays use it to stream at the client's pace)."""
        while not self.closed and self._queued > self._limit // 2:
            if self._room is None:
                self._room = asyncio.Event()
            self._room.clear()
            await self._room.wait()

    @property
    def queued_bytes(self) -> int:
        return self._queued

    @property
    def buffered_bytes(self) -> int:
        """Bytes this connection holds on their way out: its queue and its socket's buffer."""
        transport = self.transport
        in_socket = transport.get_write_buffer_size() if transport is not None else 0
        return self._queued + in_socket

    def cut_off(self) -> None:
        """Treat this connection as a slow consumer now (WebSocket close 1013, SSE reset)."""
        if not self.closed:
            self._overflow()

    @property
    def limit_bytes(self) -> int:
        """The send queue's limit: more queued makes this connection a slow consumer."""
        return self._limit

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send what is queued, then close (WebSocket close frame / end of the SSE stream)."""
        if self.closed:
            return
        self.closed = True
        self._close = (code, reason)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())
        elif self._wake is not None:
            self._wake.set()
        self._set_room()

    def abort(self) -> None:
        """Drop the TCP connection at once, with no close frame (the peer sees 1006 / an EOF)."""
        self.closed = True
        self._queue.clear()
        self._queued = 0
        self._set_room()
        if self.transport is not None:
            _reset(self.transport)
        elif self._writer is None:  # no transport to abort: the best left is a close frame
            self._close = (1011, "dropped")
            self._writer = asyncio.get_running_loop().create_task(self._write())

    def stall(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (the receive side checks :meth:`stalled` too)."""
        self._stalled_until = asyncio.get_running_loop().time() + seconds

    async def unstalled(self) -> None:
        """Return once no stall is in effect."""
        loop = asyncio.get_running_loop()
        while (left := self._stalled_until - loop.time()) > 0:
            await asyncio.sleep(left)

    async def finished(self) -> None:
        """Wait for the writer to finish (after :meth:`close`)."""
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(writer)

    def detach(self) -> None:
        """The connection is gone: stop the writer and forget the queue."""
        self.closed = True
        self._queue.clear()
        self._queued = 0
        self._set_room()
        writer = self._writer
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()

    # --- internals ----------------------------------------------------------------------------

    def _set_room(self) -> None:
        if self._room is not None:
            self._room.set()

    def _overflow(self) -> None:
        self._stats.drop("slow_consumer")
        log.info("slow consumer %s (%d bytes queued): disconnecting", self.session, self._queued)
        self.closed = True
        self._queue.clear()
        self._queued = 0
        self._set_room()
        writer = self._writer
        self._writer = None
        if writer is not None:
            writer.cancel()  # it can only be blocked waiting for the socket to drain
        if self.kind != "ws" and self.transport is not None:
            _reset(self.transport)
            return
        self._close = (1013, "slow consumer: resubscribe from your last offset")
        self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        queue = self._queue
        send = self._send
        loop = asyncio.get_running_loop()
        ws = self.kind == "ws"
        try:
            while True:
                if queue:
                    if self._stalled_until > loop.time():
                        await self.unstalled()
                        continue
                    if ws:
                        count = 1
                        item: str | bytes
                        if self.batch and len(queue) > 1:
                            item, count = self._take_batch()
                        else:
                            item = queue.popleft()
                            self._queued -= len(item)
                        try:
                            if type(item) is bytes:
                                await send({"type": "websocket.send", "bytes": item})
                            else:
                                await send({"type": "websocket.send", "text": item})
                        except UnicodeError:  # never from pyrt's own frames: checked at ingress
                            self._stats.error("unencodable")
                            log.error("a frame for %s could not be encoded: dropped", self.session)
                            continue
                        self._stats.frames_out += count
                    else:
                        count = len(queue)
                        body = b"".join(queue)  # type: ignore[arg-type]  # SSE queues bytes only
                        queue.clear()
                        self._queued = 0
                        await send({"type": "http.response.body", "body": body, "more_body": True})
                        self._stats.frames_out += count
                    if self._room is not None and self._queued <= self._limit // 2:
                        self._room.set()
                    continue
                if self._close is not None:
                    await self._send_close(*self._close)
                    return
                if self._wake is None:
                    self._wake = asyncio.Event()
                self._wake.clear()
                try:
                    async with asyncio.timeout(_LINGER):
                        await self._wake.wait()
                except TimeoutError:
                    if not queue and self._close is None:
                        return
        except OSError:
            self.closed = True  # the client went away; the receive side cleans up
        finally:
            if self._writer is asyncio.current_task():
                self._writer = None

    def _take_batch(self) -> tuple[str | bytes, int]:
        """Dequeue the frames of one batch and join them (the queue holds at least two)."""
        queue = self._queue
        first = queue.popleft()
        taken = [first]
        size = len(first)
        while queue and len(taken) < BATCH_FRAMES and size + len(queue[0]) < BATCH_BYTES:
            item = queue.popleft()
            taken.append(item)
            size += len(item) + 1
        self._queued -= size - len(taken) + 1
        if self.binary:  # MessagePack frames need no separator
            return b"".join(taken), len(taken)  # type: ignore[arg-type]  # a binary one queues bytes only
        return "\n".join(taken), len(taken)  # type: ignore[arg-type]  # a text one queues str only

    async def _send_close(self, code: int, reason: str) -> None:
        message: dict[str, Any]
        if self.kind == "ws":
            message = {"type": "websocket.close", "code": code, "reason": reason}
        else:
            message = {"type": "http.response.body", "body": b"", "more_body": False}
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await self._send(message)
        except TimeoutError:
            if self.transport is not None:
                _reset(self.transport)
        except (OSError, RuntimeError):
            pass  # already closed


def _utf8(frame: str | bytes) -> bytes:
    return frame.encode() if isinstance(frame, str) else frame


def _reset(transport: asyncio.Transport) -> None:
    """Drop the socket with a TCP reset, discarding what the kernel still buffers for it.

    A plain ``abort()`` closes the socket, but the kernel keeps sending its send buffer (up to
    megabytes) before the FIN: a slow client would trickle through stale data for minutes before
    it learns it was dropped. With ``SO_LINGER`` 0 the peer sees the reset at once.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
