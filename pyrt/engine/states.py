"""The states of every pyrt client, the transition table of each engine, and ``readyState``.

One :class:`State` enum serves the three clients (``WebSocketClient``, ``EventSourceClient``,
``FetchEventSource``); each engine allows the moves its own table lists.

The WebSocket engine's table, :data:`WEBSOCKET`, is keyed by state and then by :class:`Input`,
what happened (as h11's ``_state.py`` is): the reason for every change of state is in the table,
and the engine says only what happened (``machine.on(Input.LOST)``), never which state comes
next. :data:`TRANSITIONS` is the same table without the reasons. The SSE engines move along
plain tables (:data:`FETCH_SSE_TRANSITIONS`, :data:`EVENTSOURCE_TRANSITIONS`).
:class:`StateMachine` holds the current state; :meth:`StateMachine.on` and
:meth:`StateMachine.to` refuse a move the table does not list with
:class:`~pyrt.errors.IllegalTransition` and leave the state untouched.

:class:`ReadyState` is the one ``ready_state`` type: JavaScript's ``WebSocket.readyState``
numbers. The SSE clients use the same type and never report ``CLOSING`` (their close is
immediate), so their ``CLOSED`` is 3, where a browser's ``EventSource.CLOSED`` is 2: compare
with ``client.CLOSED``, not with a number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Final

from pyrt.errors import IllegalTransition

__all__ = [
    "EVENTSOURCE_TRANSITIONS",
    "FETCH_SSE_TRANSITIONS",
    "READY_STATES",
    "TRANSITIONS",
    "WEBSOCKET",
    "CloseEvent",
    "Closed",
    "Input",
    "Moves",
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


class Input(Enum):
    """What happened to a WebSocket engine: the keys of its table, :data:`WEBSOCKET`."""

    CONNECT = "connect"  # connect() was called
    OPENED = "opened"  # the connection is up: the socket opened (and, with pyrt, welcome came)
    LOST = "lost"  # the socket closed, failed or was given up on, and the client reconnects
    STOPPED = "stopped"  # the same, but the close policy or the attempt limit says stop
    RETRY = "retry"  # the reconnect delay is over (or the network or the machine came back)
    QUIET = "quiet"  # pause() or a hidden page: let go of the socket and wait
    RESUME = "resume"  # resume(), or the page shown again
    CLOSE = "close"  # close() was called
    SOCKET_CLOSED = "socket closed"  # the socket close() closes finished closing (or ran out of time)


Transitions = Mapping[State, frozenset[State]]
Moves = Mapping[State, Mapping[Input, State]]

_S = State
_I = Input

WEBSOCKET: Final[Moves] = {
    _S.IDLE: {
        _I.CONNECT: _S.CONNECTING,
        _I.CLOSE: _S.CLOSED,  # nothing to close
    },
    _S.CONNECTING: {
        _I.OPENED: _S.OPEN,
        _I.LOST: _S.RECONNECTING,  # the attempt failed (or timed out)
        _I.STOPPED: _S.CLOSED,
        _I.QUIET: _S.PAUSED,
        _I.CLOSE: _S.CLOSING,  # a socket on its way: wait for it to close
    },
    _S.OPEN: {
        _I.LOST: _S.RECONNECTING,
        _I.STOPPED: _S.CLOSED,
        _I.QUIET: _S.PAUSED,
        _I.CLOSE: _S.CLOSING,  # the closing handshake
    },
    _S.RECONNECTING: {
        _I.RETRY: _S.CONNECTING,
        _I.QUIET: _S.PAUSED,  # the pending attempt is cancelled
        _I.CLOSE: _S.CLOSED,  # no socket: closed at once
    },
    _S.PAUSED: {
        _I.RESUME: _S.CONNECTING,
        _I.CLOSE: _S.CLOSED,  # no socket: closed at once
    },
    _S.CLOSING: {
        _I.SOCKET_CLOSED: _S.CLOSED,
    },
    _S.CLOSED: {},  # final: a closed client is not reused
}
"""The WebSocket engine's moves (:class:`~pyrt.engine.websocket.WebSocketEngine`): for each state,
what may happen in it and the state that follows."""

TRANSITIONS: Final[Transitions] = {state: frozenset(moves.values()) for state, moves in WEBSOCKET.items()}
"""The WebSocket engine's moves without their reasons (:data:`WEBSOCKET`)."""

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


@dataclass(frozen=True, slots=True)
class Closed:
    """A client is closed for good (state CLOSED): the last action of every engine, and what
    every client's close event is (``on_close``, ``wait_closed()``, ``close_event``).

    ``error`` is what ``async for`` raises (``None``: iteration ends quietly, after ``close()``
    or an SSE server's ``204``); ``detail`` says why, in words; ``by_client`` is True after
    ``close()``. A WebSocket also tells how its socket closed: ``code``, ``reason`` and
    ``was_clean`` (an SSE client has no close code: ``None``).
    """

    error: Exception | None
    detail: str
    by_client: bool = False
    code: int | None = None
    reason: str = ""
    was_clean: bool = False


CloseEvent = Closed  # the name the clients' close events had when each engine had its own


class StateMachine:
    """The current :class:`State`, changed only along a transition table (default: the WebSocket
    one); with ``moves`` (a table keyed by :class:`Input`), :meth:`on` moves by what happened."""

    __slots__ = ("moves", "state", "table")

    def __init__(
        self, state: State = State.IDLE, table: Transitions = TRANSITIONS, moves: Moves | None = None
    ) -> None:
        if state not in table:
            raise ValueError(f"{state.name} is not a state of this table")
        self.state = state
        self.table = table
        self.moves = moves if moves is not None else (WEBSOCKET if table is TRANSITIONS else None)

    def on(self, event: Input) -> State:
        """Move where the table says ``event`` leads from the current state; return the previous
        state.

        Raises :class:`~pyrt.errors.IllegalTransition` (state unchanged) when the table lists no
        move for ``event`` in the current state.
        """
        old = self.state
        new = self.moves[old].get(event) if self.moves is not None else None
        if new is None:
            raise IllegalTransition(f"illegal input {event.value!r} in state {old.name}")
        self.state = new
        return old

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
