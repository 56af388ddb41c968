"""When to try again after a lost connection: one scheduler for every engine.

The rules, in the order they apply when a connection (or an attempt) is lost:

1. a connection that stayed open at least ``backoff.min_uptime`` seconds was healthy: the count of
   consecutive failures starts again from zero (a server that accepts and drops at once never
   resets it);
2. the loss counts as one more consecutive failure;
3. past ``backoff.max_attempts`` failures the client gives up;
4. otherwise the next attempt waits the jittered backoff delay for that failure number, never
   less than ``floor`` (a server's ``retry:`` or ``Retry-After``); when the server gave a
   reconnect ``window``, the delay is drawn uniformly over the window instead, so a crowd it
   dropped at once comes back spread out (:func:`reconnect_delay`; the hint's grammar is
   :mod:`pyrt.wire.reconnect_window`).

Pure: the caller passes uptimes and floors; randomness comes from the injected ``rng``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from pyrt.engine.backoff import Backoff

__all__ = ["ReconnectScheduler", "reconnect_delay"]


def reconnect_delay(
    backoff: Backoff,
    attempt: int,
    rng: Callable[[], float],
    window: float = 0.0,
    after: float = 0.0,
    cap: float = 300.0,
) -> float:
    """The wait before reconnect attempt ``attempt``.

    ``backoff.delay(attempt, rng)``; or, when the server gave a ``window``, one uniform draw
    over ``max(window, backoff.base_delay(attempt))`` — whatever the backoff's jitter mode: a
    window asks precisely for spreading, evenly. Never less than ``after``. The server's part
    is capped at ``cap`` seconds.
    """
    window = min(window, cap)
    if window <= 0:
        return max(backoff.delay(attempt, rng), min(after, cap))
    return max(max(window, backoff.base_delay(attempt)) * rng(), min(after, cap))


class ReconnectScheduler:
    """The failure count and the delays of one client. See the module docstring for the rules."""

    __slots__ = ("backoff", "failures", "last_delay", "rng")

    def __init__(self, backoff: Backoff, rng: Callable[[], float]) -> None:
        self.backoff = backoff
        self.rng = rng
        self.failures = 0  # consecutive failed connections or attempts: the backoff attempt number
        self.last_delay: float | None = None  # the last delay chosen, seconds

    def stayed_up(self, uptime: float | None) -> None:
        """A connection that had been open ``uptime`` seconds ended (``None``: it never opened):
        rule 1 alone, for losses that do not count as failures."""
        if uptime is not None and self.backoff.should_reset(uptime):
            self.failures = 0

    def failed(self, uptime: float | None = None, floor: float = 0.0, window: float = 0.0) -> float | None:
        """A connection (open ``uptime`` seconds, ``None``: never opened) or an attempt failed.

        Returns the delay before the next attempt, or ``None`` when the client must give up
        (then :attr:`failures` - 1 reconnect attempts were made). ``floor`` and ``window``: what
        the server asked (the caller bounds them).
        """
        self.stayed_up(uptime)
        self.failures += 1
        if self.backoff.exhausted(self.failures):
            return None
        delay = reconnect_delay(self.backoff, self.failures, self.rng, window, floor, cap=math.inf)
        self.last_delay = delay
        return delay

    @property
    def attempts_made(self) -> int:
        """Reconnect attempts made in the current run of failures (what "gave up after N" counts)."""
        return max(0, self.failures - 1)
