"""Counters kept as plain integers on the hot path, exposed in Prometheus format by ``/metrics``.

Incrementing an ``int`` attribute costs nothing next to a locked ``prometheus_client.Counter``;
:class:`StatsCollector` turns a :class:`Stats` into metric families at scrape time. The
histograms (:class:`Histograms`) are the same idea: a :class:`Histogram` is a list of counts
and a ``bisect`` per observation, read at scrape time.

- ``pyrt_delivery_seconds``: from a publish frame read by this instance to the publication
  handed to this instance's subscribers of its channel (queued on their connections), matched
  by channel and offset (:class:`DeliveryLatency`; publications from elsewhere are not timed);
- ``pyrt_frame_bytes{direction}``: the size of every frame a client sent (``in``) and of every
  answer the server queued for one client (``out``; fanned-out publications are not counted);
- ``pyrt_connection_queue_bytes``: at scrape time, the bytes each connection holds on their way
  out (its queue and its socket's buffer), as a gauge histogram;
- ``pyrt_recover_seconds``: from a subscribe that resumes (``since``) to its replay written.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from pyrt.session.stats import Stats

__all__ = [
    "CONTENT_TYPE",
    "DeliveryLatency",
    "Histogram",
    "Histograms",
    "Stats",
    "StatsCollector",
    "metrics_endpoint",
]

# Stats is the sessions' counters (pyrt.session.stats), re-exported for the server's modules.

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BYTES_BUCKETS = (64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0)


class Histogram:
    """Counts per bucket (upper bounds ``buckets``, then +Inf), their sum and count."""

    __slots__ = ("buckets", "counts", "sum")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, count)`` pairs, cumulative, as Prometheus wants them."""
        out: list[tuple[str, float]] = []
        total = 0
        for bound, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            total += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), total))
        return out


class DeliveryLatency:
    """Times publications from their publish frame to their fan-out on this instance.

    The two ends meet by ``(channel, offset)`` in either order: the memory broker fans out before
    ``publish`` returns its offset, Redis after. Each side keeps at most ``limit`` unmatched
    entries (the oldest go first), so publications nobody matches cost a bounded map.
    """

    __slots__ = ("_dispatched", "_published", "histogram", "limit")

    def __init__(self, histogram: Histogram, limit: int = 4096) -> None:
        self.histogram = histogram
        self.limit = limit
        self._published: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._dispatched: OrderedDict[tuple[str, str], float] = OrderedDict()

    def published(self, channel: str, offset: str, started: float) -> None:
        """A publish frame read at ``started`` (monotonic seconds) was accepted as ``offset``."""
        key = (channel, offset)
        at = self._dispatched.pop(key, None)
        if at is not None:
            self.histogram.observe(max(0.0, at - started))
            return
        self._keep(self._published, key, started)

    def dispatched(self, channel: str, offset: str, now: float) -> None:
        """The publication went to this instance's subscribers at ``now``."""
        key = (channel, offset)
        started = self._published.pop(key, None)
        if started is not None:
            self.histogram.observe(max(0.0, now - started))
            return
        self._keep(self._dispatched, key, now)

    def _keep(self, table: OrderedDict[tuple[str, str], float], key: tuple[str, str], at: float) -> None:
        table[key] = at
        if len(table) > self.limit:
            table.popitem(last=False)


class Histograms:
    """The server's histograms (see the module docstring)."""

    def __init__(self) -> None:
        self.delivery = Histogram(LATENCY_BUCKETS)
        self.latency = DeliveryLatency(self.delivery)
        self.frames_in = Histogram(BYTES_BUCKETS)
        self.frames_out = Histogram(BYTES_BUCKETS)
        self.recover = Histogram(LATENCY_BUCKETS)


class StatsCollector(Collector):
    """A Prometheus collector reading a :class:`Stats` (and a broker name) at scrape time;
    with ``histograms`` and ``queues`` (the bytes each connection holds now), those too."""

    def __init__(
        self,
        stats: Stats,
        broker_kind: Callable[[], str],
        histograms: Histograms | None = None,
        queues: Callable[[], Iterable[int]] | None = None,
    ) -> None:
        self._stats = stats
        self._broker_kind = broker_kind
        self._histograms = histograms
        self._queues = queues

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
        yield from self._collect_histograms()

    def _collect_histograms(self) -> Iterator[Metric]:
        h = self._histograms
        if h is not None:
            yield _histogram(
                "pyrt_delivery_seconds", "Publish frame read to fan-out on this instance", h.delivery
            )
            yield _histogram("pyrt_recover_seconds", "Resuming subscribe to its replay written", h.recover)
            sizes = HistogramMetricFamily("pyrt_frame_bytes", "Frame sizes", labels=["direction"])
            for direction, histogram in (("in", h.frames_in), ("out", h.frames_out)):
                sizes.add_metric([direction], histogram.cumulative(), histogram.sum)
            yield sizes
        if self._queues is not None:
            queue = Histogram(BYTES_BUCKETS)
            for size in self._queues():
                queue.observe(size)
            family = GaugeHistogramMetricFamily(
                "pyrt_connection_queue_bytes", "Bytes each connection holds on their way out, now"
            )
            family.add_metric([], queue.cumulative(), queue.sum)
            yield family


def _histogram(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation)
    family.add_metric([], histogram.cumulative(), histogram.sum)
    return family


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
