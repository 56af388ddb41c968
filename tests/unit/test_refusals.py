"""The one table of retryable refusals."""

from __future__ import annotations

import pytest

from pyrt.wire.refusals import RATE_LIMITED, RETRYABLE_CODES, UNAVAILABLE, is_retryable, is_retryable_status


def test_rate_limited_and_unavailable_are_the_transient_codes() -> None:
    assert RETRYABLE_CODES == {RATE_LIMITED, UNAVAILABLE} == {"rate_limited", "unavailable"}
    assert is_retryable("rate_limited")
    assert is_retryable("unavailable")


@pytest.mark.parametrize("code", ["bad_json", "bad_frame", "forbidden", "unknown_type", None, 42, ""])
def test_everything_else_fails_at_once(code: object) -> None:
    assert not is_retryable(code)


@pytest.mark.parametrize(
    ("status", "retry"),
    [(408, True), (429, True), (500, True), (503, True), (599, True), (200, False), (204, False),
     (400, False), (401, False), (403, False), (404, False), (413, False), (600, False)],
)  # fmt: skip
def test_http_statuses_follow_the_same_rule(status: int, retry: bool) -> None:
    assert is_retryable_status(status) is retry
