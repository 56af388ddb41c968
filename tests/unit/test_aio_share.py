"""Participants of a share group: who leads, what a follower learns, hand-over, stale links."""

from __future__ import annotations

import asyncio
from typing import Any

from pyrt.aio.share import Participant
from pyrt.share.messages import decode, encode
from pyrt.testing import FakeShareBus
from tests.unit.loop_support import run, until


class Hub:
    def __init__(self) -> None:
        self.started = self.closed = False
        self.requested: list[tuple[str, str]] = []
        self.pruned: list[set[str]] = []

    def start(self) -> None:
        self.started = True

    def link_requested(self, link: str, participant: str, extra: dict[str, Any]) -> None:
        self.requested.append((link, participant))

    def link_sent(self, link: str, item: Any) -> None: ...

    def link_closed(self, link: str) -> None: ...

    def prune(self, alive: set[str]) -> None:
        self.pruned.append(alive)

    def close(self) -> None:
        self.closed = True


class End:
    def __init__(self) -> None:
        self.opened: list[str] = []
        self.closed: list[tuple[str, int, str]] = []
        self.ready = 0

    def link_opened(self, link: str, first: Any) -> None:
        self.opened.append(link)

    def link_item(self, link: str, item: Any) -> None: ...

    def link_closed(self, link: str, code: int, reason: str) -> None:
        self.closed.append((link, code, reason))

    def leader_ready(self) -> None:
        self.ready += 1


def participant(bus: FakeShareBus, hubs: list[Hub]) -> Participant:
    def make(_: Participant) -> Hub:
        hubs.append(Hub())
        return hubs[-1]

    return Participant(bus.channel("g"), make, asyncio.get_running_loop())


def test_the_first_participant_leads_and_a_later_one_learns_who() -> None:
    async def scenario() -> None:
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        hubs: list[Hub] = []
        first = participant(bus, hubs)
        first.start()
        await until(lambda: first.leading)
        assert hubs[0].started
        assert first.sharing().role == "leader"
        second = participant(bus, hubs)
        assert second.sharing().role == "joining"
        second.start()
        await until(lambda: second.leader == first.id)
        assert second.sharing().role == "follower"
        assert len(hubs) == 1

    run(scenario)


def test_a_link_opened_before_a_leader_is_known_goes_to_it_when_it_is() -> None:
    async def scenario() -> None:
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        hubs: list[Hub] = []
        alone = participant(bus, hubs)
        end = End()
        alone.add_end(end)
        link = alone.new_link()
        alone.open_link(link, end)
        alone.start()
        await until(lambda: hubs and hubs[0].requested)
        assert hubs[0].requested == [(link, alone.id)]
        assert end.ready >= 1

    run(scenario)


def test_the_leaders_bye_closes_the_links_to_it_and_the_next_one_takes_over() -> None:
    async def scenario() -> None:
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        hubs: list[Hub] = []
        first, second = participant(bus, hubs), participant(bus, hubs)
        first.start()
        await until(lambda: first.leading)
        second.start()
        await until(lambda: second.leader == first.id)
        end = End()
        second.add_end(end)
        link = second.new_link()
        second.open_link(link, end)
        await until(lambda: hubs[0].requested)
        first.close()
        await until(lambda: second.leading)
        assert hubs[0].closed
        assert len(hubs) == 2
        assert end.closed
        assert end.closed[0][0] == link

    run(scenario)


def test_a_participant_that_is_not_the_leader_refuses_a_link() -> None:
    async def scenario() -> None:
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        hubs: list[Hub] = []
        first, second = participant(bus, hubs), participant(bus, hubs)
        first.start()
        await until(lambda: first.leading)
        second.start()
        await until(lambda: second.leader == first.id)
        stale = bus.channel("g")
        stale.listen(lambda text: None)
        replies: list[dict[str, Any]] = []
        stale.listen(lambda text: replies.append(decode(text) or {}))
        stale.post(encode("open", "ghost", to=second.id, l="ghost.1", x={}))
        await until(lambda: any(r.get("t") == "close" for r in replies))
        assert next(r for r in replies if r.get("t") == "close")["r"] == "not the leader"

    run(scenario)


def test_resigning_hands_over_and_queues_again() -> None:
    async def scenario() -> None:
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        hubs: list[Hub] = []
        first, second = participant(bus, hubs), participant(bus, hubs)
        first.start()
        await until(lambda: first.leading)
        second.start()
        await until(lambda: second.leader == first.id)
        first.resign()
        await until(lambda: second.leading and first.leader == second.id)
        second.close()
        await until(lambda: first.leading)  # it had queued again

    run(scenario)


def test_a_participant_that_is_leaving_passes_the_lead_on_without_leading() -> None:
    """A client that is closing withdraws from the election: the lock, should it come while the
    client finishes closing, goes on to the next in line, and no hub (no connection) is made."""

    async def scenario() -> None:
        bus = FakeShareBus(asyncio.get_running_loop().call_soon)
        hubs: list[Hub] = []
        first, second, third = (participant(bus, hubs) for _ in range(3))
        for each in (first, second, third):
            each.start()
        await until(lambda: first.leading and len(hubs) == 1)
        second.leaving()  # its client is closing; its participant closes with its last link
        first.close()
        await until(lambda: third.leading)
        assert not second.leading
        assert len(hubs) == 2  # the first's, then the third's
        assert hubs[0].closed
        second.close()
        third.close()

    run(scenario)
