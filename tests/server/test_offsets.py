"""The server reads offsets with the shared grammar and checks channel names."""

from __future__ import annotations

import pyrt.offsets
from pyrt.server import offsets
from pyrt.server.offsets import is_channel_name


def test_the_server_uses_the_shared_offset_grammar() -> None:
    assert offsets.parse_offset is pyrt.offsets.parse_offset
    assert offsets.format_offset is pyrt.offsets.format_offset
    assert offsets.offset_key is pyrt.offsets.unchecked_offset_key
    assert offsets.ZERO == (0, 0)


def test_channel_names() -> None:
    assert is_channel_name("chat")
    assert is_channel_name("room:42.a_b-c@x")
    assert not any(is_channel_name(n) for n in ("", "a b", "x" * 129, "é", None, "a\nb"))
