"""The engine's transports feature: which transport each connection uses, the probe back to the
first one, and what to remember (the rules: :mod:`pyrt.engine.transport_choice`).

The core asks :attr:`Transports.current` when it opens a socket and tells this feature when an
attempt failed, a connection came up or was lost; it says in words (``on_reconnecting``, and a
:class:`~pyrt.errors.TransportUnavailable` through ``on_error``) why a transport was skipped.
While a connection is up on a fallback, a probe socket (``OpenProbe``) tries the first
transport now and then; when it gets its ``welcome`` the client moves over at once, with a
reconnect that loses, duplicates and reorders nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrt.engine.actions import CloseProbe, OpenProbe, RememberTransport, ReportError
from pyrt.engine.transport_choice import Memory, TransportChoice, TransportPolicy
from pyrt.errors import TransportUnavailable
from pyrt.wire.frames import Welcome
from pyrt.wire.types import Frame

if TYPE_CHECKING:
    from pyrt.engine.connection import ConnectionCore

__all__ = ["Transports"]


class Transports:
    """See the module docstring."""

    def __init__(self, core: ConnectionCore, order: tuple[str, ...], policy: TransportPolicy | None) -> None:
        self.core = core
        self.policy = policy
        self.choice = TransportChoice(order, None, policy)
        self._probe_deadline: float | None = None
        self._remembered: Memory | None = None
        self._told = False  # a TransportUnavailable was reported since the last connection came up

    @property
    def current(self) -> str:
        return self.choice.current

    def restore(self, remembered: str | None) -> None:
        """Start from the transport remembered for this origin (call before connecting)."""
        self.choice = TransportChoice(self.choice.order, remembered, self.policy)
        self._remembered = self.choice.memory

    # ------------------------------------------------------------------------ the connection

    def failed(self, why: str) -> str | None:
        """An attempt never came up: maybe move on; the sentence saying so, if it did."""
        return self._moved(self.choice.failed(why))

    def lost(self, uptime: float, silent: bool) -> str | None:
        """A connection that was up ``uptime`` seconds is lost (``silent``: it stopped passing
        frames, the heartbeat's verdict): maybe move on (rule 3)."""
        return self._moved(self.choice.lost(uptime, silent))

    def up(self, now: float) -> None:
        self._told = False
        if self.choice.on_fallback:
            self.core.stats.fallbacks += 1
        self.choice.up(now)
        self._remember()

    def off_the_wire(self) -> None:
        """The connection is gone: so is any probe made for it."""
        if self.choice.probing or self._probe_deadline is not None:
            self._probe_deadline = None
            self.choice.probing = False
            self.core._actions.append(CloseProbe())

    def _moved(self, sentence: str | None) -> str | None:
        """Report a move on ``on_error`` once until a connection comes up again: while the server
        is down, every transport fails in turn, and each attempt says so in ``on_reconnecting``."""
        if sentence is not None and not self._told:
            self._told = True
            self.core._actions.append(ReportError(TransportUnavailable(sentence)))
        return sentence

    # --------------------------------------------------------------------------------- probe

    def next_deadline(self) -> float | None:
        if self._probe_deadline is not None:
            return self._probe_deadline
        return self.choice.probe_at

    def tick(self, now: float) -> None:
        if self._probe_deadline is not None and now >= self._probe_deadline:
            self._probe_failed(now)
        elif self.choice.probe_due(now):
            transport = self.choice.probe_started()
            self._probe_deadline = now + self.core._connect_timeout
            self.core._actions.append(OpenProbe(transport))

    def probe_received(self, frame: Frame, now: float) -> None:
        """A frame on the probe socket: its ``welcome`` means the first transport works here."""
        if self._probe_deadline is None:
            return
        if type(self.core.protocol.decode(frame)) is not Welcome:
            self._probe_failed(now)
            return
        self._probe_deadline = None
        self.core._actions.append(CloseProbe())
        self.choice.probe_succeeded()
        self.core.stats.upgrades += 1
        self._remember()
        self.core.move_over(now, f"moving to {self.choice.current}: a probe came up")

    def probe_closed(self, now: float) -> None:
        """The probe socket closed or failed before its ``welcome``."""
        if self._probe_deadline is not None:
            self._probe_failed(now)

    def _probe_failed(self, now: float) -> None:
        self._probe_deadline = None
        self.core._actions.append(CloseProbe())
        self.choice.probe_failed(now)
        self._remember()

    def _remember(self) -> None:
        memory = self.choice.memory
        if memory != self._remembered:
            self._remembered = memory
            if memory is None:
                self.core._actions.append(RememberTransport(None))
            else:
                self.core._actions.append(RememberTransport(memory.transport, memory.seconds))
