"""The memory broker: offsets per channel life, retention, replay, recovered, publish dedup."""

from __future__ import annotations

import asyncio

from pyrt.server.brokers.base import Publication
from pyrt.server.brokers.memory import MemoryBroker
from pyrt.server.offsets import ZERO, parse_offset


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
