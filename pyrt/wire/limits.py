"""The limits a pyrt server advertises in its ``welcome`` frame (docs/protocol.md).

``{"type": "welcome", ..., "limits": {"rate": 200, "burst": 400, "window": 1000,
"max_bytes": 1048576, "subscriptions": 256, "publish_rate": 200, "publish_burst": 1000}}`` tells
a client what it must respect so that it is
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
      refusing (see :mod:`pyrt.session.admission`); a client that keeps fewer in flight is never closed;
    - ``max_bytes``: the largest frame, in bytes (bigger: the server closes with 1009);
    - ``subscriptions``: channels one connection may subscribe to;
    - ``publish_rate``, ``publish_burst``: publications per second, and in a burst, of the
      client's identity (all its connections and ``POST /publish`` together).
    """

    rate: float | None = None
    burst: int | None = None
    window: int | None = None
    max_bytes: int | None = None
    subscriptions: int | None = None
    publish_rate: float | None = None
    publish_burst: int | None = None

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
            publish_rate=_positive(value.get("publish_rate")),
            publish_burst=_count(value.get("publish_burst")),
        )

    def to_wire(self) -> dict[str, Any]:
        """The JSON object a server puts in ``welcome`` (unlimited fields left out)."""
        out: dict[str, Any] = {}
        for name in _FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


_FIELDS = ("rate", "burst", "window", "max_bytes", "subscriptions", "publish_rate", "publish_burst")


def _positive(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def _count(value: Any) -> int | None:
    number = _positive(value)
    return None if number is None else max(1, int(number))
