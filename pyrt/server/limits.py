"""Limits that keep one client from hurting the others: token buckets (per connection and per
client identity) and a per-address connection cap.

Everything here is pure: time is passed in (``now``, monotonic seconds). The token bucket itself
is shared with the clients' fakes; it lives in :mod:`pyrt.session.admission`, with the per-connection
rules of refusals and holds built on it.
"""

from __future__ import annotations

from collections import Counter, OrderedDict

from pyrt.session.admission import TokenBucket

__all__ = ["ConnectionCap", "KeyedBuckets", "TokenBucket"]


class KeyedBuckets:
    """One :class:`TokenBucket` per key (a client identity), created on first use.

    A bucket that has refilled is forgotten (a new one is identical), and at most ``max_keys``
    are kept (the least recently used goes first), so the map stays small whatever clients send.
    """

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def wait(self, key: str, now: float) -> float:
        """Spend one token of ``key``'s bucket (0.0) or return the seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = TokenBucket(self.rate, self.burst, now)
        else:
            buckets.move_to_end(key)
        delay = bucket.wait(now)
        while buckets:
            oldest_key, oldest = next(iter(buckets.items()))
            if len(buckets) <= self.max_keys and (oldest is bucket or not oldest.full(now)):
                break
            del buckets[oldest_key]
        return delay


class ConnectionCap:
    """Counts open connections per client address; refuses more than ``limit`` (0: no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()

    def acquire(self, address: str) -> bool:
        """Count one more connection from ``address``; ``False`` (and nothing counted) if full."""
        if self.limit and self._open[address] >= self.limit:
            return False
        self._open[address] += 1
        return True

    def release(self, address: str) -> None:
        """One connection from ``address`` closed (call once per successful :meth:`acquire`)."""
        left = self._open[address] - 1
        if left > 0:
            self._open[address] = left
        else:
            del self._open[address]

    def count(self, address: str) -> int:
        return self._open.get(address, 0)

    def total(self) -> int:
        """Open connections from every address."""
        return sum(self._open.values())
