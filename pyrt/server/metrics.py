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

from pyrt.session.stats import Stats

__all__ = ["CONTENT_TYPE", "Stats", "StatsCollector", "metrics_endpoint"]

# Stats is the sessions' counters (pyrt.session.stats), re-exported for the server's modules.

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class StatsCollector(Collector):
    """A Prometheus collector reading a :class:`Stats` (and a broker name) at scrape time."""

    def __init__(self, stats: Stats, broker_kind: Callable[[], str]) -> None:
        self._stats = stats
        self._broker_kind = broker_kind

    def collect(self) -> Iterator[Metric]:
        s = self._stats
        gauge = GaugeMetricFamily("pyrt_connections", "Open connections", labels=["transport"])
        total = CounterMetricFamily("pyrt_connections", "Accepted connections", labels=["transport"])
        for transport in ("ws", "http", "sse"):
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
