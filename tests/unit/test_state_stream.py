"""State then stream, the decisions: apply, drop, wait, load again; and a model check that a
follower ends with the true state whatever the order of loads, replays, duplicates and gaps."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrt.engine.state_stream import Decision, StateStream
from pyrt.wire.frames import Publication


def pub(n: int, recovered: bool = True) -> Publication:
    return Publication("c", n, f"1-{n}", "message", recovered)


def test_publications_after_the_snapshot_apply_and_older_ones_drop() -> None:
    policy = StateStream()
    assert policy.loaded("1-3") == ([], False)
    assert [policy.received(pub(n)) for n in (2, 3, 4, 5, 5)] == [
        Decision.DROP,
        Decision.DROP,
        Decision.APPLY,
        Decision.APPLY,
        Decision.DROP,
    ]
    assert (policy.applied, policy.dropped, policy.offset) == (2, 3, (1, 5))


def test_a_gap_loads_again_and_what_came_meanwhile_applies_after_the_new_snapshot() -> None:
    policy = StateStream()
    policy.loaded("1-3")
    assert policy.received(pub(9, recovered=False)) is Decision.RELOAD
    assert policy.loading
    assert [policy.received(pub(n)) for n in (10, 11)] == [Decision.WAIT, Decision.WAIT]
    newer, again = policy.loaded("1-10")  # the snapshot already holds 9 and 10
    assert ([p.offset for p in newer], again) == (["1-11"], False)
    assert policy.received(pub(12)) is Decision.APPLY
    assert policy.reloads == 1


def test_a_gap_announced_during_a_load_loads_once_more() -> None:
    policy = StateStream()
    policy.loaded("1-3")
    policy.received(pub(9, recovered=False))
    assert policy.received(pub(20, recovered=False)) is Decision.WAIT
    assert policy.loaded("1-10") == ((), True)  # that snapshot may predate the second gap
    newer, again = policy.loaded("1-19")
    assert ([p.offset for p in newer], again) == (["1-20"], False)


def test_too_much_kept_while_loading_means_one_more_load() -> None:
    policy = StateStream(buffer_limit=3)
    policy.loaded("1-0")
    policy.received(pub(1, recovered=False))
    for n in range(2, 10):
        policy.received(pub(n))
    assert policy.loaded("1-5") == ((), True)
    assert policy.loaded("1-9") == ([], False)


def test_a_snapshot_offset_must_be_an_offset() -> None:
    policy = StateStream()
    with pytest.raises(ValueError, match="offset"):
        policy.loaded("yesterday")


def test_doubt_loads_again() -> None:
    policy = StateStream()
    policy.loaded("1-1")
    policy.doubt()
    assert policy.received(pub(2)) is Decision.WAIT
    assert [p.offset for p in policy.loaded("1-1")[0]] == ["1-2"]


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_a_follower_ends_with_the_true_state_whatever_happens(data: st.DataObject) -> None:
    """The server publishes 1..N; the follower sees replays that overlap, duplicates, gaps (the
    next publication marked recovered=False, what came before it lost) and loads whose snapshot
    was read at any moment between the start of the load and its end. Applying what the policy
    says must end with 1..N, each once."""
    total = data.draw(st.integers(1, 40))
    policy = StateStream(buffer_limit=data.draw(st.integers(1, 50)))
    position = data.draw(st.integers(0, total))  # what the server has published so far
    state = list(range(1, position + 1))
    policy.loaded(f"1-{position}")
    load_started: int | None = None  # where the server was when the load under way started

    def deliver(n: int, recovered: bool = True) -> None:
        nonlocal load_started
        decision = policy.received(pub(n, recovered))
        if decision is Decision.APPLY:
            state.append(n)
        elif decision is Decision.RELOAD:
            load_started = position

    while position < total or load_started is not None:
        if load_started is not None and (position >= total or data.draw(st.booleans())):
            at = data.draw(st.integers(load_started, position))  # read at some moment of the load
            newer, again = policy.loaded(f"1-{at}")
            if again:
                load_started = position  # the next load starts now
                continue
            load_started = None
            state[:] = list(range(1, at + 1)) + [p.data for p in newer]
            continue
        what = data.draw(st.sampled_from(["send", "send", "send", "overlap", "gap"]))
        if what == "overlap" and position > 0:  # a replay starting a little early
            back = data.draw(st.integers(1, position))
            for n in range(position - back + 1, position + 1):
                deliver(n)
        elif what == "gap" and position + 2 <= total:
            position += data.draw(st.integers(1, total - position - 1))  # lost: the next says so
            position += 1
            deliver(position, recovered=False)
        elif position < total:
            position += 1
            deliver(position)
    assert state == list(range(1, total + 1))
