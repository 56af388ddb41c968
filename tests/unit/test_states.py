"""States: transitions follow the table, illegal ones raise and change nothing, readyState maps 0..3."""

from __future__ import annotations

import pytest

from pyrt.errors import IllegalTransition
from pyrt.states import TRANSITIONS, State, StateMachine, ready_state


def test_a_client_starts_idle() -> None:
    assert StateMachine().state is State.IDLE


def test_the_normal_life_of_a_client_is_allowed() -> None:
    machine = StateMachine()
    path = [State.CONNECTING, State.OPEN, State.RECONNECTING, State.CONNECTING, State.OPEN]
    path += [State.CLOSING, State.CLOSED]
    for state in path:
        machine.to(state)
    assert machine.state is State.CLOSED


def test_an_illegal_transition_raises_and_leaves_the_state_untouched() -> None:
    machine = StateMachine(State.RECONNECTING)
    with pytest.raises(IllegalTransition, match="RECONNECTING -> OPEN"):
        machine.to(State.OPEN)
    assert machine.state is State.RECONNECTING


def test_closed_is_final() -> None:
    machine = StateMachine(State.CLOSED)
    for state in State:
        assert not machine.can(state)
        with pytest.raises(IllegalTransition):
            machine.to(state)
    assert machine.state is State.CLOSED


def test_to_returns_the_previous_state() -> None:
    assert StateMachine().to(State.CONNECTING) is State.IDLE


def test_every_state_but_closed_can_reach_closed() -> None:
    for state, targets in TRANSITIONS.items():
        if state is not State.CLOSED:
            assert State.CLOSED in targets or State.CLOSING in targets


@pytest.mark.parametrize(
    ("state", "number"),
    [
        (State.IDLE, 3),
        (State.CONNECTING, 0),
        (State.OPEN, 1),
        (State.RECONNECTING, 0),
        (State.CLOSING, 2),
        (State.CLOSED, 3),
    ],
)
def test_ready_state_uses_the_javascript_numbers(state: State, number: int) -> None:
    assert ready_state(state) == number
