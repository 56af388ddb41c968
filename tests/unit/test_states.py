"""States: one enum for every client, a table per engine (the WebSocket one keyed by what happened);
illegal moves raise and change nothing; one Closed for every engine."""

from __future__ import annotations

import pytest

from pyrt.engine.states import (
    EVENTSOURCE_TRANSITIONS,
    FETCH_SSE_TRANSITIONS,
    TRANSITIONS,
    WEBSOCKET,
    Closed,
    Input,
    ReadyState,
    State,
    StateMachine,
    Transitions,
    ready_state,
)
from pyrt.errors import IllegalTransition

TABLES = [TRANSITIONS, FETCH_SSE_TRANSITIONS, EVENTSOURCE_TRANSITIONS]


def test_a_client_starts_idle() -> None:
    assert StateMachine().state is State.IDLE


def test_the_normal_life_of_a_client_is_allowed() -> None:
    machine = StateMachine()
    path = [State.CONNECTING, State.OPEN, State.RECONNECTING, State.CONNECTING, State.OPEN]
    path += [State.PAUSED, State.CONNECTING, State.OPEN, State.CLOSING, State.CLOSED]
    for state in path:
        machine.to(state)
    assert machine.state is State.CLOSED


def test_an_illegal_transition_raises_and_leaves_the_state_untouched() -> None:
    machine = StateMachine(State.RECONNECTING)
    with pytest.raises(IllegalTransition, match="RECONNECTING -> OPEN"):
        machine.to(State.OPEN)
    assert machine.state is State.RECONNECTING


@pytest.mark.parametrize("table", TABLES)
def test_closed_is_final(table: Transitions) -> None:
    machine = StateMachine(State.CLOSED, table)
    for state in State:
        assert not machine.can(state)
        with pytest.raises(IllegalTransition):
            machine.to(state)
    assert machine.state is State.CLOSED


def test_to_returns_the_previous_state() -> None:
    assert StateMachine().to(State.CONNECTING) is State.IDLE


@pytest.mark.parametrize("table", TABLES)
def test_every_state_but_closed_can_reach_closed(table: Transitions) -> None:
    for state, targets in table.items():
        if state is not State.CLOSED:
            assert State.CLOSED in targets or State.CLOSING in targets


@pytest.mark.parametrize("table", TABLES)
def test_every_state_of_a_table_is_reachable_from_idle(table: Transitions) -> None:
    seen, todo = {State.IDLE}, [State.IDLE]
    while todo:
        for target in table[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    assert seen == set(table)


def test_the_sse_engines_never_close_slowly_and_a_native_eventsource_never_pauses() -> None:
    assert State.CLOSING not in FETCH_SSE_TRANSITIONS
    assert State.CLOSING not in EVENTSOURCE_TRANSITIONS
    assert State.PAUSED not in EVENTSOURCE_TRANSITIONS


def test_a_machine_refuses_a_state_its_table_does_not_know() -> None:
    with pytest.raises(ValueError, match="CLOSING is not a state of this table"):
        StateMachine(State.CLOSING, FETCH_SSE_TRANSITIONS)


def test_the_table_of_a_machine_decides() -> None:
    machine = StateMachine(State.OPEN, EVENTSOURCE_TRANSITIONS)
    machine.to(State.CONNECTING)  # the browser reconnects the native object by itself
    with pytest.raises(IllegalTransition, match="CONNECTING -> PAUSED"):
        machine.to(State.PAUSED)


@pytest.mark.parametrize(
    ("state", "number"),
    [
        (State.IDLE, 3),
        (State.CONNECTING, 0),
        (State.OPEN, 1),
        (State.RECONNECTING, 0),
        (State.PAUSED, 0),
        (State.CLOSING, 2),
        (State.CLOSED, 3),
    ],
)
def test_ready_state_uses_the_javascript_websocket_numbers(state: State, number: int) -> None:
    assert ready_state(state) == number
    assert isinstance(ready_state(state), ReadyState)


def test_ready_state_names_match_javascript() -> None:
    names = [(r.name, int(r)) for r in ReadyState]
    assert names == [("CONNECTING", 0), ("OPEN", 1), ("CLOSING", 2), ("CLOSED", 3)]


# ------------------------------------------------------------ the WebSocket table, keyed by input


def test_the_websocket_machine_moves_by_what_happened() -> None:
    machine = StateMachine()
    for event, state in [
        (Input.CONNECT, State.CONNECTING),
        (Input.OPENED, State.OPEN),
        (Input.LOST, State.RECONNECTING),
        (Input.RETRY, State.CONNECTING),
        (Input.QUIET, State.PAUSED),
        (Input.RESUME, State.CONNECTING),
        (Input.CLOSE, State.CLOSING),
        (Input.SOCKET_CLOSED, State.CLOSED),
    ]:
        machine.on(event)
        assert machine.state is state


def test_the_same_input_leads_where_the_state_says() -> None:
    """close() waits for a socket that exists, and closes at once without one."""
    assert WEBSOCKET[State.OPEN][Input.CLOSE] is State.CLOSING
    assert WEBSOCKET[State.RECONNECTING][Input.CLOSE] is State.CLOSED
    assert WEBSOCKET[State.IDLE][Input.CLOSE] is State.CLOSED


def test_an_input_the_state_does_not_expect_raises_naming_both_and_changes_nothing() -> None:
    machine = StateMachine(State.RECONNECTING)
    with pytest.raises(IllegalTransition, match="illegal input 'opened' in state RECONNECTING"):
        machine.on(Input.OPENED)
    assert machine.state is State.RECONNECTING


def test_the_plain_table_is_the_keyed_one_without_its_reasons() -> None:
    assert {state: frozenset(moves.values()) for state, moves in WEBSOCKET.items()} == TRANSITIONS
    used = {event for moves in WEBSOCKET.values() for event in moves}
    assert used == set(Input)


def test_both_engines_end_with_the_one_closed() -> None:
    from pyrt.engine import sse, websocket

    assert websocket.Closed is sse.Closed is Closed
    ws = Closed(None, "closed by the client", True, 1000, "bye", True)
    assert (ws.code, ws.reason, ws.was_clean) == (1000, "bye", True)
    assert Closed(None, "closed by the application", by_client=True).code is None  # SSE: no close code
