"""Exceptions raised by pyrt clients. Each message names the exact mistake or failure.

Every class derives from :class:`PyrtError`; misuse errors also derive from the built-in class a
Python user would expect (``TypeError``, ``ValueError``, ``RuntimeError``), so ``except ValueError``
keeps working.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AckError",
    "AckTimeout",
    "ClientClosedError",
    "EncodeError",
    "FrameError",
    "IllegalTransition",
    "InvalidCloseCode",
    "InvalidStateError",
    "PyrtError",
    "QueueFull",
    "ServerError",
    "UnsupportedByProtocol",
]


class PyrtError(Exception):
    """Base class of every pyrt exception."""


class AckTimeout(PyrtError, TimeoutError):
    """A message was sent ``attempts`` times and no acknowledgement came back in time."""

    def __init__(self, message_id: str | int, attempts: int, timeout: float) -> None:
        self.message_id = message_id
        self.attempts = attempts
        self.timeout = timeout
        super().__init__(
            f"message {message_id!r} was not acknowledged: sent {attempts} time(s), "
            f"waited {timeout:g} s after each"
        )


class AckError(PyrtError):
    """The server acknowledged a message with a failure (``ok: false``) or refused its frame."""

    def __init__(self, message_id: str | int, error: Any, code: str | None = None) -> None:
        self.message_id = message_id
        self.error = error
        self.code = code
        where = f" ({code})" if code else ""
        super().__init__(f"the server rejected message {message_id!r}{where}: {error}")


class QueueFull(PyrtError):
    """The outgoing queue is at its limit and the overflow policy refused or dropped a message."""


class ClientClosedError(PyrtError, RuntimeError):
    """The client is closed (or closing): it sends nothing more and will not reconnect."""


class InvalidStateError(PyrtError, RuntimeError):
    """A method was called in a state where it makes no sense (``connect()`` twice, ...)."""


class IllegalTransition(PyrtError, RuntimeError):
    """A state change the transition table forbids; the state is left untouched."""


class InvalidCloseCode(PyrtError, ValueError):
    """Browsers only let a client close with code 1000 or 3000-4999."""


class EncodeError(PyrtError, TypeError):
    """The data cannot be put in a frame (not JSON-serialisable, or binary in a JSON protocol)."""


class FrameError(PyrtError):
    """An inbound frame the protocol cannot read; reported through ``on_error``, never raised."""

    def __init__(self, reason: str, frame: str | bytes) -> None:
        self.reason = reason
        self.frame = frame
        more = "..." if len(frame) > 80 else ""
        super().__init__(f"unreadable frame from the server ({reason}): {frame[:80]!r}{more}")


class UnsupportedByProtocol(PyrtError, TypeError):
    """The chosen protocol cannot do this (acks or channels in raw mode)."""


class ServerError(PyrtError):
    """The server refused a frame with an ``error`` frame that named no pending message."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"server error {code}: {message}")
