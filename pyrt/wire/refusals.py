"""Which refusals a client retries: the one table shared by the clients and the server.

A server refuses a frame or a request for two different reasons:

- **transient** — nothing is wrong with the frame; the server cannot take it *now*. The
  client keeps it and sends it again later, without counting it as an application failure:
  ``rate_limited`` (over the connection's rate, see :mod:`pyrt.session.admission`) and
  ``unavailable`` (the broker or a dependency is down). Over HTTP the same holds for 408,
  429 and every 5xx status.
- **final** — the frame itself is refused (``bad_frame``, ``forbidden``, ...) or the
  application answered ``ok: false``: sending it again would get the same answer, so the
  caller sees the error at once.

The server may add ``retry_after`` (seconds) to a transient refusal; over HTTP that is the
``Retry-After`` header.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "RATE_LIMITED",
    "RETRYABLE_CODES",
    "UNAVAILABLE",
    "is_retryable",
    "is_retryable_status",
]

RATE_LIMITED: Final = "rate_limited"  # over the connection's rate: wait ``retry_after``, then resend
UNAVAILABLE: Final = "unavailable"  # the broker (or another dependency) is down: resend later

RETRYABLE_CODES: Final = frozenset({RATE_LIMITED, UNAVAILABLE})


def is_retryable(code: object) -> bool:
    """True when a refusal with this ``code`` (an ``error`` frame or an ``ok: false`` ack) is
    transient: the client sends the frame again instead of failing it."""
    return code in RETRYABLE_CODES


def is_retryable_status(status: int) -> bool:
    """True for HTTP statuses a client retries after a delay: 408, 429 and 5xx."""
    return status in (408, 429) or 500 <= status <= 599
