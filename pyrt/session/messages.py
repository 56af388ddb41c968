"""The answers to an acked ``message`` frame, and what the dedup window keeps of them.

A server runs the application's handler once per message id and client identity; a re-sent id is
answered with what the first run answered. These functions make both texts, so every driver of
:class:`~pyrt.session.server.ServerSession` (``serve.py``, :class:`pyrt.testing.FakePyrtServer`)
answers alike:

- :func:`ack_result` — the handler returned ``result``: ``ok`` with it as ``data`` (a result that
  cannot be JSON, or holds text that cannot be UTF-8, is a refusal instead);
- :func:`ack_refused` — the handler refused the message (``HandlerError``): ``ok: false`` and its
  text, remembered like a success;
- :func:`ack_internal` — the handler failed: ``"internal error"``, *not* remembered (a re-sent id
  runs it again);
- :func:`ack_unavailable` — the broker is down, nothing was done: a transient refusal the client
  sends again after ``retry_after``.

What is remembered for re-sent ids is the ack itself when it is at most :data:`REMEMBER_MAX`
characters, else the same answer without its data and ``"duplicate": true``.
"""

from __future__ import annotations

from typing import Any, Final

from pyrt.errors import EncodeError
from pyrt.wire import binary, codec
from pyrt.wire.frames import Ack
from pyrt.wire.ingress import IngressError, check_text
from pyrt.wire.refusals import UNAVAILABLE

__all__ = [
    "BROKER_RETRY",
    "REMEMBER_MAX",
    "ack_internal",
    "ack_refused",
    "ack_result",
    "ack_unavailable",
]

REMEMBER_MAX: Final = 512  # characters of an ack kept for re-sent copies; bigger ones lose their data
BROKER_RETRY: Final = 1.0  # retry_after of an ``unavailable`` refusal, seconds


def _remembered(ack: Ack) -> tuple[str, str]:
    text = codec.encode(ack)
    if len(text) <= REMEMBER_MAX:
        return text, text
    error = None if ack.ok else "refused (the error text was too long to keep)"
    return text, codec.encode(Ack(ack.id, ack.ok, error=error, duplicate=True))


def ack_result(message_id: str, result: Any) -> tuple[str, str]:
    """``(ack, remembered)`` for a handler that returned ``result``."""
    try:
        try:
            text = codec.encode(Ack(message_id, True, result))
        except EncodeError:  # bytes or arrays: in their tagged form (pyrt.wire.binary)
            text = codec.encode(Ack(message_id, True, binary.json_form(result)))
        check_text(text)
    except (ValueError, TypeError, IngressError):
        return ack_refused(message_id, "the handler's result is not JSON")
    if len(text) <= REMEMBER_MAX:
        return text, text
    return text, codec.encode(Ack(message_id, True, duplicate=True))


def ack_refused(message_id: str, error: str) -> tuple[str, str]:
    """``(ack, remembered)`` for a handler that refused the message with ``error``."""
    return _remembered(Ack(message_id, False, error=error))


def ack_internal(message_id: str) -> str:
    """The ack of a handler that failed (not remembered: a re-sent id runs it again)."""
    return codec.encode(Ack(message_id, False, error="internal error"))


def ack_unavailable(message_id: str) -> str:
    """A failed ack the client retries (:mod:`pyrt.wire.refusals`): nothing was done."""
    return codec.encode(
        Ack(
            message_id,
            False,
            error="temporarily unavailable, retry",
            code=UNAVAILABLE,
            retry_after=BROKER_RETRY,
        )
    )
