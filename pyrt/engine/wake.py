"""Noticing that the machine slept: the wall clock moved on, the monotonic clock did not.

A laptop that sleeps stops the monotonic clock the engines run on (``performance.now()`` in
browsers on Linux and macOS, ``CLOCK_MONOTONIC`` on CPython) while the wall clock keeps the real
time. On wake, every deadline looks as if hardly any time had passed, so a heartbeat would take
a whole interval and timeout to find that the server, and every NAT between, dropped the
connection long ago. :class:`WakeDetector` compares the two clocks at each check (every timer
the client fires, every page event): when the wall clock ran ahead of the monotonic one by more
than ``threshold`` seconds, that much time was spent asleep, and the engines replace their
connection at once (see ``WebSocketEngine.woke``). A wall clock set back is ignored.

So that a sleep is noticed within :data:`CHECK_EVERY` seconds of waking even when no deadline is
near (a heartbeat every 25 s, or none), a connected client's timer fires at least that often;
page events (visible again, online again) check at once.
"""

from __future__ import annotations

__all__ = ["CHECK_EVERY", "WakeDetector"]

CHECK_EVERY = 2.0  # seconds: the longest a live client goes without comparing the clocks


class WakeDetector:
    """See the module docstring. Pure: the caller passes both clocks."""

    __slots__ = ("_mono", "_wall", "threshold")

    def __init__(self, threshold: float = 2.0) -> None:
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold!r}")
        self.threshold = threshold
        self._mono: float | None = None
        self._wall: float | None = None

    def check(self, mono: float, wall: float) -> float | None:
        """The seconds slept since the previous check (``None``: no sleep worth the name)."""
        last_mono, last_wall = self._mono, self._wall
        self._mono, self._wall = mono, wall
        if last_mono is None or last_wall is None:
            return None
        slept = (wall - last_wall) - (mono - last_mono)
        return slept if slept > self.threshold else None
