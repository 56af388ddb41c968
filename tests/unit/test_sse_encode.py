"""encode_event / encode_comment: exact output, injection refused, and a decode round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyrt.wire.sse import SSEDecoder
from pyrt.wire.sse_encode import encode_comment, encode_event

pytestmark = pytest.mark.unit


def decode(text: str | bytes) -> list[tuple[str, str, str, int | None]]:
    dec = SSEDecoder()
    return [(e.type, e.data, e.id, e.retry) for e in dec.feed(text)]


def test_a_plain_message_is_one_data_line_and_a_blank_line() -> None:
    assert encode_event("hello") == "data: hello\n\n"


def test_all_fields_come_in_a_fixed_order() -> None:
    assert encode_event("x", type="news", id="12-3", retry=1000) == (
        "event: news\nid: 12-3\nretry: 1000\ndata: x\n\n"
    )


def test_every_kind_of_line_break_in_data_becomes_its_own_data_line() -> None:
    assert encode_event("a\nb\r\nc\rd") == "data: a\ndata: b\ndata: c\ndata: d\n\n"


def test_data_cannot_inject_fields_or_end_the_event_early() -> None:
    hostile = "ok\n\nevent: admin\nid: 999\nretry: 1\ndata: pwned\r\r:"
    text = encode_event(hostile, id="1")
    assert decode(text) == [("message", hostile.replace("\r", "\n"), "1", None)]


def test_empty_data_still_dispatches_an_event_with_empty_data() -> None:
    assert decode(encode_event("")) == [("message", "", "", None)]


def test_leading_space_and_trailing_newline_in_data_survive() -> None:
    assert decode(encode_event("  two spaces\n")) == [("message", "  two spaces\n", "", None)]


def test_bytes_in_gives_utf8_bytes_out() -> None:
    out = encode_event("é€".encode(), type="t")
    assert out == "event: t\ndata: é€\n\n".encode()
    assert isinstance(out, bytes)


def test_empty_id_is_allowed_and_resets_the_last_event_id() -> None:
    dec = SSEDecoder(last_event_id="5")
    (event,) = dec.feed(encode_event("x", id=""))
    assert event.id == ""


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b", "\n"])
def test_id_with_cr_lf_or_nul_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        encode_event("x", id=bad)


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b"])
def test_event_type_with_cr_lf_or_nul_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        encode_event("x", type=bad)


def test_empty_event_type_is_refused_because_it_would_arrive_as_message() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        encode_event("x", type="")


@pytest.mark.parametrize("bad", [-1, True, 1.5, "100"])
def test_retry_must_be_a_non_negative_int(bad: object) -> None:
    with pytest.raises(ValueError, match="retry"):
        encode_event("x", retry=bad)  # type: ignore[arg-type]


def test_bytes_that_are_not_utf8_are_refused() -> None:
    with pytest.raises(ValueError, match="utf-8"):
        encode_event(b"\xff")


def test_non_text_data_is_refused_with_a_type_error() -> None:
    with pytest.raises(TypeError, match="str or bytes"):
        encode_event(42)  # type: ignore[call-overload]


def test_comments_dispatch_nothing_and_keep_every_line_a_comment() -> None:
    assert encode_comment("hb") == ": hb\n"
    assert encode_comment() == ":\n"
    assert encode_comment("a\nb\r\n") == ": a\n: b\n:\n"
    stream = encode_comment("x\ndata: no\n") + encode_event("yes")
    assert decode(stream) == [("message", "yes", "", None)]


TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
IDS = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\0"), max_size=20)
TYPES = IDS.filter(bool)


@given(
    data=TEXT,
    type_=st.none() | TYPES,
    id_=st.none() | IDS,
    retry=st.none() | st.integers(min_value=0, max_value=10**12),
)
def test_decode_of_encode_gives_back_every_field(
    data: str, type_: str | None, id_: str | None, retry: int | None
) -> None:
    expected_data = data.replace("\r\n", "\n").replace("\r", "\n")
    expected = [(type_ or "message", expected_data, id_ or "", retry)]
    assert decode(encode_event(data, type=type_, id=id_, retry=retry)) == expected
    assert decode(encode_event(data.encode(), type=type_, id=id_, retry=retry)) == expected


@given(events=st.lists(st.tuples(TEXT, st.none() | IDS), max_size=10))
def test_a_sequence_of_events_decodes_in_order_with_the_ids_carried(
    events: list[tuple[str, str | None]],
) -> None:
    stream = "".join(encode_event(d, id=i) for d, i in events)
    got = decode(stream)
    last_id = ""
    expected = []
    for data, id_ in events:
        if id_ is not None:
            last_id = id_
        expected.append(("message", data.replace("\r\n", "\n").replace("\r", "\n"), last_id, None))
    assert got == expected
