"""Channel offsets: ``"<major>-<minor>"`` strings ordered as pairs of integers (docs/protocol.md).

``"0"`` (and any bare integer ``"N"``) means ``"N-0"``. Redis stream ids have exactly this form.
"""

from __future__ import annotations

import re

__all__ = ["ZERO", "OffsetKey", "format_offset", "is_channel_name", "offset_key", "parse_offset"]

OffsetKey = tuple[int, int]
ZERO: OffsetKey = (0, 0)

_OFFSET = re.compile(r"(\d{1,20})(?:-(\d{1,20}))?")
_CHANNEL = re.compile(r"[A-Za-z0-9_.:@\-]{1,128}")


def parse_offset(value: object) -> OffsetKey:
    """The sortable key of an offset string; :class:`ValueError` for anything else."""
    if not isinstance(value, str):
        raise ValueError(f"an offset must be a string like '12-3', got {value!r}")
    match = _OFFSET.fullmatch(value)
    if match is None:
        raise ValueError(f"an offset must look like '12-3' or '0', got {value!r}")
    return int(match.group(1)), int(match.group(2) or 0)


def offset_key(value: str) -> OffsetKey:
    """Like :func:`parse_offset` for offsets the server made itself (no validation message)."""
    major, _, minor = value.partition("-")
    return int(major), int(minor or 0)


def format_offset(key: OffsetKey) -> str:
    """``(12, 3)`` -> ``"12-3"``; ``(0, 0)`` -> ``"0"``."""
    return "0" if key == ZERO else f"{key[0]}-{key[1]}"


def is_channel_name(value: object) -> bool:
    """Channel names: 1-128 characters of letters, digits and ``_ . : @ -``."""
    return isinstance(value, str) and _CHANNEL.fullmatch(value) is not None
