"""The states of every pyrt client, the transition table of each engine, and ``readyState``.

One :class:`State` enum serves the three clients (``WebSocketClient``, ``EventSourceClient``,
``FetchEventSource``); each engine allows the moves its own table lists
(:data:`TRANSITIONS`, :data:`FETCH_SSE_TRANSITIONS`, :data:`EVENTSOURCE_TRANSITIONS`).
:class:`StateMachine` holds the current state; :meth:`StateMachine.to` refuses a transition its
table does not list with :class:`~pyrt.errors.IllegalTransition` and leaves the state untouched.

:class:`ReadyState` is the one ``ready_state`` type: JavaScript's ``WebSocket.readyState``
numbers. The SSE clients use the same type and never report ``CLOSING`` (their close is
immediate), so their ``CLOSED`` is 3, where a browser's ``EventSource.CLOSED`` is 2: compare
with ``client.CLOSED``, not with a number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import TYPE_CHECKING, Final, Protocol

from pyrt.errors import IllegalTransition

__all__ = [
    "EVENTSOURCE_TRANSITIONS",
    "FETCH_SSE_TRANSITIONS",
    "READY_STATES",
    "TRANSITIONS",
    "ReadyState",
    "State",
    "StateChanged",
    "StateMachine",
    "Transitions",
    "ready_state",
]


class State(Enum):
    """Where a client is in its life. Only ``CLOSED`` is final."""

    IDLE = "idle"  # created, connect() not called yet
    CONNECTING = "connecting"  # a socket, request or native EventSource is on its way
    OPEN = "open"  # connected: frames or events flow
    RECONNECTING = "reconnecting"  # the connection is gone; waiting out the backoff delay
    PAUSED = "paused"  # offline on purpose (pause(), a hidden page); nothing in flight, no timer
    CLOSING = "closing"  # close() was called; waiting for the socket to finish closing
    CLOSED = "closed"  # done for good: no connection, no reconnect


Transitions = Mapping[State, frozenset[State]]

_S = State

TRANSITIONS: Final[Transitions] = {
    _S.IDLE: frozenset({_S.CONNECTING, _S.CLOSED}),
    _S.CONNECTING: frozenset({_S.OPEN, _S.RECONNECTING, _S.PAUSED, _S.CLOSING, _S.CLOSED}),
    _S.OPEN: frozenset({_S.RECONNECTING, _S.PAUSED, _S.CLOSING, _S.CLOSED}),
    _S.RECONNECTING: frozenset({_S.CONNECTING, _S.PAUSED, _S.CLOSED}),
    _S.PAUSED: frozenset({_S.CONNECTING, _S.CLOSED}),
    _S.CLOSING: frozenset({_S.CLOSED}),
    _S.CLOSED: frozenset(),
}
"""The WebSocket engine's moves (:class:`~pyrt.engine.websocket.WebSocketEngine`)."""

FETCH_SSE_TRANSITIONS: Final[Transitions] = {
    _S.IDLE: frozenset({_S.CONNECTING, _S.PAUSED, _S.CLOSED}),
    _S.CONNECTING: frozenset({_S.OPEN, _S.RECONNECTING, _S.PAUSED, _S.CLOSED}),
    _S.OPEN: frozenset({_S.RECONNECTING, _S.PAUSED, _S.CLOSED}),
    _S.RECONNECTING: frozenset({_S.CONNECTING, _S.PAUSED, _S.CLOSED}),
    _S.PAUSED: frozenset({_S.CONNECTING, _S.CLOSED}),
    _S.CLOSED: frozenset(),
}
"""SSE over ``fetch`` (:class:`~pyrt.engine.sse.FetchSSEEngine`): no CLOSING (aborting a request
is immediate); PAUSED while the page is hidden with ``when_hidden="pause"``."""

EVENTSOURCE_TRANSITIONS: Final[Transitions] = {
    _S.IDLE: frozenset({_S.CONNECTING, _S.CLOSED}),
    _S.CONNECTING: frozenset({_S.OPEN, _S.RECONNECTING, _S.CLOSED}),
    _S.OPEN: frozenset({_S.CONNECTING, _S.RECONNECTING, _S.CLOSED}),
    _S.RECONNECTING: frozenset({_S.CONNECTING, _S.CLOSED}),
    _S.CLOSED: frozenset(),
}
"""A native ``EventSource`` (:class:`~pyrt.engine.sse.EventSourcePolicy`): OPEN -> CONNECTING
when the browser reconnects the object by itself; RECONNECTING while pyrt waits to re-create it."""


class ReadyState(IntEnum):
    """JavaScript's ``WebSocket.readyState`` numbers, for all three clients."""

    CONNECTING = 0  # connecting, reconnecting or paused: on its way (back)
    OPEN = 1
    CLOSING = 2  # WebSocket only: the closing handshake is under way
    CLOSED = 3  # not started, or done for good


READY_STATES: Final[Mapping[State, ReadyState]] = {
    _S.IDLE: ReadyState.CLOSED,  # no connection and not trying (like reconnecting-websocket's startClosed)
    _S.CONNECTING: ReadyState.CONNECTING,
    _S.OPEN: ReadyState.OPEN,
    _S.RECONNECTING: ReadyState.CONNECTING,  # on its way back
    _S.PAUSED: ReadyState.CONNECTING,  # comes back by itself on resume() / a visible page
    _S.CLOSING: ReadyState.CLOSING,
    _S.CLOSED: ReadyState.CLOSED,
}


def ready_state(state: State) -> ReadyState:
    """The ``readyState`` a JavaScript user would expect for ``state``."""
    return READY_STATES[state]


@dataclass(frozen=True, slots=True)
class StateChanged:
    """An engine moved from ``old`` to ``new`` (an action: the adapter calls ``on_state``)."""

    old: State
    new: State


if TYPE_CHECKING:  # for annotations (a Protocol class costs import time in Pyodide)

    class CloseEvent(Protocol):
        """What every client's close event carries (``on_close``, ``wait_closed()``, ``close_event``)."""

        @property
        def by_client(self) -> bool:
            """True after ``close()``; False when the client stopped by itself."""
            ...

        @property
        def detail(self) -> str:
            """Why it ended, in words."""
            ...

        @property
        def error(self) -> Exception | None:
            """What ``async for`` raises (``None``: iteration ends quietly)."""
            ...


class StateMachine:
    """The current :class:`State`, changed only along a transition table (default: the WebSocket one)."""

    __slots__ = ("state", "table")

    def __init__(self, state: State = State.IDLE, table: Transitions = TRANSITIONS) -> None:
        if state not in table:
            raise ValueError(f"{state.name} is not a state of this table")
        self.state = state
        self.table = table

    def can(self, new: State) -> bool:
        """True when the table allows going from the current state to ``new``."""
        return new in self.table[self.state]

    def to(self, new: State) -> State:
        """Move to ``new`` and return the previous state.

        Raises :class:`~pyrt.errors.IllegalTransition` (state unchanged) when the table forbids it.
        """
        old = self.state
        if new not in self.table[old]:
            raise IllegalTransition(f"illegal state transition {old.name} -> {new.name}")
        self.state = new
        return old
