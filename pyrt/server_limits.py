"""The limits a pyrt server advertises in its ``welcome`` frame (docs/protocol.md).

``{"type": "welcome", ..., "limits": {"rate": 200, "burst": 400, "window": 1000,
"max_bytes": 1048576, "subscriptions": 256}}`` tells a client what it must respect so that it is
never refused: the server reads this object with :meth:`ServerLimits.to_wire`, the client with
:meth:`ServerLimits.from_wire`. Older clients ignore the field; a field a client does not know is
ignored too, and a missing or malformed one means "not advertised".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["ServerLimits"]


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What one connection may do. ``None``: not limited (or not advertised).

    - ``rate``: frames per second, on average (the server's token bucket refills at this rate);
    - ``burst``: frames the connection may send back to back (the bucket's size);
    - ``window``: frames a client may have sent without an answer when the server starts
      refusing (see :mod:`pyrt.admission`); a client that keeps fewer in flight is never closed;
    - ``max_bytes``: the largest frame, in bytes (bigger: the server closes with 1009);
    - ``subscriptions``: channels one connection may subscribe to.
    """

    rate: float | None = None
    burst: int | None = None
    window: int | None = None
    max_bytes: int | None = None
    subscriptions: int | None = None

    @classmethod
    def from_wire(cls, value: Any) -> ServerLimits | None:
        """The limits of a ``welcome`` frame's ``limits`` object; ``None`` when it has none."""
        if not isinstance(value, dict):
            return None
        return cls(
            rate=_positive(value.get("rate")),
            burst=_count(value.get("burst")),
            window=_count(value.get("window")),
            max_bytes=_count(value.get("max_bytes")),
            subscriptions=_count(value.get("subscriptions")),
        )

    def to_wire(self) -> dict[str, Any]:
        """The JSON object a server puts in ``welcome`` (unlimited fields left out)."""
        out: dict[str, Any] = {}
        for name in ("rate", "burst", "window", "max_bytes", "subscriptions"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


def _positive(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def _count(value: Any) -> int | None:
    number = _positive(value)
    return None if number is None else max(1, int(number))
