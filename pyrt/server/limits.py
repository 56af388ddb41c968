"""Limits that keep one client from hurting the others: token buckets (per connection and per
client identity), meters of work that may run into debt, and a per-address connection cap.

Everything here is pure: time is passed in (``now``, monotonic seconds). The token bucket itself
is shared with the clients' fakes; it lives in :mod:`pyrt.session.admission`, with the per-connection
rules of refusals and holds built on it.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from pyrt.session.admission import TokenBucket

__all__ = ["ConnectionCap", "KeyedBuckets", "KeyedMeters", "Meter", "TokenBucket"]


class Meter:
    """A budget of ``rate`` units per second (bytes, microseconds of work...), at most ``burst``
    saved up, that work already done is charged to: :meth:`charge` always spends, running into
    debt, and says how long the client should wait before it is served again (until the debt is
    paid back). ``rate <= 0`` means unlimited.

    It meters what cannot be refused before it is known (a received message's inflated size):
    the caller waits (reads nothing more from the client) instead of refusing.
    """

    __slots__ = ("_balance", "_last", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = max(burst, 0.0)
        self._balance = self.burst
        self._last = now

    def _refill(self, now: float) -> float:
        if now > self._last:
            self._balance = min(self.burst, self._balance + (now - self._last) * self.rate)
            self._last = now
        return self._balance

    def charge(self, cost: float, now: float) -> float:
        """Spend ``cost`` (less than 0: give it back, up to ``burst``); return the seconds until
        the balance is back to zero (0.0: not in debt)."""
        if self.rate <= 0:
            return 0.0
        self._balance = min(self.burst, self._refill(now) - cost)
        return 0.0 if self._balance >= 0 else -self._balance / self.rate

    def wait(self, now: float) -> float:
        """The seconds until the balance is back to zero, spending nothing."""
        if self.rate <= 0:
            return 0.0
        balance = self._refill(now)
        return 0.0 if balance >= 0 else -balance / self.rate

    def full(self, now: float) -> bool:
        """Whether the meter has refilled completely (it is then as good as a new one)."""
        return self.rate <= 0 or self._balance + max(0.0, now - self._last) * self.rate >= self.burst


class _Entry(Protocol):
    def full(self, now: float) -> bool: ...


_E = TypeVar("_E", bound=_Entry)


class _Keyed(Generic[_E]):
    """One entry per key, made on first use by ``make(rate, burst, now)``. An entry that is full
    again is forgotten (a new one is identical), and at most ``max_keys`` are kept (the least
    recently used goes first), so the map stays small whatever clients send."""

    def __init__(
        self, rate: float, burst: float, max_keys: int, make: Callable[[float, float, float], _E]
    ) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._make = make
        self._entries: OrderedDict[str, _E] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _use(self, key: str, now: float) -> _E:
        entries = self._entries
        entry = entries.get(key)
        if entry is None:
            entry = entries[key] = self._make(self.rate, self.burst, now)
        else:
            entries.move_to_end(key)
        return entry

    def _prune(self, used: _E, now: float) -> None:
        entries = self._entries
        while entries:
            oldest_key, oldest = next(iter(entries.items()))
            if len(entries) <= self.max_keys and (oldest is used or not oldest.full(now)):
                break
            del entries[oldest_key]


class KeyedBuckets(_Keyed[TokenBucket]):
    """One :class:`TokenBucket` per key (a client identity), created on first use; a bucket that
    has refilled is forgotten and at most ``max_keys`` are kept."""

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        super().__init__(rate, burst, max_keys, TokenBucket)

    def wait(self, key: str, now: float, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens of ``key``'s bucket (0.0) or return the seconds until they are
        available."""
        if self.rate <= 0:
            return 0.0
        bucket = self._use(key, now)
        delay = bucket.wait(now, cost)
        self._prune(bucket, now)
        return delay


class KeyedMeters(_Keyed[Meter]):
    """One :class:`Meter` per key (a client identity or address), created on first use; like
    :class:`KeyedBuckets`, a full meter is forgotten and at most ``max_keys`` are kept."""

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        super().__init__(rate, burst, max_keys, Meter)

    def charge(self, key: str, cost: float, now: float) -> float:
        """Charge ``cost`` to ``key``; the seconds it should wait (0.0: none)."""
        if self.rate <= 0:
            return 0.0
        meter = self._use(key, now)
        delay = meter.charge(cost, now)
        self._prune(meter, now)
        return delay

    def wait(self, key: str, now: float) -> float:
        """The seconds ``key`` should wait now (0.0: none), spending nothing."""
        meter = self._entries.get(key)
        return 0.0 if meter is None else meter.wait(now)


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
