"""Python contenders, run inside the bench page's Pyodide (loaded by PyScript).

Three kinds, each doing exactly what the matching raw JS contender in ``contenders.js`` does:

- ``naive``: what a user writes by hand with ``pyodide.ffi``: ``create_proxy`` handlers on a
  ``js.WebSocket`` / ``js.EventSource``, ``json.loads`` per message, ``to_js`` for bytes;
- ``pyscript``: PyScript's own ``pyscript.WebSocket``;
- ``pyrt``: ``pyrt.WebSocketClient``, ``pyrt.EventSourceClient`` and ``pyrt.FetchEventSource``,
  used through the public API of their issues. Each runs only when the class exists in the
  working tree; otherwise it reports "not available yet".

``install()`` exposes ``window.benchPy(name, argsJson)``: it runs contender ``name`` and resolves
with a JSON string ``{"ok": true, "value": ...}``, ``{"ok": false, "unavailable": why}`` or
``{"ok": false, "error": traceback}``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import js  # type: ignore[import-not-found]
from pyodide.ffi import create_proxy, to_js  # type: ignore[import-not-found]

perf = time.perf_counter
RTT_PAYLOAD = json.dumps({"seq": 0, "ts": 1732520000.123, "kind": "ping", "v": "abcdefghij"})


class Unavailable(Exception):
    """The contender's class does not exist (yet) in this pyrt."""


def pyrt_class(name: str) -> Any:
    try:
        import pyrt
    except ImportError as exc:
        raise Unavailable(f"pyrt cannot be imported: {exc}") from None
    cls = getattr(pyrt, name, None)
    if cls is None:
        raise Unavailable(f"pyrt.{name} not available yet")
    return cls


def _handler(client: Any, event: str, func: Callable[..., Any]) -> None:
    """Register ``func`` as the client's ``on_<event>`` handler (decorator-style API)."""
    getattr(client, f"on_{event}")(func)


def _state_name(client: Any) -> str:
    state = client.state
    return str(getattr(state, "name", state))


async def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = perf() + timeout
    while not predicate():
        if perf() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.001)


# ---------------------------------------------------------------- naive pyodide.ffi helpers


class NaiveSocket:
    """A ``js.WebSocket`` with ``create_proxy`` handlers, all destroyed by ``close()``."""

    def __init__(self, url: str, on_message: Callable[[Any], None], binary: bool = False) -> None:
        self.ws = js.WebSocket.new(url)
        if binary:
            self.ws.binaryType = "arraybuffer"
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.proxies = [
            create_proxy(on_message),
            create_proxy(lambda e: self.opened.done() or self.opened.set_result(None)),
            create_proxy(lambda e: self.closed.done() or self.closed.set_result(None)),
        ]
        for kind, proxy in zip(("message", "open", "close"), self.proxies, strict=True):
            self.ws.addEventListener(kind, proxy)

    async def close(self) -> None:
        self.ws.close()
        await self.closed
        for proxy in self.proxies:
            proxy.destroy()


# ---------------------------------------------------------------- 1. receive throughput


class Counter:
    """Counts flood messages (dicts with ``seq`` 1..n) and resolves when the last arrives."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.bad = 0
        self.t0 = 0.0
        self.done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def add(self, msg: dict[str, Any]) -> None:
        if self.count == 0:
            self.t0 = perf()
        self.count += 1
        if msg["seq"] != self.count:
            self.bad += 1
        if self.count == self.n:
            self.done.set_result(perf())

    async def result(self, timeout: float) -> dict[str, Any]:
        t1 = await asyncio.wait_for(self.done, timeout)
        missing = 0 if self.count == self.n else 1  # the stream ended early (like contenders.js)
        return {"n": self.count, "seconds": t1 - self.t0, "bad": self.bad + missing}


async def recv_naive(url: str, n: int, timeout: float = 300) -> dict[str, Any]:
    counter = Counter(n)
    sock = NaiveSocket(url, lambda event: counter.add(json.loads(event.data)))
    await sock.opened
    sock.ws.send("go")
    result = await counter.result(timeout)
    await sock.close()
    return result


async def recv_pyscript(url: str, n: int, timeout: float = 300) -> dict[str, Any]:
    from pyscript import WebSocket  # type: ignore[import-not-found]

    counter = Counter(n)
    opened = asyncio.get_running_loop().create_future()
    ws = WebSocket(url=url)
    ws.onopen = lambda event: opened.set_result(None)
    ws.onmessage = lambda event: counter.add(json.loads(event.data))
    await opened
    ws.send("go")
    result = await counter.result(timeout)
    ws.close()
    return result


async def _pyrt_ws_open(url: str, **options: Any) -> Any:
    cls = pyrt_class("WebSocketClient")
    options.setdefault("heartbeat", None)
    client = cls(url, **options)
    return client


async def _pyrt_close(client: Any, timeout: float = 10.0) -> None:
    client.close()
    await _wait(lambda: _state_name(client) == "CLOSED", timeout)


async def recv_pyrt(url: str, n: int, timeout: float = 300) -> dict[str, Any]:
    counter = Counter(n)
    client = await _pyrt_ws_open(url, protocol="raw")
    _handler(client, "message", lambda message: counter.add(json.loads(message)))
    client.connect()
    await client.wait_open(timeout=10)
    client.send("go")
    result = await counter.result(timeout)
    await _pyrt_close(client)
    return result


# ---------------------------------------------------------------- 2. round-trip latency


class Echoes:
    """Sequential echoes: each reply records one RTT and (callback style) sends the next."""

    def __init__(self, n: int, send: Callable[[], None] | None) -> None:
        self.n = n
        self.send = send
        self.samples: list[float] = []
        self.sent = 0.0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def start(self) -> None:
        assert self.send is not None
        self.sent = perf()
        self.send()

    def on_reply(self, *_: Any) -> None:
        self.samples.append((perf() - self.sent) * 1000)
        if len(self.samples) >= self.n:
            if not self.done.done():
                self.done.set_result(None)
            return
        if self.send is not None:
            self.sent = perf()
            self.send()


async def rtt_naive_callback(url: str, n: int) -> dict[str, Any]:
    holder: list[Any] = []
    echoes = Echoes(n, lambda: holder[0].ws.send(RTT_PAYLOAD))
    sock = NaiveSocket(url, echoes.on_reply)
    holder.append(sock)
    await sock.opened
    echoes.start()
    await asyncio.wait_for(echoes.done, 120)
    await sock.close()
    return {"samples": echoes.samples}


async def rtt_naive_await(url: str, n: int) -> dict[str, Any]:
    """The naive ``await`` user: send, then await a future resolved by the message handler."""
    waiting: list[asyncio.Future[Any]] = []
    loop = asyncio.get_running_loop()
    sock = NaiveSocket(url, lambda event: waiting.pop().set_result(event.data))
    await sock.opened
    samples = []
    for _ in range(n):
        t0 = perf()
        fut = loop.create_future()
        waiting.append(fut)
        sock.ws.send(RTT_PAYLOAD)
        await fut
        samples.append((perf() - t0) * 1000)
    await sock.close()
    return {"samples": samples}


async def rtt_pyscript(url: str, n: int) -> dict[str, Any]:
    from pyscript import WebSocket

    opened = asyncio.get_running_loop().create_future()
    ws = WebSocket(url=url)
    echoes = Echoes(n, lambda: ws.send(RTT_PAYLOAD))
    ws.onopen = lambda event: opened.set_result(None)
    ws.onmessage = echoes.on_reply
    await opened
    echoes.start()
    await asyncio.wait_for(echoes.done, 120)
    ws.close()
    return {"samples": echoes.samples}


async def rtt_pyrt_callback(url: str, n: int) -> dict[str, Any]:
    client = await _pyrt_ws_open(url, protocol="raw")
    echoes = Echoes(n, lambda: client.send(RTT_PAYLOAD))
    _handler(client, "message", echoes.on_reply)
    client.connect()
    await client.wait_open(timeout=10)
    echoes.start()
    await asyncio.wait_for(echoes.done, 120)
    await _pyrt_close(client)
    return {"samples": echoes.samples}


async def rtt_pyrt_ack(url: str, n: int) -> dict[str, Any]:
    """``await client.send_with_ack(data)`` against a server speaking the pyrt protocol."""
    client = await _pyrt_ws_open(url)
    client.connect()
    await client.wait_open(timeout=10)
    data = json.loads(RTT_PAYLOAD)
    samples = []
    for _ in range(n):
        t0 = perf()
        await client.send_with_ack(data)
        samples.append((perf() - t0) * 1000)
    await _pyrt_close(client)
    return {"samples": samples}


# ---------------------------------------------------------------- 3. binary


class Replies:
    """One awaited reply at a time (the binary benchmark is strictly request/response)."""

    def __init__(self) -> None:
        self.pending: asyncio.Future[Any] | None = None

    def next(self) -> asyncio.Future[Any]:
        self.pending = asyncio.get_running_loop().create_future()
        return self.pending

    def deliver(self, value: Any) -> None:
        if self.pending is not None and not self.pending.done():
            self.pending.set_result(value)


async def _binary_rounds(
    size: int,
    reps: int,
    replies: Replies,
    send_bytes: Callable[[bytes], None],
    send_text: Callable[[str], None],
    as_bytes: Callable[[Any], bytes],
) -> dict[str, Any]:
    send: list[float] = []
    call: list[float] = []
    recv: list[float] = []
    for _ in range(reps):
        t0 = perf()
        payload = b"\x5a" * size
        reply = replies.next()
        c0 = perf()
        send_bytes(payload)
        call.append(perf() - c0)
        got = await asyncio.wait_for(reply, 120)
        if int(str(got)) != size:
            raise AssertionError(f"server got {got} bytes, sent {size}")
        send.append(perf() - t0)
        t1 = perf()
        incoming = replies.next()
        send_text(f"get {size}")
        data = as_bytes(await asyncio.wait_for(incoming, 120))
        if len(data) != size:
            raise AssertionError(f"received {len(data)} bytes, wanted {size}")
        recv.append(perf() - t1)
    return {"size": size, "send": send, "call": call, "recv": recv}


async def binary_naive(url: str, size: int, reps: int) -> dict[str, Any]:
    replies = Replies()
    sock = NaiveSocket(url, lambda event: replies.deliver(event.data), binary=True)
    await sock.opened
    result = await _binary_rounds(
        size,
        reps,
        replies,
        lambda data: sock.ws.send(to_js(memoryview(data))),
        sock.ws.send,
        lambda data: data.to_bytes(),
    )
    await sock.close()
    return result


async def binary_pyscript(url: str, size: int, reps: int) -> dict[str, Any]:
    from pyscript import WebSocket

    replies = Replies()
    opened = asyncio.get_running_loop().create_future()
    ws = WebSocket(url=url)
    ws.onopen = lambda event: opened.set_result(None)
    ws.onmessage = lambda event: replies.deliver(event.data)
    await opened
    result = await _binary_rounds(size, reps, replies, ws.send, ws.send, bytes)
    ws.close()
    return result


async def binary_pyrt(url: str, size: int, reps: int) -> dict[str, Any]:
    replies = Replies()
    client = await _pyrt_ws_open(url, protocol="raw")
    _handler(client, "message", replies.deliver)
    client.connect()
    await client.wait_open(timeout=10)
    result = await _binary_rounds(size, reps, replies, client.send, client.send, bytes)
    await _pyrt_close(client)
    return result


# ---------------------------------------------------------------- 4. SSE receive throughput


async def sse_naive(url: str, n: int) -> dict[str, Any]:
    counter = Counter(n)
    source = js.EventSource.new(url)
    on_message = create_proxy(lambda event: counter.add(json.loads(event.data)))
    on_done = create_proxy(lambda event: counter.done.done() or counter.done.set_result(perf()))
    source.addEventListener("message", on_message)
    source.addEventListener("done", on_done)
    try:
        result = await counter.result(300)
    finally:
        source.close()
        on_message.destroy()
        on_done.destroy()
    return result


async def _sse_pyrt(class_name: str, url: str, n: int) -> dict[str, Any]:
    cls = pyrt_class(class_name)
    counter = Counter(n)
    client = cls(url)
    client.on("message", lambda event: counter.add(json.loads(event.data)))
    client.on("done", lambda event: counter.done.done() or counter.done.set_result(perf()))
    client.connect()
    try:
        result = await counter.result(300)
    finally:
        client.close()
    return result


async def sse_pyrt_eventsource(url: str, n: int) -> dict[str, Any]:
    return await _sse_pyrt("EventSourceClient", url, n)


async def sse_pyrt_fetch(url: str, n: int) -> dict[str, Any]:
    return await _sse_pyrt("FetchEventSource", url, n)


# ---------------------------------------------------------------- 6. memory: connect/close cycles


async def cycles_naive(url: str, n: int) -> dict[str, Any]:
    t0 = perf()
    for _ in range(n):
        sock = NaiveSocket(url, lambda event: None)
        await sock.opened
        await sock.close()
    return {"n": n, "seconds": perf() - t0}


async def cycles_pyscript(url: str, n: int) -> dict[str, Any]:
    from pyscript import WebSocket

    loop = asyncio.get_running_loop()
    t0 = perf()
    for _ in range(n):
        opened, closed = loop.create_future(), loop.create_future()
        ws = WebSocket(url=url)
        ws.onopen = lambda event, f=opened: f.set_result(None)
        ws.onclose = lambda event, f=closed: f.set_result(None)
        await opened
        ws.close()
        await closed
    return {"n": n, "seconds": perf() - t0}


async def cycles_pyrt(url: str, n: int) -> dict[str, Any]:
    pyrt_class("WebSocketClient")
    t0 = perf()
    for _ in range(n):
        client = await _pyrt_ws_open(url, protocol="raw")
        client.connect()
        await client.wait_open(timeout=10)
        await _pyrt_close(client)
    return {"n": n, "seconds": perf() - t0}


# ---------------------------------------------------------------- persist= writes with a long queue


async def persist_writes(n: int, writes: int) -> dict[str, Any]:
    """With ``n`` messages saved, the cost of saving one more (ms per write), the old way (the
    whole set as one text per save) and pyrt's (one record), in localStorage and IndexedDB,
    and the engine's own share; plus loading the ``n`` back."""
    from persist_costs import engine_costs

    from pyrt.browser.storage import IndexedDBStore, LocalStorageStore
    from pyrt.persist.records import Changes, SavedFrame, SnapshotStore

    loop = asyncio.get_running_loop()
    frame = '{"type":"message","id":"k3f9x2a1-%d","data":{"text":"a chat message of fifty bytes"}}'

    def batch(first: int, count: int) -> Changes:
        seqs = range(first, first + count)
        return Changes(puts={s: SavedFrame(frame % s, f"k3f9x2a1-{s}", "message", s) for s in seqs})

    async def write(store: Any, key: str, changes: Changes) -> None:
        done: asyncio.Future[Any] = loop.create_future()
        store.write(key, changes, done.set_result)
        error = await done
        if error is not None:
            raise error

    async def per_write(store: Any, key: str) -> float:
        await write(store, key, batch(1, n))
        t0 = perf()
        for seq in range(n + 1, n + 1 + writes):
            await write(store, key, batch(seq, 1))
        return (perf() - t0) * 1000 / writes

    async def load(store: Any, key: str) -> float:
        done: asyncio.Future[Any] = loop.create_future()
        t0 = perf()
        store.load(key, done.set_result, done.set_result)
        snapshot = await done
        assert len(snapshot.frames) == n + writes, len(snapshot.frames)
        return (perf() - t0) * 1000

    def clear_local(key: str) -> None:
        for name in js.Object.keys(js.localStorage).to_py():
            if name == key or name.startswith(f"pyrt:{key}:"):
                js.localStorage.removeItem(name)

    out: dict[str, Any] = {"n": n, "writes": writes, "engine": engine_costs(n, writes)}
    clear_local("bench-old")
    out["localstorage_whole_ms"] = await per_write(SnapshotStore(js.localStorage), "bench-old")
    clear_local("bench-old")
    clear_local("bench-new")
    local = LocalStorageStore()
    out["localstorage_record_ms"] = await per_write(local, "bench-new")
    out["localstorage_load_ms"] = await load(local, "bench-new")
    clear_local("bench-new")
    idb = IndexedDBStore()
    key = f"bench-{int(perf() * 1000)}"
    out["indexeddb_record_ms"] = await per_write(idb, key)
    out["indexeddb_load_ms"] = await load(IndexedDBStore(), key)
    await write(idb, key, Changes(deletes=set(range(1, n + writes + 1))))
    idb.dispose()
    return out


# ---------------------------------------------------------------- memory snapshot (Python side)


async def python_memory() -> dict[str, Any]:
    """Collect Python garbage; report live pyrt proxies and the wasm memory size."""
    gc.collect()
    live: int | None
    try:
        from pyrt.browser.proxies import live_count

        live = live_count()
    except ImportError:
        live = None
    import pyodide_js  # type: ignore[import-not-found]

    return {"live_proxies": live, "wasm_bytes": int(pyodide_js._module.HEAP8.length)}


async def pyrt_info() -> dict[str, Any]:
    import pyrt

    names = ["WebSocketClient", "EventSourceClient", "FetchEventSource"]
    return {"version": pyrt.__version__, "classes": {name: hasattr(pyrt, name) for name in names}}


CONTENDERS: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
    name: func
    for name, func in list(globals().items())
    if callable(func)
    and name.split("_")[0] in {"recv", "rtt", "binary", "sse", "cycles", "python", "pyrt", "persist"}
    and asyncio.iscoroutinefunction(func)
}


async def run(name: str, args_json: str) -> str:
    try:
        func = CONTENDERS[name]
        value = await func(**json.loads(args_json))
    except Unavailable as exc:
        return json.dumps({"ok": False, "unavailable": str(exc)})
    except BaseException:
        return json.dumps({"ok": False, "error": traceback.format_exc()})
    return json.dumps({"ok": True, "value": value})


def install() -> None:
    """Expose ``window.benchPy`` to the driver and say so in the page."""
    js.window.benchPy = create_proxy(run)
    js.document.getElementById("status").textContent = "Ready"
    js.window.benchPyReady = True
