"""Backoff: delays grow, cap, jitter within bounds, and attempt limits and min uptime hold."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyrt import Backoff


def test_delays_double_from_initial_up_to_the_maximum() -> None:
    policy = Backoff(initial=0.5, maximum=4.0, factor=2.0, jitter="none")
    assert [policy.delay(n, random.random) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    assert Backoff(maximum=30.0, jitter="none").delay(10_000, random.random) == 30.0


def test_full_jitter_draws_between_zero_and_the_base_delay() -> None:
    policy = Backoff(initial=1.0, maximum=8.0)
    assert policy.delay(3, lambda: 0.0) == 0.0
    assert policy.delay(3, lambda: 0.5) == 2.0
    assert policy.delay(3, lambda: 0.999) == pytest.approx(3.996)


def test_equal_jitter_keeps_at_least_half_the_delay() -> None:
    policy = Backoff(initial=1.0, maximum=8.0, jitter="equal")
    assert policy.delay(3, lambda: 0.0) == 2.0
    assert policy.delay(3, lambda: 1.0) == 4.0


def test_even_the_first_attempt_is_random_with_full_jitter() -> None:
    rng = random.Random(7)
    first_delays = {round(Backoff().delay(1, rng.random), 6) for _ in range(100)}
    assert len(first_delays) > 90
    assert all(0 <= d <= 0.5 for d in first_delays)


def test_max_attempts_says_when_to_give_up() -> None:
    policy = Backoff(max_attempts=3)
    assert [policy.exhausted(n) for n in (1, 3, 4)] == [False, False, True]
    assert not Backoff().exhausted(10**9)


def test_backoff_resets_only_after_the_minimum_uptime() -> None:
    policy = Backoff(min_uptime=5.0)
    assert not policy.should_reset(4.99)
    assert policy.should_reset(5.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": -1}, "initial must be >= 0"),
        ({"initial": 2, "maximum": 1}, "maximum"),
        ({"factor": 0.5}, "factor must be >= 1"),
        ({"jitter": "some"}, "jitter must be one of"),
        ({"max_attempts": 0}, "max_attempts must be >= 1"),
        ({"min_uptime": -1}, "min_uptime"),
    ],
)
def test_invalid_settings_are_refused_with_the_field_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(**kwargs)  # type: ignore[arg-type]


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        Backoff().delay(0, random.random)


@given(
    initial=st.floats(0, 10),
    extra=st.floats(0, 100),
    factor=st.floats(1, 4),
    attempt=st.integers(1, 200),
    draw=st.floats(0, 1, exclude_max=True),
)
def test_every_delay_lies_within_zero_and_the_maximum(
    initial: float, extra: float, factor: float, attempt: int, draw: float
) -> None:
    policy = Backoff(initial=initial, maximum=initial + extra, factor=factor)
    assert 0 <= policy.delay(attempt, lambda: draw) <= policy.maximum
    assert policy.base_delay(attempt) <= policy.base_delay(attempt + 1)
