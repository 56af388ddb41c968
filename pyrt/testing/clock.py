"""Time that moves only when told."""

from __future__ import annotations


class FakeClock:
    """A clock for tests: ``clock()`` returns :attr:`now`, which moves only by :meth:`advance`."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self.now += seconds
        return self.now
