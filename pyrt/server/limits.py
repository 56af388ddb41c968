"""Limits that keep one client from hurting the others: a token bucket and a per-IP connection cap."""

from __future__ import annotations

from collections import Counter

__all__ = ["ConnectionCap", "TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up. ``take(now)`` spends one.

    Time is passed in (``now`` in seconds, monotonic), so the bucket is pure and testable.
    ``rate <= 0`` means unlimited.
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._tokens = self.burst
        self._last = now

    def take(self, now: float) -> bool:
        """Spend a token if there is one; ``False`` means over the limit."""
        if self.rate <= 0:
            return True
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return True
        self._tokens = tokens
        return False


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
