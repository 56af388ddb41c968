"""Benchmark 11: the HTTP binding against WebSockets, in one run against a real ``serve.py``.

``/ws`` answers both ways (docs/protocol.md, "The HTTP binding"); this measures what moving to
HTTP costs a client and the server, next to the same thing over WebSocket:

1. **Receive throughput** and **round trips** of ``pyrt.WebSocketClient`` in Chromium + Pyodide
   (the transports page, ``bench/pages/transport_contenders.py``), pinned to
   ``transports=("http",)`` or ``("websocket",)``, the two interleaved run by run.
   *Receive*: the client subscribes to a channel and its page is held (a synchronous
   ``XMLHttpRequest`` to the bench server, see ``bench/server.py``); a publisher process
   (``bench/loadgen.py pub``) publishes ``transport_recv_n`` messages into it and waits for their
   acks, so they all wait in ``serve.py`` and the network; the page is let go and the rate is
   messages / (last - first publication handled), median of the runs: how fast the client reads,
   not how fast ``serve.py`` takes publications. *Round trips*: sequential echoes of a
   ~60-byte message (``send`` from the message handler; serve.py's default application echoes
   fire-and-forget messages) and sequential ``await send_with_ack``; p50 and p99. Beside them,
   the floor of any round trip over HTTP in this browser: sequential ``fetch`` POSTs from JS.
2. **Idle memory per connection** on the server: (RSS with N idle connections subscribed to a
   channel - RSS with a few warm ones) / N, for N raw WebSocket and N raw HTTP-binding
   connections (``bench/loadgen.py`` kinds ``pyrt`` and ``pyrt-http``), each on a fresh server.
3. **Time to the first message behind hostile networks**: the default ``WebSocketClient``
   (WebSocket, else HTTP) through a :class:`~pyrt.pytest_plugin.proxy.ChaosProxy` in front of
   ``serve.py``, with a message queued before ``connect()``: ms from ``connect()`` until its echo
   is handled, and which transport the client ended on; in Chromium and on CPython. The goal:
   the first message within the connect timeout + 1 s behind every one of them.

The page is served by ``bench/server.py`` and ``serve.py`` is another origin, so ``serve.py``
runs with ``--allowed-origin '*'``. Of its limits only two are turned off, both for the same
reason: they pace the load, not the transport being measured. ``--rate-limit 0``: the client
paces its own sends at 90 % of the advertised 200 frames/s, so sequential round trips faster
than ~5 ms would measure that pacing, not the transport (benchmark 10 measures the defaults);
and the publisher's frames are paced by it too. ``--publish-rate 0``: the publisher's identity
may publish 200/s, a cap on the producer, not on the receiving client. The receiving client
meets every default limit; ``transport_recv_n`` keeps a run's publications (~1.5 MB) under the
default 4 MiB send queue per connection, so a slow reader is never cut off as a slow consumer.
The idle phase uses the fan-out benchmark's ``serve.py`` (no per-address cap: all connections
come from one address). Benchmarks report; nothing here fails on a figure.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import urllib.request
from collections.abc import Callable
from typing import Any

from bench.client_bench import percentile
from bench.config import Sizes
from bench.procs import REPO, Child, Server, cpu_seconds, publisher, rss_bytes, serve_py, subscribers
from pyrt.engine.options import WebSocketOptions

Log = Callable[[str], None]

TRANSPORTS = ("websocket", "http")
CHANNEL = "bench"  # the channel bench/loadgen.py's publisher publishes into
FLOOD_RATE = 1e6  # publications per second asked of the publisher: as fast as it can
#: Hostile networks (ChaosProxy settings) and the client's connect_timeout (None: its default).
MODES: dict[str, tuple[dict[str, Any], float | None]] = {
    "none": ({}, None),
    "refuse_upgrade=403": ({"refuse_upgrade": 403}, None),
    "strip_upgrade": ({"strip_upgrade": True}, None),
    "swallow_upgraded, connect_timeout=2": ({"swallow_upgraded": True}, 2.0),
    "swallow_upgraded, default connect_timeout": ({"swallow_upgraded": True}, None),
    "buffer_streams + refuse_upgrade=400": ({"buffer_streams": True, "refuse_upgrade": 400}, None),
}
DEFAULT_TIMEOUT_MODE = "swallow_upgraded, default connect_timeout"


def serve_py_for_clients() -> Server:
    """``serve.py`` with its default limits but two (see the module docstring), allowing the
    bench page's origin."""
    argv = [
        sys.executable,
        str(REPO / "serve.py"),
        "--host", "127.0.0.1",
        "--port", "0",
        "--no-demo",
        "--log-level", "warning",
        "--allowed-origin", "*",
        "--rate-limit", "0",
        "--publish-rate", "0",
    ]  # fmt: skip
    return Server(argv, "pyrt-serve listening on ")


def _ws_url(server_url: str) -> str:
    return "ws" + server_url[len("http") :] + "/ws"


def _guard(func: Callable[[], dict[str, Any]], log: Log, label: str) -> dict[str, Any]:
    try:
        return func()
    except Exception as exc:
        log(f"  {label}: {traceback.format_exception_only(exc)[-1].strip()}")
        return {"error": traceback.format_exc()[-3000:]}


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------- 1. in Chromium


#: Blocks the page's main thread (a synchronous XMLHttpRequest) until the bench server's
#: ``/release``; scheduled, not awaited, so the driver gets control back at once.
HOLD_PAGE = """() => setTimeout(() => {
  const request = new XMLHttpRequest();
  request.open("GET", "/hold", false);
  request.send();
}, 0)"""


def _bench_get(pages: Server, path: str, timeout: float) -> str:
    with urllib.request.urlopen(pages.url + path, timeout=timeout) as response:
        return str(response.read().decode().strip())


def recv_phase(page: Any, pages: Server, server: Server, sizes: Sizes, log: Log) -> dict[str, Any]:
    """While the client is held, the publisher's publications pile up in ``serve.py`` and the
    network; the rate is then how fast the client reads them, not how fast they were published."""
    n, runs = sizes.transport_recv_n, sizes.transport_recv_runs
    url = _ws_url(server.url)
    raw: dict[str, list[dict[str, Any]]] = {t: [] for t in TRANSPORTS}
    loadavg = _loadavg()
    for run in range(runs):
        for transport in TRANSPORTS:
            start = page.py("recv_start", url=url, transport=transport, channel=CHANNEL, n=n)
            page.page.evaluate(HOLD_PAGE)
            try:
                if _bench_get(pages, "/wait-held", 40) != "held":
                    raise RuntimeError("the page was not held: its publications would arrive as sent")
                pub = publisher("pyrt", server.url, FLOOD_RATE, n / FLOOD_RATE)
                try:
                    done = pub.wait_event("done", 60 + n / 100)
                finally:
                    pub.stop()
            finally:
                _bench_get(pages, "/release", 10)
            cpu0, wall0 = cpu_seconds(server.pid), time.monotonic()
            value = page.py("recv_finish", channel=CHANNEL, timeout=60 + n / 200)
            value["server_cpu_cores"] = (cpu_seconds(server.pid) - cpu0) / (time.monotonic() - wall0)
            value["published"] = done["published"]
            value["acked_before_release"] = done["acked"]  # in serve.py before the client read any
            value["opened_on"] = start["transport"]
            raw[transport].append(value)
            rate = value["n"] / value["seconds"] if value["seconds"] > 0 else 0.0
            log(
                f"  receive {transport} run {run + 1}/{runs}: {rate:,.0f} msgs/s, "
                f"{value['bad']} lost or out of order, on {value['transport']}"
            )
    out: dict[str, Any] = {"per_run": n, "runs": runs, "loadavg": loadavg, "transports": {}}
    for transport, values in raw.items():
        rates = [v["n"] / v["seconds"] for v in values if v["seconds"] > 0]
        out["transports"][transport] = {
            "msgs_per_s": statistics.median(rates) if rates else 0.0,
            "runs": [round(r) for r in rates],
            "messages": sum(v["n"] for v in values),
            "bad": sum(v["bad"] for v in values),
            "reconnects": sum(v["reconnects"] for v in values),
            "ended_on": sorted({v["transport"] for v in values}),
            "server_cpu_cores": statistics.median(v["server_cpu_cores"] for v in values),
            # < published: some publications reached serve.py only after the client was let go
            "acked_before_release": min(v["acked_before_release"] for v in values),
        }
    return out


def _rtt_summary(value: dict[str, Any]) -> dict[str, Any]:
    samples = value["samples"]
    return {
        "p50_ms": percentile(samples, 50),
        "p99_ms": percentile(samples, 99),
        "mean_ms": statistics.fmean(samples),
        "n": len(samples),
        "ended_on": value["transport"],
    }


def rtt_phase(page: Any, server: Server, sizes: Sizes, log: Log) -> dict[str, Any]:
    n = sizes.transport_rtt_n
    url = _ws_url(server.url)
    out: dict[str, Any] = {"n": n, "loadavg": _loadavg()}
    for kind in ("echo", "ack"):
        out[kind] = {}
        for transport in TRANSPORTS:
            summary = _rtt_summary(page.py(f"rtt_{kind}", url=url, transport=transport, n=n))
            out[kind][transport] = summary
            log(
                f"  {kind} round trips {transport}: p50 {summary['p50_ms']:.2f} ms, "
                f"p99 {summary['p99_ms']:.2f} ms"
            )
    samples = page.page.evaluate(FETCH_FLOOR, [server.url + "/ws?key=bench-floor&seq=1", n, 20])
    out["fetch_floor"] = {"p50_ms": percentile(samples, 50), "p99_ms": percentile(samples, 99), "n": n}
    log(f"  bare fetch() POST round trips: p50 {out['fetch_floor']['p50_ms']:.2f} ms")
    return out


#: The floor of any round trip over the HTTP binding in this browser: sequential ``fetch`` POSTs
#: of a ~60-byte text to ``serve.py``'s ``/ws`` from JS, each answered ``404`` (no such
#: connection) once its query is read; the first ``warm`` are not measured.
FETCH_FLOOR = """async ([url, n, warm]) => {
  const body = JSON.stringify({type: "message", data: {seq: 0, ts: 1732520000.123, v: "abcdefghij"}});
  const init = {method: "POST", body, headers: {"Content-Type": "text/plain;charset=UTF-8"}};
  const samples = [];
  for (let i = 0; i < n + warm; i++) {
    const t0 = performance.now();
    const response = await fetch(url, init);
    await response.arrayBuffer();
    if (i >= warm) samples.push(performance.now() - t0);
  }
  return samples;
}"""


def _modes(sizes: Sizes) -> dict[str, tuple[dict[str, Any], float | None]]:
    if sizes.transport_first_default_timeout:
        return MODES
    return {name: mode for name, mode in MODES.items() if name != DEFAULT_TIMEOUT_MODE}


def _first_summary(values: list[dict[str, Any]], connect_timeout: float | None) -> dict[str, Any]:
    times = [v["ms"] for v in values if v.get("ms") is not None]
    timeout = WebSocketOptions().connect_timeout if connect_timeout is None else connect_timeout
    return {
        # the goal: the first message over HTTP within the connect timeout + 1 s
        "bound_ms": (timeout + 1.0) * 1000,
        "ms": statistics.median(times) if times else None,
        "open_ms": statistics.median(v["open_ms"] for v in values if v.get("open_ms") is not None)
        if any(v.get("open_ms") is not None for v in values)
        else None,
        "runs": [None if v.get("ms") is None else round(v["ms"], 1) for v in values],
        "ended_on": sorted({v["transport"] for v in values}),
        "fallbacks": sum(v["fallbacks"] for v in values),
        "errors": values[-1]["errors"] if values else [],
    }


def first_message_browser(page: Any, server: Server, sizes: Sizes, log: Log) -> dict[str, Any]:
    from pyrt.pytest_plugin.proxy import ChaosProxy

    out: dict[str, Any] = {}
    for name, (settings, connect_timeout) in _modes(sizes).items():
        values = []
        with ChaosProxy(server.port) as proxy:  # a proxy (an origin) per mode: nothing remembered
            proxy.set(**settings)
            url = proxy.ws_url + "/ws"
            for _ in range(sizes.transport_first_reps):
                values.append(page.py("first_message", url=url, connect_timeout=connect_timeout, timeout=60))
        out[name] = _first_summary(values, connect_timeout)
        log(f"  first message, Chromium, {name}: {_ms(out[name]['ms'])} on {out[name]['ended_on']}")
    return out


# ---------------------------------------------------------------- 3. on CPython


async def _first_cpython(
    url: str, connect_timeout: float | None, timeout: float, storage: str
) -> dict[str, Any]:
    """The same as the page's ``first_message``, with pyrt's CPython runtime (what it remembers
    goes to ``storage``, not the user's cache)."""
    from pyrt import WebSocketClient
    from pyrt.cpython.services import CPythonServices

    options: dict[str, Any] = {} if connect_timeout is None else {"connect_timeout": connect_timeout}
    client = WebSocketClient(url, services=CPythonServices(storage_dir=storage), **options)
    errors: list[str] = []
    client.on_error(lambda error: errors.append(str(error)))
    loop = asyncio.get_running_loop()
    first: asyncio.Future[float] = loop.create_future()
    opened: list[float] = []
    client.on_open(lambda *_: opened.append(time.perf_counter()))
    client.on_message(lambda *_: first.done() or first.set_result(time.perf_counter()))
    client.send({"first": True})
    started = time.perf_counter()
    client.connect()
    try:
        got: float | None = await asyncio.wait_for(first, timeout)
    except TimeoutError:
        got = None
    result = {
        "ms": None if got is None else (got - started) * 1000,
        "open_ms": (opened[0] - started) * 1000 if opened else None,
        "transport": client.transport,
        "fallbacks": client.stats.fallbacks,
        "errors": errors[:3],
    }
    client.close()
    await client.wait_closed(10)
    return result


def first_message_cpython(server: Server, sizes: Sizes, log: Log) -> dict[str, Any]:
    from pyrt.pytest_plugin.proxy import ChaosProxy

    storage = tempfile.mkdtemp(prefix="pyrt-bench-")
    # unmeasured: the first client on CPython pays for importing its runtime (websockets, httpx)
    asyncio.run(_first_cpython(_ws_url(server.url), None, 60, storage))
    out: dict[str, Any] = {}
    for name, (settings, connect_timeout) in _modes(sizes).items():
        values = []
        with ChaosProxy(server.port) as proxy:
            proxy.set(**settings)
            url = proxy.ws_url + "/ws"
            for _ in range(sizes.transport_first_reps):
                values.append(asyncio.run(_first_cpython(url, connect_timeout, 60, storage)))
        out[name] = _first_summary(values, connect_timeout)
        log(f"  first message, CPython, {name}: {_ms(out[name]['ms'])} on {out[name]['ended_on']}")
    shutil.rmtree(storage, ignore_errors=True)
    return out


def _ms(value: float | None) -> str:
    return "no message" if value is None else f"{value:,.0f} ms"


# ---------------------------------------------------------------- 2. idle connections


def _start(kind: str, url: str, count: int, timeout: float) -> tuple[list[Child], int]:
    parts = max(1, math.ceil(count / 2500))  # a load process per 2,500 connections
    procs = [subscribers(kind, url, count // parts + (1 if i < count % parts else 0)) for i in range(parts)]
    connected = 0
    errors: list[str] = []
    for proc in procs:
        ready = proc.wait_event("ready", timeout)
        connected += ready["connected"]
        errors += ready["errors"]
    if connected < count:
        for proc in procs:
            proc.stop()
        raise RuntimeError(f"only {connected}/{count} {kind} connections came up: {errors[:3]}")
    return procs, connected


def idle_phase(kind: str, n: int) -> dict[str, Any]:
    """Server RSS growth per idle connection (subscribed to a channel), on a fresh server."""
    server = serve_py()
    try:
        warm, _ = _start(kind, server.url, min(50, max(1, n // 10)), 60)
        procs: list[Child] = []
        try:
            time.sleep(0.5)
            rss_warm = rss_bytes(server.pid)
            started = time.monotonic()
            procs, connected = _start(kind, server.url, n, 300)
            connect_s = time.monotonic() - started
            readings = []
            for _ in range(3):  # let allocations settle; keep the highest of three readings
                time.sleep(0.5)
                readings.append(rss_bytes(server.pid))
        finally:
            for proc in [*procs, *warm]:
                proc.stop()
        return {
            "connections": connected,
            "rss_before_bytes": rss_warm,
            "rss_after_bytes": max(readings),
            "bytes_per_connection": (max(readings) - rss_warm) / connected,
            "connect_seconds": connect_s,
            "loadavg": _loadavg(),
        }
    finally:
        server.stop()


# ---------------------------------------------------------------- the part


def run_transports(sizes: Sizes, log: Log) -> dict[str, Any]:
    from bench.browser import BenchPage, Chromium

    out: dict[str, Any] = {"loadavg_start": _loadavg()}
    pages = Server([sys.executable, "-m", "bench.server"], "bench-server listening on ")
    server = serve_py_for_clients()
    try:
        with Chromium() as chromium:
            out["chromium"] = chromium.version
            log("transports: booting the transports page")
            page = BenchPage(
                chromium, pages.url, path="/transports.html", ready="window.benchPyReady === true"
            )
            try:
                log("transports: receive throughput, WebSocket and HTTP interleaved")
                out["recv"] = _guard(lambda: recv_phase(page, pages, server, sizes, log), log, "receive")
                log("transports: round trips")
                out["rtt"] = _guard(lambda: rtt_phase(page, server, sizes, log), log, "round trips")
                log("transports: time to the first message behind each hostile network (Chromium)")
                out["first_message"] = {
                    "chromium": _guard(lambda: first_message_browser(page, server, sizes, log), log, "first")
                }
            finally:
                page.close()
        log("transports: time to the first message behind each hostile network (CPython)")
        out["first_message"]["cpython"] = _guard(
            lambda: first_message_cpython(server, sizes, log), log, "first (CPython)"
        )
    finally:
        server.stop()
        pages.stop()
    n = sizes.transport_idle_connections
    out["idle"] = {}
    for transport, kind in (("websocket", "pyrt"), ("http", "pyrt-http")):
        log(f"transports: {n} idle {transport} connections")
        entry = _guard(lambda kind=kind: idle_phase(kind, n), log, f"idle {transport}")
        if "error" not in entry:
            log(f"  idle {transport}: {entry['bytes_per_connection'] / 1024:.1f} KiB per connection")
        out["idle"][transport] = entry
    out["loadavg_end"] = _loadavg()
    return out


# ---------------------------------------------------------------- the tables


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _ratio(a: Any, b: Any) -> float | None:
    if isinstance(a, int | float) and isinstance(b, int | float) and b:
        return float(a) / float(b)
    return None


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _why(entry: Any) -> str:
    if isinstance(entry, dict) and "error" in entry:
        lines = str(entry["error"]).strip().splitlines()
        return "error: " + (lines[-1] if lines else "?")[:90]
    return "not run"


def ratios(results: dict[str, Any]) -> dict[str, float | None]:
    """HTTP / WebSocket: receive throughput, round trips (p50, p99) and idle memory."""
    t = results.get("transports") or {}
    recv = _get(t, "recv", "transports") or {}
    out: dict[str, float | None] = {
        "recv": _ratio(_get(recv, "http", "msgs_per_s"), _get(recv, "websocket", "msgs_per_s"))
    }
    for kind in ("echo", "ack"):
        for q in ("p50_ms", "p99_ms"):
            out[f"{kind}_{q[:3]}"] = _ratio(
                _get(t, "rtt", kind, "http", q), _get(t, "rtt", kind, "websocket", q)
            )
    out["idle"] = _ratio(
        _get(t, "idle", "http", "bytes_per_connection"), _get(t, "idle", "websocket", "bytes_per_connection")
    )
    return out


def targets(results: dict[str, Any]) -> list[tuple[str, float | None, str, str, float, str, str]]:
    """``(label, value, goal, op, threshold, unit, why_not_measured)`` for ``report.Target``: the
    goals for HTTP against WebSocket, the idle memory per HTTP connection and the first message
    behind hostile networks."""
    t = results.get("transports")
    if not isinstance(t, dict):
        return []
    r = ratios(results)
    recv_why, rtt_why = _why(t.get("recv", t)), _why(t.get("rtt", t))
    idle = _get(t, "idle", "http")
    kib = (
        idle["bytes_per_connection"] / 1024
        if isinstance(idle, dict) and "bytes_per_connection" in idle
        else None
    )
    return [
        (
            "receive throughput, HTTP binding / WebSocket (Chromium)",
            r["recv"],
            ">= 0.5x",
            ">=",
            0.5,
            "x",
            recv_why,
        ),
        (
            "echo RTT p50, HTTP binding / WebSocket (Chromium)",
            r["echo_p50"],
            "<= 2x",
            "<=",
            2.0,
            "x",
            rtt_why,
        ),
        (
            "echo RTT p99, HTTP binding / WebSocket (Chromium)",
            r["echo_p99"],
            "<= 2x",
            "<=",
            2.0,
            "x",
            rtt_why,
        ),
        ("serve.py memory per idle HTTP-binding connection", kib, "<= 30 KiB", "<=", 30.0, "KiB", _why(idle)),
        *(
            (
                f"first message behind hostile networks, slowest / (connect timeout + 1 s) ({name})",
                _slowest_first(_get(t, "first_message", runtime)),
                "<= 1x",
                "<=",
                1.0,
                "x",
                _why(_get(t, "first_message", runtime)),
            )
            for runtime, name in (("chromium", "Chromium"), ("cpython", "CPython"))
        ),
    ]


def _slowest_first(entries: Any) -> float | None:
    """The largest first-message time over its bound, over the hostile modes (``None``: no figure;
    a mode where no message came counts as infinitely slow)."""
    if not isinstance(entries, dict) or "error" in entries:
        return None
    ratios = [
        math.inf if entry.get("ms") is None else entry["ms"] / entry["bound_ms"]
        for mode, entry in entries.items()
        if mode != "none" and isinstance(entry, dict) and "bound_ms" in entry
    ]
    return max(ratios) if ratios else None


def sections(results: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    t = results.get("transports")
    if not isinstance(t, dict):
        return []
    if "error" in t:
        return [("11. WebSocket and the HTTP binding", ["part"], [[_why(t)]])]
    r = ratios(results)
    rows: list[list[str]] = []
    recv = t.get("recv") or {}
    if "transports" in recv:
        ws, http = recv["transports"]["websocket"], recv["transports"]["http"]
        label = f"receive msgs/s (median of {recv['runs']} x {_fmt(recv['per_run'])})"
        rows.append([label, _fmt(ws["msgs_per_s"]), _fmt(http["msgs_per_s"]), _times(r["recv"])])
        rows.append(["  lost or out of order", str(ws["bad"]), str(http["bad"]), ""])
        if min(ws["acked_before_release"], http["acked_before_release"]) < recv["per_run"]:
            label = "  fewest published before the client read (of each run's)"
            rows.append([label, _fmt(ws["acked_before_release"]), _fmt(http["acked_before_release"]), ""])
        rows.append(
            [
                "  serve.py CPU while the client read (cores)",
                f"{ws['server_cpu_cores']:.2f}",
                f"{http['server_cpu_cores']:.2f}",
                "",
            ]
        )
    else:
        rows.append(["receive msgs/s", _why(recv), "", ""])
    rtt = t.get("rtt") or {}
    for kind, label in (("echo", "echo"), ("ack", "await send_with_ack")):
        entry = rtt.get(kind)
        if not isinstance(entry, dict):
            rows.append([f"{label} round trip", _why(rtt), "", ""])
            continue
        for q in ("p50", "p99"):
            ws_ms, http_ms = entry["websocket"][f"{q}_ms"], entry["http"][f"{q}_ms"]
            rows.append(
                [
                    f"{label} {q} ms ({rtt['n']} sequential)",
                    _fmt(ws_ms),
                    _fmt(http_ms),
                    _times(r[f"{kind}_{q}"]),
                ]
            )
    floor = rtt.get("fetch_floor")
    if isinstance(floor, dict):
        for q in ("p50", "p99"):
            rows.append([f"  bare fetch() POST {q} ms (JS, the floor)", "", _fmt(floor[f"{q}_ms"]), ""])
    idle = t.get("idle") or {}
    ws_idle, http_idle = idle.get("websocket"), idle.get("http")
    cells = [
        _fmt(e["bytes_per_connection"] / 1024)
        if isinstance(e, dict) and "bytes_per_connection" in e
        else _why(e)
        for e in (ws_idle, http_idle)
    ]
    n = _get(ws_idle, "connections") or _get(http_idle, "connections")
    rows.append([f"serve.py KiB per idle connection ({_fmt(n)})", *cells, _times(r["idle"])])
    out = [
        (
            "11. WebSocket and the HTTP binding: WebSocketClient pinned to each (Chromium, serve.py)",
            ["measure", "WebSocket", "HTTP binding", "HTTP / WS"],
            rows,
        )
    ]
    first = t.get("first_message") or {}
    modes = list(MODES)
    rows = []
    for mode in modes:
        cells = [mode]
        present = False
        for runtime in ("chromium", "cpython"):
            entry = _get(first, runtime, mode)
            if isinstance(entry, dict):
                present = True
                cells += [_fmt(entry["ms"]), _fmt(entry["open_ms"]), "/".join(entry["ended_on"])]
            else:
                cells += [_why(first.get(runtime)) if runtime in first else "not run", "", ""]
        if present:
            rows.append(cells)
    if rows:
        out.append(
            (
                "11b. Time to the first message behind hostile networks (default WebSocketClient, median)",
                ["network", "Chromium ms", "open ms", "ended on", "CPython ms", "open ms", "ended on"],
                rows,
            )
        )
    return out


def _times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"
