"""Errors: each names the exact failure, and misuse errors are also the built-in kind users catch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pyrt import errors
from pyrt.errors import (
    AckError,
    AckTimeout,
    ClientClosedError,
    EncodeError,
    FrameError,
    IllegalTransition,
    InvalidCloseCode,
    InvalidStateError,
    MessageTooLarge,
    PyrtError,
    QueueFull,
    RelativeURLError,
    ServerError,
    SSEContentTypeError,
    SSEError,
    SSEHTTPError,
    SSENetworkError,
    SSERetriesExhaustedError,
    SSEStalledError,
    SSEStreamEndedError,
    UnsupportedByProtocol,
)
from tests.astscan import parse


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


def test_a_message_too_large_says_how_large_and_the_limit() -> None:
    error = MessageTooLarge(2048, 1024, "m-1")
    assert str(error) == "message 'm-1' is 2048 bytes; the server accepts at most 1024 bytes per frame"
    assert (error.size, error.limit, error.message_id) == (2048, 1024, "m-1")
    assert isinstance(error, ValueError)
    assert "a message is 5 bytes" in str(MessageTooLarge(5, 4))


def test_a_frame_error_shows_a_short_excerpt_of_a_long_frame() -> None:
    error = FrameError("invalid JSON", "x" * 500)
    assert len(str(error)) < 150
    assert str(error).endswith("...")


def test_sse_errors_and_relative_urls_belong_to_the_same_hierarchy() -> None:
    assert issubclass(SSEError, PyrtError)
    for cls in (SSEHTTPError, SSEContentTypeError, SSENetworkError, SSEStalledError, SSEStreamEndedError):
        assert issubclass(cls, SSEError)
    assert issubclass(SSERetriesExhaustedError, SSEError)
    assert isinstance(RelativeURLError("x"), ValueError)
    assert isinstance(RelativeURLError("x"), PyrtError)


def test_the_docstring_draws_every_exception_of_the_module() -> None:
    doc = errors.__doc__ or ""
    assert "\n    PyrtError\n" in doc
    assert [name for name in errors.__all__ if name != "PyrtError" and f"── {name} " not in doc] == []


_BUILTIN = {"ValueError", "TypeError", "RuntimeError", "TimeoutError", "Exception", "PyrtError"}


def exception_classes(source: str) -> list[str]:
    """Names of the classes in ``source`` that derive from an exception class by name."""
    return [
        node.name
        for node in ast.walk(parse(source))
        if isinstance(node, ast.ClassDef)
        and any(
            isinstance(base, ast.Name) and (base.id.endswith(("Error", "Exception")) or base.id in _BUILTIN)
            for base in node.bases
        )
    ]


def test_no_client_module_defines_an_exception_outside_errors_py() -> None:
    package = Path(errors.__file__).parent
    defined: dict[str, list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        # The server and the pytest plugin are not client code (neither reaches a page); the
        # wire's refusal of what a client sent (ingress) is raised on the server's side only.
        exempt = (Path("errors.py"), Path("wire/ingress.py"))
        if rel.parts[0] not in ("server", "pytest_plugin", "session") and rel not in exempt:
            found = exception_classes(path.read_text(encoding="utf-8"))
            if found:
                defined[str(rel)] = found
    assert defined == {}


def test_the_scan_finds_exception_classes() -> None:
    sample = "class A(ValueError): ...\nclass B(SSEError): ...\nclass C: ...\nclass D(PyrtError): ...\n"
    assert exception_classes(sample) == ["A", "B", "D"]
