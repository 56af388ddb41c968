"""The names the protocol accepts: channels, event types, message ids."""

from __future__ import annotations

from pyrt.wire.names import ID_MAX, is_channel_name, is_event_name, is_message_id


def test_channel_names() -> None:
    assert is_channel_name("chat")
    assert is_channel_name("room:42.a_b-c@x")
    assert is_channel_name("x" * 128)
    assert not any(is_channel_name(n) for n in ("", "a b", "x" * 129, "é", None, "a\nb", 5))


def test_event_names_allow_no_at_sign_and_at_most_64_characters() -> None:
    assert is_event_name("news.update:v2")
    assert is_event_name("e" * 64)
    assert not any(is_event_name(n) for n in ("", "a@b", "e" * 65, "bad event!", None))


def test_message_ids_are_short_non_empty_strings() -> None:
    assert is_message_id("k3f9x2a1-17")
    assert is_message_id("x" * ID_MAX)
    assert not any(is_message_id(v) for v in ("", "x" * (ID_MAX + 1), 42, None))
