"""Offsets: one grammar for client and server; pairs of integers, "0" before everything."""

from __future__ import annotations

import pytest

from pyrt.wire.offsets import ZERO, format_offset, offset_key, parse_offset, unchecked_offset_key


def test_offsets_order_numerically_not_as_text() -> None:
    assert sorted(["13-0", "12-10", "12-3"], key=parse_offset) == ["12-3", "12-10", "13-0"]


@pytest.mark.parametrize(("a", "b"), [("12-3", "12-10"), ("12-10", "13-0"), ("0", "0-1"), ("9-9", "10-0")])
def test_the_client_orders_offsets_by_the_numeric_pair(a: str, b: str) -> None:
    ka, kb = offset_key(a), offset_key(b)
    assert ka is not None
    assert kb is not None
    assert ka < kb


def test_zero_and_bare_integers_mean_the_same_on_both_sides() -> None:
    assert parse_offset("0") == ZERO == parse_offset("0-0") == offset_key("0") == offset_key("0-0")
    assert parse_offset("17") == offset_key("17") == unchecked_offset_key("17") == (17, 0)
    assert format_offset(ZERO) == "0"
    assert format_offset((12, 3)) == "12-3"


@pytest.mark.parametrize("bad", ["", "-1", "1-", "a-b", "abc", "x-1", "1-2-3", " 1-2", "9" * 21, "\u0661-2"])
def test_anything_else_is_refused_by_the_server_and_unordered_on_the_client(bad: str) -> None:
    with pytest.raises(ValueError, match="offset"):
        parse_offset(bad)
    assert offset_key(bad) is None


@pytest.mark.parametrize("bad", [5, None, b"1-2"])
def test_an_offset_must_be_a_string(bad: object) -> None:
    with pytest.raises(ValueError, match="must be a string"):
        parse_offset(bad)


def test_the_unchecked_reader_agrees_with_the_strict_one_on_well_formed_offsets() -> None:
    for offset in ("0", "0-0", "1-1", "1700000000000-42", "17"):
        assert unchecked_offset_key(offset) == parse_offset(offset)
        assert format_offset(parse_offset(offset)) in (offset, offset + "-0", "0")
