"""Which socket closes end a client for good, and which ones it recovers from.

The default table (:func:`default_should_reconnect`):

- stop on 1003 (unsupported data), 1007 (invalid payload), 1008 (policy), 1009 (too big),
  1010 (mandatory extension) and 4400-4499 (application "do not retry": 4401 bad token,
  4403 forbidden, ...);
- reconnect on everything else: 1001 (going away, server restart), 1005 (no status), 1006
  (abnormal: the network dropped), 1011 (server error), 1012 (service restart), 1013 (try again
  later, slow consumer), 1014 (bad gateway), 1000 sent by the server, 4001 (:data:`TOKEN_EXPIRED`:
  the credential expired; the URL and subprotocols are evaluated again, so a callable hands out
  a fresh token), other 3000-4999 codes.

A manual ``close()`` never reconnects and never consults the policy. Pass your own
``should_reconnect(info: CloseInfo) -> bool`` to a client to override the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyrt.errors import InvalidCloseCode
from pyrt.wire.close_codes import TOKEN_EXPIRED

__all__ = [
    "STOP_CODES",
    "TOKEN_EXPIRED",
    "CloseInfo",
    "ShouldReconnect",
    "default_should_reconnect",
    "validate_close_code",
]

STOP_CODES = frozenset({1003, 1007, 1008, 1009, 1010})
APP_STOP_RANGE = range(4400, 4500)


@dataclass(frozen=True, slots=True)
class CloseInfo:
    """How a socket closed, as the policy sees it."""

    code: int  # the close code (1006 when the connection broke or was abandoned)
    reason: str = ""  # the close reason the server sent, or what pyrt observed
    was_clean: bool = False  # a close handshake completed
    uptime: float | None = None  # seconds the socket was open; None when it never opened


ShouldReconnect = Callable[[CloseInfo], bool]


def default_should_reconnect(info: CloseInfo) -> bool:
    """The documented default: False for the codes that say "do not retry", True otherwise."""
    return info.code not in STOP_CODES and info.code not in APP_STOP_RANGE


def validate_close_code(code: int) -> int:
    """Return ``code`` when a browser client may close with it (1000 or 3000-4999), else raise."""
    if isinstance(code, bool) or not isinstance(code, int):
        raise InvalidCloseCode(f"close code must be an int, got {type(code).__name__}")
    if code != 1000 and not 3000 <= code <= 4999:
        raise InvalidCloseCode(
            f"close code {code} is not allowed: clients may only close with 1000 or 3000-4999"
        )
    return code
