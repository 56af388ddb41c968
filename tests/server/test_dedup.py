"""Dedup windows forget by age and by size; a message id runs the handler once, even concurrently."""

from __future__ import annotations

import asyncio

import pytest

from pyrt.server.dedup import DedupWindow, MemoryMessageDedup


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_are_forgotten_after_the_ttl() -> None:
    clock = Clock()
    window: DedupWindow[str] = DedupWindow(ttl=10, max_size=100, clock=clock)
    window.put("a", "1")
    clock.now = 9.9
    assert window.get("a") == "1"
    clock.now = 10.0
    assert window.get("a") is None
    assert len(window) == 0


def test_the_oldest_entries_go_first_when_full() -> None:
    window: DedupWindow[int] = DedupWindow(ttl=10, max_size=3, clock=Clock())
    for n in range(5):
        window.put(str(n), n)
    assert [window.get(str(n)) for n in range(5)] == [None, None, 2, 3, 4]


def test_bad_windows_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        DedupWindow(ttl=0)


def test_the_handler_runs_once_per_id_even_for_concurrent_copies() -> None:
    async def scenario() -> None:
        dedup = MemoryMessageDedup(DedupWindow(ttl=60, max_size=10))
        runs = 0
        gate = asyncio.Event()

        async def compute() -> tuple[str, bool]:
            nonlocal runs
            runs += 1
            await gate.wait()
            return f"ack-{runs}", True

        first = asyncio.ensure_future(dedup.run_once("m1", compute))
        second = asyncio.ensure_future(dedup.run_once("m1", compute))
        await asyncio.sleep(0.01)
        gate.set()
        assert await first == ("ack-1", False)
        assert await second == ("ack-1", True)
        assert await dedup.run_once("m1", compute) == ("ack-1", True)
        assert runs == 1

    asyncio.run(scenario())


def test_an_uncacheable_result_lets_a_retry_run_again() -> None:
    async def scenario() -> None:
        dedup = MemoryMessageDedup(DedupWindow(ttl=60, max_size=10))
        results = iter([("internal error", False), ("done", True)])

        async def compute() -> tuple[str, bool]:
            return next(results)

        assert await dedup.run_once("m", compute) == ("internal error", False)
        assert await dedup.run_once("m", compute) == ("done", False)
        assert await dedup.run_once("m", compute) == ("done", True)

    asyncio.run(scenario())
