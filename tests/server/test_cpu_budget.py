"""The CPU budget of each client address (pyrt/server/cpu_budget.py): one piece of input per turn
of the event loop, nothing while in debt, turns in order, every step of a task measured."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from pyrt.server.cpu_budget import CpuBudget, Timed


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 10))


def test_without_a_share_every_address_reads_whenever_it_likes() -> None:
    async def scenario() -> None:
        budget = CpuBudget(0.0, 0.05)
        assert not budget.enabled
        budget.charge("a", 10.0, 0.0)
        assert all(budget.begin("a", 0.0) for _ in range(3))

    run(scenario())


def test_an_address_reads_one_piece_per_turn_of_the_event_loop() -> None:
    async def scenario() -> None:
        budget = CpuBudget(0.5, 0.05)
        now = asyncio.get_running_loop().time
        assert budget.begin("a", now())
        assert not budget.begin("a", now())  # its piece of this turn is read
        assert budget.begin("b", now())  # another address is served meanwhile
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert budget.begin("a", now())

    run(scenario())


def test_in_debt_an_address_waits_for_its_turns_in_the_order_its_connections_asked() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        budget = CpuBudget(1.0, 0.01)
        budget.charge("a", 0.03, loop.time())  # 20 ms in debt at one core
        assert not budget.begin("a", loop.time())
        turns: list[int] = []
        done = loop.create_future()

        def turn(key: int) -> None:
            assert budget.begin("a", loop.time(), granted=True)
            turns.append(key)
            if len(turns) == 2:
                done.set_result(None)

        budget.wait("a", 1, lambda: turn(1))
        budget.wait("a", 2, lambda: turn(2))
        budget.wait("a", 3, lambda: turn(3))
        budget.forget("a", 3)  # its connection closed: no turn
        assert budget.waiting("a")
        started = loop.time()
        await asyncio.wait_for(done, 5)
        assert turns == [1, 2]
        assert loop.time() - started >= 0.015  # the debt was paid back first
        assert not budget.waiting("a")

    run(scenario())


def test_timed_charges_every_step_of_a_coroutine() -> None:
    charged: list[float] = []

    async def steps() -> str:
        for _ in range(3):
            await asyncio.sleep(0)
        return "done"

    async def scenario() -> None:
        assert await Timed(steps(), charged.append) == "done"
        assert len(charged) == 4  # three suspensions, then the return
        assert all(seconds >= 0 for seconds in charged)

    run(scenario())
