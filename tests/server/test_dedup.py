"""Dedup windows forget by age, by size and by quota per identity; a message id runs the handler once
per identity, even concurrently."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from pyrt.server.dedup import DedupWindow, MemoryMessageDedup, scoped_key


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


def test_each_scope_keeps_at_most_its_quota_and_forgets_only_its_own_ids() -> None:
    window: DedupWindow[int] = DedupWindow(ttl=10, max_size=100, clock=Clock(), per_scope=3)
    window.put("victim-1", 1, "victim")
    for n in range(50):
        window.put(f"flood-{n}", n, "attacker")
    assert window.get("victim-1") == 1
    assert window.scope_size("attacker") == 3
    assert [window.get(f"flood-{n}") for n in (46, 47, 48, 49)] == [None, 47, 48, 49]


def test_forgotten_entries_leave_their_scope() -> None:
    clock = Clock()
    window: DedupWindow[int] = DedupWindow(ttl=10, max_size=2, clock=clock, per_scope=5)
    for n in range(4):
        window.put(f"k{n}", n, "s")
    assert window.scope_size("s") == 2  # the global bound evicted two of them
    clock.now = 10.0
    assert window.scope_size("s") == 0
    assert len(window) == 0


def test_scoped_keys_cannot_be_forged_by_their_parts() -> None:
    assert scoped_key("a:b", "c") != scoped_key("a", "b:c")
    assert scoped_key("ip:1", "chan", "id") == scoped_key("ip:1", "chan", "id")


def test_the_handler_runs_once_per_id_even_for_concurrent_copies() -> None:
    async def scenario() -> None:
        dedup = MemoryMessageDedup(DedupWindow(ttl=60, max_size=10))
        runs = 0
        gate = asyncio.Event()

        async def compute() -> tuple[str, str | None]:
            nonlocal runs
            runs += 1
            await gate.wait()
            return f"ack-{runs}", f"kept-{runs}"

        first = asyncio.ensure_future(dedup.run_once("alice", "m1", compute))
        second = asyncio.ensure_future(dedup.run_once("alice", "m1", compute))
        await asyncio.sleep(0.01)
        gate.set()
        assert await first == ("ack-1", False)
        assert await second == ("ack-1", True)  # waited for the first copy: its full answer
        assert await dedup.run_once("alice", "m1", compute) == ("kept-1", True)  # what was kept
        assert runs == 1

    asyncio.run(scenario())


def test_the_same_id_from_another_identity_is_another_message() -> None:
    async def scenario() -> None:
        dedup = MemoryMessageDedup(DedupWindow(ttl=60, max_size=10))
        answers = iter(["alice's answer", "bob's answer"])

        async def compute() -> tuple[str, str | None]:
            answer = next(answers)
            return answer, answer

        assert await dedup.run_once("alice", "m", compute) == ("alice's answer", False)
        assert await dedup.run_once("bob", "m", compute) == ("bob's answer", False)
        assert await dedup.run_once("bob", "m", compute) == ("bob's answer", True)

    asyncio.run(scenario())


def test_a_result_not_to_remember_lets_a_retry_run_again() -> None:
    async def scenario() -> None:
        dedup = MemoryMessageDedup(DedupWindow(ttl=60, max_size=10))
        results: Iterator[tuple[str, str | None]] = iter([("internal error", None), ("done", "done")])

        async def compute() -> tuple[str, str | None]:
            return next(results)

        assert await dedup.run_once("s", "m", compute) == ("internal error", False)
        assert await dedup.run_once("s", "m", compute) == ("done", False)
        assert await dedup.run_once("s", "m", compute) == ("done", True)

    asyncio.run(scenario())
