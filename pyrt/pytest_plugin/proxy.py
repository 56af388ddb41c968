"""A chaos TCP proxy for fault-injection tests, listening on 127.0.0.1 only.

It sits between a client (the browser, a CPython client) and ``serve.py`` and is controlled from
the test thread while traffic flows:

- ``pass`` (default): forward bytes both ways;
- :meth:`ChaosProxy.reset`: abort every current connection with a TCP RST, both sides;
- ``blackhole``: keep the sockets open but forward nothing (a half-open connection);
- ``latency``: delay every chunk by that many seconds (order kept);
- ``bandwidth``: cap each direction of each connection to that many bytes per second;
- ``cut_after``: reset a connection once it has carried that many bytes (both directions);
- ``refuse``: new connections are reset as soon as they are accepted (the server is "down")
  while the current ones keep flowing;
- :meth:`ChaosProxy.blackhole_existing`: blackhole only the connections open now (one or both
  directions), while new connections pass: a NAT entry or a load balancer forgot them;
- ``rcvbuf``: the receive buffer of new upstream sockets, so a bandwidth cap does not hide
  megabytes in the kernel the way a slow link would not;
- :meth:`ChaosProxy.retarget`: forward new connections to another upstream port.

Hostile middleboxes, as users meet them between their page and their server (read the HTTP
request head of each new connection, so they apply to connections opened after they are set):

- ``refuse_upgrade``: answer a WebSocket upgrade with that HTTP status (403, 400...) and close;
- ``strip_upgrade``: drop ``Upgrade``/``Connection`` from the upgrade request, so the server
  sees a plain ``GET`` (a proxy that does not know WebSockets);
- ``swallow_upgraded``: let the upgrade through (``101``), then pass no byte either way until the
  connection closes ("101 then silence": anti-virus software, some reverse proxies);
- ``buffer_streams``: hold a streamed (chunked) response back until it ends, unless its content
  type is ``text/event-stream`` (proxies that buffer what they do not know);
- ``idle_timeout``: cut a connection that carried no byte for that many seconds.

The proxy runs its own asyncio loop in a daemon thread; every control method is thread-safe.
:class:`ResetSchedule` resets every connection at random (seeded) intervals while a block runs.
A failing test's report lists the proxy's fault events during that test.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pyrt.pytest_plugin.reporting import REGISTRY, tail

__all__ = ["ChaosProxy", "ProxyStats", "ResetSchedule"]

Mode = Literal["pass", "blackhole"]
Direction = Literal["up", "down"]
T = TypeVar("T")


@dataclass
class ProxyStats:
    accepted: int = 0
    resets: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    dropped_bytes: int = 0
    upstream_failures: int = 0
    active: int = 0
    events: list[str] = field(default_factory=list)


class _Link:
    """One proxied connection: the client side and the upstream side."""

    def __init__(self, proxy: ChaosProxy, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter):
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.carried = 0
        self.closed = False
        self.blackholed: set[str] = set()  # directions this link drops (blackhole_existing)
        self.last_active = asyncio.get_running_loop().time()
        self.swallow = False  # drop every byte after the handshake (swallow_upgraded)
        self.buffer_streams = False  # hold a streamed response back (buffer_streams)

    def abort(self) -> None:
        if self.closed:
            return
        self.closed = True
        for writer in (self.client, self.upstream):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                # Linger 0: close() sends RST instead of FIN, like a dropped NAT entry.
                with contextlib.suppress(OSError):  # already closed by the peer's reset
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()


SETTINGS = frozenset(
    {
        "mode",
        "latency",
        "bandwidth",
        "cut_after",
        "refuse",
        "rcvbuf",
        "refuse_upgrade",
        "strip_upgrade",
        "swallow_upgraded",
        "buffer_streams",
        "idle_timeout",
    }
)


class ChaosProxy:
    """``ChaosProxy(upstream_port)``; :meth:`start` returns the port to connect to (also a context
    manager). ``url``/``ws_url`` are its ``http://``/``ws://`` addresses."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode: Mode = "pass"
        self.latency = 0.0
        self.bandwidth: float | None = None
        self.cut_after: int | None = None
        self.refuse = False
        self.rcvbuf: int | None = None
        self.refuse_upgrade: int | None = None
        self.strip_upgrade = False
        self.swallow_upgraded = False
        self.buffer_streams = False
        self.idle_timeout: float | None = None
        self.stats = ProxyStats()
        self.port = 0
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="chaos-proxy")
        self._server: asyncio.Server | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> int:
        self._thread.start()
        self.port = self._call(self._start())
        REGISTRY.track(self)
        return self.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.abort()
        # Let the connection handlers finish (or cancel them) so none is left pending.
        current = asyncio.current_task()
        others = [task for task in asyncio.all_tasks() if task is not current]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def __enter__(self) -> ChaosProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control (thread-safe) ---------------------------------------------------------------
    def set(self, **settings: Any) -> None:
        """Change ``mode``, ``latency``, ``bandwidth``, ``cut_after``, ``refuse`` or ``rcvbuf``
        while traffic flows."""
        unknown = sorted(set(settings) - SETTINGS)
        if unknown:
            known = ", ".join(sorted(SETTINGS))
            raise AttributeError(f"ChaosProxy has no setting {unknown[0]!r} (it has {known})")

        def apply() -> None:
            for name, value in settings.items():
                setattr(self, name, value)
            self.stats.events.append(f"set {settings}")

        self._run_soon(apply)

    @contextlib.contextmanager
    def fault(self, **settings: Any) -> Iterator[ChaosProxy]:
        """``with proxy.fault(mode="blackhole"):`` applies :meth:`set` for the block, then puts
        the previous values back."""
        before = {name: getattr(self, name) for name in settings}
        self.set(**settings)
        try:
            yield self
        finally:
            self.set(**before)

    def reset(self) -> int:
        """Abort every current connection with RST; returns how many were cut."""

        async def cut() -> int:
            links = list(self._links)
            for link in links:
                link.abort()
            self.stats.resets += len(links)
            self.stats.events.append(f"reset {len(links)}")
            return len(links)

        return int(self._call(cut()))

    def blackhole_existing(self, directions: tuple[Direction, ...] = ("up", "down")) -> int:
        """Drop the given directions of every connection open now (new ones pass); returns how
        many connections were blackholed."""

        def apply() -> int:
            links = [link for link in self._links if not link.closed]
            for link in links:
                link.blackholed.update(directions)
            self.stats.events.append(f"blackhole {len(links)} existing {'+'.join(directions)}")
            return len(links)

        async def run() -> int:
            return apply()

        return int(self._call(run()))

    def retarget(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        """Forward new connections to ``upstream_host:upstream_port`` (current ones keep theirs)."""

        def apply() -> None:
            self.upstream = (upstream_host, upstream_port)
            self.stats.events.append(f"retarget {upstream_port}")

        self._run_soon(apply)

    def active(self) -> int:
        return self.stats.active

    # -- reporting (see pyrt.pytest_plugin.reporting) -----------------------------------------------
    @property
    def report_title(self) -> str:
        return f"pyrt chaos proxy {self.url} -> {self.upstream[0]}:{self.upstream[1]}"

    @property
    def finished(self) -> bool:
        return not self._thread.is_alive()

    def mark(self) -> object:
        return len(self.stats.events)

    def report(self, since: object | None) -> str:
        events = self.stats.events[since if isinstance(since, int) else 0 :]
        s = self.stats
        counters = (
            f"accepted {s.accepted}, active {s.active}, resets {s.resets}, up {s.bytes_up} B, "
            f"down {s.bytes_down} B, dropped {s.dropped_bytes} B, upstream failures {s.upstream_failures}"
        )
        return "\n".join([*tail(events, 30), counters]) if events else ""

    def violations(self, since: object | None) -> list[str]:
        return []

    # -- plumbing --------------------------------------------------------------------------
    def _call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(10)

    def _run_soon(self, func: Callable[[], None]) -> None:
        done: Future[None] = Future()

        def run() -> None:
            try:
                func()
                done.set_result(None)
            except BaseException as exc:
                done.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        done.result(10)

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(client_reader, client_writer)
        except asyncio.CancelledError:  # stop(): end quietly (a cancelled handler is logged by asyncio)
            client_writer.transport.abort()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.stats.accepted += 1
        if self.refuse:
            self.stats.events.append("refused a connection")
            sock = client_writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client_writer.transport.abort()
            return
        head = b""
        if self._reads_heads():
            try:
                head = await asyncio.wait_for(client_reader.readuntil(b"\r\n\r\n"), 10)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
                client_writer.transport.abort()
                return
            head, answer = self._hostile_head(head)
            if answer is not None:
                client_writer.write(answer)
                with contextlib.suppress(ConnectionError, OSError):
                    await client_writer.drain()
                client_writer.close()
                return
        try:
            up_reader, up_writer = await self._open_upstream()
        except OSError:
            self.stats.upstream_failures += 1
            client_writer.transport.abort()
            return
        link = _Link(self, client_writer, up_writer)
        link.swallow = self.swallow_upgraded and _is_upgrade(head)
        link.buffer_streams = self.buffer_streams
        self._links.add(link)
        self.stats.active += 1
        idle = self._loop.create_task(self._idle_watch(link)) if self.idle_timeout else None
        try:
            if head:
                up_writer.write(head)
            await asyncio.gather(
                self._pipe(link, client_reader, up_writer, "up"),
                self._pipe(link, up_reader, client_writer, "down"),
            )
        finally:
            if idle is not None:
                idle.cancel()
            self._links.discard(link)
            self.stats.active -= 1
            link.abort()

    def _reads_heads(self) -> bool:
        return bool(self.refuse_upgrade or self.strip_upgrade or self.swallow_upgraded)

    def _hostile_head(self, head: bytes) -> tuple[bytes, bytes | None]:
        """The request head to forward, or the answer that refuses it."""
        if not _is_upgrade(head):
            return head, None
        if self.refuse_upgrade:
            status = self.refuse_upgrade
            self.stats.events.append(f"refused an upgrade with {status}")
            answer = f"HTTP/1.1 {status} Refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            return head, answer.encode()
        if self.strip_upgrade:
            self.stats.events.append("stripped an upgrade")
            lines = head.split(b"\r\n")
            kept = [line for line in lines if not line.lower().startswith((b"upgrade:", b"connection:"))]
            return b"\r\n".join(kept), None
        if self.swallow_upgraded:
            self.stats.events.append("let an upgrade through, to swallow what follows")
        return head, None

    async def _idle_watch(self, link: _Link) -> None:
        """Cut ``link`` once it carried nothing for ``idle_timeout`` seconds."""
        loop = asyncio.get_running_loop()
        while not link.closed and self.idle_timeout:
            left = link.last_active + self.idle_timeout - loop.time()
            if left <= 0:
                self.stats.events.append(f"cut a connection idle for {self.idle_timeout:g} s")
                self.stats.resets += 1
                link.abort()
                return
            await asyncio.sleep(min(left, self.idle_timeout / 4))

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.rcvbuf is None:
            return await asyncio.open_connection(*self.upstream)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # Before connect(), so the window the server sees is small from the start.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, self.upstream)
        except OSError:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock)

    async def _pipe(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str
    ) -> None:
        loop = asyncio.get_running_loop()
        budget_start, budget_sent = loop.time(), 0
        head_seen = direction == "up"  # the request head went first; the down side starts with one
        held: list[bytes] | None = None  # a streamed response held back (buffer_streams)
        try:
            while not link.closed:
                # Under a bandwidth cap, small reads: the link trickles instead of bursting.
                size = 65536 if not self.bandwidth else max(512, min(65536, int(self.bandwidth / 20)))
                chunk = await reader.read(size)
                link.last_active = loop.time()
                if not chunk:
                    if held:  # the held-back response ends here: it all goes now
                        writer.write(b"".join(held))
                        held = None
                    # Half-close: pass the FIN on, then wait for the other direction.
                    if not link.closed and writer.can_write_eof():
                        writer.write_eof()
                    return
                if link.swallow and head_seen:
                    self.stats.dropped_bytes += len(chunk)  # "101 then silence"
                    continue
                if not head_seen:
                    head_seen = b"\r\n\r\n" in chunk
                    if link.swallow and head_seen:  # the 101 passes, nothing after it
                        end = chunk.index(b"\r\n\r\n") + 4
                        self.stats.dropped_bytes += len(chunk) - end
                        chunk = chunk[:end]
                    elif link.buffer_streams and _streamed_unknown(chunk):
                        self.stats.events.append("holding a streamed response back until it ends")
                        held = []
                if held is not None:
                    held.append(chunk)
                    if chunk.endswith(b"\r\n0\r\n\r\n"):  # the chunked body's end
                        writer.write(b"".join(held))
                        held = None
                        await writer.drain()
                    continue
                if self.mode == "blackhole" or direction in link.blackholed:
                    self.stats.dropped_bytes += len(chunk)
                    continue
                if self.latency:
                    await asyncio.sleep(self.latency)
                if self.bandwidth:
                    budget_sent += len(chunk)
                    ahead = budget_sent / self.bandwidth - (loop.time() - budget_start)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                if link.closed:
                    return
                if self.cut_after is not None and link.carried + len(chunk) > self.cut_after:
                    self.stats.events.append(f"cut after {link.carried} bytes")
                    self.stats.resets += 1
                    link.abort()
                    return
                link.carried += len(chunk)
                if direction == "up":
                    self.stats.bytes_up += len(chunk)
                else:
                    self.stats.bytes_down += len(chunk)
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            link.abort()


class ResetSchedule:
    """Reset every connection through ``proxy`` at random intervals in ``[low, high]`` seconds
    (seeded), on a thread of its own, until :meth:`stop` (or the end of a ``with`` block)."""

    def __init__(self, proxy: ChaosProxy, low: float = 0.2, high: float = 1.0, seed: int = 8) -> None:
        if not 0 < low <= high:
            raise ValueError(f"need 0 < low <= high, got low={low!r}, high={high!r}")
        self.proxy = proxy
        self.low, self.high = low, high
        self.rng = random.Random(seed)
        self.resets = 0  # reset events
        self.connections_cut = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="reset-schedule")

    def __enter__(self) -> ResetSchedule:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.rng.uniform(self.low, self.high)):
            self.resets += 1
            self.connections_cut += self.proxy.reset()


def _is_upgrade(head: bytes) -> bool:
    """Whether a request head asks for a WebSocket upgrade."""
    return any(
        line.lower().startswith(b"upgrade:") and b"websocket" in line.lower() for line in head.split(b"\r\n")
    )


def _streamed_unknown(head: bytes) -> bool:
    """Whether a response head starts a streamed (chunked) body of another type than
    ``text/event-stream``: what a buffering proxy holds back."""
    lines = [line.lower() for line in head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")]
    chunked = any(line.startswith(b"transfer-encoding:") and b"chunked" in line for line in lines)
    event_stream = any(line.startswith(b"content-type:") and b"text/event-stream" in line for line in lines)
    return chunked and not event_stream
