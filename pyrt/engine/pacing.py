"""Client pacing: send no faster than the server takes, with a margin, so it never refuses.

The server measures a connection with a token bucket refilled from its *own* receive times
(:mod:`pyrt.session.admission`); the client can only control its send times. Between the two, clocks
differ slightly, and the network and both event loops bunch frames together: frames sent
evenly can arrive back to back. The :class:`Pacer` therefore keeps a margin on every limit the
server advertises in ``welcome`` (:class:`~pyrt.wire.limits.ServerLimits`):

- **rate** — it refills at ``share`` (0.9) of the advertised rate (the lower of the frame rate
  and the identity's publication rate, when both are advertised: one connection then stays under
  both), so over any long stretch the server's bucket gains on the client's;
- **burst** — its bucket holds ``burst_share`` (0.5) of the advertised burst; the other half is
  slack for bunching: frames sent up to ``(1 - burst_share) * burst / rate`` seconds apart may
  arrive together without a refusal (one second with the server's defaults);
- **window** — at most ``window_share`` (0.5) of the advertised window of frames is in flight
  without an answer. An answer (an ack, a refusal naming the frame, a pong) tells which frames the
  server has read, since it reads in order. At half of that, the engine sends a ping (a *probe*),
  whose pong confirms everything sent before it even when nothing else is answered. This bounds
  what a refusal can catch in flight, and keeps a backlog in the client while a server is slow.

With a protocol whose servers send ``welcome`` (pyrt), paced frames wait for it (at most
:data:`WELCOME_GRACE` seconds; it comes with the connection), so even the first frames know the
limits, and a frame larger than the server takes is failed instead of getting the connection
closed. A server whose ``welcome`` advertises no rate sets none: frames go as fast as the
application sends them (a request/response loop runs at the speed of the network), until the
server refuses one; from then on that connection is paced at the conservative :class:`Pacing`
``rate`` and ``burst``, as it is with a server that never welcomes.

After a refusal (:meth:`Pacer.hold`) nothing is paced until ``retry_after`` has passed **and**
every frame sent before the refusal was read has been answered: the refused ones then go again,
in their order, before anything newer. The server refuses everything in flight during its hold,
so this keeps the order of acknowledged messages. The bucket then starts empty, and the rate and
burst are halved (a refusal proves the server took less than the client sent, whatever it
advertised), then climb back linearly to the advertised values over ten seconds: additive
increase, multiplicative decrease, as TCP does with its congestion window.

Heartbeat pings and pongs never wait (:meth:`Pacer.force`): they spend a token like any frame,
but may take the bucket below zero, so a backlog can never starve them. A server answers pings
even while it holds a connection.

Pure code: time comes in as ``now``; the engine asks :meth:`Pacer.allows` before each paced
frame, :meth:`Pacer.spend` when it sends one, and :meth:`Pacer.ready_at` for its timer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pyrt.wire.limits import ServerLimits

__all__ = ["WELCOME_GRACE", "Pacer", "Pacing"]

_MARGIN = 1e-9  # seconds a timer waits past the moment a token is due: never a hair early
WELCOME_GRACE = 1.0  # seconds paced frames wait for the server's welcome on a new connection
RECOVERY = 0.1  # after a cut, the rate climbs back by this part of its ceiling per second
FLOOR = 0.05  # cuts never go below this part of the ceiling


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


def _lower(a: float | None, b: float | None) -> float | None:
    """The stricter of two limits (``None``: not limited)."""
    if a is None:
        return b
    return a if b is None else min(a, b)


class Pacer:
    """The pacing state of one client; :meth:`start` it for every connection."""

    __slots__ = (
        "_awaiting",
        "_ceiling",
        "_cut",
        "_hold_through",
        "_hold_until",
        "_last",
        "_pings",
        "_recover_from",
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
        self._awaiting: float | None = None  # waiting for the welcome until then
        self._ceiling: tuple[float | None, float] = (self.rate, self.burst)  # what it climbs back to
        self._cut: float | None = None  # the rate right after the last cut
        self._recover_from: float | None = None  # when the climb back started (None: at ceiling)

    # ---------------------------------------------------------------------------- connection

    def start(self, now: float, welcome: bool = False) -> None:
        """A new connection opened: the conservative limits until the server advertises its own.
        ``welcome``: the server will send one; paced frames wait for it (see :meth:`advertise`)."""
        pacing = self.pacing
        self._awaiting = now + WELCOME_GRACE if welcome else None
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
        self._set_ceiling()

    def advertise(self, limits: ServerLimits | None, now: float) -> None:
        """The server's ``welcome`` arrived with ``limits`` (``None``: it advertises nothing)."""
        self._awaiting = None
        self.limits = limits
        pacing = self.pacing
        if not pacing.follow_server:
            return
        self._refill(now)
        if limits is None:  # nothing advertised: no rate until the server refuses a frame
            self.rate = None
            self._set_ceiling()
            return
        rate = _lower(limits.rate, limits.publish_rate)
        self.rate = None if rate is None else rate * pacing.share
        advertised_burst = _lower(limits.burst, limits.publish_burst)
        if advertised_burst is not None:
            burst = max(1.0, math.floor(advertised_burst * pacing.burst_share))
        elif rate is not None:
            burst = max(1.0, math.floor(rate * pacing.share))
        else:
            burst = self.burst
        # The server's bucket was full when it accepted; it has counted every frame since.
        self._tokens = min(burst, max(min(self._tokens, 0.0), burst - self._spent))
        self.burst = burst
        self._set_ceiling()
        if limits.window is not None:
            self.window = max(2, math.floor(limits.window * pacing.window_share))

    # ---------------------------------------------------------------------------- decisions

    def allows(self, now: float) -> bool:
        """May a paced frame go now? (Spend it with :meth:`spend`.)"""
        if self._awaiting is not None:
            if now < self._awaiting:
                return False
            self._awaiting = None  # no welcome: go on with the defaults
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
        return self._refill(now) >= 1.0  # a whole token, as the server counts it

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
        """When to look again: the end of a hold, else when :meth:`allows` can next become
        true by time alone; ``None`` while only an answer from the server can help (the engine
        is called again when one arrives)."""
        if self._awaiting is not None and now < self._awaiting:
            return self._awaiting
        if now < self._hold_until:
            return self._hold_until
        if self.waiting_for_answer:
            return None
        at = now
        if self.rate is None:
            return at
        missing = 1.0 - self._refill(now)
        return at if missing <= 0.0 else max(at, self._last + missing / self.rate + _MARGIN)

    @property
    def waiting_for_answer(self) -> bool:
        """True when only an answer from the server can let the next frame go."""
        if self._hold_through is not None and self.confirmed < self._hold_through:
            return True
        return self.window is not None and self.seq - self.confirmed >= self.window

    def probe_due(self, now: float) -> bool:
        """True when a ping should go out to learn how far the server has read, and none is on
        its way: half the window is unanswered, or a hold is over but still waits for answers
        (the refusals of acked messages usually bring them; a fire-and-forget frame has none)."""
        if self._pings:
            return False
        if self._hold_through is not None and self.confirmed < self._hold_through:
            return now >= self._hold_until
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
        frame sent so far is answered. The bucket starts again empty at ``until``; the first
        refusal of a hold also halves rate and burst (they climb back afterwards). For this
        connection; the next one starts from the advertisement again."""
        self._refill(now)
        holding = now < self._hold_until or (
            self._hold_through is not None and self.confirmed < self._hold_through
        )
        self._hold_until = max(self._hold_until, until)
        self._hold_through = self.seq
        self._tokens = min(self._tokens, 0.0)
        self._last = max(self._last, self._hold_until)
        if self.rate is None:  # a limit the server did not advertise: the conservative pace
            self.rate, self.burst = self.pacing.rate, float(self.pacing.burst)
            self._tokens = 0.0  # unpaced frames spent no real tokens: start empty, not in debt
            self._set_ceiling()
            holding = True  # already cautious: no cut on top
        ceiling = self._ceiling[0]
        if not holding:  # the frames in flight come back refused too: one cut per hold
            self.burst = max(1.0, math.floor(self.burst / 2))
            if ceiling is not None and self.rate is not None:
                self.rate = self._cut = max(ceiling * FLOOR, self.rate / 2)
        if self._cut is not None:
            self._recover_from = self._hold_until

    # ---------------------------------------------------------------------------- internals

    def _set_ceiling(self) -> None:
        self._ceiling = (self.rate, self.burst)
        self._cut = self._recover_from = None

    def _refill(self, now: float) -> float:
        if now > self._last:
            if self.rate is not None:
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._recover_from is not None:
                self._climb(now)
        return self._tokens

    def _climb(self, now: float) -> None:
        """After a cut: the rate (and with it the burst) climbs back to the ceiling, linearly."""
        ceiling, ceiling_burst = self._ceiling
        if ceiling is None or self._cut is None or self._recover_from is None:
            return
        if now <= self._recover_from:
            return
        rate = self._cut + ceiling * RECOVERY * (now - self._recover_from)
        if rate >= ceiling:
            self.rate, self.burst = ceiling, ceiling_burst
            self._cut = self._recover_from = None
            return
        self.rate = rate
        self.burst = max(self.burst, min(ceiling_burst, math.floor(ceiling_burst * rate / ceiling)))
