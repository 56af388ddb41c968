"""The delivery checker counts what fault tests rely on: duplicates, gaps, order, latency."""

from __future__ import annotations

import json

import pytest

from tests.faults.delivery import DeliveryChecker, percentile


def test_a_clean_run_is_exactly_once_in_order() -> None:
    checker = DeliveryChecker()
    for seq in range(5):
        checker.send("a", seq, at=seq)
        checker.deliver("a", seq, at=seq + 0.01)
    report = checker.report()
    assert (report.sent, report.unique_delivered) == (5, 5)
    assert report.exactly_once_in_order
    assert report.latency_p50_ms == pytest.approx(10.0)


def test_duplicates_gaps_and_reordering_are_each_counted() -> None:
    checker = DeliveryChecker()
    for seq in range(6):
        checker.send("a", seq)
    checker.deliver_all([("a", 0), ("a", 2), ("a", 1), ("a", 2), ("a", 5)])
    report = checker.report()
    assert report.duplicates == 1
    assert report.gaps == 2
    assert report.missing == {"a": [3, 4]}
    assert report.order_violations == 1
    assert not report.exactly_once_in_order


def test_streams_are_ordered_independently() -> None:
    checker = DeliveryChecker()
    for stream in "ab":
        for seq in range(2):
            checker.send(stream, seq)
    checker.deliver_all([("a", 0), ("b", 0), ("b", 1), ("a", 1)])
    assert checker.report().exactly_once_in_order


def test_recording_the_same_send_twice_is_a_test_bug() -> None:
    checker = DeliveryChecker()
    checker.send("a", 1)
    with pytest.raises(ValueError, match="already recorded"):
        checker.send("a", 1)


def test_the_report_is_one_json_line_with_the_figures() -> None:
    checker = DeliveryChecker()
    checker.send("a", 0)
    line = checker.report().json_line("demo", resets=3)
    assert "\n" not in line
    body = json.loads(line)
    assert body["scenario"] == "demo"
    assert body["gaps"] == 1
    assert body["missing_sample"] == {"a": [0]}
    assert body["resets"] == 3


def test_percentiles_use_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) is None
