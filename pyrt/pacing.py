"""Client pacing: send no faster than the server takes, with a margin, so it never refuses.

The server measures a connection with a token bucket refilled from its *own* receive times
(:mod:`pyrt.admission`); the client can only control its send times. Between the two, clocks
differ slightly, and the network and both event loops bunch frames together: frames sent
evenly can arrive back to back. The :class:`Pacer` therefore keeps a margin on every limit the
server advertises in ``welcome`` (:class:`~pyrt.server_limits.ServerLimits`):

- **rate** — it refills at ``share`` (0.9) of the advertised rate, so over any long stretch the
  server's bucket gains on the client's;
- **burst** — its bucket holds ``burst_share`` (0.5) of the advertised burst; the other half is
  slack for bunching: frames sent up to ``(1 - burst_share) * burst / rate`` seconds apart may
  arrive together without a refusal (one second with the server's defaults);
- **window** — at most ``window_share`` (0.5) of the advertised window of frames is in flight
  without an answer. An answer (an ack, a refusal naming the frame, a pong) tells which frames the
  server has read, since it reads in order. At half of that, the engine sends a ping (a *probe*),
  whose pong confirms everything sent before it even when nothing else is answered. This bounds
  what a refusal can catch in flight, and keeps a backlog in the client while a server is slow.

Before ``welcome`` (and with a server that advertises nothing) the pacer uses the conservative
:class:`Pacing` ``rate`` and ``burst``.

After a refusal (:meth:`Pacer.hold`) nothing is paced until ``retry_after`` has passed **and**
every frame sent before the refusal was read has been answered: the refused ones then go again,
in their order, before anything newer. The server refuses everything in flight during its hold,
so this keeps the order of acknowledged messages. The bucket then starts empty, at half its
size: a refusal proves the server's bucket was smaller than the client's.

Heartbeat pings and pongs never wait (:meth:`Pacer.force`): they spend a token like any frame,
but may take the bucket below zero, so a backlog can never starve them. A server answers pings
even while it holds a connection.

Pure code: time comes in as ``now``; the engine asks :meth:`Pacer.allows` before each paced
frame, :meth:`Pacer.spend` when it sends one, and :meth:`Pacer.ready_at` for its timer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pyrt.server_limits import ServerLimits

__all__ = ["Pacer", "Pacing"]

_EPSILON = 1e-9  # float slack when a timer fires exactly when a token is due


@dataclass(frozen=True, slots=True)
class Pacing:
    """How a client paces what it sends (see the module docstring).

    ``rate`` (frames per second) and ``burst`` apply until the server advertises its limits,
    and with servers that advertise none. ``share``, ``burst_share`` and ``window_share`` are the
    parts of the advertised rate, burst and window the client uses. Set ``follow_server=False``
    to use ``rate``/``burst`` whatever the server says.
    """

    rate: float = 50.0
    burst: int = 50
    share: float = 0.9
    burst_share: float = 0.5
    window_share: float = 0.5
    follow_server: bool = True

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"Pacing.rate must be > 0 frames per second, got {self.rate!r}")
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            raise ValueError(f"Pacing.burst must be an int >= 1, got {self.burst!r}")
        for name in ("share", "burst_share", "window_share"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"Pacing.{name} must be in (0, 1], got {value!r}")


class Pacer:
    """The pacing state of one client; :meth:`start` it for every connection."""

    __slots__ = (
        "_hold_through",
        "_hold_until",
        "_last",
        "_pings",
        "_spent",
        "_tokens",
        "burst",
        "confirmed",
        "limits",
        "pacing",
        "rate",
        "seq",
        "window",
    )

    def __init__(self, pacing: Pacing | None = None) -> None:
        self.pacing = pacing if pacing is not None else Pacing()
        self.limits: ServerLimits | None = None
        self.rate: float | None = self.pacing.rate  # None: no rate limit
        self.burst = float(self.pacing.burst)
        self.window: int | None = None  # frames in flight without an answer; None: no bound
        self.seq = 0  # paced frames sent on this connection
        self.confirmed = 0  # the highest seq the server has answered (it read all before it)
        self._tokens = self.burst
        self._last = 0.0
        self._spent = 0  # frames sent on this connection (paced and forced)
        self._hold_until = 0.0
        self._hold_through: int | None = None
        self._pings: dict[object, int] = {}  # ping t -> seq when it was sent

    # ---------------------------------------------------------------------------- connection

    def start(self, now: float) -> None:
        """A new connection opened: the conservative limits until the server advertises its own."""
        pacing = self.pacing
        self.limits = None
        self.rate = pacing.rate
        self.burst = float(pacing.burst)
        self.window = None
        self.seq = self.confirmed = self._spent = 0
        self._tokens = self.burst
        self._last = now
        self._hold_until = 0.0
        self._hold_through = None
        self._pings.clear()

    def advertise(self, limits: ServerLimits | None, now: float) -> None:
        """The server's ``welcome`` arrived with ``limits`` (``None``: it advertises nothing)."""
        self.limits = limits
        pacing = self.pacing
        if limits is None or not pacing.follow_server:
            return
        self._refill(now)
        self.rate = None if limits.rate is None else limits.rate * pacing.share
        if limits.burst is not None:
            burst = max(1.0, math.floor(limits.burst * pacing.burst_share))
        elif limits.rate is not None:
            burst = max(1.0, math.floor(limits.rate * pacing.share))
        else:
            burst = self.burst
        # The server's bucket was full when it accepted; it has counted every frame since.
        self._tokens = min(burst, max(min(self._tokens, 0.0), burst - self._spent))
        self.burst = burst
        if limits.window is not None:
            self.window = max(2, math.floor(limits.window * pacing.window_share))

    # ---------------------------------------------------------------------------- decisions

    def allows(self, now: float) -> bool:
        """May a paced frame go now? (Spend it with :meth:`spend`.)"""
        if now < self._hold_until:
            return False
        if self._hold_through is not None:
            if self.confirmed < self._hold_through:
                return False
            self._hold_through = None
        if self.window is not None and self.seq - self.confirmed >= self.window:
            return False
        if self.rate is None:
            return True
        return self._refill(now) >= 1.0 - _EPSILON

    def spend(self, now: float) -> int:
        """A paced frame was sent (after :meth:`allows`); returns its sequence number."""
        self._refill(now)
        self._tokens -= 1.0
        self._spent += 1
        self.seq += 1
        return self.seq

    def force(self, now: float) -> None:
        """A frame that never waits (a heartbeat ping or pong) was sent."""
        self._refill(now)
        self._tokens -= 1.0
        self._spent += 1

    def ready_at(self, now: float) -> float | None:
        """When :meth:`allows` can next become true by time alone; ``None`` while it waits for
        an answer from the server (the engine is called again when one arrives)."""
        if self.waiting_for_answer:
            return None
        at = max(now, self._hold_until)
        if self.rate is None:
            return at
        missing = 1.0 - self._refill(now)
        return at if missing <= _EPSILON else max(at, self._last + missing / self.rate)

    @property
    def waiting_for_answer(self) -> bool:
        """True when only an answer from the server can let the next frame go."""
        if self._hold_through is not None and self.confirmed < self._hold_through:
            return True
        return self.window is not None and self.seq - self.confirmed >= self.window

    def probe_due(self) -> bool:
        """True when a ping should go out to learn how far the server has read: half the
        window is unanswered, or a hold waits for answers, and no ping is on its way."""
        if self._pings:
            return False
        if self._hold_through is not None and self.confirmed < self._hold_through:
            return True
        return self.window is not None and 2 * (self.seq - self.confirmed) >= self.window

    # ---------------------------------------------------------------------------- answers

    def confirm(self, seq: int) -> bool:
        """The server answered the frame sent as ``seq`` (it has read everything up to it).
        Returns True when that lets frames go that were waiting for an answer."""
        if seq <= self.confirmed:
            return False
        waiting = self.waiting_for_answer
        self.confirmed = min(seq, self.seq)
        return waiting and not self.waiting_for_answer

    def ping_sent(self, t: object) -> None:
        """A ping with ``t`` went out (heartbeat or probe): its pong confirms what was sent before."""
        self._pings[t] = self.seq

    def pong(self, t: object) -> bool:
        """A pong with ``t`` arrived; like :meth:`confirm`."""
        seq = self._pings.pop(t, None)
        return False if seq is None else self.confirm(seq)

    def hold(self, until: float, now: float) -> None:
        """The server refused a frame: send nothing paced before ``until``, nor before every
        frame sent so far is answered. The bucket starts again empty at ``until``, and half
        its size: the server's own burst was smaller than this one, whatever it advertised
        (for this connection; the next one starts from the advertisement again)."""
        self._refill(now)
        self._hold_until = max(self._hold_until, until)
        self._hold_through = self.seq
        self._tokens = min(self._tokens, 0.0)
        self._last = max(self._last, self._hold_until)
        self.burst = max(1.0, math.floor(self.burst / 2))

    # ---------------------------------------------------------------------------- internals

    def _refill(self, now: float) -> float:
        if now > self._last:
            if self.rate is not None:
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
        return self._tokens
