"""A client's ``persist=`` state on the event loop: loading it back, writing its changes.

:class:`Persistence` sits between a :class:`~pyrt.WebSocketClient` and a
:class:`~pyrt.persist.records.RecordStore`. It loads the saved state once (a synchronous store answers
at once, IndexedDB a moment later), then writes the engine's change batches with a
:class:`~pyrt.persist.write_queue.WriteQueue`: one write in flight, what comes meanwhile merged, a
failed write retried with a growing delay. :meth:`persisted` waits until everything submitted
so far is committed. A store that cannot load falls back to memory, and the client says so.
Closing lets the last write finish before the store is released.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pyrt.errors import PersistenceError, StorageUnavailable
from pyrt.persist.records import Changes, MemoryRecordStore, RecordStore, Snapshot
from pyrt.persist.write_queue import WriteQueue

__all__ = ["Persistence"]


class Persistence:
    """The saved state of one client under ``key`` in ``store``. See the module docstring.

    ``report`` receives every problem (a failed load, the first failure of a series of writes);
    ``loop`` runs the retry timer and the waiters of :meth:`persisted`.
    """

    def __init__(
        self,
        store: RecordStore,
        key: str,
        loop: asyncio.AbstractEventLoop,
        report: Callable[[Exception], None],
    ) -> None:
        self.store = store
        self.key = key
        self._loop = loop
        self._report = report
        self._queue = WriteQueue()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._retry: asyncio.TimerHandle | None = None
        self._closing = False
        self._disposed = False

    @property
    def durable(self) -> bool:
        return self.store.durable

    @property
    def pending(self) -> bool:
        """A write is in flight or waiting."""
        return not self._queue.idle

    def load(self, done: Callable[[Snapshot], None]) -> None:
        """Load the saved state and call ``done`` with it (maybe before returning). When the
        store fails to load, report why, continue in memory (not durable) and call ``done``
        with nothing saved."""

        def failed(error: Exception) -> None:
            self._report(
                StorageUnavailable(
                    f"could not read the saved state of persist={self.key!r} from {self.store.kind} "
                    f"({error}); continuing without durable storage"
                )
            )
            self.store.dispose()
            self.store = MemoryRecordStore()
            done(Snapshot())

        answered = False

        def loaded(snapshot: Snapshot) -> None:
            nonlocal answered
            answered = True
            done(snapshot)

        def refused(error: Exception) -> None:
            nonlocal answered
            answered = True
            failed(error)

        try:
            self.store.load(self.key, loaded, refused)
        except Exception as exc:  # a store that raises instead of answering: the same, reported
            if answered:
                raise  # the client's own code failed after the answer: not the store's doing
            refused(exc)

    def save(self, changes: Changes) -> None:
        """Write ``changes`` after what was submitted before."""
        if self._disposed:
            return
        batch = self._queue.submit(changes)
        if batch is not None:
            self._write(batch)

    async def persisted(self) -> None:
        """Wait until everything submitted so far is in storage. Raises
        :class:`~pyrt.errors.StorageUnavailable` when the store is not durable and
        :class:`~pyrt.errors.PersistenceError` when a write fails meanwhile."""
        if not self.store.durable:
            raise StorageUnavailable(
                f"persist={self.key!r} has no durable storage here: its state lives in memory only"
            )
        generation = self._queue.submitted
        if self._queue.committed >= generation:
            return
        future: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append((generation, future))
        await future

    def close(self) -> None:
        """Release the store once the last write is done (at once when idle)."""
        self._closing = True
        if self._queue.in_flight is None:
            self._dispose()

    # -- machinery

    def _write(self, batch: Changes) -> None:
        self.store.write(self.key, batch, self._written)

    def _written(self, error: Exception | None) -> None:
        queue = self._queue
        next_batch = queue.finished(error)
        if error is not None:
            failure = PersistenceError(
                f"saving the state of persist={self.key!r} to {self.store.kind} failed: {error}"
            )
            failure.__cause__ = error
            if queue.failures == 1:
                self._report(failure)
            self._fail_waiters(failure)
            if self._closing:
                self._dispose()
            else:
                self._schedule_retry(queue.retry_delay())
            return
        self._wake_waiters()
        if next_batch is not None:
            self._write(next_batch)
        elif self._closing:
            self._dispose()

    def _schedule_retry(self, delay: float) -> None:
        if self._retry is None:
            self._retry = self._loop.call_later(delay, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        if self._disposed:
            return
        batch = self._queue.retry()
        if batch is not None:
            self._write(batch)

    def _wake_waiters(self) -> None:
        committed = self._queue.committed
        keep: list[tuple[int, asyncio.Future[None]]] = []
        for generation, future in self._waiters:
            if generation <= committed:
                if not future.done():
                    future.set_result(None)
            else:
                keep.append((generation, future))
        self._waiters = keep

    def _fail_waiters(self, error: Exception) -> None:
        waiters, self._waiters = self._waiters, []
        for _, future in waiters:
            if not future.done():
                future.set_exception(error)

    def _dispose(self) -> None:
        if self._disposed:
            return
        self._disposed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._fail_waiters(
            PersistenceError(f"the client of persist={self.key!r} closed before its state was saved")
        )
        self.store.dispose()
