"""Channel offsets and channel names on the server.

The offset grammar is :mod:`pyrt.offsets`, shared with the client; here ``offset_key`` is its
:func:`~pyrt.offsets.unchecked_offset_key`, for offsets the server (or its broker) made itself.
"""

from __future__ import annotations

import re

from pyrt.offsets import ZERO, OffsetKey, format_offset, parse_offset
from pyrt.offsets import unchecked_offset_key as offset_key

__all__ = ["ZERO", "OffsetKey", "format_offset", "is_channel_name", "offset_key", "parse_offset"]

_CHANNEL = re.compile(r"[A-Za-z0-9_.:@\-]{1,128}")


def is_channel_name(value: object) -> bool:
    """Channel names: 1-128 characters of letters, digits and ``_ . : @ -``."""
    return isinstance(value, str) and _CHANNEL.fullmatch(value) is not None
