"""Publish/deliver throughput of the server app in-process with OpenTelemetry on (``--otel``) vs off.

One writer and one reader over WebSockets of the Starlette test client (no network, one process):
the writer sends N ``publish`` frames (with a ``traceparent``: on, each makes three spans: the
frame's, its broker round trip's and its fan-out's), the reader receives the N publications and
the writer the N acks. The time is the wall time from the first send to the last publication;
spans go through a ``BatchSpanProcessor`` to an exporter that drops them (what the SDK costs,
not an exporter's network). The test client's thread hops are in both modes' time, so the ratio
understates the spans' share of a real server's CPU.

Prints the best of a few runs in publications per second and the ratio to ``off``; the modes
take turns going first. ``python -m bench.otel_bench [N]``
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from starlette.testclient import TestClient

from pyrt.server import Settings, create_app

MODES = ("off", "on")
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class _Dropping(SpanExporter):
    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def _run(mode: str, n: int) -> tuple[float, int]:
    exporter = _Dropping()
    provider = None
    if mode == "on":
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=4 * n))
    settings = Settings(
        allowed_hosts=("testserver",),
        demo_tick=0,
        rate_limit=0,
        publish_rate=0,
        publish_bytes_rate=0,
        otel=mode == "on",
        otel_tracer_provider=provider,
    )
    app = create_app(settings)
    with (
        TestClient(app) as client,
        client.websocket_connect("/ws", subprotocols=["pyrt.v1"]) as reader,
        client.websocket_connect("/ws", subprotocols=["pyrt.v1"]) as writer,
    ):
        reader.receive_json()
        writer.receive_json()
        reader.send_json({"type": "subscribe", "channel": "bench", "since": None})
        while reader.receive_json()["type"] != "subscribed":
            pass
        frame: dict[str, Any] = {"type": "publish", "channel": "bench", "traceparent": TRACEPARENT}
        start = time.perf_counter()
        for i in range(n):
            writer.send_json({**frame, "id": f"p-{i}", "data": {"n": i, "text": "hello"}})
        got = 0
        while got < n:
            if reader.receive_json()["type"] == "publication":
                got += 1
        elapsed = time.perf_counter() - start
        acks = 0
        while acks < n:
            if writer.receive_json()["type"] == "ack":
                acks += 1
    if provider is not None:
        provider.shutdown()
    return n / elapsed, exporter.spans


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000
    runs = 5
    best = dict.fromkeys(MODES, 0.0)
    spans = 0
    for run in range(runs):
        for mode in MODES[run % 2 :] + MODES[: run % 2]:  # each mode goes first in turn
            gc.collect()
            rate, exported = _run(mode, n)
            best[mode] = max(best[mode], rate)
            spans = max(spans, exported)
    for mode in MODES:
        ratio = best[mode] / best["off"]
        rate = f"{best[mode]:8.0f} pub/s ({ratio:.2f}x)"
        print(f"otel {mode:3}: {n} publications delivered, best of {runs}: {rate}")
    print(f"spans exported per run with otel on: {spans} ({spans / n:.1f} per publication)")


if __name__ == "__main__":
    main()
