"""The names the protocol accepts: channels, event types, message ids."""

from __future__ import annotations

import pytest

from pyrt.wire.names import ID_MAX, is_channel_name, is_event_name, is_message_id, is_traceparent


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


TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


def test_a_traceparent_is_w3c_version_00_in_lowercase_hex() -> None:
    assert is_traceparent(f"00-{TRACE}-{SPAN}-01")
    assert is_traceparent(f"00-{TRACE}-{SPAN}-00")


@pytest.mark.parametrize(
    "value",
    [
        None,
        1,
        "",
        f"00-{TRACE}-{SPAN}",  # no flags
        f"00-{TRACE}-{SPAN}-01-extra",  # a later version's fields, not version 00
        f"01-{TRACE}-{SPAN}-01",  # another version
        f"00-{TRACE.upper()}-{SPAN}-01",  # uppercase
        f"00-{TRACE[:-1]}-{SPAN}-01",  # a short trace id
        f"00-{TRACE}-{SPAN}0-01",  # a long parent id
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id: invalid
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id: invalid
        f"00_{TRACE}_{SPAN}_01",
        f" 00-{TRACE}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-01\n",
        f"00-{TRACE}-{SPAN}-0g",
    ],
)
def test_anything_else_is_not_a_traceparent(value: object) -> None:
    assert not is_traceparent(value)
