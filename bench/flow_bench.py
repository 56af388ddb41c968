"""Benchmark 9: draining a backlog of acked messages against ``serve.py``'s default limits.

A pyrt ``WebSocketClient`` (on CPython: the engine that decides pacing is the browser's) sends
``drain_messages`` acked messages to ``serve.py`` started with its default limits (200 frames per
second, bursts of 400, advertised in ``welcome``), two ways:

- **offline backlog**: every ``send_with_ack`` is called before the connection exists; the clock
  runs from ``connect()`` to the last ack;
- **burst while open**: all calls at once on an open connection; the clock runs from the first
  call to the last ack.

The figure is the time as a ratio of the ideal, ``messages / advertised rate`` (the client uses
90 % of the rate and half the burst, so about 1.07x is what a refusal-free drain costs), with
the refusals seen on both sides (goal: none) and 1008 closes.

**Sequential acks**: ``await send_with_ack`` one after another (a request/response application)
for ``seq_acks_seconds`` against the same defaults: acks per second and the round trip's median,
next to the advertised rate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from bench.config import Sizes
from bench.procs import serve_py_default_limits
from pyrt.server.settings import Settings

Log = Callable[[str], None]


def _metric(url: str, name: str, label: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + "{") and label in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _drain(ws_url: str, count: int, offline: bool) -> dict[str, Any]:
    from pyrt import WebSocketClient

    client = WebSocketClient(ws_url, heartbeat=None, queue_limit=count + 100, ack_timeout=60)
    if not offline:
        await client.connect().wait_open(30)
    started = time.perf_counter()
    futures = [client.send_with_ack({"n": n}) for n in range(count)]
    if offline:
        client.connect()
    results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 20 + count / 20)
    seconds = time.perf_counter() - started
    stats = client.stats
    client.close()
    await client.wait_closed(10)
    return {
        "messages": count,
        "seconds": seconds,
        "failed": sum(1 for r in results if isinstance(r, BaseException)),
        "client_refused": stats.refused,
        "reconnects": stats.reconnects,
    }


def drain_phase(count: int, offline: bool) -> dict[str, Any]:
    server = serve_py_default_limits()
    try:
        ws_url = "ws" + server.url[len("http") :] + "/ws"
        result = asyncio.run(_drain(ws_url, count, offline))
        result["server_refusals"] = _metric(server.url, "pyrt_errors_total", 'code="rate_limited"')
        result["closes_1008"] = _metric(server.url, "pyrt_drops_total", 'reason="rate_limit"')
        rate = Settings().rate_limit  # what serve.py advertises by default
        result["advertised_rate"] = rate
        result["ideal_seconds"] = count / rate
        result["ratio"] = result["seconds"] / result["ideal_seconds"]
        return result
    finally:
        server.stop()


async def _sequential(ws_url: str, seconds: float) -> dict[str, Any]:
    from pyrt import WebSocketClient

    client = WebSocketClient(ws_url, heartbeat=None)
    await client.connect().wait_open(30)
    rtts: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        sent = time.perf_counter()
        await client.send_with_ack({"n": len(rtts)})
        rtts.append(time.perf_counter() - sent)
    elapsed = time.perf_counter() - started
    refused = client.stats.refused
    client.close()
    await client.wait_closed(10)
    rtts.sort()
    return {
        "acks": len(rtts),
        "seconds": elapsed,
        "acks_per_s": len(rtts) / elapsed,
        "rtt_p50_ms": rtts[len(rtts) // 2] * 1000,
        "client_refused": refused,
    }


def sequential_phase(seconds: float) -> dict[str, Any]:
    server = serve_py_default_limits()
    try:
        ws_url = "ws" + server.url[len("http") :] + "/ws"
        result = asyncio.run(_sequential(ws_url, seconds))
        result["server_refusals"] = _metric(server.url, "pyrt_errors_total", 'code="rate_limited"')
        result["advertised_rate"] = Settings().rate_limit
        return result
    finally:
        server.stop()


def run_flow(sizes: Sizes, log: Log) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, offline in (("offline backlog", True), ("burst while open", False)):
        try:
            entry = drain_phase(sizes.drain_messages, offline)
        except Exception as exc:  # report, never hide: the table shows the error
            import traceback

            entry = {"error": "".join(traceback.format_exception(exc))[-3000:]}
            log(f"  drain ({name}): {traceback.format_exception_only(exc)[-1].strip()}")
        else:
            log(
                f"  drain ({name}): {entry['messages']} acked in {entry['seconds']:.2f} s, "
                f"{entry['ratio']:.3f}x the ideal; refusals: client {entry['client_refused']}, "
                f"server {entry['server_refusals']:.0f}; 1008: {entry['closes_1008']:.0f}"
            )
        out[name] = entry
    try:
        seq = sequential_phase(sizes.seq_acks_seconds)
    except Exception as exc:
        import traceback

        seq = {"error": "".join(traceback.format_exception(exc))[-3000:]}
        log(f"  sequential acks: {traceback.format_exception_only(exc)[-1].strip()}")
    else:
        log(
            f"  sequential acks against the default limits: {seq['acks_per_s']:.0f}/s "
            f"(advertised {seq['advertised_rate']:.0f}/s), p50 {seq['rtt_p50_ms']:.2f} ms; "
            f"refusals: client {seq['client_refused']}, server {seq['server_refusals']:.0f}"
        )
    return {"drain": out, "sequential": seq}
