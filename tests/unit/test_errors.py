"""Errors: each names the exact failure, and misuse errors are also the built-in kind users catch."""

from __future__ import annotations

import pytest

from pyrt.errors import (
    AckError,
    AckTimeout,
    ClientClosedError,
    EncodeError,
    FrameError,
    IllegalTransition,
    InvalidCloseCode,
    InvalidStateError,
    PyrtError,
    QueueFull,
    ServerError,
    UnsupportedByProtocol,
)


def test_an_ack_timeout_says_which_message_how_often_and_how_long() -> None:
    error = AckTimeout("k3f9x2a1-17", attempts=4, timeout=10.0)
    assert str(error) == "message 'k3f9x2a1-17' was not acknowledged: sent 4 time(s), waited 10 s after each"
    assert isinstance(error, TimeoutError)


def test_an_ack_error_carries_the_server_reason_and_code() -> None:
    error = AckError("a-1", "quota exceeded", code="rate_limited")
    assert (error.message_id, error.error, error.code) == ("a-1", "quota exceeded", "rate_limited")
    assert str(error) == "the server rejected message 'a-1' (rate_limited): quota exceeded"


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (ClientClosedError("x"), RuntimeError),
        (InvalidStateError("x"), RuntimeError),
        (IllegalTransition("x"), RuntimeError),
        (InvalidCloseCode("x"), ValueError),
        (EncodeError("x"), TypeError),
        (UnsupportedByProtocol("x"), TypeError),
    ],
)
def test_misuse_errors_are_also_the_builtin_kind(error: PyrtError, builtin: type[Exception]) -> None:
    assert isinstance(error, builtin)
    assert isinstance(error, PyrtError)


def test_every_pyrt_failure_is_a_pyrt_error() -> None:
    for error in (QueueFull("x"), ServerError("bad_json", "nope"), FrameError("invalid JSON", "{")):
        assert isinstance(error, PyrtError)


def test_a_frame_error_shows_a_short_excerpt_of_a_long_frame() -> None:
    error = FrameError("invalid JSON", "x" * 500)
    assert len(str(error)) < 150
    assert str(error).endswith("...")
