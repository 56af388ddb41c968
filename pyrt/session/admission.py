"""Admission of one connection's frames: a token bucket, and a *hold* after each refusal.

Pure policy, used by ``serve.py`` (:mod:`pyrt.server.protocol_handler`) and by
:class:`pyrt.testing.FakePyrtServer`; time comes in as ``now`` (the server's monotonic clock,
sampled when it reads each frame). The rules, as docs/protocol.md states them:

1. **Rate.** A connection may send ``rate`` frames per second on average and ``burst`` back to
   back: a token bucket that refills from the server's own receive times.
2. **Hold.** A frame that finds no token (or that another limit refuses for now, such as a
   publication quota: :meth:`FlowGate.hold`) is refused (``rate_limited`` with ``retry_after``)
   and starts a hold: the server pings the client with the hold's marker as ``t``, and refuses every
   frame until the client's pong for that ping has arrived (so it has read the refusal) *and*
   ``retry_after`` has passed. Frames that were already on their way are refused too, never
   handled out of order: a client that re-sends the refused frames in their order after the
   hold keeps its order. During a hold the bucket only refills, so the frame that ends it is
   accepted. Pongs always pass; a few pings per hold are answered.
3. **Abuse** (close 1008) is only one of:

   - sending after having read a refusal and before its ``retry_after`` ran out (``abuse_limit``
     such frames in a burst, refilled at one per second);
   - more than ``window`` frames refused in one hold before the client answered the hold's
     ping: a client that keeps sending without reading what the server says.

   A client that waits ``retry_after`` after a refusal, answers pings, and never has more than
   ``window`` frames in flight without an answer — what :mod:`pyrt.engine.pacing` does — cannot meet
   either condition, however the network bunches its frames: it is never closed.

``rate <= 0`` turns the rate off (every frame is accepted, but for the holds other limits start).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["MIN_HOLD", "FlowGate", "TokenBucket", "Verdict"]

MIN_HOLD = 0.5  # seconds a hold lasts at least: time for the frames in flight to come back refused
SLACK = 0.02  # a frame this early before the end of a hold is on time (clocks, timer granularity)
PINGS_PER_HOLD = 4  # pings answered during one hold; more count like any other frame


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

    @property
    def tokens(self) -> float:
        """The tokens left at the last :meth:`take` (or :meth:`refill`)."""
        return self._tokens

    def refill(self, now: float) -> float:
        """Add what ``now - last`` earned (up to ``burst``); returns the tokens available."""
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
        return self._tokens

    def take(self, now: float) -> bool:
        """Spend a token if there is one; ``False`` means over the limit."""
        return self.wait(now) == 0.0

    def wait(self, now: float, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens (one by default, at most ``burst``) and return 0.0; or, over the
        limit, spend nothing and return the seconds until they are available."""
        if self.rate <= 0:
            return 0.0
        cost = min(cost, self.burst)
        tokens = self.refill(now)
        if tokens >= cost:
            self._tokens = tokens - cost
            return 0.0
        return (cost - tokens) / self.rate

    def full(self, now: float) -> bool:
        """Whether the bucket has refilled completely (it is then as good as a new one)."""
        return self.rate <= 0 or self._tokens + max(0.0, now - self._last) * self.rate >= self.burst


class Verdict(enum.Enum):
    """What the server does with one frame."""

    ACCEPT = "accept"  # handle it
    REFUSE = "refuse"  # answer rate_limited (retry_after from FlowGate.retry_after); drop it
    HOLD = "hold"  # REFUSE, and a hold just started: also send the ping with FlowGate.marker
    CLOSE = "close"  # abuse: close the connection with 1008


@dataclass(slots=True)
class _Hold:
    until: float  # retry_after runs out here
    marker: str  # the ``t`` of the hold's ping
    acknowledged: bool = False  # the pong for that ping arrived: the client read the refusal
    unanswered: int = 0  # frames refused before that pong
    pings: int = 0  # pings answered during the hold


class FlowGate:
    """The admission state of one connection. See the module docstring for the rules.

    Contract for the server: for every frame, call :meth:`admit` first (cheap, before parsing);
    when it returns ``False``, parse the frame and call :meth:`check` with its type (and
    :meth:`pong` for a pong). On :attr:`Verdict.HOLD` send the refusal, then a ping with
    ``t`` = :attr:`marker`; on :attr:`Verdict.REFUSE` send the refusal with
    ``retry_after`` = :meth:`retry_after`.
    """

    __slots__ = ("_abuse", "_bucket", "_hold", "_holds", "abuse_limit", "window")

    def __init__(self, rate: float, burst: float, window: int, abuse_limit: int, now: float) -> None:
        self._bucket = TokenBucket(rate, burst, now)
        self._abuse = TokenBucket(1.0, abuse_limit, now)
        self.window = max(1, window)
        self.abuse_limit = abuse_limit
        self._hold: _Hold | None = None
        self._holds = 0

    @property
    def rate(self) -> float:
        return self._bucket.rate

    @property
    def holding(self) -> bool:
        return self._hold is not None

    @property
    def marker(self) -> str | None:
        """The ``t`` of the current hold's ping (``None`` outside a hold)."""
        return self._hold.marker if self._hold is not None else None

    @property
    def holds(self) -> int:
        """Holds started on this connection so far."""
        return self._holds

    def retry_after(self, now: float) -> float:
        """Seconds the client must still wait before sending again (0.0 outside a hold)."""
        hold = self._hold
        return 0.0 if hold is None else max(0.0, hold.until - now)

    def admit(self, now: float) -> bool:
        """The fast path: ``True`` (a token spent) when the frame is accepted outright."""
        return self._hold is None and self._bucket.take(now)

    def check(self, now: float, kind: str | None = None) -> Verdict:
        """Decide for a frame :meth:`admit` did not accept; ``kind`` is its ``type``."""
        if kind == "pong":
            return Verdict.ACCEPT  # a pong answers the server: never refused
        hold = self._hold
        if hold is not None:
            if hold.acknowledged and now >= hold.until - SLACK:
                self._hold = hold = None
            elif kind == "ping" and hold.pings < PINGS_PER_HOLD:
                hold.pings += 1
                return Verdict.ACCEPT
            elif hold.acknowledged:
                # The client read the refusal and sent this before retry_after ran out.
                return Verdict.REFUSE if self._abuse.take(now) else Verdict.CLOSE
            else:
                hold.unanswered += 1
                return Verdict.REFUSE if hold.unanswered <= self.window else Verdict.CLOSE
        bucket = self._bucket
        if bucket.take(now):
            return Verdict.ACCEPT
        self._holds += 1
        wait = max(MIN_HOLD, (1.0 - bucket.tokens) / bucket.rate)
        self._hold = _Hold(until=now + wait, marker=f"hold-{self._holds}", unanswered=1)
        return Verdict.HOLD

    def hold(self, now: float, wait: float) -> str | None:
        """Another limit refused a frame the bucket let through (the publication quota of the
        client's identity, say): start a hold all the same, so what follows in flight is refused
        too and the client can re-send in order. Returns the marker of the hold's ping (``None``
        when already holding)."""
        if self._hold is not None:
            return None
        self._holds += 1
        self._hold = _Hold(until=now + max(MIN_HOLD, wait), marker=f"hold-{self._holds}", unanswered=1)
        return self._hold.marker

    def pong(self, t: object, now: float) -> None:
        """A pong arrived with ``t``: when it answers the hold's ping, the client has read the
        refusal."""
        hold = self._hold
        if hold is not None and t == hold.marker:
            hold.acknowledged = True
