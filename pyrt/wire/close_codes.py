"""The WebSocket close codes of the pyrt protocol (docs/protocol.md, "Close codes used by the
server"), named once for the server that sends them and the client that reacts to them."""

from __future__ import annotations

from typing import Final

__all__ = [
    "ABANDONED",
    "GOING_AWAY",
    "INTERNAL_ERROR",
    "NOT_UTF8",
    "POLICY",
    "SLOW_CONSUMER",
    "TOKEN_EXPIRED",
    "TOKEN_REFUSED",
    "TOO_LARGE",
]

GOING_AWAY: Final = 1001  # the server shuts down; the reason may carry a reconnect window
NOT_UTF8: Final = 1007  # a text frame that is not UTF-8
POLICY: Final = 1008  # a client that ignores rate_limited refusals
TOO_LARGE: Final = 1009  # a frame over the size limit
INTERNAL_ERROR: Final = 1011
SLOW_CONSUMER: Final = 1013  # the client does not read fast enough: reconnect, recover by offset
ABANDONED: Final = 4000  # sent by a client giving up on a socket it believes dead
TOKEN_EXPIRED: Final = 4001  # the connection's token expired: reconnect with a fresh one
TOKEN_REFUSED: Final = 4401  # missing, bad or expired token at the handshake: do not retry
