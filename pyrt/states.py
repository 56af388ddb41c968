"""Connection states of a reconnecting client and the table of allowed transitions.

:class:`StateMachine` holds the current state; :meth:`StateMachine.to` refuses a transition the
table does not list with :class:`~pyrt.errors.IllegalTransition` and leaves the state untouched.
"""

from __future__ import annotations

from enum import Enum

from pyrt.errors import IllegalTransition

__all__ = ["READY_STATES", "TRANSITIONS", "State", "StateMachine", "ready_state"]


class State(Enum):
    """Where a client is in its life. Only ``CLOSED`` is final."""

    IDLE = "idle"  # created, connect() not called yet
    CONNECTING = "connecting"  # a socket is opening
    OPEN = "open"  # the socket is open: frames flow
    RECONNECTING = "reconnecting"  # the socket is gone; waiting out the backoff delay
    CLOSING = "closing"  # close() was called; waiting for the socket to finish closing
    CLOSED = "closed"  # done for good: no socket, no reconnect, sends raise


TRANSITIONS: dict[State, frozenset[State]] = {
    State.IDLE: frozenset({State.CONNECTING, State.CLOSED}),
    State.CONNECTING: frozenset({State.OPEN, State.RECONNECTING, State.CLOSING, State.CLOSED}),
    State.OPEN: frozenset({State.RECONNECTING, State.CLOSING, State.CLOSED}),
    State.RECONNECTING: frozenset({State.CONNECTING, State.CLOSED}),
    State.CLOSING: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}

# The JavaScript ``WebSocket.readyState`` numbers.
CONNECTING, OPEN, CLOSING, CLOSED = 0, 1, 2, 3

READY_STATES: dict[State, int] = {
    State.IDLE: CLOSED,  # no socket and not trying (like reconnecting-websocket's startClosed)
    State.CONNECTING: CONNECTING,
    State.OPEN: OPEN,
    State.RECONNECTING: CONNECTING,  # a reconnecting client is on its way back
    State.CLOSING: CLOSING,
    State.CLOSED: CLOSED,
}


def ready_state(state: State) -> int:
    """The ``readyState`` number (0..3) a JavaScript user would expect for ``state``."""
    return READY_STATES[state]


class StateMachine:
    """The current :class:`State`, changed only along :data:`TRANSITIONS`."""

    __slots__ = ("state",)

    def __init__(self, state: State = State.IDLE) -> None:
        self.state = state

    def can(self, new: State) -> bool:
        """True when the table allows going from the current state to ``new``."""
        return new in TRANSITIONS[self.state]

    def to(self, new: State) -> State:
        """Move to ``new`` and return the previous state.

        Raises :class:`~pyrt.errors.IllegalTransition` (state unchanged) when the table forbids it.
        """
        old = self.state
        if new not in TRANSITIONS[old]:
            raise IllegalTransition(f"illegal state transition {old.name} -> {new.name}")
        self.state = new
        return old
