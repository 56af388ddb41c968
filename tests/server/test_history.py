"""The history query grammar and the page's JSON, shared by the frame and ``GET /history``."""

from __future__ import annotations

import json

import pytest

from pyrt.server.brokers.base import Page, Publication
from pyrt.server.history import DEFAULT_LIMIT, BadQuery, HistoryQuery, encode_page, parse_query


def test_a_query_has_defaults_and_a_clamped_limit() -> None:
    assert parse_query("chat", None, None, None, max_limit=1000) == HistoryQuery(
        "chat", None, DEFAULT_LIMIT, False
    )
    assert parse_query("chat", "12-3", 5000, True, max_limit=1000) == HistoryQuery(
        "chat", (12, 3), 1000, True
    )
    assert parse_query("chat", "0", 1, False, max_limit=10).since == (0, 0)


@pytest.mark.parametrize(
    ("channel", "since", "limit", "reverse", "what"),
    [
        ("bad name", None, None, None, "channel"),
        (None, None, None, None, "channel"),
        ("chat", "yesterday", None, None, "offset"),
        ("chat", 12, None, None, "offset"),
        ("chat", None, 0, None, "limit"),
        ("chat", None, -3, None, "limit"),
        ("chat", None, "10", None, "limit"),
        ("chat", None, True, None, "limit"),
        ("chat", None, 1.5, None, "limit"),
        ("chat", None, None, "yes", "reverse"),
        ("chat", None, None, 1, "reverse"),
    ],
)
def test_a_bad_field_is_named(
    channel: object, since: object, limit: object, reverse: object, what: str
) -> None:
    with pytest.raises(BadQuery, match=what):
        parse_query(channel, since, limit, reverse, max_limit=100)


def test_the_page_carries_stored_data_as_it_is() -> None:
    publications = [
        Publication("c", "5-1", "chat", '{"text":"hi \\"you\\""}'),
        Publication("c", "5-2", "message", "[1,2]"),
    ]
    text = encode_page(Page(publications, "5-9", False, True))
    assert json.loads(text) == {
        "publications": [
            {"offset": "5-1", "event": "chat", "data": {"text": 'hi "you"'}},
            {"offset": "5-2", "event": "message", "data": [1, 2]},
        ],
        "offset": "5-9",
        "recovered": False,
        "more": True,
    }
    assert json.loads(encode_page(Page([], "0", True, False)))["publications"] == []
