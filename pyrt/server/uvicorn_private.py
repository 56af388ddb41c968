"""The internals of uvicorn that ``serve.py`` leans on, in one place.

What the ASGI application cannot see, ``serve.py`` enforces per TCP connection, inside uvicorn's
own protocol objects (``uvicorn.Config(http=..., ws=...)`` takes them; :func:`protocols` builds
them around one :class:`~pyrt.server.ledger.Ledger`):

- connections in all and per address, request heads and bodies (:mod:`pyrt.server.ledger`); a
  chunked body may carry no trailer fields (pyrt needs none; llhttp would hand them over as
  headers, beyond the head limit): the request is refused (400) and nothing of it reaches the
  application, and what a chunked body holds besides its data (chunk sizes and extensions)
  counts against ``max_head_bytes`` between two pieces of data (431);
- the CPU budget of each address (:mod:`pyrt.server.cpu_budget`) and the room for received
  WebSocket messages (:meth:`~pyrt.server.ledger.Ledger.inbox_full`);
- WebSocket control frames: PONGs (and everything else) are written without waiting, so a client
  that sends PINGs and never reads would make the server buffer the answers. When the socket's
  write buffer passes its high-water mark, the server stops reading from that client until it
  has read what it was sent: a client that never reads holds one socket buffer;
- permessage-deflate with capped inflating and fan-out frames compressed once
  (:mod:`pyrt.server.ws_deflate`).

And it gives the application a way out around ASGI: a WebSocket's protocol object writes texts
at once (:func:`text_writer_of`, a :class:`~pyrt.server.connection.TextWriter`), a streamed
response's chunks go straight to the socket (:func:`chunk_writer`), and the socket itself can be
reset (:func:`transport_of`).

uvicorn documents none of this: the protocol classes are passed whole, and the rest is theirs.
Every attribute and method this module reads, calls or overrides is listed in :data:`RELIED_ON`,
with the kind of thing it must be; ``tests/server/test_uvicorn_private.py::test_canary_*`` checks
each of them on the installed uvicorn (classes, and the live objects of a real server) and fails
loudly, naming the missing piece, when a uvicorn release moves one. No other module of pyrt
imports ``uvicorn.*`` internals or looks behind an ASGI ``send`` (``tests/unit/test_purity.py``).

Two fixes of uvicorn's ``websockets-sansio`` protocol live here too: a handshake the application
denies with an HTTP response (``websocket.http.response``: 403, 429, 503) is complete once the
response is written, so uvicorn does not log it as an ERROR ("ASGI callable returned without
completing handshake"; uvicorn PR #3138); and the ``websockets`` protocol's own line for a
refused handshake ("connection rejected (403 Forbidden)") goes to DEBUG, as uvicorn logs the
refusal itself: one INFO line per denied handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame
from websockets.server import ServerProtocol

from pyrt.server.cpu_budget import CONNECTION_OVERHEAD, EVENT_OVERHEAD, Timed
from pyrt.server.http_refusals import reset, status_response, too_many_connections
from pyrt.server.ledger import FEED_PIECE, MAX_PIPELINE, HttpLimits, Ledger
from pyrt.server.ws_deflate import SharedFrames, deflate_factory, encode_texts

__all__ = [
    "OWNERS",
    "RELIED_ON",
    "ChunkWriter",
    "LimitedHttpProtocol",
    "LimitedWebSocketProtocol",
    "chunk_writer",
    "missing",
    "protocols",
    "text_writer_of",
    "transport_of",
]

log = logging.getLogger("pyrt.server")

# ----------------------------------------------------------------------------- what is relied on

#: A method of the class (overridden or called); checked on the class itself.
METHOD = "method"
#: The kinds of value a live object's attribute must hold, by name (a class has none of them).
KINDS: dict[str, Callable[[object], bool]] = {
    "bool": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "event": lambda v: isinstance(v, asyncio.Event),
    "list": lambda v: isinstance(v, list),
    "deque": lambda v: isinstance(v, deque),
    "loop": lambda v: isinstance(v, asyncio.AbstractEventLoop),
    "transport": lambda v: isinstance(v, asyncio.Transport),
    "socket": lambda v: isinstance(v, socket.socket),
    "flow control": lambda v: isinstance(v, FlowControl),
    "cycle": lambda v: isinstance(v, RequestResponseCycle),
    "parser": lambda v: callable(getattr(v, "should_upgrade", None)),
    "application": callable,
    "queue": lambda v: all(callable(getattr(v, m, None)) for m in ("put_nowait", "get", "empty")),
    "websockets protocol": lambda v: isinstance(v, ServerProtocol),
    "present": lambda v: True,  # may be None at times (set during a handshake, say)
}

#: Every piece of uvicorn (and the one of asyncio) this module relies on: ``(owner, name,
#: kind)``. ``kind`` is :data:`METHOD` or a key of :data:`KINDS`. The owners are the classes of
#: :data:`OWNERS`, and ``"asyncio transport"`` (a selector transport, for :func:`_refuse`).
RELIED_ON: tuple[tuple[str, str, str], ...] = (
    # HttpToolsProtocol: overridden
    ("HttpToolsProtocol", "connection_made", METHOD),
    ("HttpToolsProtocol", "connection_lost", METHOD),
    ("HttpToolsProtocol", "data_received", METHOD),
    ("HttpToolsProtocol", "on_message_begin", METHOD),
    ("HttpToolsProtocol", "on_header", METHOD),
    ("HttpToolsProtocol", "on_body", METHOD),
    ("HttpToolsProtocol", "on_headers_complete", METHOD),
    ("HttpToolsProtocol", "on_message_complete", METHOD),
    ("HttpToolsProtocol", "on_response_complete", METHOD),
    ("HttpToolsProtocol", "_start_asgi_task", METHOD),
    ("HttpToolsProtocol", "_should_upgrade", METHOD),
    ("HttpToolsProtocol", "_unsupported_upgrade_warning", METHOD),
    # HttpToolsProtocol: called, read, set
    ("HttpToolsProtocol", "_unset_keepalive_if_required", METHOD),
    ("HttpToolsProtocol", "transport", "transport"),
    ("HttpToolsProtocol", "loop", "loop"),
    ("HttpToolsProtocol", "flow", "flow control"),
    ("HttpToolsProtocol", "cycle", "cycle"),
    ("HttpToolsProtocol", "pipeline", "deque"),
    ("HttpToolsProtocol", "parser", "parser"),
    ("HttpToolsProtocol", "app", "application"),  # set per request: a connection over the cap
    # a request's RequestResponseCycle: the ASGI send is its bound method
    ("RequestResponseCycle", "send", METHOD),
    ("RequestResponseCycle", "transport", "transport"),
    ("RequestResponseCycle", "flow", "flow control"),
    ("RequestResponseCycle", "response_started", "bool"),
    ("RequestResponseCycle", "response_complete", "bool"),
    ("RequestResponseCycle", "chunked_encoding", "present"),  # None until the response starts
    ("RequestResponseCycle", "more_body", "bool"),
    ("RequestResponseCycle", "disconnected", "bool"),
    ("RequestResponseCycle", "message_event", "event"),
    ("FlowControl", "read_paused", "bool"),
    ("FlowControl", "write_paused", "bool"),
    # WebSocketsSansIOProtocol: overridden (send is also the ASGI send, bound)
    ("WebSocketsSansIOProtocol", "__init__", METHOD),
    ("WebSocketsSansIOProtocol", "connection_lost", METHOD),
    ("WebSocketsSansIOProtocol", "data_received", METHOD),
    ("WebSocketsSansIOProtocol", "pause_writing", METHOD),
    ("WebSocketsSansIOProtocol", "resume_writing", METHOD),
    ("WebSocketsSansIOProtocol", "handle_text", METHOD),
    ("WebSocketsSansIOProtocol", "handle_bytes", METHOD),
    ("WebSocketsSansIOProtocol", "handle_cont", METHOD),
    ("WebSocketsSansIOProtocol", "handle_ping", METHOD),
    ("WebSocketsSansIOProtocol", "send_receive_event_to_app", METHOD),
    ("WebSocketsSansIOProtocol", "run_asgi", METHOD),
    ("WebSocketsSansIOProtocol", "receive", METHOD),
    ("WebSocketsSansIOProtocol", "send", METHOD),
    ("WebSocketsSansIOProtocol", "keepalive_timeout", METHOD),
    # WebSocketsSansIOProtocol: read, replaced, set
    ("WebSocketsSansIOProtocol", "transport", "transport"),
    ("WebSocketsSansIOProtocol", "loop", "loop"),
    ("WebSocketsSansIOProtocol", "conn", "websockets protocol"),
    ("WebSocketsSansIOProtocol", "queue", "queue"),
    ("WebSocketsSansIOProtocol", "frames", "list"),
    ("WebSocketsSansIOProtocol", "writable", "event"),
    ("WebSocketsSansIOProtocol", "read_paused", "bool"),
    ("WebSocketsSansIOProtocol", "handshake_complete", "bool"),
    ("WebSocketsSansIOProtocol", "close_sent", "bool"),
    ("WebSocketsSansIOProtocol", "disconnected", "bool"),
    ("WebSocketsSansIOProtocol", "request", "present"),  # the handshake's, dropped once accepted
    ("WebSocketsSansIOProtocol", "response", "present"),
    ("WebSocketsSansIOProtocol", "pong_timer", "present"),  # None until a keepalive ping is sent
    ("WebSocketsSansIOProtocol", "ping_timeout", "present"),  # None: no keepalive timeout
    ("Config", "ws_per_message_deflate", "bool"),
    ("Config", "ws_max_size", "int"),
    # asyncio's selector transports: the socket object they own (closed at once by _refuse)
    ("asyncio transport", "_sock", "socket"),
)

#: The classes of :data:`RELIED_ON`'s owners (``"asyncio transport"`` has no public class).
OWNERS: dict[str, type] = {
    "HttpToolsProtocol": HttpToolsProtocol,
    "RequestResponseCycle": RequestResponseCycle,
    "FlowControl": FlowControl,
    "WebSocketsSansIOProtocol": WebSocketsSansIOProtocol,
    "Config": Config,
}


def missing(owner: str, obj: object) -> list[str]:
    """What ``obj`` lacks of what :data:`RELIED_ON` says of ``owner``, one line per piece, naming
    it: on a class, its methods; on a live object, its attributes (of the expected kind) too."""
    problems = []
    for whose, name, kind in RELIED_ON:
        if whose != owner or (isinstance(obj, type) and kind != METHOD):
            continue
        if not hasattr(obj, name):
            problems.append(f"uvicorn's {owner}.{name} ({kind}) is gone")
        elif kind == METHOD:
            if not callable(getattr(obj, name)):
                problems.append(f"uvicorn's {owner}.{name} is no longer a method")
        elif not KINDS[kind](getattr(obj, name)):
            value = type(getattr(obj, name)).__name__
            problems.append(f"uvicorn's {owner}.{name} is a {value}, not a {kind}")
    return problems


# ----------------------------------------------------------------------------- the application's side


def transport_of(send: Any) -> asyncio.Transport | None:
    """The socket's transport behind an ASGI ``send`` of uvicorn (``None`` for another server):
    ``/demo/drop`` and slow consumers abort a connection without a close frame through it."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    return transport if isinstance(transport, asyncio.Transport) else None


def text_writer_of(send: Any) -> LimitedWebSocketProtocol | None:
    """``serve.py``'s WebSocket protocol object behind a WebSocket's ASGI ``send``: a
    :class:`~pyrt.server.connection.TextWriter` (a send path with no task); ``None`` otherwise."""
    protocol = getattr(send, "__self__", None)
    return protocol if isinstance(protocol, LimitedWebSocketProtocol) else None


class ChunkWriter:
    """Writes body chunks of one streamed response straight to the socket, with the chunked
    transfer encoding uvicorn chose (a :class:`~pyrt.server.connection.BodyWriter`: no task, ASGI
    message or wrapper per chunk); ``compress`` (the stream's gzip encoder, when it has one)
    encodes each chunk first, so every chunk of the stream goes through it in order."""

    __slots__ = ("_compress", "_cycle")

    def __init__(self, cycle: Any, compress: Callable[[bytes], bytes] | None) -> None:
        self._cycle = cycle
        self._compress = compress

    def pyrt_ready(self) -> bool:
        """Whether a chunk can go now: the response started chunked, is not complete, the
        client is still there and the socket's buffer is under its high-water mark."""
        cycle = self._cycle
        return bool(
            cycle.response_started
            and cycle.chunked_encoding
            and not cycle.response_complete
            and not cycle.disconnected
            and not cycle.flow.write_paused
            and not cycle.transport.is_closing()
        )

    def pyrt_send_body(self, body: bytes) -> None:
        if self._compress is not None:
            body = self._compress(body)
        if body:
            self._cycle.transport.write(b"%x\r\n%b\r\n" % (len(body), body))


def chunk_writer(send: Any, compress: Callable[[bytes], bytes] | None = None) -> ChunkWriter | None:
    """The :class:`ChunkWriter` of the response ``send`` (the server's own ASGI send) belongs
    to; ``None`` unless it is uvicorn's httptools protocol (then the ASGI ``send`` path)."""
    cycle = getattr(send, "__self__", None)
    return ChunkWriter(cycle, compress) if isinstance(cycle, RequestResponseCycle) else None


# ----------------------------------------------------------------------------- the protocols


def protocols(
    ledger: Ledger, limits: HttpLimits, *, deflate_context: bool = False
) -> tuple[type[LimitedHttpProtocol], type[LimitedWebSocketProtocol]]:
    """The HTTP and WebSocket protocol classes to give ``uvicorn.Config(http=..., ws=...)``,
    counting every connection in ``ledger``.

    permessage-deflate (when ``Config.ws_per_message_deflate``) is negotiated without context
    takeover in either direction unless ``deflate_context``: each message is compressed on its
    own, so an idle connection holds no compressor or decompressor (about 40 KiB with them).
    """

    class Http(LimitedHttpProtocol):
        _pyrt_ledger = ledger
        _pyrt_limits = limits

    class WebSocket(LimitedWebSocketProtocol):
        _pyrt_ledger = ledger
        _pyrt_limits = limits
        _pyrt_shared = SharedFrames()
        _pyrt_deflate_context = deflate_context

    return Http, WebSocket


def _refuse(transport: asyncio.BaseTransport) -> None:
    """Reset a connection that was just accepted and free its file descriptor *now*.

    ``abort()`` closes the socket on the next loop iteration, but asyncio accepts up to its whole
    backlog in one go: in a flood, refused sockets would pile up and exhaust the descriptors
    before any is closed. The transport's own socket object is closed here (asyncio's later close
    of the same object does nothing), after ``abort()`` has unregistered it from the loop.
    """
    reset(transport)
    raw = getattr(transport, "_sock", None)  # asyncio's selector transports
    if isinstance(raw, socket.socket):
        raw.close()


class _ReceiveQueue:
    """What uvicorn's WebSocket protocol needs of its ``asyncio.Queue`` of received events, for a
    single reader, in ~1/10 of the memory (an idle connection keeps one for its lifetime)."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)


#: The lines ``websockets`` logs when a handshake is answered with an HTTP response: uvicorn
#: logs its own line for it (``"WebSocket /ws" 403``).
_REFUSAL_LINES = ("connection rejected", "HTTP response sent")


class _HandshakeLog(logging.LoggerAdapter[logging.Logger]):
    """uvicorn's error log as the ``websockets`` protocol's logger, with its line for a refused
    handshake demoted to DEBUG (uvicorn's own line says it at INFO)."""

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        if isinstance(msg, str) and msg.startswith(_REFUSAL_LINES):
            self.debug(msg, *args, **kwargs)
        else:
            super().info(msg, *args, **kwargs)


class LimitedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol with ``serve.py``'s limits (the module docstring);
    :func:`protocols` makes the class a server uses, bound to its ledger and limits."""

    _pyrt_ledger: ClassVar[Ledger]
    _pyrt_limits: ClassVar[HttpLimits]
    _pyrt_shared: ClassVar[SharedFrames]
    _pyrt_deflate_context: ClassVar[bool] = False
    _pyrt_log: ClassVar[_HandshakeLog] = _HandshakeLog(logging.getLogger("uvicorn.error"))

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.queue = _ReceiveQueue()  # type: ignore[assignment]
        extensions = []
        if config.ws_per_message_deflate:
            ratio = self._pyrt_limits.inflate_ratio
            extensions.append(deflate_factory(ratio, context=self._pyrt_deflate_context))
        self.conn = ServerProtocol(extensions=extensions, max_size=config.ws_max_size, logger=self._pyrt_log)

    #: Reading is paused because the client does not read what it is sent.
    _pyrt_blocked = False
    #: Bytes of received messages waiting for or being handled by the application (counted
    #: as they inflated; released when the application asks for the next one).
    _pyrt_inbox = 0
    #: The size of the message the application is handling now.
    _pyrt_handling = 0
    #: The sizes of the received messages in the queue, in order.
    _pyrt_sizes: list[int] | None = None
    #: Received bytes not yet given to the parser, held while there is no room.
    _pyrt_held: bytes = b""
    #: The address this connection's input is charged to ("": none; None: not looked up yet).
    _pyrt_cpu: str | None = None

    def _pyrt_cpu_key(self) -> str:
        if self._pyrt_cpu is None:
            self._pyrt_cpu = self._pyrt_ledger.cpu_address(self.transport) or ""
        return self._pyrt_cpu

    def _pyrt_charge(self, seconds: float) -> None:
        address = self._pyrt_cpu_key()
        if address:
            self._pyrt_ledger.cpu.charge(address, seconds, self.loop.time())

    async def run_asgi(self) -> None:
        if self._pyrt_cpu_key():  # every step of the session is charged to its address
            await Timed(super().run_asgi(), self._pyrt_charge)
        else:
            await super().run_asgi()

    def data_received(self, data: bytes) -> None:
        if self._pyrt_held:
            self._pyrt_held += data
            self.transport.pause_reading()
            return
        if self._pyrt_cpu_key():
            started = time.perf_counter()
            self._pyrt_feed(data)
            self._pyrt_charge(time.perf_counter() - started + EVENT_OVERHEAD)
        else:
            self._pyrt_feed(data)

    def _pyrt_no_room(self) -> bool:
        if self._pyrt_inbox > self._pyrt_limits.inbox_bytes:
            return True
        return self._pyrt_ledger.inbox_full(self.transport)

    def _pyrt_feed(self, data: bytes, granted: bool = False) -> None:
        ledger = self._pyrt_ledger
        position = 0
        address = self._pyrt_cpu_key()
        while position < len(data):
            if self._pyrt_no_room():
                self._pyrt_held = data[position:]
                self.transport.pause_reading()
                if self._pyrt_inbox <= self._pyrt_limits.inbox_bytes:  # the address or process is full
                    ledger.wait_for_room(self.transport, self._pyrt_room_made)
                return
            if address:
                if not ledger.cpu.begin(address, self.loop.time(), granted=granted):
                    self._pyrt_held = data[position:]  # read in its turn
                    self.transport.pause_reading()
                    ledger.cpu.wait(address, id(self.transport), self._pyrt_cpu_turn)
                    return
                granted = False  # a turn is one piece
            piece = data[position : position + FEED_PIECE] if len(data) > FEED_PIECE else data
            position += len(piece)
            super().data_received(piece)
            if self.transport.is_closing():
                return

    def _pyrt_cpu_turn(self) -> None:
        if self._pyrt_held and not self.transport.is_closing():
            held, self._pyrt_held = self._pyrt_held, b""
            started = time.perf_counter()
            self._pyrt_feed(held, granted=True)
            self._pyrt_charge(time.perf_counter() - started + EVENT_OVERHEAD)
            if not self._pyrt_held and not self.read_paused and not self._pyrt_blocked:
                self.transport.resume_reading()

    def _pyrt_room_made(self) -> None:
        self.loop.call_soon(self._pyrt_resume_feeding)

    def _pyrt_resume_feeding(self) -> None:
        if self._pyrt_held and not self.transport.is_closing():
            held, self._pyrt_held = self._pyrt_held, b""
            self._pyrt_feed(held)
            if not self._pyrt_held and not self.read_paused and not self._pyrt_blocked:
                self.transport.resume_reading()

    # The parser keeps its last frame until the next one arrives: an idle client would keep
    # a large (inflated) frame alive. Its data is taken over by uvicorn here, then dropped.
    def keepalive_timeout(self) -> None:
        """uvicorn's keepalive ping went unanswered. While this connection is not read (its
        address over its CPU share, no room for its messages, or it does not read what it is
        sent), its pong may be among the bytes not read yet: wait another timeout instead of
        closing with 1011 a client that is only being made to wait."""
        if self.pyrt_unread() and self.ping_timeout is not None:
            if not self.transport.is_closing():
                self.pong_timer = self.loop.call_later(self.ping_timeout, self.keepalive_timeout)
            return
        super().keepalive_timeout()

    def handle_text(self, event: Frame) -> None:
        super().handle_text(event)
        event.data = b""

    def handle_bytes(self, event: Frame) -> None:
        super().handle_bytes(event)
        event.data = b""

    def handle_cont(self, event: Frame) -> None:
        super().handle_cont(event)
        event.data = b""

    def send_receive_event_to_app(self) -> None:
        if not self.close_sent:
            size = sum(len(frame) for frame in self.frames)
            self._pyrt_inbox += size
            self._pyrt_ledger.inbox_add(self.transport, size)
            if self._pyrt_sizes is None:
                self._pyrt_sizes = []
            self._pyrt_sizes.append(size)
        super().send_receive_event_to_app()

    def pause_writing(self) -> None:
        super().pause_writing()
        if not self._pyrt_blocked:
            self._pyrt_blocked = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._pyrt_blocked:
            self._pyrt_blocked = False
            if not self.read_paused and not self.transport.is_closing():
                self.transport.resume_reading()

    def handle_ping(self) -> None:
        super().handle_ping()
        if self._pyrt_blocked:  # reading was resumed for the closing handshake
            self.transport.pause_reading()

    async def receive(self) -> Any:
        handled, self._pyrt_handling = self._pyrt_handling, 0
        self._pyrt_inbox -= handled
        self._pyrt_ledger.inbox_remove(self.transport, handled)
        if self._pyrt_held and not self._pyrt_no_room():
            held, self._pyrt_held = self._pyrt_held, b""
            self._pyrt_feed(held)
        message = await self.queue.get()
        if message["type"] == "websocket.receive" and self._pyrt_sizes:
            self._pyrt_handling = self._pyrt_sizes.pop(0)
        if self.read_paused and self.queue.empty() and not self._pyrt_held:
            self.read_paused = False
            if not self._pyrt_blocked:
                self.transport.resume_reading()
        return message

    async def send(self, message: Any) -> None:
        await super().send(message)
        kind = message["type"]
        if kind == "websocket.accept" and self.handshake_complete:
            # The handshake's request and response (their headers: ~3 KiB) are not needed
            # again; an idle connection should not keep them.
            with contextlib.suppress(AttributeError):
                del self.request, self.response
        elif kind == "websocket.http.response.body" and self.close_sent and not self.handshake_complete:
            # A denial response is on the wire: the handshake is over. Without this, uvicorn
            # takes the application's return for an unfinished handshake and logs an ERROR.
            self.handshake_complete = True

    # --- serve.py's direct send path (pyrt.server.connection.TextWriter) --------------------------

    def pyrt_unread(self) -> bool:
        """Whether the server holds this client's input unread: bytes held while its address is
        over its CPU share, reading paused for lack of room, or messages queued for the
        application. Not when reading is paused because the client does not read what it is
        sent (a dead client must still time out)."""
        return (
            bool(self._pyrt_held) or (self.read_paused and not self._pyrt_blocked) or not self.queue.empty()
        )

    def pyrt_ready(self) -> bool:
        return (
            self.handshake_complete
            and not self.close_sent
            and not self.disconnected
            and self.writable.is_set()
            and not self.transport.is_closing()
        )

    def pyrt_send_texts(self, texts: list[bytes]) -> None:
        if self._pyrt_cpu_key():  # what writing to it costs is charged to its address too
            started = time.perf_counter()
            self.transport.write(encode_texts(self.conn, texts, self._pyrt_shared))
            self._pyrt_charge(time.perf_counter() - started)
        else:
            self.transport.write(encode_texts(self.conn, texts, self._pyrt_shared))

    def connection_lost(self, exc: Exception | None) -> None:
        self._pyrt_ledger.inbox_remove(self.transport, self._pyrt_inbox)
        self._pyrt_inbox = 0
        self._pyrt_ledger.release(self.transport)
        super().connection_lost(exc)


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's ``httptools`` protocol with ``serve.py``'s limits (the module docstring);
    :func:`protocols` makes the class a server uses, bound to its ledger and limits."""

    _pyrt_ledger: ClassVar[Ledger]
    _pyrt_limits: ClassVar[HttpLimits]

    _pyrt_head_timer: asyncio.TimerHandle | None = None
    _pyrt_body_timer: asyncio.TimerHandle | None = None
    _pyrt_in_head = True  # waiting for (the rest of) a request head
    _pyrt_head_bytes = 0  # bytes fed to the parser since this head began
    _pyrt_framing = 0  # body bytes fed since the parser last found data (chunk framing)
    _pyrt_progress = False  # the parser found body data (or the end) in the last piece
    _pyrt_trailers = False  # the body being read has trailer fields: it is refused
    _pyrt_held = b""  # received while its address was over its CPU share
    _pyrt_granted = False  # its turn came: read what arrives next even if others wait
    _pyrt_cpu = ""  # the address its input is charged to ("": none)
    _pyrt_waiting_since = 0.0  # when it began to wait for its turn (its timers stopped)
    _pyrt_over = False  # over the per-address cap: every request gets 429
    _pyrt_done = False  # the connection was refused: ignore what still arrives

    # --- connection -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        started = time.perf_counter()
        ledger = self._pyrt_ledger
        verdict = ledger.admit(transport)
        if verdict == "refuse":
            self._pyrt_done = True
            self.transport = transport
            _refuse(transport)
            return
        self._pyrt_over = verdict == "over"
        super().connection_made(transport)
        self._pyrt_arm_head()
        address = self._pyrt_cpu = ledger.cpu_address(transport) or ""
        if address:
            now = self.loop.time()
            # accepting it (the kernel's and asyncio's part too) and closing it, later
            cost = time.perf_counter() - started + CONNECTION_OVERHEAD
            ledger.cpu.charge(address, cost, now)
            # read nothing before its turn (a connection over the per-address cap is only
            # answered 429: that waits for no turn)
            if ledger.cpu.waiting(address) and not self._pyrt_over:
                transport.pause_reading()
                self._pyrt_stop_clocks()
                ledger.cpu.wait(address, id(transport), self._pyrt_cpu_turn)

    def connection_lost(self, exc: Exception | None) -> None:
        self._pyrt_ledger.release(self.transport)
        self._pyrt_cancel_timers()
        if self._pyrt_done and self.flow is None:
            return  # refused before uvicorn knew about it
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        address = self._pyrt_cpu
        if address and not self._pyrt_done:
            cpu = self._pyrt_ledger.cpu
            granted, self._pyrt_granted = self._pyrt_granted or self._pyrt_over, False
            if self._pyrt_held or not cpu.begin(address, self.loop.time(), granted=granted):
                self._pyrt_held += data  # read in its turn
                self.transport.pause_reading()
                self._pyrt_stop_clocks()
                cpu.wait(address, id(self.transport), self._pyrt_cpu_turn)
                return
            started = time.perf_counter()
            self._pyrt_parse(data)
            self._pyrt_charge(time.perf_counter() - started + EVENT_OVERHEAD)
        else:
            self._pyrt_parse(data)

    def _pyrt_charge(self, seconds: float) -> None:
        if self._pyrt_cpu:
            self._pyrt_ledger.cpu.charge(self._pyrt_cpu, seconds, self.loop.time())

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if not self._pyrt_cpu:
            super()._start_asgi_task(cycle, app)
            return
        inner = app  # every step of the request's application is charged to its address

        def timed(scope: Any, receive: Any, send: Any) -> Timed:
            return Timed(inner(scope, receive, send), self._pyrt_charge)

        super()._start_asgi_task(cycle, timed)

    def _pyrt_parse(self, data: bytes) -> None:
        max_head_bytes = self._pyrt_limits.max_head_bytes
        position = 0
        while position < len(data) and not self._pyrt_done:
            if self.transport.get_protocol() is not self:  # upgraded to WebSocket
                return
            in_head = self._pyrt_in_head
            room = max_head_bytes - (self._pyrt_head_bytes if in_head else self._pyrt_framing)
            if room <= 0:
                if in_head:
                    self._pyrt_refuse(431, "Request Header Fields Too Large", "request head too large")
                else:
                    self._pyrt_abandon(431, "Request Header Fields Too Large", "chunk framing too large")
                return
            piece = data[position : position + room] if position or len(data) > room else data
            position += len(piece)
            if in_head:
                self._pyrt_head_bytes += len(piece)
            self._pyrt_progress = False
            super().data_received(piece)
            if self._pyrt_trailers:
                self._pyrt_abandon(400, "Bad Request", "request trailers are not accepted")
                return
            if not in_head:
                self._pyrt_framing = 0 if self._pyrt_progress else self._pyrt_framing + len(piece)

    def _pyrt_cpu_turn(self) -> None:
        held, self._pyrt_held = self._pyrt_held, b""
        if self._pyrt_done or self.transport.is_closing() or self.transport.get_protocol() is not self:
            return
        self._pyrt_restart_clocks()
        self._pyrt_granted = True
        if not self.flow.read_paused:
            self.transport.resume_reading()
        if held:
            self.data_received(held)
        else:  # its turn is reading what comes next (the address has had its turn)
            self._pyrt_ledger.cpu.begin(self._pyrt_cpu, self.loop.time(), granted=True)

    # --- parser callbacks -------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._pyrt_in_head = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._pyrt_in_head:  # a trailer field, after a chunked body
            self._pyrt_trailers = True
            return
        super().on_header(name, value)

    def on_body(self, body: bytes) -> None:
        self._pyrt_progress = True
        super().on_body(body)

    def on_chunk_complete(self) -> None:  # httptools calls it when the protocol has it
        self._pyrt_progress = True

    def on_headers_complete(self) -> None:
        self._pyrt_in_head = False
        self._pyrt_framing = 0
        self._pyrt_cancel_head()
        if len(self.pipeline) >= MAX_PIPELINE:
            self._pyrt_done = True
            reset(self.transport)
            return
        if self._pyrt_over:
            self.app = too_many_connections
        super().on_headers_complete()
        upgrading = self.parser.should_upgrade() and self._should_upgrade()
        body_timeout = self._pyrt_limits.body_timeout
        if body_timeout > 0 and not upgrading:
            self._pyrt_body_timer = self.loop.call_later(body_timeout, self._pyrt_body_expired)

    def on_message_complete(self) -> None:
        if self._pyrt_trailers:  # refused by data_received: the application never sees it end
            return
        self._pyrt_progress = True
        self._pyrt_cancel_body()
        self._pyrt_in_head = True
        self._pyrt_head_bytes = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._pyrt_arm_head()

    def _should_upgrade(self) -> bool:
        return not self._pyrt_over and super()._should_upgrade()

    def _unsupported_upgrade_warning(self) -> None:
        if not self._pyrt_over:
            super()._unsupported_upgrade_warning()

    # --- timers -----------------------------------------------------------------------------------

    def _pyrt_arm_head(self) -> None:
        self._pyrt_cancel_head()
        head_timeout = self._pyrt_limits.head_timeout
        if head_timeout > 0:
            self._pyrt_head_timer = self.loop.call_later(head_timeout, self._pyrt_head_expired)

    # While a connection waits for its turn the server is the slow one: the head and body
    # timeouts measure the client's time only, so their clocks stop meanwhile.

    def _pyrt_stop_clocks(self) -> None:
        self._unset_keepalive_if_required()  # uvicorn's idle timeout: the client sent something
        if not self._pyrt_waiting_since:
            self._pyrt_waiting_since = self.loop.time()
            for timer in (self._pyrt_head_timer, self._pyrt_body_timer):
                if timer is not None:
                    timer.cancel()

    def _pyrt_restart_clocks(self) -> None:
        waited = self.loop.time() - self._pyrt_waiting_since if self._pyrt_waiting_since else 0.0
        self._pyrt_waiting_since = 0.0
        head, body = self._pyrt_head_timer, self._pyrt_body_timer
        if head is not None:
            self._pyrt_head_timer = self.loop.call_at(head.when() + waited, self._pyrt_head_expired)
        if body is not None:
            self._pyrt_body_timer = self.loop.call_at(body.when() + waited, self._pyrt_body_expired)

    def _pyrt_head_expired(self) -> None:
        self._pyrt_head_timer = None
        busy = self.cycle is not None and not self.cycle.response_complete
        if self._pyrt_in_head and not busy and not self.transport.is_closing():
            self._pyrt_done = True
            self.transport.abort()

    def _pyrt_body_expired(self) -> None:
        self._pyrt_body_timer = None
        cycle = self.cycle
        if cycle is None or not cycle.more_body or self.transport.is_closing():
            return
        log.info("a request body took over %.0fs: closing the connection", self._pyrt_limits.body_timeout)
        self._pyrt_abandon(408, "Request Timeout", "request body too slow")

    def _pyrt_abandon(self, status: int, reason: str, text: str) -> None:
        """Refuse the request whose body is being read: the application sees its client go,
        the client gets ``status`` (unless an answer has begun) and the connection closes."""
        self._pyrt_done = True
        self._pyrt_cancel_timers()
        cycle = self.cycle
        started = cycle is not None and cycle.response_started
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        if not started:
            self.transport.write(status_response(status, reason, text))
        self.transport.close()

    def _pyrt_refuse(self, status: int, reason: str, text: str) -> None:
        self._pyrt_done = True
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(status_response(status, reason, text))
            self.transport.close()
        else:
            reset(self.transport)

    def _pyrt_cancel_head(self) -> None:
        if self._pyrt_head_timer is not None:
            self._pyrt_head_timer.cancel()
            self._pyrt_head_timer = None

    def _pyrt_cancel_body(self) -> None:
        if self._pyrt_body_timer is not None:
            self._pyrt_body_timer.cancel()
            self._pyrt_body_timer = None

    def _pyrt_cancel_timers(self) -> None:
        self._pyrt_cancel_head()
        self._pyrt_cancel_body()
