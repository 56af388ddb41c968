"""Who may do what in which channel: token capabilities, then the application's policy.

Two layers decide every channel action, and both must allow it:

1. **The token** (when it carries ``caps``): a list of capabilities, each naming channels and the
   actions allowed there::

       {"sub": "alice", "exp": 1767225600,
        "caps": [{"channels": ["chat", "room:*"], "allow": ["subscribe", "publish", "join"]},
                 {"channels": ["news"], "allow": ["subscribe"]}]}

   A channel pattern is a channel name, or a prefix followed by ``*`` (``"room:*"`` matches
   ``room:1`` and ``room:lobby``; ``"*"`` matches every channel). A token without ``caps`` leaves
   the decision to the policy alone; a token with ``"caps": []`` allows no channel action.
2. **The policy** (``channel_policy(channel, subject, action)`` of ``create_app``): by default
   anyone subscribes anywhere, and channels starting with ``_`` are the server's own (no client
   publishes or joins presence there).

Actions (:data:`ACTIONS`): ``subscribe`` (receive publications, replay, read history and
presence, get join/leave events), ``publish``, ``join`` (enter the channel's presence).

A refused action is answered ``forbidden``. Capabilities are checked when the action is asked
for, and again for what a connection holds when it refreshes its token: subscriptions and
presence the new token no longer allows end with a ``forbidden`` error naming the channel.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["ACTIONS", "MAX_CAPS", "MAX_PATTERNS", "Cap", "caps_allow", "parse_caps"]

ACTIONS: Final = frozenset({"subscribe", "publish", "join"})
MAX_CAPS: Final = 64  # capabilities in one token
MAX_PATTERNS: Final = 64  # channel patterns in one capability

_PATTERN = re.compile(r"[A-Za-z0-9_.:@\-]{0,128}\*?")


@dataclass(frozen=True, slots=True)
class Cap:
    """Actions ``allow`` on the channels matching ``channels`` (names, or prefixes ending in ``*``)."""

    channels: tuple[str, ...]
    allow: frozenset[str]

    def matches(self, channel: str) -> bool:
        for pattern in self.channels:
            if pattern.endswith("*"):
                if channel.startswith(pattern[:-1]):
                    return True
            elif channel == pattern:
                return True
        return False


def parse_caps(value: Any) -> tuple[Cap, ...]:
    """The capabilities of a token's ``caps`` claim; :class:`ValueError` naming what is wrong
    (a token with malformed capabilities is refused as a whole: it never means "anything")."""
    if not isinstance(value, list):
        raise ValueError("caps must be a list")
    if len(value) > MAX_CAPS:
        raise ValueError(f"at most {MAX_CAPS} caps")
    caps = []
    for item in value:
        if not isinstance(item, dict):
            raise ValueError("each cap must be an object")
        channels, allow = item.get("channels"), item.get("allow")
        if not isinstance(channels, list) or not 0 < len(channels) <= MAX_PATTERNS:
            raise ValueError(f"a cap needs 1-{MAX_PATTERNS} channel patterns")
        for pattern in channels:
            if not isinstance(pattern, str) or not pattern or not _PATTERN.fullmatch(pattern):
                raise ValueError(f"bad channel pattern {str(pattern)[:40]!r}")
        if not isinstance(allow, list) or not allow or not all(a in ACTIONS for a in allow):
            raise ValueError(f"allow must list actions among {sorted(ACTIONS)}")
        caps.append(Cap(tuple(channels), frozenset(allow)))
    return tuple(caps)


def caps_allow(caps: Sequence[Cap] | None, channel: str, action: str) -> bool:
    """Whether ``caps`` allow ``action`` in ``channel`` (``None``: the token has no caps, so yes)."""
    if caps is None:
        return True
    return any(action in cap.allow and cap.matches(channel) for cap in caps)
