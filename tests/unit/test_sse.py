"""SSEDecoder against the web-platform-tests eventsource/format-* cases and the spec's examples.

Every case is fed whole, one byte at a time, and split in two at every offset; all three must
give the same events. The stream bodies reproduce what the WPT resources send (message.py
appends ``newline`` — default ``"\\n\\n"`` — and then one more ``"\\n"`` to ``message``).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyrt.wire.sse import ServerSentEvent, SSEDecoder

pytestmark = pytest.mark.unit

Expected = list[tuple[str, str, str]]  # (type, data, id)


def wpt_message(message: str, newline: str = "\n\n") -> bytes:
    """The body WPT's resources/message.py sends for ?message=...&newline=..."""
    return (message + newline + "\n").encode("utf-8")


def as_tuples(events: Iterable[ServerSentEvent]) -> Expected:
    return [(e.type, e.data, e.id) for e in events]


def feed_chunks(chunks: Iterable[bytes]) -> tuple[list[ServerSentEvent], SSEDecoder]:
    dec = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(dec.feed(chunk))
    return events, dec


def every_chunking(body: bytes) -> Iterable[tuple[str, list[bytes]]]:
    yield "whole", [body]
    yield "byte by byte", [body[i : i + 1] for i in range(len(body))]
    for cut in range(1, len(body)):
        yield f"split at {cut}", [body[:cut], body[cut:]]


def assert_stream(body: bytes, expected: Expected, last_event_id: str = "") -> SSEDecoder:
    """Feed ``body`` every way; each must give ``expected`` and end with ``last_event_id``."""
    last: SSEDecoder | None = None
    for how, chunks in every_chunking(body):
        events, dec = feed_chunks(chunks)
        assert as_tuples(events) == expected, how
        assert dec.last_event_id == last_event_id, how
        last = dec
    assert last is not None
    return last


# -- web-platform-tests eventsource/format-*.any.js ----------------------------------------

LONG = "x" * 2048

WPT_CASES: list[tuple[str, bytes, Expected, str]] = [
    (
        "format-bom: one leading BOM is stripped, a BOM later is part of a field name",
        wpt_message("\ufeffdata:1\n\n\ufeffdata:2\n\ndata:3"),
        [("message", "1", ""), ("message", "3", "")],
        "",
    ),
    (
        "format-bom-2: only the first of two leading BOMs is stripped",
        wpt_message("\ufeff\ufeffdata:1\n\ndata:2\n\ndata:3"),
        [("message", "2", ""), ("message", "3", "")],
        "",
    ),
    (
        "format-comments: comments with every line ending and long comments",
        wpt_message(
            "data:1\r:\0\n:\r\ndata:2\n:" + LONG + "\rdata:3\n:data:fail\r:" + LONG + "\ndata:4\n",
            newline="",
        ),
        [("message", "1\n2\n3\n4", "")],
        "",
    ),
    (
        "format-data-before-final-empty-line: the unterminated last event is never dispatched",
        wpt_message("retry:1000\ndata:test1\n\nid:test\ndata:test2", newline=""),
        [("message", "test1", "")],
        "",
    ),
    (
        "format-field-data: 'data:' and 'data' give empty data lines",
        wpt_message("data:\n\ndata\ndata\n\ndata:test"),
        [("message", "", ""), ("message", "\n", ""), ("message", "test", "")],
        "",
    ),
    (
        "format-field-event-empty: an empty event type means 'message'",
        wpt_message("event: \ndata:data"),
        [("message", "data", "")],
        "",
    ),
    (
        "format-field-event: a custom event type applies to its own event only",
        wpt_message("event:test\ndata:x\n\ndata:x"),
        [("test", "x", ""), ("message", "x", "")],
        "",
    ),
    (
        "format-field-id: the id and retry of resources/last-event-id.py",
        "id: …\nretry: 200\ndata: hello\n\n".encode(),
        [("message", "hello", "…")],
        "…",
    ),
    (
        "format-field-id-3 (persists): events without id inherit the last one",
        b"id: 1\ndata: 1\n\ndata:2\n\n",
        [("message", "1", "1"), ("message", "2", "1")],
        "1",
    ),
    (
        "format-field-id-3 (changes and persists)",
        b"id: 1\ndata: 1\n\nid: 2\ndata:2\n\ndata:3\n\n",
        [("message", "1", "1"), ("message", "2", "2"), ("message", "3", "2")],
        "2",
    ),
    (
        "format-field-id-3 (resets): an empty id resets the last event ID",
        b"id: 1\ndata: 1\n\nid:\ndata:2\n\ndata:3\n\n",
        [("message", "1", "1"), ("message", "2", ""), ("message", "3", "")],
        "",
    ),
    (
        "format-field-id-null: an id containing U+0000 is ignored",
        b"id: \x00\x00\nretry: 200\ndata: hello\n\n",
        [("message", "hello", "")],
        "",
    ),
    (
        "format-field-parsing: field names are exact and case-sensitive",
        wpt_message(
            "data:\0\ndata:  2\rData:1\ndata\0:2\ndata:1\r\0data:4\nda-ta:3\rdata_5\ndata:3\r"
            "data:\r\n data:32\ndata:4\n",
            newline="",
        ),
        [("message", "\0\n 2\n1\n3\n\n4", "")],
        "",
    ),
    (
        "format-field-retry-bogus: a retry value that is not all digits is ignored",
        wpt_message("retry:2000\nretry:1000x\ndata:x"),
        [("message", "x", "")],
        "",
    ),
    (
        "format-field-retry: leading zeros are decimal, not octal",
        wpt_message("retry:02000\ndata:x"),
        [("message", "x", "")],
        "",
    ),
    (
        "format-field-retry-empty: 'retry' without a value is ignored",
        wpt_message("retry\ndata:test"),
        [("message", "test", "")],
        "",
    ),
    (
        "format-field-unknown: unknown fields, a leading space and bare text are ignored",
        wpt_message("data:test\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:test"),
        [("message", "test\n\ntest", "")],
        "",
    ),
    (
        "format-leading-space: exactly one leading space is removed; a tab is kept",
        wpt_message("data:\ttest\rdata: \ndata:test"),
        [("message", "\ttest\n\ntest", "")],
        "",
    ),
    (
        "format-newlines: CRLF, LF and CR line endings mixed",
        wpt_message("data:test\r\ndata\ndata:test\r\n\r", newline=""),
        [("message", "test\n\ntest", "")],
        "",
    ),
    (
        "format-null-character: U+0000 in data is kept",
        wpt_message("data:\0\n\n"),
        [("message", "\0", "")],
        "",
    ),
    (
        "format-utf-8: the stream is UTF-8 whatever the charset parameter says",
        b"data:ok\xe2\x80\xa6\n\n\n",
        [("message", "ok…", "")],
        "",
    ),
    (
        "event-data: lines and data parsing (resources/message2.py)",
        b"data:msg\ndata:msg\n\n:\nfalsefield:msg\n\nfalsefield:msg\nData:data\n\ndata\n\ndata:end\n\n",
        [("message", "msg\nmsg", ""), ("message", "", ""), ("message", "end", "")],
        "",
    ),
]


@pytest.mark.parametrize(
    ("body", "expected", "last_event_id"),
    [pytest.param(b, e, i, id=name.split(":")[0]) for name, b, e, i in WPT_CASES],
)
def test_wpt_format_case_gives_the_same_events_however_it_is_chunked(
    body: bytes, expected: Expected, last_event_id: str
) -> None:
    assert_stream(body, expected, last_event_id)


def test_wpt_retry_fields_set_the_reconnection_time() -> None:
    assert assert_stream(wpt_message("retry:02000\ndata:x"), [("message", "x", "")]).retry == 2000
    bogus = assert_stream(wpt_message("retry:2000\nretry:1000x\ndata:x"), [("message", "x", "")])
    assert bogus.retry == 2000
    assert assert_stream(wpt_message("retry\ndata:test"), [("message", "test", "")]).retry is None


def test_wpt_last_event_id_carries_over_to_the_reconnected_stream() -> None:
    # format-field-id / -id-2: the second response has no id field, the events keep "…".
    dec = SSEDecoder()
    assert as_tuples(dec.feed("id: …\nretry: 200\ndata: hello\n\n".encode())) == [("message", "hello", "…")]
    dec.end()
    assert as_tuples(dec.feed("data: …\n\n".encode())) == [("message", "…", "…")]
    assert dec.retry == 200


def test_wpt_unterminated_event_is_discarded_at_end_of_stream_and_its_id_never_committed() -> None:
    dec = SSEDecoder()
    body = wpt_message("retry:1000\ndata:test1\n\nid:test\ndata:test2", newline="")
    assert as_tuples(dec.feed(body)) == [("message", "test1", "")]
    dec.end()
    assert dec.last_event_id == ""
    # The reconnected stream starts clean: test2 is gone, not completed by the next blank line.
    assert as_tuples(dec.feed(b"\n\ndata:test1\n\n")) == [("message", "test1", "")]


# -- the spec's own examples ---------------------------------------------------------------


def test_spec_example_stock_ticker_joins_data_lines() -> None:
    assert_stream(b"data: YHOO\ndata: +2\ndata: 10\n\n", [("message", "YHOO\n+2\n10", "")])


def test_spec_example_four_blocks_with_ids_and_an_unterminated_last_block() -> None:
    body = b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n"
    assert_stream(body, [("message", "first event", "1"), ("message", "second event", "")])


def test_spec_example_empty_data_lines() -> None:
    assert_stream(b"data\n\ndata\ndata\n\ndata:", [("message", "", ""), ("message", "\n", "")])


def test_spec_example_one_optional_space_after_the_colon() -> None:
    assert_stream(b"data:test\n\ndata: test\n\n", [("message", "test", ""), ("message", "test", "")])


def test_spec_example_event_types() -> None:
    body = b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n"
    assert_stream(body, [("add", "73857293", ""), ("remove", "2153", ""), ("add", "113411", "")])


# -- the points of the algorithm, one by one -----------------------------------------------


def test_bom_split_across_chunks_is_still_stripped() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"\xef") == []
    assert dec.feed(b"\xbb") == []
    assert as_tuples(dec.feed(b"\xbfdata:1\n\n")) == [("message", "1", "")]


def test_bom_is_stripped_again_at_the_start_of_the_next_stream_only() -> None:
    dec = SSEDecoder()
    assert as_tuples(dec.feed(b"\xef\xbb\xbfdata:1\n\n\xef\xbb\xbfdata:2\n\n")) == [("message", "1", "")]
    dec.end()
    assert as_tuples(dec.feed(b"\xef\xbb\xbfdata:3\n\n")) == [("message", "3", "")]


def test_cr_and_lf_in_different_chunks_make_one_line_ending() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data:a\r") == []
    assert dec.feed(b"\n") == []  # the LF pairs with the CR: not an empty line
    assert as_tuples(dec.feed(b"data:b\r\r")) == [("message", "a\nb", "")]


def test_lone_cr_ends_lines_and_a_blank_cr_line_dispatches() -> None:
    assert_stream(b"data:a\rdata:b\r\rdata:c\r\r", [("message", "a\nb", ""), ("message", "c", "")])


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert_stream(
        b"data:a\xffb\xc3\n\ndata:\xe2\x80\n\n",
        [
            ("message", "a\ufffdb\ufffd", ""),
            ("message", "\ufffd", ""),
        ],
    )


def test_multibyte_characters_split_across_chunks_are_reassembled() -> None:
    assert_stream("data:é€𝄞\n\n".encode(), [("message", "é€𝄞", "")])


def test_str_chunks_are_accepted_as_already_decoded_text() -> None:
    dec = SSEDecoder()
    assert as_tuples(dec.feed("\ufeffdata: hé\r")) == []
    assert as_tuples(dec.feed("\n\n")) == [("message", "hé", "")]


def test_event_without_data_commits_its_id_but_dispatches_nothing() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"id: 7\nevent: ping\n\n") == []
    assert dec.last_event_id == "7"
    # ...and its event type does not leak into the next event.
    assert as_tuples(dec.feed(b"data: x\n\n")) == [("message", "x", "7")]


def test_last_event_id_changes_only_at_dispatch() -> None:
    dec = SSEDecoder()
    dec.feed(b"id: 1\ndata: a\n")
    assert dec.last_event_id == ""
    dec.feed(b"\n")
    assert dec.last_event_id == "1"


def test_id_with_nul_is_ignored_and_the_previous_id_stays() -> None:
    assert_stream(
        b"id: K6\ndata: a\n\nid: bad\x00id\ndata: b\n\n",
        [
            ("message", "a", "K6"),
            ("message", "b", "K6"),
        ],
        "K6",
    )


def test_retry_needs_ascii_digits_only() -> None:
    for value in ("", "  1", "1.5", "-1", "\uff11\uff12", "²", "1e3"):
        dec = SSEDecoder()
        dec.feed(f"retry:{value}\n\n".encode())
        assert dec.retry is None, value


def test_retry_is_reported_on_its_own_event_and_kept_by_the_decoder() -> None:
    dec = SSEDecoder()
    first, second = dec.feed(b"retry: 1500\ndata: a\n\ndata: b\n\n")
    assert first.retry == 1500
    assert second.retry is None
    assert dec.retry == 1500


def test_absurdly_long_retry_does_not_crash_the_parser() -> None:
    dec = SSEDecoder()
    dec.feed(b"retry:" + b"9" * 10_000 + b"\n\n")
    assert dec.retry is not None
    assert dec.retry >= 10**18
    dec.feed(b"retry:" + b"0" * 10_000 + b"5\n\n")
    assert dec.retry == 5


def test_field_without_colon_is_a_field_with_an_empty_value() -> None:
    dec = SSEDecoder()
    dec.feed(b"id: 3\ndata: a\n\n")
    assert as_tuples(dec.feed(b"id\nevent\ndata\n\n")) == [("message", "", "")]


def test_only_one_leading_space_is_removed_from_any_field() -> None:
    assert_stream(b"event:  sp\nid:  7\ndata:  x \n\n", [(" sp", " x ", " 7")], " 7")


def test_last_event_id_given_to_the_constructor_is_inherited() -> None:
    dec = SSEDecoder(last_event_id="41")
    assert as_tuples(dec.feed(b"data: x\n\n")) == [("message", "x", "41")]
    assert dec.last_event_id == "41"


def test_constructor_refuses_an_id_that_could_never_come_from_a_stream() -> None:
    with pytest.raises(ValueError, match="NUL, CR or LF"):
        SSEDecoder(last_event_id="a\nb")


def test_end_discards_a_half_line() -> None:
    dec = SSEDecoder()
    dec.feed(b"data: one\n\ndata: tw")
    dec.end()
    assert dec.feed(b"\n\n") == []  # without end() this would dispatch "tw"


def test_server_sent_event_is_frozen_with_slots_and_parses_json() -> None:
    event = ServerSentEvent(data='{"n": 1}')
    assert event.type == "message"
    assert event.json() == {"n": 1}
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.data = "x"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")


def test_large_event_in_many_chunks_is_assembled_once() -> None:
    payload = "y" * 1_000_000
    body = f"data: {payload}\n\n".encode()
    events, _ = feed_chunks(body[i : i + 1000] for i in range(0, len(body), 1000))
    assert as_tuples(events) == [("message", payload, "")]


# -- properties ----------------------------------------------------------------------------

# Pieces that stress every rule: line endings, colons, spaces, BOMs, NUL, multibyte text.
PIECES = st.sampled_from(
    [
        "data",
        "data:",
        "data: ",
        "id:",
        "id: ",
        "event:",
        "retry:",
        "retry: 15",
        ":",
        " ",
        "\n",
        "\r",
        "\r\n",
        "\n\n",
        "\ufeff",
        "\0",
        "x",
        "é",
        "€",
        "𝄞",
        "12",
        "Data",
        "ev",
    ]
)
STREAMS = st.lists(PIECES, max_size=40).map("".join).map(lambda s: s.encode("utf-8"))


def reference_events(body: bytes) -> list[ServerSentEvent]:
    return feed_chunks([body])[0]


@given(body=STREAMS, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_any_chunking_gives_the_same_events(body: bytes, cuts: list[int]) -> None:
    points = sorted({c % (len(body) + 1) for c in cuts} | {0, len(body)})
    chunks = [body[a:b] for a, b in itertools.pairwise(points)]
    events, dec = feed_chunks(chunks)
    whole, whole_dec = feed_chunks([body])
    assert events == whole
    assert dec.last_event_id == whole_dec.last_event_id
    assert dec.retry == whole_dec.retry


@given(body=st.binary(max_size=200), cut=st.integers(min_value=0, max_value=200))
def test_arbitrary_bytes_never_crash_and_chunking_never_matters(body: bytes, cut: int) -> None:
    cut %= len(body) + 1
    assert feed_chunks([body[:cut], body[cut:]])[0] == reference_events(body)


@given(body=STREAMS)
def test_decoded_text_and_raw_bytes_give_the_same_events(body: bytes) -> None:
    dec = SSEDecoder()
    assert dec.feed(body.decode("utf-8")) == reference_events(body)
