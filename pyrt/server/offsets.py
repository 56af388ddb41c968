"""Channel offsets and channel names on the server.

The offset grammar is :mod:`pyrt.wire.offsets` and the name rules :mod:`pyrt.wire.names`, both shared with
the client; here ``offset_key`` is :func:`~pyrt.wire.offsets.unchecked_offset_key`, for offsets the
server (or its broker) made itself.
"""

from __future__ import annotations

from pyrt.wire.names import is_channel_name
from pyrt.wire.offsets import ZERO, OffsetKey, format_offset, parse_offset
from pyrt.wire.offsets import unchecked_offset_key as offset_key

__all__ = ["ZERO", "OffsetKey", "format_offset", "is_channel_name", "offset_key", "parse_offset"]
