"""Offsets order as pairs of integers; "0" means before everything; channel names are checked."""

from __future__ import annotations

import pytest

from pyrt.server.offsets import ZERO, format_offset, is_channel_name, parse_offset


def test_offsets_order_numerically_not_as_text() -> None:
    assert sorted(["13-0", "12-10", "12-3"], key=parse_offset) == ["12-3", "12-10", "13-0"]


def test_zero_and_bare_integers() -> None:
    assert parse_offset("0") == ZERO == parse_offset("0-0")
    assert parse_offset("17") == (17, 0)
    assert format_offset(ZERO) == "0"
    assert format_offset((12, 3)) == "12-3"


@pytest.mark.parametrize("bad", ["", "-1", "1-", "a-b", "1-2-3", " 1-2", 5, None, "9" * 21])
def test_anything_else_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="offset"):
        parse_offset(bad)


def test_channel_names() -> None:
    assert is_channel_name("chat")
    assert is_channel_name("room:42.a_b-c@x")
    assert not any(is_channel_name(n) for n in ("", "a b", "x" * 129, "é", None, "a\nb"))
