"""Load clients for the server benchmarks: many raw asyncio connections in one process.

Hand-rolled minimal WebSocket / Engine.IO / SSE clients (no per-connection task, no full
protocol library) so one process can hold thousands of subscribers cheaply on a 2-core machine.

Subscribers: ``python -m bench.loadgen sub --kind KIND --url URL --count N [--sample-every K]``
prints ``{"event": "ready", ...}`` once every connection is open (and subscribed), then answers
commands on stdin, one per line: ``report`` (prints delivered count, latency samples in ms,
process CPU seconds), ``count`` (the same without samples), ``reset`` and ``quit``.

Publisher: ``python -m bench.loadgen pub --kind KIND --url URL --rate R --seconds S`` publishes R
messages per second on an absolute schedule and prints ``{"event": "done", ...}``.

Kinds: ``pyrt`` (serve.py ``/ws``, subprotocols ``pyrt.v1.batch, pyrt.v1`` like pyrt's own
clients: subscribe / publish frames, batched frames split at line breaks), ``pyrt1`` (the same
offering only ``pyrt.v1``, as clients from before batching did), ``pyrt-deflate`` (``pyrt`` that
also offers permessage-deflate as Chromium does), ``pyrt-http`` (serve.py ``/ws`` over the HTTP
binding: a streamed ``GET`` with ``Accept: text/event-stream``, the ``subscribe`` frame and every
``pong`` in a ``POST ?key=K&seq=N`` on a connection of its own, closed once answered),
``ws`` (the minimal broadcast server: ``/sub`` and ``/pub``), ``sio`` (Socket.IO v4 over its
WebSocket transport), ``sse`` (subscribers only: any event-stream URL).

Every published message carries ``"ts"`` (``time.time()``); subscribers on every K-th connection
record ``now - ts`` as publish -> deliver latency (one machine, one clock).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

CHANNEL = "bench"
PAD = "abcdefghijklmnopqrstuvwx"
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
MAX_SAMPLES = 200_000
BATCH = "pyrt.v1.batch, pyrt.v1"
SUBPROTOCOLS = {"pyrt": BATCH, "pyrt1": "pyrt.v1", "pyrt-deflate": BATCH}
#: What Chromium offers in every WebSocket handshake.
CHROMIUM_DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"


def _ts_of(payload: bytes) -> float | None:
    i = payload.find(b'"ts":')
    if i < 0:
        return None
    j = i + 5
    end = j
    while end < len(payload) and payload[end] not in b",}]":
        end += 1
    try:
        return float(payload[j:end])
    except ValueError:
        return None


class Stats:
    """What every subscriber connection of this process has received."""

    def __init__(self) -> None:
        self.delivered = 0
        self.samples: list[float] = []
        self.last_delivery = 0.0
        self.closed = 0

    def deliver(self, payload: bytes, sample: bool) -> None:
        self.delivered += 1
        now = time.time()
        self.last_delivery = now
        if sample and len(self.samples) < MAX_SAMPLES:
            ts = _ts_of(payload)
            if ts is not None:
                self.samples.append(round((now - ts) * 1000, 2))

    def reset(self) -> None:
        self.delivered = 0
        self.samples = []
        self.last_delivery = 0.0


# ---------------------------------------------------------------- WebSocket (client side of RFC 6455)


def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame; the all-zero mask key leaves the payload bytes as they are."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")
    return header + b"\x00\x00\x00\x00" + payload


class WSConnection(asyncio.Protocol):
    """One WebSocket client connection; ``on_text(conn, payload)`` for every text message."""

    def __init__(
        self,
        host: str,
        path: str,
        subprotocol: str | None,
        on_text: Callable[[WSConnection, bytes], None],
        *,
        deflate: bool = False,
    ) -> None:
        self.host, self.path, self.subprotocol = host, path, subprotocol
        #: Offer permessage-deflate as Chromium does; inflate compressed messages if accepted.
        self.deflate = deflate
        self.inflater: Any = None
        self.no_context = False
        self.on_text = on_text
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.buf = bytearray()
        self.fragments = bytearray()
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sample = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        lines = [
            f"GET {self.path} HTTP/1.1",
            f"Host: {self.host}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {WS_KEY}",
            "Sec-WebSocket-Version: 13",
        ]
        if self.subprotocol:
            lines.append(f"Sec-WebSocket-Protocol: {self.subprotocol}")
        if self.deflate:
            lines.append(f"Sec-WebSocket-Extensions: {CHROMIUM_DEFLATE_OFFER}")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def send_text(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(ws_frame(payload))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            if b" 101 " not in status:
                self._fail(f"handshake refused: {status.decode(errors='replace')}")
                return
            head = bytes(buf[:end]).lower()
            del buf[: end + 4]
            self.upgraded = True
            if b"permessage-deflate" in head:
                self.no_context = b"server_no_context_takeover" in head
                self.inflater = zlib.decompressobj(-15)
            self.opened()
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if size - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            if b0 & 0x40 and self.inflater is not None:  # RSV1: a compressed message
                payload = self.inflater.decompress(payload + b"\x00\x00\xff\xff")
                if self.no_context:
                    self.inflater = zlib.decompressobj(-15)
            self._frame(b0 & 0x80, b0 & 0x0F, payload)
        if pos:
            del buf[:pos]

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode == 0x0:  # continuation
            self.fragments += payload
            if fin:
                whole, self.fragments = bytes(self.fragments), bytearray()
                self.on_text(self, whole)
        elif opcode == 0x1:
            if fin:
                self.on_text(self, payload)
            else:
                self.fragments = bytearray(payload)
        elif opcode == 0x9 and self.transport is not None:  # ping -> pong
            self.transport.write(ws_frame(payload, 0xA))
        elif opcode == 0x8 and self.transport is not None:
            self.transport.close()

    def opened(self) -> None:
        """The handshake succeeded; protocols that need more (subscribe) override ``on_text``."""

    def _fail(self, why: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost: {exc}"))
        if not self.lost.done():
            self.lost.set_result(None)


# ---------------------------------------------------------------- per-kind subscriber behaviour


def pyrt_subscriber(stats: Stats) -> Callable[[WSConnection, bytes], None]:
    subscribe = json.dumps({"type": "subscribe", "channel": CHANNEL}).encode()

    def on_text(conn: WSConnection, payload: bytes) -> None:
        if b"\n" in payload:  # a batch (subprotocol pyrt.v1.batch): one frame per line
            for line in payload.split(b"\n"):
                on_frame(conn, line)
        else:
            on_frame(conn, payload)

    def on_frame(conn: WSConnection, payload: bytes) -> None:
        if b'"publication"' in payload[:40]:
            stats.deliver(payload, conn.sample)
            return
        frame = json.loads(payload)
        kind = frame.get("type")
        if kind == "welcome":
            conn.send_text(subscribe)
        elif kind == "subscribed" and not conn.ready.done():
            conn.ready.set_result(None)
        elif kind == "ping":
            conn.send_text(json.dumps({"type": "pong", "t": frame.get("t")}).encode())
        elif kind == "publication":
            stats.deliver(payload, conn.sample)

    return on_text


def ws_subscriber(stats: Stats) -> Callable[[WSConnection, bytes], None]:
    def on_text(conn: WSConnection, payload: bytes) -> None:
        stats.deliver(payload, conn.sample)

    return on_text


def sio_subscriber(stats: Stats) -> Callable[[WSConnection, bytes], None]:
    """Engine.IO v4 packets: ``0`` open, ``2`` ping, ``4`` message; Socket.IO ``0`` connect, ``2`` event."""

    def on_text(conn: WSConnection, payload: bytes) -> None:
        if payload.startswith(b"42"):
            stats.deliver(payload, conn.sample)
        elif payload.startswith(b"0"):
            conn.send_text(b"40")
        elif payload.startswith(b"40") and not conn.ready.done():
            conn.ready.set_result(None)
        elif payload == b"2":
            conn.send_text(b"3")

    return on_text


class SSEConnection(asyncio.Protocol):
    """A GET of an event stream; counts events that carry data (chunked or plain body)."""

    def __init__(self, host: str, path: str, stats: Stats) -> None:
        self.host, self.path, self.stats = host, path, stats
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()
        self.headers_done = False
        self.chunked = False
        self.raw = bytearray()  # undecoded chunked body
        self.chunk_left = 0
        self.text = bytearray()  # decoded event-stream bytes
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sample = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nAccept: text/event-stream\r\n"
            "Cache-Control: no-cache\r\n\r\n"
        )
        self.transport.write(request.encode())

    def data_received(self, data: bytes) -> None:
        if not self.headers_done:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.head[:end]).lower()
            rest = bytes(self.head[end + 4 :])
            if not head.startswith(b"http/1.1 200"):
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(head.split(b"\r\n")[0].decode()))
                assert self.transport is not None
                self.transport.close()
                return
            self.chunked = b"transfer-encoding: chunked" in head
            self.headers_done = True
            self.stream_opened()
            data = rest
        if self.chunked:
            self._dechunk(data)
        else:
            self.text += data
        self._events()

    def _dechunk(self, data: bytes) -> None:
        raw = self.raw
        raw += data
        pos = 0
        while pos < len(raw):
            if self.chunk_left > 0:
                take = min(self.chunk_left, len(raw) - pos)
                self.text += raw[pos : pos + take]
                pos += take
                self.chunk_left -= take
                if self.chunk_left == 0:
                    self.chunk_left = -2  # the CRLF after the chunk
                continue
            if self.chunk_left < 0:
                skip = min(-self.chunk_left, len(raw) - pos)
                pos += skip
                self.chunk_left += skip
                continue
            line_end = raw.find(b"\r\n", pos)
            if line_end < 0:
                break
            size = int(bytes(raw[pos:line_end]).split(b";")[0] or b"0", 16)
            pos = line_end + 2
            self.chunk_left = size if size else -2
        del raw[:pos]

    def _events(self) -> None:
        text = self.text
        start = 0
        while True:
            end = text.find(b"\n\n", start)
            if end < 0:
                break
            block = bytes(text[start:end])
            start = end + 2
            if b"data:" in block:
                self.on_event(block)
        if start:
            del text[:start]

    def stream_opened(self) -> None:
        """The answer is ``200``: a plain event stream is ready now."""
        if not self.ready.done():
            self.ready.set_result(None)

    def on_event(self, block: bytes) -> None:
        """One event that carries data (its raw lines)."""
        self.stats.deliver(block, self.sample)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost: {exc}"))
        if not self.lost.done():
            self.lost.set_result(None)


class HttpBindingConnection(SSEConnection):
    """A pyrt connection over serve.py's HTTP binding (docs/protocol.md): the stream is this
    ``GET``; the ``welcome`` names the connection's key, then the ``subscribe`` frame (and later
    each ``pong``) goes in a ``POST ?key=K&seq=N`` on a short connection of its own, as a browser
    whose keep-alive connection timed out would send it. Ready once ``subscribed``."""

    def __init__(self, host: str, path: str, stats: Stats) -> None:
        super().__init__(host, path, stats)
        self.key: str | None = None
        self.seq = 0
        self.posting: asyncio.Task[None] | None = None
        self.outbox: list[bytes] = []

    def stream_opened(self) -> None:
        """Not ready yet: the welcome and the subscription come first."""

    def on_event(self, block: bytes) -> None:
        data = b"\n".join(line[5:].lstrip(b" ") for line in block.split(b"\n") if line.startswith(b"data:"))
        if block.startswith(b"event: close") or b"\nevent: close" in block:
            if self.transport is not None:
                self.transport.close()
            return
        if b'"publication"' in data[:40]:
            self.stats.deliver(data, self.sample)
            return
        frame = json.loads(data)
        kind = frame.get("type")
        if kind == "welcome":
            self.key = frame.get("key")
            self.post(json.dumps({"type": "subscribe", "channel": CHANNEL}).encode())
        elif kind == "subscribed" and not self.ready.done():
            self.ready.set_result(None)
        elif kind == "ping":
            self.post(json.dumps({"type": "pong", "t": frame.get("t")}).encode())
        elif kind == "publication":
            self.stats.deliver(data, self.sample)

    def post(self, frame: bytes) -> None:
        """Send ``frame`` in the next POST: one at a time, in order, as the binding requires."""
        self.outbox.append(frame)
        if self.posting is None or self.posting.done():
            self.posting = asyncio.get_running_loop().create_task(self._post_all())

    async def _post_all(self) -> None:
        while self.outbox and self.key is not None:
            body = b"\n".join(self.outbox)
            self.outbox.clear()
            self.seq += 1
            host, _, port = self.host.rpartition(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                head = (
                    f"POST {self.path}?key={self.key}&seq={self.seq} HTTP/1.1\r\nHost: {self.host}\r\n"
                    f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n"
                )
                writer.write(head.encode() + body)
                status = await reader.readline()
            finally:
                writer.close()
            if b" 204 " not in status:
                why = ConnectionError(f"POST refused: {status.decode(errors='replace').strip()}")
                if not self.ready.done():
                    self.ready.set_exception(why)
                if self.transport is not None:
                    self.transport.close()
                return


# ---------------------------------------------------------------- commands


def _endpoint(kind: str, url: str, role: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if kind in SUBPROTOCOLS or kind == "pyrt-http":
        path = "/ws"
    elif kind == "ws":
        path = "/sub" if role == "sub" else "/pub"
    elif kind == "sio":
        path = "/socket.io/?EIO=4&transport=websocket" + ("&role=pub" if role == "pub" else "")
    return host, port, path


async def _connect(kind: str, url: str, stats: Stats, sample: bool) -> asyncio.Protocol:
    host, port, path = _endpoint(kind, url, "sub")
    loop = asyncio.get_running_loop()
    proto: WSConnection | SSEConnection
    if kind == "sse":
        proto = SSEConnection(f"{host}:{port}", path, stats)
    elif kind == "pyrt-http":
        proto = HttpBindingConnection(f"{host}:{port}", path, stats)
    else:
        factory = {"ws": ws_subscriber, "sio": sio_subscriber}.get(kind, pyrt_subscriber)
        proto = WSConnection(
            f"{host}:{port}", path, SUBPROTOCOLS.get(kind), factory(stats), deflate=kind == "pyrt-deflate"
        )
        if kind == "ws":
            proto.opened = lambda p=proto: p.ready.done() or p.ready.set_result(None)  # type: ignore[method-assign]
    proto.sample = sample
    await loop.create_connection(lambda: proto, host, port)
    try:
        await asyncio.wait_for(proto.ready, 10)
    except BaseException:
        if proto.transport is not None:
            proto.transport.close()
        raise
    return proto


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _stdin_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str]) -> None:
    for line in sys.stdin:
        loop.call_soon_threadsafe(queue.put_nowait, line.strip())
    loop.call_soon_threadsafe(queue.put_nowait, "quit")


async def subscribe(args: argparse.Namespace) -> None:
    stats = Stats()
    limit = asyncio.Semaphore(args.concurrency)
    conns: list[asyncio.Protocol] = []
    failures: list[str] = []

    retries = 0

    async def one(index: int) -> None:
        """Connect like a real client: a refused attempt is retried after a jittered backoff."""
        nonlocal retries
        for attempt in range(args.retries + 1):
            async with limit:
                try:
                    conns.append(await _connect(args.kind, args.url, stats, index % args.sample_every == 0))
                    return
                except (OSError, ConnectionError, TimeoutError, ValueError) as exc:
                    error = repr(exc)
            if attempt < args.retries:
                retries += 1
                await asyncio.sleep(random.uniform(0.1, 0.3) * 2**attempt)
        failures.append(error)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(args.count)))
    _emit(
        {
            "event": "ready",
            "connected": len(conns),
            "failed": len(failures),
            "retries": retries,
            "errors": failures[:3],
            "seconds": time.perf_counter() - started,
        }
    )
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str] = asyncio.Queue()
    threading.Thread(target=_stdin_lines, args=(loop, queue), daemon=True).start()
    while True:
        command = await queue.get()
        if command == "report":
            alive = sum(1 for c in conns if not c.lost.done())
            _emit(
                {
                    "event": "report",
                    "delivered": stats.delivered,
                    "last_delivery": stats.last_delivery,
                    "samples": stats.samples,
                    "cpu": time.process_time(),
                    "alive": alive,
                }
            )
        elif command == "count":
            _emit({"event": "count", "delivered": stats.delivered, "cpu": time.process_time()})
        elif command == "reset":
            stats.reset()
            _emit({"event": "reset"})
        elif command == "quit":
            break
    for conn in conns:
        transport = getattr(conn, "transport", None)
        if transport is not None:
            transport.close()


async def publish(args: argparse.Namespace) -> None:
    host, port, path = _endpoint(args.kind, args.url, "pub")
    loop = asyncio.get_running_loop()
    acks = 0
    opened: asyncio.Future[None] = loop.create_future()

    def on_text(conn: WSConnection, payload: bytes) -> None:
        nonlocal acks
        if args.kind == "pyrt":
            if b'"ack"' in payload:
                acks += 1
            elif b'"welcome"' in payload and not opened.done():
                opened.set_result(None)
            elif b'"ping"' in payload:
                frame = json.loads(payload)
                conn.send_text(json.dumps({"type": "pong", "t": frame.get("t")}).encode())
        elif args.kind == "sio":
            if payload.startswith(b"40") and not opened.done():
                opened.set_result(None)
            elif payload.startswith(b"0"):
                conn.send_text(b"40")
            elif payload == b"2":
                conn.send_text(b"3")

    conn = WSConnection(f"{host}:{port}", path, "pyrt.v1" if args.kind == "pyrt" else None, on_text)
    if args.kind == "ws":
        conn.opened = lambda: opened.done() or opened.set_result(None)  # type: ignore[method-assign]
    await loop.create_connection(lambda: conn, host, port)
    await asyncio.wait_for(opened, 30)
    if not conn.ready.done():
        conn.ready.set_result(None)
    total = max(1, round(args.rate * args.seconds))
    cpu0 = time.process_time()
    t_first = time.time()
    start = loop.time()
    for seq in range(total):
        due = start + seq / args.rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        data = {"ts": time.time(), "seq": seq, "pad": PAD}
        if args.kind == "pyrt":
            frame = {"type": "publish", "id": f"b{os.getpid()}-{seq}", "channel": CHANNEL, "data": data}
            conn.send_text(json.dumps(frame, separators=(",", ":")).encode())
        elif args.kind == "sio":
            conn.send_text(b"42" + json.dumps(["publish", data], separators=(",", ":")).encode())
        else:
            conn.send_text(json.dumps(data, separators=(",", ":")).encode())
    t_last = time.time()
    if args.kind == "pyrt":
        deadline = loop.time() + 10
        while acks < total and loop.time() < deadline:
            await asyncio.sleep(0.01)
    _emit(
        {
            "event": "done",
            "published": total,
            "acked": acks,
            "t_first": t_first,
            "t_last": t_last,
            "cpu": time.process_time() - cpu0,
        }
    )
    assert conn.transport is not None
    conn.transport.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="pyrt bench load clients")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sub")
    s.add_argument("--kind", choices=[*SUBPROTOCOLS, "pyrt-http", "ws", "sio", "sse"], required=True)
    s.add_argument("--url", required=True)
    s.add_argument("--count", type=int, default=100)
    s.add_argument("--sample-every", type=int, default=10)
    s.add_argument("--concurrency", type=int, default=100)
    s.add_argument("--retries", type=int, default=5, help="reconnect attempts per refused connection")
    p = sub.add_parser("pub")
    p.add_argument("--kind", choices=["pyrt", "ws", "sio"], required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--rate", type=float, default=10)
    p.add_argument("--seconds", type=float, default=3)
    args = parser.parse_args(argv)
    run(subscribe(args) if args.command == "sub" else publish(args))


def run(main_coroutine: Any) -> None:
    """``uvloop.run`` when uvloop is installed (as uvicorn uses it), else ``asyncio.run``."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main_coroutine)
    else:
        uvloop.run(main_coroutine)


if __name__ == "__main__":
    main()
