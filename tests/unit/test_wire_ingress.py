"""Strict JSON at every way in: lone surrogates, NaN and infinite numbers are refused."""

from __future__ import annotations

import json

import pytest

from pyrt.wire.ingress import IngressError, check_text, loads, loads_body


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ('"\\ud800"', "bad_frame"),
        ('{"\\udc00": 1}', "bad_frame"),
        ('["ok", {"deep": ["\\udbff"]}]', "bad_frame"),
        ('"\\ud83d"', "bad_frame"),  # a high surrogate without its pair
        ("NaN", "bad_json"),
        ("[-Infinity]", "bad_json"),
        ("[1e999]", "bad_frame"),
        ("1" * 5000, "bad_json"),
        ("[" * 100_000 + "]" * 100_000, "bad_json"),
        ("{nope", "bad_json"),
    ],
)
def test_what_cannot_be_sent_on_is_refused_with_its_code(text: str, code: str) -> None:
    with pytest.raises(IngressError) as refused:
        loads(text)
    assert refused.value.code == code


def test_valid_json_is_read_as_the_standard_library_reads_it() -> None:
    for text in ('"\\ud83d\\ude00"', '"\\\\ud800"', "[1.5e300, -0.0, 12345678901234567890]", '{"a": "é"}'):
        assert loads(text) == json.loads(text)


def test_a_refused_frame_keeps_what_it_parsed_to_so_its_id_can_be_answered() -> None:
    with pytest.raises(IngressError) as refused:
        loads('{"type": "message", "id": "m-1", "data": "\\ud800"}')
    assert refused.value.value["id"] == "m-1"


def test_bodies_must_be_utf8() -> None:
    assert loads_body('{"a": "é"}'.encode()) == {"a": "é"}
    for body in (b'"\xed\xa0\x80"', '{"a": 1}'.encode("utf-16"), b'"\xff"'):
        with pytest.raises(IngressError, match="not UTF-8"):
            loads_body(body)


def test_check_text_finds_lone_surrogates_in_server_side_text() -> None:
    check_text('{"fine":"😀"}')
    check_text("ascii only")
    with pytest.raises(IngressError):
        check_text('"\ud800"')
