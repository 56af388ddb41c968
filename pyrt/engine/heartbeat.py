"""Application-level heartbeat: find dead connections the browser would notice minutes later.

Browsers cannot send WebSocket ping frames, so liveness is checked with ordinary frames. The rules:

- **Any inbound frame is proof of life.** A ping is sent only after ``interval`` seconds with
  nothing received, so a busy connection costs no extra frames.
- After a ping, the connection is declared dead when nothing at all arrived within ``timeout``.
- **Deadlines are absolute times** compared with the caller's clock, never counted timer ticks: a
  throttled background-tab timer that fires late still measures the real elapsed time.
- **A late check never convicts.** When the check runs more than ``timeout / 2`` after its
  deadline, the page was frozen or its timers throttled, and the pong may still sit in the event
  queue; the monitor re-pings and gives the connection a fresh ``timeout`` instead. Only a second
  silent window in a row is a dead verdict. :meth:`HeartbeatMonitor.check_now` (called when the
  page becomes visible or the network comes back) re-pings at once.

Round-trip times come from pongs only: ``rtt`` (last) and ``srtt`` (smoothed, as TCP does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from pyrt.wire.types import Frame

__all__ = ["Heartbeat", "HeartbeatMonitor", "Verdict"]

PingFactory = Callable[[], Frame]
PongMatcher = Callable[[Frame], bool]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Heartbeat settings.

    ``ping``: the frame to send (a str/bytes, or a callable returning one); ``None`` lets the
    protocol choose (``{"type":"ping"}`` for pyrt, the text ``"ping"`` in raw mode).
    ``pong``: the frame that answers it (a str/bytes compared for equality, or a predicate);
    ``None`` lets the protocol choose. Matching pong frames are not delivered as messages.
    """

    interval: float = 25.0
    timeout: float = 10.0
    ping: Frame | PingFactory | None = None
    pong: Frame | PongMatcher | None = None

    def __post_init__(self) -> None:
        if not self.interval > 0:
            raise ValueError(f"Heartbeat.interval must be > 0, got {self.interval!r}")
        if not self.timeout > 0:
            raise ValueError(f"Heartbeat.timeout must be > 0, got {self.timeout!r}")

    def ping_frame(self) -> Frame | None:
        """The configured ping frame, or None when the protocol chooses."""
        if self.ping is None or isinstance(self.ping, str | bytes):
            return self.ping
        return self.ping()

    def pong_matcher(self) -> PongMatcher | None:
        """A predicate recognising the configured pong, or None when the protocol chooses."""
        pong = self.pong
        if pong is None:
            return None
        if isinstance(pong, str | bytes):
            return lambda frame: frame == pong
        return pong


class Verdict(Enum):
    """What :meth:`HeartbeatMonitor.check` asks the caller to do."""

    WAIT = "wait"  # nothing to do before next_deadline()
    PING = "ping"  # send a ping now
    DEAD = "dead"  # the connection is dead: abandon the socket


SMOOTHING = 0.125  # weight of a new sample in srtt, as in TCP (RFC 6298)


class HeartbeatMonitor:
    """Liveness of one connection at a time. :meth:`start` it on every open.

    Contract: set :attr:`last_seen` to ``now`` for every inbound frame (a plain attribute, cheap
    on the hot path), call :meth:`pong` when a frame is the pong, and call :meth:`check` at
    :meth:`next_deadline` (or later); send a ping whenever it returns ``Verdict.PING``.
    """

    __slots__ = ("_graced", "config", "last_seen", "ping_sent_at", "pings", "rtt", "srtt")

    def __init__(self, config: Heartbeat) -> None:
        self.config = config
        self.last_seen = 0.0
        self.ping_sent_at: float | None = None  # the outstanding ping, if any
        self.pings = 0  # pings sent (also the sequence number of the last one)
        self.rtt: float | None = None
        self.srtt: float | None = None
        self._graced = False

    def start(self, now: float) -> None:
        """A new connection just opened: the idle clock starts now, no ping outstanding."""
        self.last_seen = now
        self.ping_sent_at = None
        self._graced = False

    def next_deadline(self) -> float:
        """When :meth:`check` should run next."""
        if self.ping_sent_at is not None and self.last_seen < self.ping_sent_at:
            return self.ping_sent_at + self.config.timeout
        return self.last_seen + self.config.interval

    def check(self, now: float) -> Verdict:
        """Decide at ``now``: wait, ping, or declare the connection dead."""
        sent = self.ping_sent_at
        if sent is not None:
            if self.last_seen >= sent:
                self.ping_sent_at = None  # something arrived after the ping: alive
                self._graced = False
            else:
                deadline = sent + self.config.timeout
                if now < deadline:
                    return Verdict.WAIT
                late = now - deadline > self.config.timeout / 2
                if late and not self._graced:
                    self._graced = True
                    return self._ping(now)
                return Verdict.DEAD
        if now >= self.last_seen + self.config.interval:
            return self._ping(now)
        return Verdict.WAIT

    def check_now(self, now: float) -> Verdict:
        """Probe at once (page visible again, network back): ping with a fresh timeout."""
        self._graced = False
        return self._ping(now)

    def pong(self, now: float, seq: object = None) -> None:
        """A pong arrived; ``seq`` is the echoed ping number when the protocol carries one."""
        sent = self.ping_sent_at
        if sent is None or (seq is not None and seq != self.pings):
            return
        rtt = max(0.0, now - sent)
        self.rtt = rtt
        self.srtt = rtt if self.srtt is None else self.srtt + SMOOTHING * (rtt - self.srtt)
        self.ping_sent_at = None
        self._graced = False

    def _ping(self, now: float) -> Verdict:
        self.ping_sent_at = now
        self.pings += 1
        return Verdict.PING
