"""The server reads offsets and channel names with the grammar it shares with the client."""

from __future__ import annotations

import pyrt.wire.names
import pyrt.wire.offsets
from pyrt.server import offsets


def test_the_server_uses_the_shared_offset_grammar_and_name_rules() -> None:
    assert offsets.parse_offset is pyrt.wire.offsets.parse_offset
    assert offsets.format_offset is pyrt.wire.offsets.format_offset
    assert offsets.offset_key is pyrt.wire.offsets.unchecked_offset_key
    assert offsets.is_channel_name is pyrt.wire.names.is_channel_name
    assert offsets.ZERO == (0, 0)
