"""Channel offsets: the grammar of docs/protocol.md, for the client and the server alike.

An offset is ``"<major>-<minor>"``: two decimal integers, ordered as the pair ``(major, minor)``.
A bare integer ``"N"`` means ``"N-0"``, so ``"0"`` is ``(0, 0)``: before the oldest retained
publication. Redis stream ids have exactly this form.

Three readers, one grammar:

- :func:`parse_offset` — strict, for offsets that arrive from outside (a client's ``since``, a
  ``Last-Event-ID``): anything else raises :class:`ValueError` naming the value;
- :func:`offset_key` — lenient, for a client comparing offsets a server sent: ``None`` when the
  string is not an offset (the client then compares it only for equality);
- :func:`unchecked_offset_key` — fast, for offsets this process or its broker made itself.

:func:`format_offset` writes a key back.
"""

from __future__ import annotations

import re

__all__ = ["ZERO", "OffsetKey", "format_offset", "offset_key", "parse_offset", "unchecked_offset_key"]

OffsetKey = tuple[int, int]
ZERO: OffsetKey = (0, 0)

_OFFSET = re.compile(r"([0-9]{1,20})(?:-([0-9]{1,20}))?")


def parse_offset(value: object) -> OffsetKey:
    """The sortable key of an offset string; :class:`ValueError` for anything else."""
    if not isinstance(value, str):
        raise ValueError(f"an offset must be a string like '12-3', got {value!r}")
    match = _OFFSET.fullmatch(value)
    if match is None:
        raise ValueError(f"an offset must look like '12-3' or '0', got {value!r}")
    return int(match.group(1)), int(match.group(2) or 0)


def offset_key(value: str) -> OffsetKey | None:
    """The sortable key of an offset, or ``None`` when ``value`` is not of the documented form."""
    match = _OFFSET.fullmatch(value)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2) or 0)


def unchecked_offset_key(value: str) -> OffsetKey:
    """The key of an offset known to be well formed (made here): no validation, no regex."""
    major, _, minor = value.partition("-")
    return int(major), int(minor or 0)


def format_offset(key: OffsetKey) -> str:
    """``(12, 3)`` -> ``"12-3"``; ``(0, 0)`` -> ``"0"``."""
    return "0" if key == ZERO else f"{key[0]}-{key[1]}"
