"""Which transport the next connection uses: WebSocket first, plain HTTP where WebSockets fail.

A client with several transports (``transports=("websocket", "http")``, the pyrt protocol's
default) keeps one :class:`TransportChoice`. The rules:

1. **Start** on the transport remembered for this origin while its memory lasts, else the first.
2. **An attempt that never came up** (the upgrade refused, the socket closed before opening, or it
   opened and no ``welcome`` came within the connect timeout: "101 then silence") moves the next
   attempt to the next transport, round the list. A server that is simply down fails on every
   transport, so the client goes round and lands on whichever answers first when it is back.
3. **A connection that falls silent soon after coming up** (the heartbeat finds it dead within
   ``quick_death`` seconds) twice in a row on the same transport moves on too: frames that pass
   the handshake and then stop. A connection reset is not silence: it says nothing against the
   transport.
4. **Up on a fallback**: the first transport is probed in the background — first after
   ``probe_first`` seconds, then at twice the interval after each failed probe, at most
   ``probe_max`` — and when a probe gets a ``welcome``, the client moves over (a reconnect onto
   it: acked messages are re-sent with their ids and deduplicated, subscriptions recover by
   offset, so nothing is lost, duplicated or reordered).
5. **Remember** a fallback only once a probe confirmed that the first transport still fails (one
   failed attempt can be a server restart): :attr:`TransportChoice.memory` says what to store
   (``None``: forget), and for how long.

Pure: time comes in as ``now``; the engine asks and reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_TRANSPORTS", "Memory", "TransportChoice", "TransportPolicy"]

DEFAULT_TRANSPORTS: Final = ("websocket", "http")
KNOWN: Final = frozenset(DEFAULT_TRANSPORTS)


@dataclass(frozen=True, slots=True)
class TransportPolicy:
    """The knobs of :class:`TransportChoice` (seconds)."""

    quick_death: float = 15.0
    quick_deaths: int = 2
    probe_first: float = 10.0
    probe_max: float = 600.0
    remember_for: float = 7 * 24 * 3600.0

    def __post_init__(self) -> None:
        if not (0 < self.probe_first <= self.probe_max):
            raise ValueError(
                f"need 0 < probe_first <= probe_max, got {self.probe_first!r}, {self.probe_max!r}"
            )
        if self.quick_deaths < 1:
            raise ValueError(f"quick_deaths must be >= 1, got {self.quick_deaths!r}")


@dataclass(frozen=True, slots=True)
class Memory:
    """What works for this origin: ``transport``, for ``seconds`` more."""

    transport: str
    seconds: float


def check_transports(transports: tuple[str, ...]) -> tuple[str, ...]:
    """``transports`` if it is a non-empty list of known names without repeats."""
    if not transports:
        raise ValueError("transports must name at least one transport: 'websocket', 'http'")
    unknown = [name for name in transports if name not in KNOWN]
    if unknown:
        raise ValueError(f"unknown transport {unknown[0]!r}; the transports are 'websocket' and 'http'")
    if len(set(transports)) != len(transports):
        raise ValueError(f"transports lists one twice: {transports!r}")
    return tuple(transports)


class TransportChoice:
    """The transport of one client's connections. See the module docstring for the rules."""

    __slots__ = (
        "_confirmed",
        "_deaths",
        "_index",
        "_probe_delay",
        "order",
        "policy",
        "probe_at",
        "probing",
    )

    def __init__(
        self, order: tuple[str, ...], remembered: str | None = None, policy: TransportPolicy | None = None
    ) -> None:
        self.order = check_transports(order)
        self.policy = policy if policy is not None else TransportPolicy()
        self._index = self.order.index(remembered) if remembered in self.order else 0
        self._deaths = 0  # quick deaths in a row on the current transport
        self._probe_delay = self.policy.probe_first
        self._confirmed = remembered is not None and self._index > 0  # the first one fails here
        self.probe_at: float | None = None  # when to probe the first transport (None: not now)
        self.probing = False  # a probe is on its way

    @property
    def current(self) -> str:
        """The transport of the next (or current) connection."""
        return self.order[self._index]

    @property
    def on_fallback(self) -> bool:
        return self._index > 0

    @property
    def memory(self) -> Memory | None:
        """What to remember for this origin now (``None``: nothing: the first transport works,
        or a fallback is not confirmed yet)."""
        if self.on_fallback and self._confirmed:
            return Memory(self.current, self.policy.remember_for)
        return None

    def failed(self, why: str) -> str | None:
        """An attempt on :attr:`current` never came up (``why``). Returns, when the next attempt
        uses another transport, the sentence saying so."""
        if len(self.order) < 2:
            return None
        failed = self.current
        self._index = (self._index + 1) % len(self.order)
        self._deaths = 0
        self.probe_at = None
        self.probing = False
        return f"{_name(failed)} did not come up ({why}): trying {_name(self.current)}"

    def up(self, now: float) -> None:
        """A connection on :attr:`current` is up (its ``welcome`` came)."""
        if self.on_fallback and not self.probing:
            self.probe_at = now + self._probe_delay

    def lost(self, uptime: float, silent: bool = True) -> str | None:
        """A connection that was up ``uptime`` seconds is lost (``silent``: it stopped passing
        frames). Returns the sentence saying so when the next attempt moves to another transport
        (rule 3)."""
        self.probe_at = None
        self.probing = False
        if not silent or uptime >= self.policy.quick_death or len(self.order) < 2:
            self._deaths = 0
            return None
        self._deaths += 1
        if self._deaths < self.policy.quick_deaths:
            return None
        deaths, lost = self._deaths, self.current
        self.failed("")
        return (
            f"{_name(lost)} fell silent {deaths} times within {self.policy.quick_death:g} s of coming up:"
            f" trying {_name(self.current)}"
        )

    # ----------------------------------------------------------------------------------- probe

    def probe_due(self, now: float) -> bool:
        """Whether to start a probe of the first transport now."""
        return self.probe_at is not None and not self.probing and now >= self.probe_at

    def probe_started(self) -> str:
        """A probe starts; returns the transport it tries."""
        self.probing = True
        self.probe_at = None
        return self.order[0]

    def probe_succeeded(self) -> None:
        """The probe got a ``welcome``: the next connection uses the first transport."""
        self.probing = False
        self._index = 0
        self._deaths = 0
        self._confirmed = False
        self._probe_delay = self.policy.probe_first

    def probe_failed(self, now: float) -> None:
        """The probe did not come up: the first transport still fails here. Probe again later."""
        self.probing = False
        self._confirmed = True
        self._probe_delay = min(self.policy.probe_max, self._probe_delay * 2)
        if self.on_fallback:
            self.probe_at = now + self._probe_delay


def _name(transport: str) -> str:
    return "WebSocket" if transport == "websocket" else "HTTP"
