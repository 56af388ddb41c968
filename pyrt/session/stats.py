"""What the server counts, kept as plain integers on the hot path (``/metrics`` renders them:
:mod:`pyrt.server.metrics`). Attributes are bumped directly by the code that knows."""

from __future__ import annotations

from collections import Counter

__all__ = ["Stats"]


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
