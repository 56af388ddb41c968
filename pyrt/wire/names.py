"""The names the pyrt protocol accepts (docs/protocol.md), for the server and ``pyrt.testing``.

- a channel: 1-128 characters of letters, digits and ``_ . : @ -``;
- an event type of a publication: 1-64 characters of letters, digits and ``_ . : -``;
- a message id (``message`` and ``publish`` frames): a non-empty string of at most 128 characters;
- a ``traceparent`` (``message`` and ``publish`` frames, optional): W3C Trace Context version 00,
  ``00-<32 hex>-<16 hex>-<2 hex>`` in lowercase, neither id all zeros.
"""

from __future__ import annotations

import re
from typing import Final, TypeGuard

__all__ = [
    "CHANNEL_RULE",
    "EVENT_RULE",
    "ID_MAX",
    "ID_RULE",
    "TRACEPARENT_RULE",
    "is_channel_name",
    "is_event_name",
    "is_message_id",
    "is_traceparent",
]

ID_MAX: Final = 128
CHANNEL_RULE: Final = "channel must be 1-128 characters of letters, digits and _ . : @ -"
EVENT_RULE: Final = "event must be 1-64 characters of letters, digits and _ . : -"
ID_RULE: Final = f"id must be a non-empty string of at most {ID_MAX} characters"

TRACEPARENT_RULE: Final = (
    "traceparent must be W3C Trace Context 00-<32 hex>-<16 hex>-<2 hex> (lowercase, ids not all zeros)"
)

_CHANNEL = re.compile(r"[A-Za-z0-9_.:@\-]{1,128}")
_EVENT = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")


def is_channel_name(value: object) -> TypeGuard[str]:
    """Channel names: 1-128 characters of letters, digits and ``_ . : @ -``."""
    return isinstance(value, str) and _CHANNEL.fullmatch(value) is not None


def is_event_name(value: object) -> TypeGuard[str]:
    """Event types: 1-64 characters of letters, digits and ``_ . : -``."""
    return isinstance(value, str) and _EVENT.fullmatch(value) is not None


def is_message_id(value: object) -> TypeGuard[str]:
    """Message ids: non-empty strings of at most :data:`ID_MAX` characters."""
    return isinstance(value, str) and 0 < len(value) <= ID_MAX


def is_traceparent(value: object) -> TypeGuard[str]:
    """A W3C ``traceparent`` of version 00: ``00-<trace id>-<parent id>-<flags>``, lowercase hex,
    neither id all zeros (the specification's invalid values)."""
    if not isinstance(value, str) or len(value) != 55:
        return False
    match = _TRACEPARENT.fullmatch(value)
    return match is not None and match[1] != "0" * 32 and match[2] != "0" * 16
