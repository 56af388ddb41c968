"""Persistence on the event loop: group commit over an asynchronous store, persisted(), failures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from pyrt.aio.persistence import Persistence
from pyrt.errors import PersistenceError, StorageUnavailable
from pyrt.persist.records import Changes, MemoryRecordStore, SavedFrame, Snapshot
from tests.unit.loop_support import run, until


class SlowStore(MemoryRecordStore):
    """A store whose writes finish when the test says (as IndexedDB's do, later)."""

    kind = "slow"

    def __init__(self) -> None:
        super().__init__(durable=True)
        self.in_flight: list[tuple[Changes, Callable[[Exception | None], None]]] = []
        self.disposed = False
        self.load_error: Exception | None = None

    def load(self, key: str, done: Callable[[Snapshot], None], failed: Callable[[Exception], None]) -> None:
        if self.load_error is not None:
            failed(self.load_error)
        else:
            super().load(key, done, failed)

    def write(self, key: str, changes: Changes, done: Callable[[Exception | None], None]) -> None:
        assert not self.in_flight, "two writes in flight"
        self.in_flight.append((changes, lambda error: self._finish(key, changes, done, error)))

    def _finish(
        self, key: str, changes: Changes, done: Callable[[Exception | None], None], error: Exception | None
    ) -> None:
        if error is None:
            super().write(key, changes, lambda _: None)
        done(error)

    def complete(self, error: Exception | None = None) -> Changes:
        changes, finish = self.in_flight.pop()
        finish(error)
        return changes

    def dispose(self) -> None:
        self.disposed = True


def record(seq: int) -> Changes:
    return Changes(puts={seq: SavedFrame(f"m{seq}", seq=seq)})


def persistence(store: MemoryRecordStore, errors: list[Exception] | None = None) -> Persistence:
    report = errors.append if errors is not None else pytest.fail
    return Persistence(store, "k", asyncio.get_running_loop(), report)


def test_one_write_at_a_time_and_what_comes_meanwhile_goes_in_one_more() -> None:
    async def scenario() -> None:
        store = SlowStore()
        saving = persistence(store)
        saving.save(record(1))
        for seq in range(2, 10_002):
            saving.save(record(seq))
        assert len(store.in_flight) == 1
        assert saving.pending
        assert set(store.complete().puts) == {1}
        assert len(store.complete().puts) == 10_000
        assert not saving.pending
        assert len(store.records["k"]) == 10_001

    run(scenario)


def test_persisted_waits_for_the_write_that_holds_everything_submitted() -> None:
    async def scenario() -> None:
        store = SlowStore()
        saving = persistence(store)
        saving.save(record(1))
        saving.save(record(2))
        waiter = asyncio.ensure_future(saving.persisted())
        await asyncio.sleep(0)
        store.complete()  # record 1 only
        await asyncio.sleep(0)
        assert not waiter.done()
        store.complete()
        await until(waiter.done)
        assert waiter.result() is None
        await saving.persisted()  # nothing pending: returns at once

    run(scenario)


def test_a_failed_write_is_reported_once_fails_the_waiters_and_is_retried() -> None:
    async def scenario() -> None:
        store = SlowStore()
        errors: list[Exception] = []
        saving = persistence(store, errors)
        saving.save(record(1))
        waiter = asyncio.ensure_future(saving.persisted())
        await asyncio.sleep(0)
        store.complete(OSError("QuotaExceededError"))
        with pytest.raises(PersistenceError, match="QuotaExceededError"):
            await waiter
        assert len(errors) == 1
        assert isinstance(errors[0].__cause__, OSError)
        await until(lambda: store.in_flight, timeout=2)  # retried after 0.5 s
        store.complete(OSError("QuotaExceededError"))
        assert len(errors) == 1  # a series of failures is reported once
        await until(lambda: store.in_flight, timeout=3)
        store.complete()
        assert set(store.records["k"]) == {1}

    run(scenario)


def test_closing_lets_the_write_in_flight_finish_before_releasing_the_store() -> None:
    async def scenario() -> None:
        store = SlowStore()
        saving = persistence(store)
        saving.save(record(1))
        saving.save(record(2))
        saving.close()
        assert not store.disposed
        store.complete()
        store.complete()
        assert store.disposed
        assert set(store.records["k"]) == {1, 2}
        saving.save(record(3))  # after disposal: ignored
        assert not store.in_flight

    run(scenario)


def test_a_store_that_cannot_load_falls_back_to_memory_and_says_so() -> None:
    async def scenario() -> None:
        store = SlowStore()
        store.load_error = OSError("InvalidStateError: private mode")
        errors: list[Exception] = []
        saving = persistence(store, errors)
        loaded: list[Snapshot] = []
        saving.load(loaded.append)
        assert loaded == [Snapshot()]
        assert isinstance(errors[0], StorageUnavailable)
        assert "private mode" in str(errors[0])
        assert store.disposed
        assert not saving.durable
        with pytest.raises(StorageUnavailable):
            await saving.persisted()

    run(scenario)
