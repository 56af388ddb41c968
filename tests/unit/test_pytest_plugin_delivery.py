"""The delivery checker counts what fault tests rely on: duplicates, gaps, order, phantoms, latency."""

from __future__ import annotations

import json

import pytest

from pyrt.pytest_plugin.delivery import DeliveryChecker, check_delivery, percentile


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


def test_a_delivery_that_was_never_sent_is_counted_and_breaks_exactly_once() -> None:
    report = check_delivery(range(3), [0, 1, 2, 7])
    assert report.unexpected == 1
    assert (report.gaps, report.duplicates, report.order_violations) == (0, 0, 0)
    assert not report.exactly_once_in_order


def test_check_delivery_reports_one_stream_of_sequence_numbers() -> None:
    assert check_delivery(range(4), [0, 1, 2, 3]).exactly_once_in_order
    report = check_delivery(range(4), [0, 2, 1, 1], stream="chat")
    assert report.missing == {"chat": [3]}
    assert (report.duplicates, report.order_violations) == (1, 1)


def test_the_assertion_says_what_went_wrong_in_one_line() -> None:
    check_delivery(range(2), [0, 1]).assert_exactly_once_in_order()  # passes quietly
    with pytest.raises(AssertionError) as failed:
        check_delivery(range(5), [0, 2, 2, 1]).assert_exactly_once_in_order()
    message = str(failed.value)
    assert "\n" not in message
    assert "1 duplicates, 2 gaps, 1 out of order, 0 never sent" in message
    assert "missing {'messages': [3, 4]}" in message
