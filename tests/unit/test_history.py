"""History on demand on the client: checking a query, reading a page, paging with the fake server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pyrt.engine.history import HistoryPage, check_query, read_page
from pyrt.engine.states import State
from pyrt.errors import AckError, UnsupportedByProtocol
from pyrt.testing import AckWaiter, EngineHarness, FakePyrtServer
from pyrt.wire.frames import Publication


def online(server: FakePyrtServer, **kwargs: Any) -> EngineHarness:
    h = EngineHarness(server=server, heartbeat=None, **kwargs)
    h.connect()
    return h


def history(h: EngineHarness, channel: str, **query: Any) -> HistoryPage:
    waiter = AckWaiter()
    h.engine.history(channel, h.now, waiter, **query)
    h.pump()
    assert waiter.error is None, waiter.error
    assert isinstance(waiter.value, HistoryPage)
    return waiter.value


def texts(page: HistoryPage) -> list[Any]:
    return [p.data for p in page]


def test_a_server_answer_becomes_a_page_of_publications() -> None:
    data = {
        "publications": [{"offset": "3-1", "event": "chat", "data": {"t": 1}}, {"offset": "3-2", "data": 2}],
        "offset": "3-9",
        "recovered": False,
        "more": True,
    }
    page = read_page("room", data, reverse=True)
    assert page.publications == (
        Publication("room", {"t": 1}, "3-1", "chat"),
        Publication("room", 2, "3-2", "message"),
    )
    assert (page.offset, page.recovered, page.more, page.reverse) == ("3-9", False, True, True)
    assert page.next_since == "3-2"
    assert len(page) == 2
    assert read_page("room", {"publications": []}).next_since is None


@pytest.mark.parametrize("data", [None, [], {"publications": "x"}, {"publications": [{"data": 1}]}])
def test_an_answer_that_is_not_a_page_is_refused(data: Any) -> None:
    with pytest.raises(ValueError, match="history"):
        read_page("c", data)


@pytest.mark.parametrize(
    ("channel", "limit", "since", "reverse", "error"),
    [
        ("bad name", None, None, False, ValueError),
        ("c", 0, None, False, ValueError),
        ("c", "5", None, False, TypeError),
        ("c", True, None, False, TypeError),
        ("c", None, "yesterday", False, ValueError),
        ("c", None, None, "yes", TypeError),
    ],
)
def test_bad_queries_fail_before_anything_is_sent(
    channel: Any, limit: Any, since: Any, reverse: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        check_query(channel, limit, since, reverse)


def test_paging_backwards_through_everything_retained() -> None:
    server = FakePyrtServer()
    for n in range(7):
        server.publish("chat", n)
    h = online(server)
    seen: list[Any] = []
    page = history(h, "chat", limit=3, reverse=True)
    seen += texts(page)
    while page.more:
        page = history(h, "chat", limit=3, reverse=True, since=page.next_since)
        seen += texts(page)
    assert seen == [6, 5, 4, 3, 2, 1, 0]
    forward = history(h, "chat", since="1-5")
    assert (texts(forward), forward.recovered, forward.more) == ([5, 6], True, False)


def test_a_position_no_longer_retained_says_so() -> None:
    server = FakePyrtServer(retention=3)
    for n in range(6):
        server.publish("chat", n)
    h = online(server)
    page = history(h, "chat", since="1-1")
    assert (texts(page), page.recovered) == ([3, 4, 5], False)


def test_a_history_request_made_offline_is_sent_once_connected_and_survives_a_drop() -> None:
    server = FakePyrtServer()
    server.publish("chat", "hello")
    h = EngineHarness(server=server, heartbeat=None)
    waiter = AckWaiter()
    h.engine.history("chat", h.now, waiter, limit=5)  # not connected yet: queued
    h.pump()
    assert not waiter.done
    h.connect()
    assert texts(waiter.value) == ["hello"]
    sock = h.socket
    assert sock is not None
    sock.blackholed = True
    lost = AckWaiter()
    h.engine.history("chat", h.now, lost)
    h.pump()
    h.drop()
    h.advance(5.0)  # reconnected: the request goes out again
    assert h.state is State.OPEN
    assert texts(lost.value) == ["hello"]
    assert h.engine.snapshot().frames == ()  # reads are never persisted


def test_a_forbidden_channel_fails_the_request_with_its_code() -> None:
    h = online(FakePyrtServer(forbidden=["secret"]))
    waiter = AckWaiter()
    h.engine.history("secret", h.now, waiter)
    h.pump()
    assert isinstance(waiter.error, AckError)
    assert waiter.error.code == "forbidden"


def test_a_malformed_answer_fails_the_request() -> None:
    h = EngineHarness(heartbeat=None)
    h.connect()
    h.open()
    waiter = AckWaiter()
    ack_id = h.engine.history("chat", h.now, waiter)
    h.pump()
    h.receive(json.dumps({"type": "ack", "id": ack_id, "ok": True, "data": {"nothing": 1}}))
    assert isinstance(waiter.error, AckError)
    assert "malformed" in str(waiter.error)


def test_raw_mode_has_no_history() -> None:
    h = EngineHarness(protocol="raw", heartbeat=None)
    with pytest.raises(UnsupportedByProtocol):
        h.engine.history("chat", h.now, AckWaiter())
