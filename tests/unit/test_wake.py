"""Noticing a sleep from two clocks: the wall clock ran ahead of the monotonic one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyrt.engine import wake
from pyrt.engine.wake import CHECK_EVERY, WakeDetector

pytestmark = pytest.mark.unit


def test_the_first_check_only_reads_the_clocks() -> None:
    assert WakeDetector().check(10.0, 1_000_000.0) is None


def test_a_wall_clock_that_ran_ahead_is_reported_as_the_time_slept() -> None:
    d = WakeDetector()
    d.check(10.0, 1000.0)
    assert d.check(12.0, 1002.0) is None  # both moved alike: awake
    assert d.check(13.0, 1603.0) == pytest.approx(600.0)  # one second awake, the rest asleep
    assert d.check(14.0, 1604.0) is None  # each sleep is reported once


def test_drift_up_to_the_threshold_and_a_clock_set_back_are_not_sleeps() -> None:
    d = WakeDetector(threshold=2.0)
    d.check(0.0, 100.0)
    assert d.check(1.0, 103.0) is None  # 2.0 s ahead: within the threshold
    assert d.check(2.0, 50.0) is None  # the wall clock was set back
    assert d.check(3.0, 54.5) == pytest.approx(3.5)


def test_the_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="threshold must be > 0, got 0"):
        WakeDetector(threshold=0)


# Drifts clear of the threshold either way (floating point blurs a drift of exactly 2.0 s).
DRIFT = st.one_of(st.floats(0, 1.5), st.floats(2.5, 1000))


@given(steps=st.lists(st.tuples(st.floats(0, 100), DRIFT), min_size=1, max_size=30))
def test_the_sleeps_reported_add_up_to_the_wall_clock_lead(steps: list[tuple[float, float]]) -> None:
    d = WakeDetector(threshold=2.0)
    mono, wall = 0.0, 0.0
    d.check(mono, wall)
    reported = 0.0
    expected = 0.0
    for awake, asleep in steps:
        mono += awake
        wall += awake + asleep
        slept = d.check(mono, wall)
        if asleep > 2.0:
            expected += asleep
        if slept is not None:
            reported += slept
    assert reported == pytest.approx(expected, abs=1e-6)


def test_a_live_client_compares_the_clocks_every_few_seconds() -> None:
    assert 0 < CHECK_EVERY <= 5
    assert wake.__all__ == ["CHECK_EVERY", "WakeDetector"]
