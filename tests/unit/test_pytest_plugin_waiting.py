"""wait_until returns the first truthy value, fails with what it waited for, and can idle in a page."""

from __future__ import annotations

import itertools

import pytest

from pyrt.pytest_plugin.waiting import wait_until


def test_the_first_truthy_value_is_returned_as_soon_as_it_comes() -> None:
    calls = itertools.count(1)
    assert wait_until(lambda: [n] if (n := next(calls)) >= 3 else [], timeout=5, interval=0.001) == [3]


def test_a_deadline_fails_with_what_was_awaited_and_the_last_value() -> None:
    with pytest.raises(AssertionError, match=r"within 0\.05 s: the door opens \(last: 0\)"):
        wait_until(lambda: 0, timeout=0.05, message="the door opens")


def test_without_a_message_the_failure_names_the_predicate() -> None:
    def door_is_open() -> bool:
        return False

    with pytest.raises(AssertionError, match="door_is_open"):
        wait_until(door_is_open, timeout=0.02)


def test_a_page_idles_in_playwright_between_polls() -> None:
    class Page:
        def __init__(self) -> None:
            self.idled: list[float] = []

        def wait_for_timeout(self, timeout: float) -> None:
            self.idled.append(timeout)

    page = Page()
    answers = iter([False, False, True])
    assert wait_until(lambda: next(answers), timeout=5, interval=0.01, page=page) is True
    assert page.idled == [10.0, 10.0]


def test_a_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout must be positive"):
        wait_until(lambda: True, timeout=0)
