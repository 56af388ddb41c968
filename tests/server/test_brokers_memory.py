"""The memory broker: offsets per channel life, retention, replay, recovered, publish dedup."""

from __future__ import annotations

import asyncio
import json

import pytest

from pyrt.server.brokers.base import Publication
from pyrt.server.brokers.memory import MemoryBroker
from pyrt.server.offsets import ZERO, parse_offset
from tests.server.broker_pages import check_pages


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_offsets_are_life_and_sequence_and_live_publications_reach_the_listener() -> None:
    async def scenario() -> None:
        broker = MemoryBroker(clock_ms=lambda: 1700)
        got: list[Publication] = []
        await broker.start(got.append)
        assert [(await broker.publish("c", "tick", str(n)))[0] for n in range(3)] == [
            "1700-1",
            "1700-2",
            "1700-3",
        ]
        assert [p.offset for p in got] == ["1700-1", "1700-2", "1700-3"]
        assert (
            got[0].ws_frame
            == '{"type":"publication","channel":"c","offset":"1700-1","event":"tick","data":0}'
        )
        assert got[0].sse_event == b"event: tick\nid: 1700-1\ndata: 0\n\n"

    run(scenario())


def test_replay_after_since_and_recovered_flags() -> None:
    async def scenario() -> None:
        broker = MemoryBroker(retention=3, clock_ms=lambda: 5)
        await broker.start(lambda p: None)
        assert (await broker.history("c", None)).latest == "0"
        for n in range(5):
            await broker.publish("c", "message", str(n))
        kept = await broker.history("c", parse_offset("5-3"))
        assert kept.recovered
        assert [p.data_json for p in kept.publications] == ["3", "4"]
        assert (await broker.history("c", parse_offset("5-2"))).recovered  # 5-3 is the oldest kept
        lost = await broker.history("c", parse_offset("5-1"))
        assert not lost.recovered
        assert [p.data_json for p in lost.publications] == ["2", "3", "4"]
        everything = await broker.history("c", ZERO)
        assert everything.recovered
        assert everything.latest == "5-5"
        assert len(everything.publications) == 3
        assert not (await broker.history("c", parse_offset("4-9"))).recovered  # an earlier life
        assert not (await broker.history("c", parse_offset("5-9"))).recovered  # from the future
        assert (await broker.history("c", parse_offset("5-5"))).publications == []

    run(scenario())


def test_a_resent_publish_id_returns_the_first_offset() -> None:
    async def scenario() -> None:
        broker = MemoryBroker(clock_ms=lambda: 1)
        got: list[Publication] = []
        await broker.start(got.append)
        assert await broker.publish("c", "message", "1", publish_id="x") == ("1-1", False)
        assert await broker.publish("c", "message", "1", publish_id="x") == ("1-1", True)
        assert len(got) == 1

    run(scenario())


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_history_stays_within_its_byte_budget_busy_channels_keeping_theirs_longest() -> None:
    async def scenario() -> None:
        broker = MemoryBroker(history_bytes=200_000)
        await broker.start(lambda p: None)
        payload = '"' + "x" * 10_000 + '"'
        await broker.publish("busy", "message", payload)
        for n in range(100):
            await broker.publish(f"flood-{n}", "message", payload)
            await broker.publish("busy", "message", payload)
        assert broker.retained_bytes <= 200_000
        busy = await broker.history("busy", ZERO)
        assert len(busy.publications) >= 5  # still published to: it keeps recent history
        assert (await broker.history("flood-0", ZERO)).publications == []  # idle and oldest: gone

    run(scenario())


def test_the_least_recently_published_channel_is_forgotten_over_the_channel_cap() -> None:
    async def scenario() -> None:
        broker = MemoryBroker(max_channels=3, clock_ms=lambda: 7)
        await broker.start(lambda p: None)
        first, _ = await broker.publish("a", "message", "1")
        for name in ("b", "c", "d"):
            await broker.publish(name, "message", "1")
        assert broker.channel_count == 3
        gone = await broker.history("a", parse_offset(first))
        assert (gone.latest, gone.recovered) == ("0", False)
        again, _ = await broker.publish("a", "message", "2")
        # a new life: offsets keep increasing, in the same millisecond too
        assert parse_offset(again) > parse_offset(first)
        assert not (await broker.history("a", parse_offset(first))).recovered

    run(scenario())


def test_publications_expire_after_the_ttl_and_idle_channels_are_forgotten() -> None:
    async def scenario() -> None:
        clock = Clock()
        broker = MemoryBroker(history_ttl=60, clock=clock)
        await broker.start(lambda p: None)
        await broker.publish("old", "message", "1")
        await broker.publish("kept", "message", "1")
        clock.now = 50
        await broker.publish("kept", "message", "2")
        clock.now = 61
        await broker.housekeeping()
        assert broker.channel_count == 1
        kept = await broker.history("kept", ZERO)
        assert [p.data_json for p in kept.publications] == ["2"]

    run(scenario())


def test_a_replay_holds_at_most_the_limit_and_about_the_bytes_newest_first() -> None:
    async def scenario() -> None:
        broker = MemoryBroker(retention=100, clock_ms=lambda: 9)
        await broker.start(lambda p: None)
        for n in range(20):
            await broker.publish("c", "message", f'"{n:0>98}"')  # 100 bytes each
        limited = await broker.history("c", parse_offset("9-5"), limit=4)
        assert ([p.offset for p in limited.publications], limited.recovered) == (
            ["9-17", "9-18", "9-19", "9-20"],
            False,
        )
        small = await broker.history("c", ZERO, max_bytes=250)
        assert [p.offset for p in small.publications] == ["9-19", "9-20"]
        assert not small.recovered
        tiny = await broker.history("c", ZERO, max_bytes=1)
        assert [p.offset for p in tiny.publications] == ["9-20"]  # at least one
        fits = await broker.history("c", parse_offset("9-17"), limit=3, max_bytes=300)
        assert ([p.offset for p in fits.publications], fits.recovered) == (["9-18", "9-19", "9-20"], True)

    run(scenario())


def test_publish_ids_are_remembered_per_identity_and_channel() -> None:
    async def scenario() -> None:
        broker = MemoryBroker()
        await broker.start(lambda p: None)
        first = await broker.publish("c", "message", "1", publish_id="p", scope="alice")
        assert await broker.publish("c", "message", "1", publish_id="p", scope="alice") == (first[0], True)
        assert (await broker.publish("c", "message", "1", publish_id="p", scope="bob"))[1] is False
        assert (await broker.publish("d", "message", "1", publish_id="p", scope="alice"))[1] is False

    run(scenario())


def test_text_that_cannot_be_sent_is_never_stored() -> None:
    async def scenario() -> None:
        broker = MemoryBroker()
        await broker.start(lambda p: None)
        with pytest.raises(ValueError, match="surrogate"):
            await broker.publish("c", "message", '"\ud800"')
        assert (await broker.history("c", ZERO)).publications == []

    run(scenario())


def test_history_pages_forward_and_backward() -> None:
    async def scenario() -> None:
        broker = MemoryBroker(clock_ms=lambda: 7)
        await broker.start(lambda p: None)
        await check_pages(broker, "pages", "nothing-here")

    run(scenario())


def test_history_pages_after_retention_and_across_channel_lives() -> None:
    async def scenario() -> None:
        lives = iter([100, 200, 300])
        broker = MemoryBroker(retention=3, clock_ms=lambda: next(lives), max_channels=1)
        await broker.start(lambda p: None)
        for n in range(5):
            await broker.publish("c", "message", str(n))  # 100-1 .. 100-5; only 3..5 retained
        lost = await broker.page("c", parse_offset("100-1"), limit=10, max_bytes=1 << 20)
        assert ([p.offset for p in lost.publications], lost.recovered) == (["100-3", "100-4", "100-5"], False)
        edge = await broker.page("c", parse_offset("100-2"), limit=10, max_bytes=1 << 20)
        assert edge.recovered  # 100-3, right after 100-2, is retained
        back = await broker.page("c", None, limit=10, reverse=True, max_bytes=1 << 20)
        assert ([p.offset for p in back.publications], back.more) == (["100-5", "100-4", "100-3"], False)
        await broker.publish("other", "message", "0")  # max_channels=1: "c" is forgotten
        await broker.publish("c", "message", "new")  # a new life of "c": 300-1
        old_life = await broker.page("c", parse_offset("100-5"), limit=10, max_bytes=1 << 20)
        assert ([p.offset for p in old_life.publications], old_life.recovered) == (["300-1"], False)
        before = await broker.page("c", parse_offset("100-5"), limit=10, reverse=True, max_bytes=1 << 20)
        assert before.publications == []  # nothing of the new life comes before the old one

    run(scenario())


def test_a_publication_frame_is_one_line_whatever_json_the_application_published() -> None:
    publication = Publication("c", "1-1", "message", '{\n  "a": "x\\ny",\r\n  "b": [1,\n2]\n}')
    frame = publication.ws_frame
    assert "\n" not in frame
    assert "\r" not in frame
    assert json.loads(frame)["data"] == {"a": "x\ny", "b": [1, 2]}
