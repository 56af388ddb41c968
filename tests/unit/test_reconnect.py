"""The reconnect scheduler: reset after a stable connection, count, give up, jittered delay, floors."""

from __future__ import annotations

import random

import pytest

from pyrt.engine.backoff import Backoff
from pyrt.engine.reconnect import ReconnectScheduler, reconnect_delay

EXACT = Backoff(initial=0.1, maximum=1.6, jitter="none", min_uptime=5.0, max_attempts=3)


def test_each_failure_waits_longer() -> None:
    scheduler = ReconnectScheduler(EXACT, lambda: 0.5)
    assert [scheduler.failed() for _ in range(3)] == [0.1, 0.2, 0.4]
    assert scheduler.failures == 3
    assert scheduler.last_delay == 0.4


def test_past_max_attempts_it_gives_up_and_says_how_many_were_made() -> None:
    scheduler = ReconnectScheduler(EXACT, lambda: 0.5)
    for _ in range(3):
        assert scheduler.failed() is not None
    assert scheduler.failed() is None
    assert scheduler.attempts_made == 3


def test_a_connection_that_stayed_up_long_enough_starts_the_count_again() -> None:
    scheduler = ReconnectScheduler(EXACT, lambda: 0.5)
    scheduler.failed()
    scheduler.failed()
    assert scheduler.failed(uptime=5.0) == 0.1
    assert scheduler.failures == 1


def test_a_flapping_connection_does_not_reset_the_count() -> None:
    scheduler = ReconnectScheduler(EXACT, lambda: 0.5)
    scheduler.failed()
    assert scheduler.failed(uptime=4.9) == 0.2


def test_stayed_up_resets_without_counting_a_failure() -> None:
    scheduler = ReconnectScheduler(EXACT, lambda: 0.5)
    scheduler.failed()
    scheduler.stayed_up(None)
    assert scheduler.failures == 1
    scheduler.stayed_up(60.0)
    assert (scheduler.failures, scheduler.attempts_made) == (0, 0)


def test_a_server_floor_is_never_undercut_and_jitter_uses_the_injected_rng() -> None:
    scheduler = ReconnectScheduler(Backoff(initial=1.0, maximum=1.0), lambda: 0.25)
    assert scheduler.failed() == 0.25  # full jitter: 1.0 * rng()
    assert scheduler.failed(floor=3.0) == 3.0


def test_a_server_window_spreads_the_delay_uniformly_over_it() -> None:
    """A restarting server's window replaces the backoff curve by one draw over the window
    (never shorter than the backoff's own base delay), whatever the jitter mode."""
    for rng_value, expected in [(0.0, 0.0), (0.5, 3.0), (0.999, 5.994)]:
        scheduler = ReconnectScheduler(EXACT, lambda v=rng_value: v)
        assert scheduler.failed(window=6.0) == pytest.approx(expected)
    late = ReconnectScheduler(EXACT, lambda: 0.5)
    assert late.failed(window=6.0, floor=4.0) == 4.0  # a floor is still a floor
    assert late.failures == 1  # counted as a failure like any other


def test_without_a_hint_the_delay_is_the_backoff() -> None:
    backoff = Backoff(initial=0.5)
    for attempt in (1, 2, 5):
        assert reconnect_delay(backoff, attempt, lambda: 0.4) == backoff.delay(attempt, lambda: 0.4)


def test_a_window_spreads_even_the_first_attempt_uniformly_over_it() -> None:
    rng = random.Random(3)
    delays = [reconnect_delay(Backoff(), 1, rng.random, window=5.0) for _ in range(5000)]
    assert max(delays) <= 5.0
    counts = [sum(1 for d in delays if k <= d < k + 1) for k in range(5)]
    assert all(800 <= c <= 1200 for c in counts), counts  # about 1000 per second
    # ...also with jitter="none": the window asks for spreading.
    assert reconnect_delay(Backoff(jitter="none"), 1, lambda: 0.25, window=8.0) == 2.0


def test_later_attempts_spread_over_the_larger_of_the_window_and_the_backoff() -> None:
    backoff = Backoff(initial=0.5, maximum=30)
    assert reconnect_delay(backoff, 6, lambda: 0.5, window=5.0) == 8.0  # base 16 > 5
    assert reconnect_delay(backoff, 2, lambda: 0.5, window=5.0) == 2.5


def test_retry_after_is_a_floor_and_the_server_part_is_capped() -> None:
    assert reconnect_delay(Backoff(), 1, lambda: 0.1, after=3.0) == 3.0
    assert reconnect_delay(Backoff(), 1, lambda: 0.1, after=10_000.0, cap=300.0) == 300.0
    assert reconnect_delay(Backoff(), 1, lambda: 1.0, window=10_000.0, cap=60.0) == 60.0
