"""Which transport the next connection uses: the rules of pyrt.engine.transport_choice."""

from __future__ import annotations

import pytest

from pyrt.engine.transport_choice import Memory, TransportChoice, TransportPolicy, check_transports


def test_it_starts_on_the_first_transport_or_the_remembered_one() -> None:
    assert TransportChoice(("websocket", "http")).current == "websocket"
    remembered = TransportChoice(("websocket", "http"), remembered="http")
    assert remembered.current == "http"
    assert remembered.memory == Memory("http", TransportPolicy().remember_for)  # still true
    assert TransportChoice(("websocket", "http"), remembered="pigeon").current == "websocket"


def test_an_attempt_that_never_came_up_moves_to_the_next_transport_and_round_the_list() -> None:
    choice = TransportChoice(("websocket", "http"))
    why = choice.failed("HTTP 403 to the upgrade")
    assert why == "WebSocket did not come up (HTTP 403 to the upgrade): trying HTTP"
    assert choice.current == "http"
    back = choice.failed("connection refused")
    assert back == "HTTP did not come up (connection refused): trying WebSocket"
    assert choice.current == "websocket"  # a server that is down fails on both: round the list


def test_a_single_transport_never_moves() -> None:
    choice = TransportChoice(("websocket",))
    assert choice.failed("refused") is None
    assert choice.lost(0.1) is None
    assert choice.current == "websocket"


def test_two_quick_silences_in_a_row_move_on_a_long_connection_or_a_reset_starts_again() -> None:
    choice = TransportChoice(("websocket", "http"), policy=TransportPolicy(quick_death=15.0))
    assert choice.lost(3.0) is None
    assert choice.lost(60.0) is None  # it worked for a while: the count starts again
    assert choice.lost(2.0) is None
    assert choice.lost(2.0, silent=False) is None  # a reset says nothing against the transport
    assert choice.lost(2.0) is None
    assert choice.lost(2.0) == "WebSocket fell silent 2 times within 15 s of coming up: trying HTTP"
    assert choice.current == "http"


def test_up_on_a_fallback_probes_the_first_transport_backing_off_while_it_fails() -> None:
    choice = TransportChoice(("websocket", "http"), policy=TransportPolicy(probe_first=10.0, probe_max=30.0))
    choice.failed("no welcome")
    choice.up(100.0)
    assert not choice.probe_due(109.9)
    assert choice.probe_due(110.0)
    assert choice.probe_started() == "websocket"
    assert not choice.probe_due(200.0)  # one probe at a time
    assert choice.memory is None  # one failed attempt can be a restart: nothing remembered yet
    choice.probe_failed(111.0)
    assert choice.memory == Memory("http", TransportPolicy().remember_for)  # confirmed now
    assert choice.probe_at == 131.0  # twice the interval
    choice.probe_started()
    choice.probe_failed(131.0)
    assert choice.probe_at == 161.0  # at most probe_max
    assert choice.current == "http"


def test_a_probe_that_comes_up_moves_the_next_connection_back_and_forgets_the_fallback() -> None:
    choice = TransportChoice(("websocket", "http"), remembered="http")
    choice.up(0.0)
    assert choice.probe_due(TransportPolicy().probe_first)
    choice.probe_started()
    choice.probe_succeeded()
    assert choice.current == "websocket"
    assert choice.memory is None
    choice.up(50.0)
    assert choice.probe_at is None  # on the first transport: nothing to probe


def test_losing_the_connection_cancels_a_planned_probe() -> None:
    choice = TransportChoice(("websocket", "http"))
    choice.failed("refused")
    choice.up(0.0)
    choice.lost(100.0)
    assert choice.probe_at is None
    assert not choice.probe_due(1000.0)


@pytest.mark.parametrize(
    ("transports", "message"),
    [
        ((), "at least one transport"),
        (("websocket", "smoke"), "unknown transport 'smoke'"),
        (("http", "http"), "lists one twice"),
    ],
)
def test_bad_transport_lists_are_refused_naming_the_mistake(
    transports: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check_transports(transports)


def test_bad_policies_name_the_field() -> None:
    with pytest.raises(ValueError, match="probe_first"):
        TransportPolicy(probe_first=0)
    with pytest.raises(ValueError, match="quick_deaths"):
        TransportPolicy(quick_deaths=0)
