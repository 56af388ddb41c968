"""Reconnect delays: exponential backoff with jitter, attempt limits and a minimum uptime.

Pure policy: no clock, no randomness of its own. The caller passes the attempt number and a
random source, and decides what "connected for long enough" means by comparing uptime with
:attr:`Backoff.min_uptime` (see :meth:`Backoff.should_reset`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["Backoff", "Jitter"]

Jitter = Literal["full", "equal", "none"]
_JITTERS = ("full", "equal", "none")


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before reconnect attempt *n*.

    ``initial * factor ** (n - 1)``, capped at ``maximum``, then jittered:

    - ``"full"`` (default): uniform in ``[0, delay]`` — spreads a crowd of clients evenly, and
      makes even the first retry random so a thousand tabs dropped at once do not stampede;
    - ``"equal"``: uniform in ``[delay / 2, delay]``;
    - ``"none"``: exactly ``delay``.

    ``max_attempts`` bounds consecutive failed attempts (``None``: retry for ever). The attempt
    counter resets only after a connection stayed open ``min_uptime`` seconds, so a server that
    accepts and drops at once does not reset the backoff.
    """

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: Jitter = "full"
    max_attempts: int | None = None
    min_uptime: float = 5.0

    def __post_init__(self) -> None:
        if not self.initial >= 0:
            raise ValueError(f"Backoff.initial must be >= 0, got {self.initial!r}")
        if not self.maximum >= self.initial:
            raise ValueError(f"Backoff.maximum ({self.maximum!r}) must be >= initial ({self.initial!r})")
        if not self.factor >= 1:
            raise ValueError(f"Backoff.factor must be >= 1, got {self.factor!r}")
        if self.jitter not in _JITTERS:
            raise ValueError(f"Backoff.jitter must be one of {_JITTERS}, got {self.jitter!r}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"Backoff.max_attempts must be >= 1 or None, got {self.max_attempts!r}")
        if not self.min_uptime >= 0:
            raise ValueError(f"Backoff.min_uptime must be >= 0, got {self.min_uptime!r}")

    def base_delay(self, attempt: int) -> float:
        """The un-jittered delay before attempt ``attempt`` (1-based)."""
        if attempt < 1:
            raise ValueError(f"attempt numbers start at 1, got {attempt!r}")
        # Multiply step by step and stop at the cap: no float overflow for huge attempt numbers.
        delay = self.initial
        for _ in range(attempt - 1):
            delay *= self.factor
            if delay >= self.maximum:
                return self.maximum
        return min(delay, self.maximum)

    def delay(self, attempt: int, rng: Callable[[], float]) -> float:
        """The jittered delay before attempt ``attempt``; ``rng()`` returns a float in [0, 1)."""
        base = self.base_delay(attempt)
        if self.jitter == "full":
            return base * rng()
        if self.jitter == "equal":
            return base / 2 + (base / 2) * rng()
        return base

    def exhausted(self, attempt: int) -> bool:
        """True when attempt ``attempt`` (1-based) would exceed ``max_attempts``."""
        return self.max_attempts is not None and attempt > self.max_attempts

    def should_reset(self, uptime: float) -> bool:
        """True when a connection that stayed open ``uptime`` seconds resets the attempt count."""
        return uptime >= self.min_uptime
