"""Who may do what in which channel: token capabilities, then the application's policy.

Two layers decide every channel action, and both must allow it:

1. **The token** (when it carries ``caps``): a list of capabilities, each naming channels and the
   actions allowed there::

       {"sub": "alice", "exp": 1767225600,
        "caps": [{"channels": ["chat", "room:*"], "allow": ["subscribe", "publish", "join"]},
                 {"channels": ["news"], "allow": ["subscribe"]}]}

   Patterns are **segment-aware**: a channel name is made of segments separated by ``:``
   (``room:1:admin`` has three). A pattern is segments too, each one of:

   - a name, matched exactly (``room``);
   - ``*``, exactly one non-empty segment (``room:*`` matches ``room:1`` and ``room:lobby``,
     never ``room:`` nor ``room:1:admin``);
   - a prefix followed by ``*``, one segment that starts with the prefix and goes on
     (``user-*`` matches ``user-7``, not ``user-`` nor ``user-7:x``);
   - ``**``, only last: one or more segments, whatever follows (``room:**`` matches
     ``room:1`` and ``room:1:admin``, not ``room`` nor ``room:``; ``**`` alone matches every
     channel, ``*`` alone every channel without a ``:``).

   A token without ``caps`` leaves the decision to the policy alone; a token with ``"caps": []``
   allows no channel action.
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
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["ACTIONS", "MAX_CAPS", "MAX_PATTERNS", "Cap", "caps_allow", "parse_caps", "pattern_matches"]

ACTIONS: Final = frozenset({"subscribe", "publish", "join"})
MAX_CAPS: Final = 64  # capabilities in one token
MAX_PATTERNS: Final = 64  # channel patterns in one capability

_SEGMENT = re.compile(r"[A-Za-z0-9_.@\-]*\*?")  # a name, or a prefix (maybe empty) and "*"
_PATTERN_MAX = 128  # characters of a pattern, like a channel name


def _segments(pattern: str) -> tuple[str, ...]:
    """The segments of a valid pattern (:class:`ValueError` naming it otherwise)."""
    segments = tuple(pattern.split(":"))
    valid = 0 < len(pattern) <= _PATTERN_MAX and all(
        _SEGMENT.fullmatch(segment) or (segment == "**" and at == len(segments) - 1)
        for at, segment in enumerate(segments)
    )
    if not valid:
        raise ValueError(f"bad channel pattern {pattern[:40]!r}")
    return segments


def pattern_matches(segments: tuple[str, ...], channel: str) -> bool:
    """Whether a channel name matches a pattern's ``segments`` (rules in the module docstring)."""
    parts = channel.split(":")
    rest = segments[-1] == "**"
    fixed = segments[:-1] if rest else segments
    if len(parts) < len(fixed) + rest or (not rest and len(parts) != len(fixed)):
        return False
    for segment, part in zip(fixed, parts, strict=False):
        if segment.endswith("*"):
            if len(part) < len(segment) or not part.startswith(segment[:-1]):
                return False
        elif segment != part:
            return False
    return not rest or any(parts[len(fixed) :])  # "**": at least one non-empty segment more


@dataclass(frozen=True, slots=True)
class Cap:
    """Actions ``allow`` on the channels matching ``channels`` (segment-aware patterns)."""

    channels: tuple[str, ...]
    allow: frozenset[str]
    _segments: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_segments", tuple(_segments(p) for p in self.channels))

    def matches(self, channel: str) -> bool:
        return any(pattern_matches(segments, channel) for segments in self._segments)


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
            if not isinstance(pattern, str):
                raise ValueError(f"bad channel pattern {str(pattern)[:40]!r}")
            _segments(pattern)
        if not isinstance(allow, list) or not allow or not all(a in ACTIONS for a in allow):
            raise ValueError(f"allow must list actions among {sorted(ACTIONS)}")
        caps.append(Cap(tuple(channels), frozenset(allow)))
    return tuple(caps)


def caps_allow(caps: Sequence[Cap] | None, channel: str, action: str) -> bool:
    """Whether ``caps`` allow ``action`` in ``channel`` (``None``: the token has no caps, so yes)."""
    if caps is None:
        return True
    return any(action in cap.allow and cap.matches(channel) for cap in caps)
