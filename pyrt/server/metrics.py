"""Counters kept as plain integers on the hot path, exposed in Prometheus format by ``/metrics``.

Incrementing an ``int`` attribute costs nothing next to a locked ``prometheus_client.Counter``;
:class:`StatsCollector` turns a :class:`Stats` into metric families at scrape time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["CONTENT_TYPE", "Stats", "StatsCollector", "metrics_endpoint"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Stats:
    """What the server counts. Attributes are bumped directly by the code that knows."""

    def __init__(self) -> None:
        self.connections_open: Counter[str] = Counter()  # by transport: ws, sse
        self.connections_total: Counter[str] = Counter()
        self.frames_in = 0  # WebSocket frames received on /ws
        self.frames_out = 0  # frames / events sent on /ws and /sse
        self.messages_in: Counter[str] = Counter()  # by frame type
        self.acks: Counter[str] = Counter()  # ok / error
        self.dedup_hits: Counter[str] = Counter()  # message / publish
        self.publications = 0  # accepted publish requests (not duplicates)
        self.deliveries = 0  # publications handed to subscribers (live)
        self.replayed = 0  # publications sent from history
        self.drops: Counter[str] = Counter()  # slow_consumer, demo, heartbeat, rate_limit, shutdown
        self.errors: Counter[str] = Counter()  # error frame codes and refused requests
        self.rejected: Counter[str] = Counter()  # origin, auth, per_ip, too_large, draining, refresh
        self.refreshes = 0  # tokens refreshed in place on a live connection
        self.history_reads = 0  # history pages answered (frames and GET /history)
        self.throttled: Counter[str] = Counter()  # reads paused for a budget: receive, cpu

    def drop(self, reason: str) -> None:
        self.drops[reason] += 1

    def error(self, code: str) -> None:
        self.errors[code] += 1


class StatsCollector(Collector):
    """A Prometheus collector reading a :class:`Stats` (and a broker name) at scrape time."""

    def __init__(self, stats: Stats, broker_kind: Callable[[], str]) -> None:
        self._stats = stats
        self._broker_kind = broker_kind

    def collect(self) -> Iterator[Metric]:
        s = self._stats
        gauge = GaugeMetricFamily("pyrt_connections", "Open connections", labels=["transport"])
        total = CounterMetricFamily("pyrt_connections", "Accepted connections", labels=["transport"])
        for transport in ("ws", "sse"):
            gauge.add_metric([transport], s.connections_open[transport])
            total.add_metric([transport], s.connections_total[transport])
        yield gauge
        yield total
        yield CounterMetricFamily("pyrt_frames_in", "WebSocket frames received", value=s.frames_in)
        yield CounterMetricFamily("pyrt_frames_out", "Frames and events sent", value=s.frames_out)
        yield _labelled("pyrt_messages_in", "Frames received by type", "type", s.messages_in)
        yield _labelled("pyrt_acks", "Acks sent", "result", s.acks)
        yield _labelled("pyrt_dedup_hits", "Re-sent ids answered from the dedup window", "kind", s.dedup_hits)
        yield CounterMetricFamily("pyrt_publications", "Publications accepted", value=s.publications)
        yield CounterMetricFamily("pyrt_deliveries", "Live publications sent", value=s.deliveries)
        yield CounterMetricFamily("pyrt_replayed", "Publications replayed from history", value=s.replayed)
        yield _labelled("pyrt_drops", "Connections dropped by the server", "reason", s.drops)
        yield _labelled("pyrt_errors", "Error frames sent", "code", s.errors)
        yield _labelled("pyrt_rejected", "Connections or requests refused", "reason", s.rejected)
        yield CounterMetricFamily("pyrt_token_refreshes", "Tokens refreshed in place", value=s.refreshes)
        yield CounterMetricFamily("pyrt_history_reads", "History pages answered", value=s.history_reads)
        yield _labelled("pyrt_throttled", "Clients made to wait for a budget", "budget", s.throttled)
        info = GaugeMetricFamily("pyrt_broker", "The broker in use", labels=["kind"])
        info.add_metric([self._broker_kind()], 1)
        yield info


def _labelled(name: str, documentation: str, label: str, counts: Counter[str]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(counts.items()):
        family.add_metric([key], value)
    return family


def metrics_endpoint(registry: CollectorRegistry) -> Callable[[Request], Awaitable[Response]]:
    """A ``GET /metrics`` handler for ``registry``."""

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE)

    return metrics
