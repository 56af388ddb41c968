"""Delivery accounting for fault tests: what was sent, what arrived, and what went wrong.

Every test message carries ``(stream, seq)``: the stream it belongs to (a channel, a sender) and
its sequence number in that stream. :class:`DeliveryChecker` records sends and deliveries and
reports sent, delivered, duplicates, gaps (sent but never delivered), order violations (a message
delivered after a later one of its stream) and latency percentiles; :func:`check_delivery` does it
for one stream of sequence numbers. ``report.assert_exactly_once_in_order()`` fails a test with a
short account of what went wrong.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["DeliveryChecker", "DeliveryReport", "check_delivery", "percentile"]


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-quantile (0..1) by nearest rank, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass
class DeliveryReport:
    sent: int
    delivered: int
    unique_delivered: int
    duplicates: int
    gaps: int
    order_violations: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    missing: dict[str, list[int]] = field(default_factory=dict)
    #: Deliveries of a ``(stream, seq)`` never recorded as sent (counted once each).
    unexpected: int = 0

    @property
    def exactly_once_in_order(self) -> bool:
        return self.duplicates == 0 and self.gaps == 0 and self.order_violations == 0 and self.unexpected == 0

    def summary(self) -> str:
        """One line: the counts, and the first missing sequence numbers of each stream."""
        text = (
            f"sent {self.sent}, delivered {self.delivered} ({self.unique_delivered} unique): "
            f"{self.duplicates} duplicates, {self.gaps} gaps, {self.order_violations} out of order, "
            f"{self.unexpected} never sent"
        )
        missing = {stream: seqs[:10] for stream, seqs in self.missing.items() if seqs}
        return f"{text}; missing {missing}" if missing else text

    def assert_exactly_once_in_order(self) -> None:
        """Raise :class:`AssertionError` with :meth:`summary` unless every message sent arrived
        exactly once and in order."""
        if not self.exactly_once_in_order:
            raise AssertionError(f"delivery was not exactly once in order: {self.summary()}")

    def json_line(self, scenario: str, **extra: object) -> str:
        body = {k: v for k, v in vars(self).items() if k != "missing"}
        body["missing_sample"] = {s: seqs[:10] for s, seqs in self.missing.items() if seqs}
        return json.dumps({"scenario": scenario, **body, **extra}, sort_keys=True)


class DeliveryChecker:
    """Record sends and deliveries (with optional timestamps in seconds), then :meth:`report`."""

    def __init__(self) -> None:
        self.sent: dict[str, dict[int, float | None]] = defaultdict(dict)
        self.delivered: list[tuple[str, int, float | None]] = []

    def send(self, stream: str, seq: int, at: float | None = None) -> None:
        if seq in self.sent[stream]:
            raise ValueError(f"({stream!r}, {seq}) was already recorded as sent")
        self.sent[stream][seq] = at

    def deliver(self, stream: str, seq: int, at: float | None = None) -> None:
        self.delivered.append((stream, seq, at))

    def deliver_all(self, items: Iterable[tuple[str, int]]) -> None:
        for stream, seq in items:
            self.deliver(stream, seq)

    def report(self) -> DeliveryReport:
        seen: dict[str, set[int]] = defaultdict(set)
        last: dict[str, int] = {}
        duplicates = order_violations = unexpected = 0
        latencies: list[float] = []
        for stream, seq, at in self.delivered:
            if seq in seen[stream]:
                duplicates += 1
                continue
            seen[stream].add(seq)
            if seq not in self.sent.get(stream, {}):
                unexpected += 1
            if stream in last and seq < last[stream]:
                order_violations += 1
            last[stream] = max(seq, last.get(stream, seq))
            sent_at = self.sent.get(stream, {}).get(seq)
            if sent_at is not None and at is not None:
                latencies.append((at - sent_at) * 1000)
        missing = {stream: sorted(set(seqs) - seen[stream]) for stream, seqs in self.sent.items()}
        return DeliveryReport(
            sent=sum(len(seqs) for seqs in self.sent.values()),
            delivered=len(self.delivered),
            unique_delivered=sum(len(s) for s in seen.values()),
            duplicates=duplicates,
            gaps=sum(len(m) for m in missing.values()),
            order_violations=order_violations,
            latency_p50_ms=percentile(latencies, 0.5),
            latency_p99_ms=percentile(latencies, 0.99),
            missing=missing,
            unexpected=unexpected,
        )


def check_delivery(sent: Iterable[int], delivered: Iterable[int], stream: str = "messages") -> DeliveryReport:
    """The report for one stream: ``sent`` sequence numbers against ``delivered`` (in delivery order)."""
    checker = DeliveryChecker()
    for seq in sent:
        checker.send(stream, seq)
    for seq in delivered:
        checker.deliver(stream, seq)
    return checker.report()
