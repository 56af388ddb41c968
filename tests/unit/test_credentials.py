"""The refresh schedule of a connection's token, and which tokens can travel in a handshake."""

from __future__ import annotations

import pytest

from pyrt.engine.credentials import MIN_RETRY, REFRESH_AT, TokenRefresh, check_token


def test_a_refresh_is_due_when_three_quarters_of_the_ttl_have_passed() -> None:
    schedule = TokenRefresh()
    schedule.expires_in(100.0, now=10.0)
    assert schedule.next_deadline() == pytest.approx(10.0 + 100.0 * REFRESH_AT) == 85.0
    assert not schedule.due(84.9)
    assert schedule.due(85.0)


def test_a_started_refresh_is_not_due_again_until_it_ends() -> None:
    schedule = TokenRefresh()
    schedule.expires_in(40.0, now=0.0)
    schedule.started()
    assert schedule.fetching
    assert schedule.next_deadline() is None
    assert not schedule.due(1000.0)
    schedule.expires_in(40.0, now=31.0)  # the server's answer: a new lifetime
    assert not schedule.fetching
    assert schedule.next_deadline() == 61.0


def test_a_failed_refresh_is_tried_again_after_a_quarter_of_the_time_left() -> None:
    schedule = TokenRefresh()
    schedule.expires_in(100.0, now=0.0)
    schedule.started()
    schedule.failed(now=80.0)  # 20 s left
    assert schedule.next_deadline() == 85.0
    schedule.started()
    schedule.failed(now=98.0)  # 2 s left: the next try waits at least MIN_RETRY
    assert schedule.next_deadline() == 98.0 + MIN_RETRY


def test_with_less_than_a_retry_left_the_token_is_let_expire() -> None:
    schedule = TokenRefresh()
    schedule.expires_in(10.0, now=0.0)
    schedule.started()
    schedule.failed(now=9.5)
    assert schedule.next_deadline() is None
    assert not schedule.due(100.0)


def test_reset_forgets_the_connection_that_is_gone() -> None:
    schedule = TokenRefresh()
    schedule.expires_in(10.0, now=0.0)
    schedule.started()
    schedule.reset()
    assert (schedule.expires_at, schedule.next_deadline(), schedule.fetching) == (None, None, False)


@pytest.mark.parametrize("token", ["abc.DEF_-123", "eyJhbGciOi.eyJzdWIi.sig-_", "a!#$%&'*+-.^_`|~z"])
def test_tokens_made_of_http_token_characters_pass(token: str) -> None:
    assert check_token(token) == token


def test_tokens_that_cannot_travel_in_a_handshake_are_refused_without_showing_them() -> None:
    with pytest.raises(TypeError, match="must return a str, got bytes"):
        check_token(b"abc")
    with pytest.raises(ValueError, match="empty"):
        check_token("")
    with pytest.raises(ValueError, match="cannot travel") as info:
        check_token("secret value with spaces")
    assert "secret" not in str(info.value)
    with pytest.raises(ValueError, match="cannot travel"):
        check_token("x" * 8193)


def test_only_the_first_answer_to_the_current_request_is_taken() -> None:
    schedule = TokenRefresh()
    schedule.expires_in(40.0, now=0.0)
    first = schedule.started()
    schedule.reset()  # its connection went
    schedule.expires_in(40.0, now=31.0)
    assert not schedule.takes(first)  # the gone connection's answer
    second = schedule.started()
    assert second == first + 1
    assert not schedule.takes(first)  # late, while the next request runs
    assert schedule.takes(second)
    assert not schedule.takes(second)  # answered already
    assert not schedule.takes(None)
