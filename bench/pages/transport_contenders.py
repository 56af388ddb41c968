"""The HTTP binding benchmark's Python side, inside the transports page's Pyodide (PyScript).

Every function drives one ``pyrt.WebSocketClient`` against ``serve.py`` (another origin than the
page; ``serve.py`` runs with ``--allowed-origin '*'``), over the transport it is given:
``"websocket"`` and ``"http"`` pin one (``transports=(name,)``), ``"default"`` leaves the client
as a user gets it (WebSocket, else HTTP). ``bench/transport_bench.py`` says what is measured.

``install()`` exposes ``window.benchPy(name, argsJson)`` as the bench page does: it resolves with a
JSON string ``{"ok": true, "value": ...}`` or ``{"ok": false, "error": traceback}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import js  # type: ignore[import-not-found]
from pyodide.ffi import create_proxy  # type: ignore[import-not-found]

perf = time.perf_counter
#: What each round trip sends (the same ~60 bytes as the client bench's echoes).
RTT_DATA = {"seq": 0, "ts": 1732520000.123, "kind": "ping", "v": "abcdefghij"}
WARM_UP = 20  # unmeasured echoes first: the POST's connection, the preflight, the first JSON


def _client(url: str, transport: str, **options: Any) -> Any:
    from pyrt import WebSocketClient

    if transport != "default":
        options["transports"] = (transport,)
    return WebSocketClient(url, **options)


async def _close(client: Any) -> None:
    client.close()
    await client.wait_closed(10)


# ---------------------------------------------------------------- receive throughput


class Counter:
    """Counts publications whose data carries ``seq`` 0..n-1 and resolves at the last one."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.bad = 0
        self.t0 = 0.0
        self.t1 = 0.0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def add(self, publication: Any) -> None:
        now = perf()
        if self.count == 0:
            self.t0 = now
        if publication.data["seq"] != self.count:
            self.bad += 1
        self.count += 1
        self.t1 = now
        if self.count == self.n and not self.done.done():
            self.done.set_result(None)


_RUNS: dict[str, tuple[Any, Counter]] = {}


async def recv_start(url: str, transport: str, channel: str, n: int) -> dict[str, Any]:
    """Subscribe a fresh client to ``channel``; return once the server has the subscription (the
    ack of a message sent after it: the server handles one connection's frames in order)."""
    counter = Counter(n)
    client = _client(url, transport, heartbeat=None)
    client.subscribe(channel, counter.add)
    client.connect()
    await client.wait_open(timeout=30)
    await client.send_with_ack("subscribed?", timeout=30)
    _RUNS[channel] = (client, counter)
    return {"transport": client.transport}


async def recv_finish(channel: str, timeout: float) -> dict[str, Any]:
    """Wait for the ``n`` publications (at most ``timeout`` s), close, report."""
    client, counter = _RUNS.pop(channel)
    with contextlib.suppress(TimeoutError):  # lost publications: reported as such
        await asyncio.wait_for(asyncio.shield(counter.done), timeout)
    result = {
        "n": counter.count,
        "seconds": counter.t1 - counter.t0,
        "bad": counter.bad + (counter.n - counter.count),  # lost ones count as bad
        "transport": client.transport,
        "reconnects": client.stats.reconnects,
    }
    await _close(client)
    return result


# ---------------------------------------------------------------- round trips


class Echoes:
    """Sequential echoes: each reply records one RTT and sends the next message."""

    def __init__(self, n: int, send: Callable[[], None]) -> None:
        self.n = n
        self.send = send
        self.samples: list[float] = []
        self.sent = 0.0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def start(self) -> None:
        self.sent = perf()
        self.send()

    def on_reply(self, *_: Any) -> None:
        self.samples.append((perf() - self.sent) * 1000)
        if len(self.samples) >= self.n:
            if not self.done.done():
                self.done.set_result(None)
            return
        self.sent = perf()
        self.send()


async def rtt_echo(url: str, transport: str, n: int) -> dict[str, Any]:
    """``client.send(data)`` from the message handler; serve.py's default application echoes each
    fire-and-forget message back to its connection."""
    client = _client(url, transport, heartbeat=None)
    echoes = Echoes(n + WARM_UP, lambda: client.send(RTT_DATA))
    client.on_message(echoes.on_reply)
    client.connect()
    await client.wait_open(timeout=30)
    echoes.start()
    await asyncio.wait_for(echoes.done, 60 + n / 10)
    result = {"samples": echoes.samples[WARM_UP:], "transport": client.transport}
    await _close(client)
    return result


async def rtt_ack(url: str, transport: str, n: int) -> dict[str, Any]:
    """``await client.send_with_ack(data)``, one after the other (the ack carries the data back)."""
    client = _client(url, transport, heartbeat=None)
    client.connect()
    await client.wait_open(timeout=30)
    samples = []
    for i in range(n + WARM_UP):
        t0 = perf()
        await client.send_with_ack(RTT_DATA, timeout=30)
        if i >= WARM_UP:
            samples.append((perf() - t0) * 1000)
    result = {"samples": samples, "transport": client.transport}
    await _close(client)
    return result


# ---------------------------------------------------------------- time to the first message


async def first_message(url: str, connect_timeout: float | None, timeout: float) -> dict[str, Any]:
    """The default client (``transports`` not given: WebSocket, else HTTP) with a message queued
    before ``connect()``: ms from ``connect()`` to its echo handled, and to ``open``."""
    options: dict[str, Any] = {}
    if connect_timeout is not None:
        options["connect_timeout"] = connect_timeout
    client = _client(url, "default", **options)
    errors: list[str] = []
    client.on_error(lambda error: errors.append(str(error)))
    loop = asyncio.get_running_loop()
    first: asyncio.Future[float] = loop.create_future()
    opened: list[float] = []
    client.on_open(lambda *_: opened.append(perf()))
    client.on_message(lambda *_: first.done() or first.set_result(perf()))
    client.send({"first": True})  # queued; sent once open, echoed by serve.py
    started = perf()
    client.connect()
    try:
        got = await asyncio.wait_for(first, timeout)
    except TimeoutError:
        got = None
    result = {
        "ms": None if got is None else (got - started) * 1000,
        "open_ms": (opened[0] - started) * 1000 if opened else None,
        "transport": client.transport,
        "fallbacks": client.stats.fallbacks,
        "errors": errors[:3],
    }
    await _close(client)
    return result


# ---------------------------------------------------------------- the page's entry point


CONTENDERS: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
    "recv_start": recv_start,
    "recv_finish": recv_finish,
    "rtt_echo": rtt_echo,
    "rtt_ack": rtt_ack,
    "first_message": first_message,
}


async def run(name: str, args_json: str) -> str:
    try:
        value = await CONTENDERS[name](**json.loads(args_json))
    except BaseException:
        return json.dumps({"ok": False, "error": traceback.format_exc()})
    return json.dumps({"ok": True, "value": value})


def install() -> None:
    """Expose ``window.benchPy`` to the driver and say so in the page."""
    js.window.benchPy = create_proxy(run)
    js.document.getElementById("status").textContent = "Ready"
    js.window.benchPyReady = True
