"""How a server tells its clients when to come back, and how a client spreads its reconnect.

A server that drops thousands of connections at once (a restart, a deploy) must not get them all
back in the same instant. With plain backoff every client's first retry falls in
``[0, Backoff.initial]``: half a second by default, so 500 clients put a fifth of themselves in
each 100 ms. A longer default would slow down the common case, one user on a flaky link, which
should come back fast. So the server, which knows how many clients it is dropping, says how to
come back, and only then do clients spread out:

- **WebSocket close reason** (pyrt servers; any close code the client reconnects on):
  ``"server shutting down; reconnect_window=5"`` — come back at a uniformly random moment within
  the next 5 seconds; ``retry_after=3`` — not before 3 seconds. Both may appear, separated by
  ``;`` or spaces, anywhere in the reason (:func:`parse_reason`, :func:`close_reason`).
- **HTTP** (a refused handshake, an SSE request): ``Retry-After`` (whole seconds), which the
  server picks at random within the window for each request; the CPython WebSocket transport
  passes it on as ``retry_after=S`` in the reason of the failed attempt. Browsers hide the
  status of a refused WebSocket handshake; they get the window from the close frame instead.
- **SSE streams** ended by a restart get a ``retry:`` field drawn at random within the window
  (``EventSource`` has no jitter of its own).

:func:`pyrt.engine.reconnect.reconnect_delay` is the client's side: the usual jittered backoff,
but spread over at least the server's window (for this attempt and the failed ones after it,
until a connection opens), and never before ``retry_after``. :func:`drain_window` is the
server's: ``connections / rate`` seconds, so a restart brings back ``rate`` clients per second.

Pure code: the wire's grammar of the hint, and the server's window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "DEFAULT_RECONNECT_RATE",
    "MAX_WINDOW",
    "ComeBack",
    "close_reason",
    "drain_window",
    "parse_reason",
]

# Clients per second a restarting server takes back: 500 clients spread over 6.25 s put at most
# 5 % of them in any 100 ms, also when the new process takes seconds to come up (scenario 6).
DEFAULT_RECONNECT_RATE: Final = 80.0
MAX_WINDOW: Final = 60.0  # the widest window a server hands out (more clients: a faster rate)
_MAX_REASON_BYTES: Final = 123  # the WebSocket limit on a close reason
_FIELD = re.compile(r"(?:^|[\s;,])(reconnect_window|retry_after)=([0-9]{1,9}(?:\.[0-9]{1,6})?)(?=$|[\s;,])")


@dataclass(frozen=True, slots=True)
class ComeBack:
    """What a server asked: not before ``after`` seconds, spread over ``window`` seconds."""

    after: float = 0.0
    window: float = 0.0


def parse_reason(reason: str) -> ComeBack | None:
    """The hint in a close reason (or a failed attempt's description), ``None`` when none."""
    if "=" not in reason:
        return None
    after = window = 0.0
    found = False
    for name, value in _FIELD.findall(reason):
        found = True
        if name == "retry_after":
            after = float(value)
        else:
            window = float(value)
    return ComeBack(after, window) if found else None


def close_reason(text: str, *, window: float = 0.0, after: float = 0.0) -> str:
    """``text`` with the hint appended, within the 123 bytes a close reason may have."""
    parts = []
    if window > 0:
        parts.append(f"reconnect_window={_number(window)}")
    if after > 0:
        parts.append(f"retry_after={_number(after)}")
    hint = "; ".join(parts)
    if not hint:
        return text
    room = _MAX_REASON_BYTES - len(hint) - 2
    head = text.encode("utf-8")[: max(0, room)].decode("utf-8", "ignore")
    return f"{head}; {hint}" if head else hint


def drain_window(connections: int, rate: float, maximum: float = MAX_WINDOW) -> float:
    """Seconds over which a server dropping ``connections`` at once spreads them (``rate``
    clients per second; ``rate <= 0``: no spreading)."""
    if rate <= 0 or connections <= 0:
        return 0.0
    return min(maximum, connections / rate)


def _number(seconds: float) -> str:
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return text if text else "0"
