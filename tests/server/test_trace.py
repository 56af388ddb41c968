"""The tracer: routing by channel, user and session, bounded readers, redaction."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pyrt.server.brokers.base import Publication
from pyrt.server.trace import Filter, Tracer, TraceReader
from pyrt.wire import codec
from pyrt.wire.frames import Ack, Publish, Refresh, Subscribe


class Conn:
    """What the tracer reads of a connection."""

    def __init__(self, session: str) -> None:
        self.session = session
        self.kind = "ws"
        self.client_ip = "127.0.0.1"
        self.identity = "ip:127.0.0.1"


def events(reader: TraceReader) -> list[dict[str, Any]]:
    return [json.loads(line) for line in reader.queue]


def test_a_channel_reader_gets_that_channel_only() -> None:
    tracer = Tracer()
    reader = tracer.attach(Filter(channel="a"), 100)
    conn: Any = Conn("s1")
    tracer.frame_in(conn, None, codec.encode(Subscribe(channel="a", since=None)))
    tracer.frame_in(conn, None, codec.encode(Subscribe(channel="b", since=None)))
    tracer.frame_in(conn, None, codec.encode(Publish(channel="ab", data=1, id="x", event=None)))
    tracer.publication(Publication("b", "1-1", "message", "2"), 3)
    tracer.publication(Publication("a", "1-2", "message", '"hello"'), 3)
    assert [(e["event"], e.get("channel")) for e in events(reader)] == [
        ("subscribe", "a"),
        ("publication", "a"),
    ]
    assert events(reader)[1]["bytes"] == len('"hello"')


def test_payloads_show_only_when_asked_and_a_token_never() -> None:
    tracer = Tracer(payloads=True)
    reader = tracer.attach(Filter(session="s1"), 100)
    conn: Any = Conn("s1")
    tracer.frame_in(conn, "alice", codec.encode(Publish(channel="a", data={"k": 1}, id="p", event=None)))
    tracer.frame_in(conn, "alice", codec.encode(Refresh(id="r", token="SECRET-TOKEN")))
    assert events(reader)[0]["data"] == {"k": 1}
    assert "SECRET-TOKEN" not in "".join(reader.queue)


def test_a_user_reader_sees_answers_to_that_user_and_not_to_others() -> None:
    tracer = Tracer()
    reader = tracer.attach(Filter(user="alice"), 100)
    alice: Any = Conn("s1")
    bob: Any = Conn("s2")
    tracer.frame_out(bob, "bob", codec.encode(Ack(id="b", ok=True)))
    tracer.frame_out(
        alice, "alice", codec.encode(Ack(id="a", ok=False, code="rate_limited", retry_after=1.0))
    )
    (event,) = events(reader)
    assert event["event"] == "refusal"
    assert (event["id"], event["code"], event["retry_after"], event["user"]) == (
        "a",
        "rate_limited",
        1.0,
        "alice",
    )


def test_a_reader_that_falls_behind_keeps_its_limit_then_hears_how_many_it_missed() -> None:
    async def scenario() -> None:
        tracer = Tracer()
        reader = tracer.attach(Filter(channel="a"), 10)
        for i in range(10_000):
            tracer.publication(Publication("a", f"1-{i}", "message", "1"), 1)
        assert len(reader.queue) == 10
        batch = await reader.next_batch()
        first = json.loads(batch[0])
        assert (first["event"], first["count"]) == ("dropped", 9_990)
        assert len(batch) == 11
        assert reader.total_dropped == 9_990

    asyncio.run(scenario())


def test_detaching_the_last_reader_turns_the_tracer_off() -> None:
    tracer = Tracer()
    one = tracer.attach(Filter(channel="a"), 10)
    two = tracer.attach(Filter(user="u"), 10)
    assert tracer.active
    tracer.detach(one)
    assert tracer.active
    tracer.detach(two)
    assert not tracer.active
    tracer.publication(Publication("a", "1-1", "message", "1"), 1)
    assert list(one.queue) == []
