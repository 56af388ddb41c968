"""uvicorn's HTTP and WebSocket protocols with the limits ``serve.py`` needs below the application.

What the ASGI application cannot see, these enforce per TCP connection:

- **Connections.** At most ``max_connections`` sockets in all (the server never runs out of file
  descriptors), and ``per_ip`` per client address: over it, a request is answered 429 and the
  connection closed; more than ``OVERFLOW`` sockets beyond it are reset at once. Peers listed as
  trusted proxies are not capped here (their clients are counted by the application instead).
- **Request heads.** Each head (the first and every keep-alive one) must be complete within
  ``head_timeout`` seconds and ``max_head_bytes`` bytes (431), and a connection may queue at most
  ``MAX_PIPELINE`` pipelined requests.
- **Request bodies.** A body must be complete within ``body_timeout`` seconds of its head (408).
  A chunked body may carry no trailer fields (pyrt needs none; llhttp would hand them over as
  headers, beyond the head limit): the request is refused (400) and nothing of it reaches the
  application. What a chunked body holds besides its data (chunk sizes and extensions) counts
  against ``max_head_bytes`` between two pieces of data (431).
- **WebSocket control frames.** PONGs (and everything else) are written without waiting, so a
  client that sends PINGs and never reads would make the server buffer the answers. When the
  socket's write buffer passes its high-water mark, the server stops reading from that client
  until the client has read what it was sent: a client that never reads holds one socket buffer.
- **Compressed WebSocket messages.** A message may inflate to :data:`INFLATE_FLOOR` or to
  ``inflate_ratio`` times its compressed size, whichever is larger: inflating stops there and the
  connection is closed with 1009 (a 1 KB frame inflating to 1 MiB costs the server a thousand
  times what it cost to send). Without context takeover, compressing a message gives the same
  bytes for every connection with the same settings: a text written to many connections in one
  turn of the event loop (a fan-out) is compressed once and the frame shared.
- **CPU per address.** The time the server spends on a client is measured and charged to its
  address: its protocol's callbacks (reading, parsing, inflating) and every step of the
  application task serving each of its connections (a request, a WebSocket session), plus
  :data:`EVENT_OVERHEAD` per callback for the event loop's own work. An address has a share of
  one core (``cpu_share``, in bursts of ``cpu_burst`` seconds); over it, its connections are
  read no more until it is back within it, and then take turns (first come, first served) one
  piece at a time: a client at the per-address connection cap gets its share, and other
  clients are served between its pieces.
- **Received WebSocket messages.** With permessage-deflate, one 256 KiB read can hold hundreds of
  messages that inflate to 1 MiB each. Received bytes are handed to the parser in small pieces,
  and no more while more than ``inbox_bytes`` of this connection's messages wait for (or are being
  handled by) the application, or more than ``address_inbox_bytes`` of its address's, or more
  than ``total_inbox_bytes`` of everyone's. A connection held back resumes when room is made:
  received data waits in the kernel, and the client slows down (TCP flow control).

:func:`protocols` builds both classes around one :class:`Ledger`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import PayloadTooBig
from websockets.extensions.permessage_deflate import PerMessageDeflate, ServerPerMessageDeflateFactory
from websockets.frames import CONT, CTRL_OPCODES, Frame, Opcode
from websockets.server import ServerProtocol
from websockets.typing import ExtensionParameter

from pyrt.server.limits import Meter

__all__ = [
    "CONNECTION_OVERHEAD",
    "EVENT_OVERHEAD",
    "FEED_PIECE",
    "INFLATE_FLOOR",
    "MAX_PIPELINE",
    "OVERFLOW",
    "CpuBudget",
    "HttpLimits",
    "Ledger",
    "protocols",
]

log = logging.getLogger("pyrt.server")

OVERFLOW = 64  # sockets beyond the per-address cap that still get a polite 429
MAX_PIPELINE = 16  # pipelined requests one connection may queue
FEED_PIECE = 4096  # received WebSocket bytes handed to the parser at a time
INFLATE_FLOOR = 16 * 1024  # what any compressed message may inflate to, whatever its ratio

#: Seconds charged per protocol callback on top of what it measurably took: the event loop's
#: work around it (polling, scheduling), which no callback sees.
EVENT_OVERHEAD = 30e-6
#: Seconds charged per connection on top of its ``connection_made``: accepting it and closing it
#: (system calls, asyncio's transport), which no callback of ours sees.
CONNECTION_OVERHEAD = 200e-6
#: Seconds between two reconciliations of what the CPU budget charged with the CPU really used.
RECONCILE = 0.25


class _Timed:
    """Runs a coroutine as an awaitable, charging the time each of its steps takes."""

    __slots__ = ("_charge", "_coro")

    def __init__(self, coro: Coroutine[Any, Any, Any], charge: Callable[[float], None]) -> None:
        self._coro = coro
        self._charge = charge

    def __await__(self) -> _Timed:
        return self

    def __iter__(self) -> _Timed:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, value: Any) -> Any:
        started = time.perf_counter()
        try:
            return self._coro.send(value)
        finally:
            self._charge(time.perf_counter() - started)

    def throw(self, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return self._coro.throw(*args)
        finally:
            self._charge(time.perf_counter() - started)

    def close(self) -> None:
        self._coro.close()


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Per-request limits (``0`` turns a timeout off)."""

    head_timeout: float = 10.0
    body_timeout: float = 30.0
    max_head_bytes: int = 32 * 1024
    #: Bytes of received WebSocket messages waiting for the application before reading stops: per
    #: connection, per client address (not for trusted proxies), and for the whole process.
    inbox_bytes: int = 1024 * 1024
    address_inbox_bytes: int = 32 * 1024 * 1024
    total_inbox_bytes: int = 256 * 1024 * 1024
    #: A compressed message inflates to at most INFLATE_FLOOR or this many times its size (0: off).
    inflate_ratio: int = 32


class _Account:
    __slots__ = ("busy", "measured", "meter", "timer", "waiting")

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.measured = 0.0  # seconds charged since the last reconciliation
        self.waiting: dict[int, Callable[[], None]] = {}  # connections waiting for a turn, in order
        self.timer: asyncio.Handle | None = None  # the next turn, scheduled
        self.busy = False  # a piece of its input was read in this turn of the event loop


class CpuBudget:
    """The CPU time each client address may have the server spend on it, and its turns.

    An address reads at most one piece of its input (a request head with what follows it, 4 KiB
    of WebSocket data) per turn of the event loop, whatever its number of connections: other
    clients are served between its pieces. And it has a share of one core: :meth:`charge`
    records the work done for it (seconds, measured); in debt, it reads nothing until the debt
    is paid back. Every :data:`RECONCILE` seconds what was charged is scaled to the CPU time the
    event loop's thread really used meanwhile: work no measurement sees (the loop's own, tasks
    and callbacks a client's requests set off) is shared out in proportion, and time a
    measurement counted while the process was not running (a busy machine) is given back.
    A connection that may not read now (:meth:`begin` is false) holds what it
    received and calls :meth:`wait` with a ``turn`` callback; turns come one per loop turn, in
    the order the connections asked, and ``turn`` must call ``begin(..., granted=True)`` and read
    what it held at once.
    """

    def __init__(self, share: float, burst: float) -> None:
        self.rate = max(0.0, share)  # seconds of work per second
        self.burst = max(0.0, burst)
        self._accounts: dict[str, _Account] = {}
        self._measured = 0.0  # seconds charged since the last reconciliation, every address
        self._cpu = 0.0  # the loop thread's CPU time at the last reconciliation
        self._reconciling: asyncio.TimerHandle | None = None

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def _account(self, address: str, now: float) -> _Account:
        account = self._accounts.get(address)
        if account is None:
            if len(self._accounts) > 4096:  # forget the addresses idle and back within budget
                for key in [
                    k for k, a in self._accounts.items() if not a.waiting and not a.busy and a.meter.full(now)
                ]:
                    del self._accounts[key]
            account = self._accounts[address] = _Account(Meter(self.rate, self.burst, now))
        return account

    def charge(self, address: str, seconds: float, now: float) -> None:
        if self.rate > 0:
            account = self._account(address, now)
            account.meter.charge(seconds, now)
            account.measured += seconds
            self._measured += seconds
            if self._reconciling is None:
                self._cpu = time.thread_time()
                self._reconciling = asyncio.get_running_loop().call_later(RECONCILE, self._reconcile)

    def _reconcile(self) -> None:
        self._reconciling = None
        cpu = time.thread_time()
        used, self._cpu = cpu - self._cpu, cpu
        measured, self._measured = self._measured, 0.0
        if measured <= 0:
            return  # nothing charged: stop until the next charge
        # at most 3 times: the little a client was charged must not make it pay for a long pause
        # of work nobody's requests set off (a fan-out, housekeeping)
        factor = min(used / measured, 3.0)
        now = asyncio.get_running_loop().time()
        for account in self._accounts.values():
            if account.measured:
                account.meter.charge(account.measured * (factor - 1), now)  # less than 0: a refund
                account.measured = 0.0
        self._cpu = time.thread_time()
        self._reconciling = asyncio.get_running_loop().call_later(RECONCILE, self._reconcile)

    def begin(self, address: str, now: float, *, granted: bool = False) -> bool:
        """Whether ``address`` may read a piece of its input now (then it has had its turn);
        ``granted``: it is the turn a :meth:`wait` was given."""
        if self.rate <= 0:
            return True
        account = self._account(address, now)
        if not granted and (account.busy or account.waiting or account.meter.wait(now) > 0):
            return False
        if not account.busy:
            account.busy = True
            asyncio.get_running_loop().call_soon(self._release, address)
        return True

    def wait(self, address: str, key: int, turn: Callable[[], None]) -> None:
        """Call ``turn`` when it is the turn of connection ``key`` of ``address``."""
        loop = asyncio.get_running_loop()
        account = self._account(address, loop.time())
        account.waiting.setdefault(key, turn)
        if not account.busy and account.timer is None:
            self._schedule(address, account, loop)

    def waiting(self, address: str) -> bool:
        """Whether connections of ``address`` are waiting for their turn."""
        account = self._accounts.get(address)
        return account is not None and bool(account.waiting)

    def forget(self, address: str, key: int) -> None:
        """Connection ``key`` is gone: it waits no more."""
        account = self._accounts.get(address)
        if account is not None:
            account.waiting.pop(key, None)

    def _schedule(self, address: str, account: _Account, loop: asyncio.AbstractEventLoop) -> None:
        delay = account.meter.wait(loop.time())
        if delay > 0:
            account.timer = loop.call_later(delay, self._next, address)
        else:
            account.timer = loop.call_soon(self._next, address)

    def _release(self, address: str) -> None:
        account = self._accounts.get(address)
        if account is not None:
            account.busy = False
            if account.waiting and account.timer is None:
                self._schedule(address, account, asyncio.get_running_loop())

    def _next(self, address: str) -> None:
        account = self._accounts.get(address)
        if account is None:
            return
        account.timer = None
        loop = asyncio.get_running_loop()
        if account.busy or account.meter.wait(loop.time()) > 0:
            if account.waiting and not account.busy:
                self._schedule(address, account, loop)
            return
        while account.waiting and not account.busy:
            key = next(iter(account.waiting))
            turn = account.waiting.pop(key)
            try:
                turn()  # reads what the connection held (begin, granted): the address is busy
            except Exception:
                log.exception("reading a held connection failed")


class Ledger:
    """Open TCP connections per peer address and in all.

    :meth:`admit` returns ``"ok"``, ``"over"`` (over the per-address cap: answer 429 and close) or
    ``"refuse"`` (reset now). Every admitted transport is released exactly once by :meth:`release`
    (idempotent), whichever protocol owns it by then.
    """

    def __init__(
        self,
        max_connections: int,
        per_ip: int,
        trusted: Iterable[str] = (),
        *,
        address_inbox: int = 0,
        total_inbox: int = 0,
        cpu_share: float = 0.0,
        cpu_burst: float = 0.02,
    ) -> None:
        self.max_connections = max_connections
        #: The CPU budget of each client address (trusted proxies have none).
        self.cpu = CpuBudget(cpu_share, cpu_burst)
        self.per_ip = per_ip
        self.address_inbox = address_inbox
        self.total_inbox = total_inbox
        self._trusted_all = "*" in trusted
        self._trusted = [ipaddress.ip_network(t, strict=False) for t in trusted if t != "*"]
        self._open: dict[int, str] = {}  # id(transport) -> address
        self._per_ip: Counter[str] = Counter()
        self._inbox: Counter[str] = Counter()  # received bytes waiting for the app, per address
        self._inbox_total = 0
        self._waiting: dict[int, Callable[[], None]] = {}  # connections held back for room

    def __len__(self) -> int:
        return len(self._open)

    def count(self, address: str) -> int:
        return self._per_ip.get(address, 0)

    def trusted(self, address: str) -> bool:
        """Whether ``address`` is a configured proxy (its clients are capped by the application)."""
        if self._trusted_all:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)

    def admit(self, transport: asyncio.BaseTransport) -> str:
        if self.max_connections and len(self._open) >= self.max_connections:
            return "refuse"
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        verdict = "ok"
        if self.per_ip and not self.trusted(address):
            already = self._per_ip[address]
            if already >= self.per_ip + OVERFLOW:
                return "refuse"
            if already >= self.per_ip:
                verdict = "over"
        self._open[id(transport)] = address
        self._per_ip[address] += 1
        return verdict

    # --- received bytes waiting for the application ---------------------------------------------

    def _address(self, transport: asyncio.BaseTransport) -> str:
        return self._open.get(id(transport), "unknown")

    def inbox_full(self, transport: asyncio.BaseTransport) -> bool:
        """Whether the address of ``transport`` (or the whole process) has no room left."""
        if self.total_inbox and self._inbox_total > self.total_inbox:
            return True
        address = self._address(transport)
        if not self.address_inbox or self.trusted(address):
            return False
        return self._inbox[address] > self.address_inbox

    def inbox_add(self, transport: asyncio.BaseTransport, size: int) -> None:
        self._inbox[self._address(transport)] += size
        self._inbox_total += size

    def inbox_remove(self, transport: asyncio.BaseTransport, size: int) -> None:
        """``size`` bytes were handled: wake connections that were held back for room."""
        if size <= 0:
            return
        address = self._address(transport)
        left = self._inbox[address] - size
        if left > 0:
            self._inbox[address] = left
        else:
            self._inbox.pop(address, None)
        self._inbox_total = max(0, self._inbox_total - size)
        if self._waiting:
            waiting, self._waiting = self._waiting, {}
            for wake in waiting.values():
                wake()

    def wait_for_room(self, transport: asyncio.BaseTransport, wake: Callable[[], None]) -> None:
        """Call ``wake`` once received bytes were handled somewhere (then check again)."""
        self._waiting[id(transport)] = wake

    # --- the CPU budget of each address -----------------------------------------------------------

    def cpu_address(self, transport: asyncio.BaseTransport) -> str | None:
        """The address whose budget ``transport``'s input is charged to (``None``: none)."""
        if not self.cpu.enabled:
            return None
        address = self._open.get(id(transport))
        return None if address is None or self.trusted(address) else address

    def release(self, transport: asyncio.BaseTransport) -> None:
        self._waiting.pop(id(transport), None)
        address = self._open.pop(id(transport), None)
        if address is None:
            return
        self.cpu.forget(address, id(transport))
        left = self._per_ip[address] - 1
        if left > 0:
            self._per_ip[address] = left
        else:
            del self._per_ip[address]


def _reset(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    else:
        transport.close()


def _refuse(transport: asyncio.BaseTransport) -> None:
    """Reset a connection that was just accepted and free its file descriptor *now*.

    ``abort()`` closes the socket on the next loop iteration, but asyncio accepts up to its whole
    backlog in one go: in a flood, refused sockets would pile up and exhaust the descriptors
    before any is closed. The transport's own socket object is closed here (asyncio's later close
    of the same object does nothing), after ``abort()`` has unregistered it from the loop.
    """
    _reset(transport)
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

    def qsize(self) -> int:
        return len(self._items)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)


class InflatesTooMuch(PayloadTooBig):
    """A compressed message inflated beyond what its size allows (closed with 1009)."""

    def __init__(self, ratio: int) -> None:
        super().__init__(None, 0)
        self.ratio = ratio

    def __str__(self) -> str:
        return f"message inflates more than {self.ratio} times its compressed size"


class CappedDeflate(PerMessageDeflate):
    """permessage-deflate whose messages inflate to at most :data:`INFLATE_FLOOR` or ``ratio``
    times their compressed size (counted over the frames of a fragmented message): zlib is told
    to stop there, so a bomb costs the server no more than that."""

    ratio = 0
    _compressed = 0  # compressed bytes of the message being received
    _inflated = 0  # what they inflated to

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        if self.ratio <= 0 or frame.opcode in CTRL_OPCODES:
            return super().decode(frame, max_size=max_size)
        if frame.opcode is CONT:
            if not self.decode_cont_data:
                return frame
        elif not frame.rsv1:
            return frame
        else:
            self._compressed = self._inflated = 0
        self._compressed += len(frame.data)
        # at least 1: zlib takes a limit of 0 as no limit at all
        allowed = max(1, max(INFLATE_FLOOR, self.ratio * self._compressed) - self._inflated)
        capped = max_size is None or allowed < max_size
        try:
            decoded = super().decode(frame, max_size=allowed if capped else max_size)
        except PayloadTooBig:
            if capped:
                raise InflatesTooMuch(self.ratio) from None
            raise
        self._inflated += len(decoded.data)
        return decoded


class CappedDeflateFactory(ServerPerMessageDeflateFactory):
    """:class:`ServerPerMessageDeflateFactory` negotiating :class:`CappedDeflate`."""

    def __init__(self, ratio: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ratio = ratio

    def process_request_params(
        self, params: Any, accepted_extensions: Any
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        response, negotiated = super().process_request_params(params, accepted_extensions)
        assert isinstance(negotiated, PerMessageDeflate)
        extension = CappedDeflate(
            negotiated.remote_no_context_takeover,
            negotiated.local_no_context_takeover,
            negotiated.remote_max_window_bits,
            negotiated.local_max_window_bits,
            negotiated.compress_settings,
        )
        extension.ratio = self.ratio
        return response, extension


class SharedFrames:
    """Frames compressed during one turn of the event loop, by window size and text: a fan-out
    compresses each text once (without context takeover the result is the same for everyone).
    Forgotten at the end of the turn."""

    def __init__(self) -> None:
        self._frames: dict[tuple[int, bytes], bytes] = {}
        self._clearing = False

    def frame(self, extension: PerMessageDeflate, text: bytes) -> bytes:
        key = (extension.local_max_window_bits, text)
        frame = self._frames.get(key)
        if frame is None:
            frame = Frame(Opcode.TEXT, text).serialize(mask=False, extensions=[extension])
            self._frames[key] = frame
            if not self._clearing:
                self._clearing = True
                asyncio.get_running_loop().call_soon(self._clear)
        return frame

    def _clear(self) -> None:
        self._frames.clear()
        self._clearing = False


def _text_frame(payload: bytes) -> bytes:
    """One unmasked, final text frame (server to client, RFC 6455 section 5.2)."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return b"\x81\x7e" + size.to_bytes(2, "big") + payload
    return b"\x81\x7f" + size.to_bytes(8, "big") + payload


def _status(status: int, reason: str, text: str) -> bytes:
    body = text.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


async def _too_many_connections(scope: Any, receive: Any, send: Any) -> None:
    body = b"too many connections from your address"
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"retry-after", b"5"),  # when to come back (pyrt's CPython client honours it)
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def protocols(
    ledger: Ledger, limits: HttpLimits, *, deflate_context: bool = False
) -> tuple[type[HttpToolsProtocol], type[WebSocketsSansIOProtocol]]:
    """The HTTP and WebSocket protocol classes to give ``uvicorn.Config(http=..., ws=...)``.

    permessage-deflate (when ``Config.ws_per_message_deflate``) is negotiated without context
    takeover in either direction unless ``deflate_context``: each message is compressed on its
    own, so an idle connection holds no compressor or decompressor (about 40 KiB with them).
    """

    shared = SharedFrames()

    class LimitedWebSocketProtocol(WebSocketsSansIOProtocol):
        def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(config, *args, **kwargs)
            self.queue = _ReceiveQueue()  # type: ignore[assignment]
            if config.ws_per_message_deflate:
                settings: dict[str, Any] = {}
                if not deflate_context:
                    settings = {
                        "server_no_context_takeover": True,
                        "client_no_context_takeover": True,
                        "server_max_window_bits": 12,
                        "client_max_window_bits": 12,
                        "compress_settings": {"memLevel": 5},
                    }
                self.conn = ServerProtocol(
                    extensions=[CappedDeflateFactory(limits.inflate_ratio, **settings)],
                    max_size=config.ws_max_size,
                    logger=logging.getLogger("uvicorn.error"),
                )

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
                self._pyrt_cpu = ledger.cpu_address(self.transport) or ""
            return self._pyrt_cpu

        def _pyrt_charge(self, seconds: float) -> None:
            address = self._pyrt_cpu_key()
            if address:
                ledger.cpu.charge(address, seconds, self.loop.time())

        async def run_asgi(self) -> None:
            if self._pyrt_cpu_key():  # every step of the session is charged to its address
                await _Timed(super().run_asgi(), self._pyrt_charge)
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
            return self._pyrt_inbox > limits.inbox_bytes or ledger.inbox_full(self.transport)

        def _pyrt_feed(self, data: bytes, granted: bool = False) -> None:
            position = 0
            address = self._pyrt_cpu_key()
            while position < len(data):
                if self._pyrt_no_room():
                    self._pyrt_held = data[position:]
                    self.transport.pause_reading()
                    if self._pyrt_inbox <= limits.inbox_bytes:  # the address or process is full
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
                ledger.inbox_add(self.transport, size)
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
            ledger.inbox_remove(self.transport, handled)
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
            if self.handshake_complete and message["type"] == "websocket.accept":
                # The handshake's request and response (their headers: ~3 KiB) are not needed
                # again; an idle connection should not keep them.
                with contextlib.suppress(AttributeError):
                    del self.request, self.response

        # --- serve.py's direct send path (pyrt.server.connection.DirectWriter) ------------------

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
                self._pyrt_send_texts(texts)
                self._pyrt_charge(time.perf_counter() - started)
            else:
                self._pyrt_send_texts(texts)

        def _pyrt_send_texts(self, texts: list[bytes]) -> None:
            conn = self.conn
            extensions = conn.extensions
            if not extensions:
                self.transport.write(b"".join([_text_frame(text) for text in texts]))
                return
            deflate = extensions[0]
            if (
                len(extensions) == 1
                and isinstance(deflate, PerMessageDeflate)
                and deflate.local_no_context_takeover
            ):
                # without context takeover the frame is the same for everyone: shared
                self.transport.write(b"".join([shared.frame(deflate, text) for text in texts]))
                return
            for text in texts:  # compressed with this connection's own context
                conn.send_text(text)
            self.transport.write(b"".join(conn.data_to_send()))

        def connection_lost(self, exc: Exception | None) -> None:
            ledger.inbox_remove(self.transport, self._pyrt_inbox)
            self._pyrt_inbox = 0
            ledger.release(self.transport)
            super().connection_lost(exc)

    class LimitedHttpProtocol(HttpToolsProtocol):
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

        # --- connection -------------------------------------------------------------------------

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            started = time.perf_counter()
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
            ledger.release(self.transport)
            self._pyrt_cancel_timers()
            if self._pyrt_done and self.flow is None:
                return  # refused before uvicorn knew about it
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            address = self._pyrt_cpu
            if address and not self._pyrt_done:
                granted, self._pyrt_granted = self._pyrt_granted or self._pyrt_over, False
                if self._pyrt_held or not ledger.cpu.begin(address, self.loop.time(), granted=granted):
                    self._pyrt_held += data  # read in its turn
                    self.transport.pause_reading()
                    self._pyrt_stop_clocks()
                    ledger.cpu.wait(address, id(self.transport), self._pyrt_cpu_turn)
                    return
                started = time.perf_counter()
                self._pyrt_parse(data)
                self._pyrt_charge(time.perf_counter() - started + EVENT_OVERHEAD)
            else:
                self._pyrt_parse(data)

        def _pyrt_charge(self, seconds: float) -> None:
            if self._pyrt_cpu:
                ledger.cpu.charge(self._pyrt_cpu, seconds, self.loop.time())

        def _start_asgi_task(self, cycle: Any, app: Any) -> None:
            if not self._pyrt_cpu:
                super()._start_asgi_task(cycle, app)
                return
            inner = app  # every step of the request's application is charged to its address

            def timed(scope: Any, receive: Any, send: Any) -> _Timed:
                return _Timed(inner(scope, receive, send), self._pyrt_charge)

            super()._start_asgi_task(cycle, timed)

        def _pyrt_parse(self, data: bytes) -> None:
            position = 0
            while position < len(data) and not self._pyrt_done:
                if self.transport.get_protocol() is not self:  # upgraded to WebSocket
                    return
                in_head = self._pyrt_in_head
                room = limits.max_head_bytes - (self._pyrt_head_bytes if in_head else self._pyrt_framing)
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
                ledger.cpu.begin(self._pyrt_cpu, self.loop.time(), granted=True)

        # --- parser callbacks -------------------------------------------------------------------

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

        def on_chunk_complete(self) -> None:
            self._pyrt_progress = True

        def on_headers_complete(self) -> None:
            self._pyrt_in_head = False
            self._pyrt_framing = 0
            self._pyrt_cancel_head()
            if len(self.pipeline) >= MAX_PIPELINE:
                self._pyrt_done = True
                _reset(self.transport)
                return
            if self._pyrt_over:
                self.app = _too_many_connections
            super().on_headers_complete()
            upgrading = self.parser.should_upgrade() and self._should_upgrade()
            if limits.body_timeout > 0 and not upgrading:
                self._pyrt_body_timer = self.loop.call_later(limits.body_timeout, self._pyrt_body_expired)

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

        # --- timers -----------------------------------------------------------------------------

        def _pyrt_arm_head(self) -> None:
            self._pyrt_cancel_head()
            if limits.head_timeout > 0:
                self._pyrt_head_timer = self.loop.call_later(limits.head_timeout, self._pyrt_head_expired)

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
            log.info("a request body took over %.0fs: closing the connection", limits.body_timeout)
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
                self.transport.write(_status(status, reason, text))
            self.transport.close()

        def _pyrt_refuse(self, status: int, reason: str, text: str) -> None:
            self._pyrt_done = True
            if self.cycle is None or self.cycle.response_complete:
                self.transport.write(_status(status, reason, text))
                self.transport.close()
            else:
                _reset(self.transport)

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

    return LimitedHttpProtocol, LimitedWebSocketProtocol
