"""Group commit for an asynchronous store: one write in flight, the newest state wins, no reordering.

A client produces :class:`~pyrt.persist.records.Changes` batches faster than an asynchronous store
(IndexedDB) may commit them. :class:`WriteQueue` keeps **one** write in flight; batches
submitted meanwhile are merged into one waiting batch (a record added and removed meanwhile is
never written; the newest offsets replace older ones), which starts when the write in flight
is done. Batches are therefore applied in order, and since a store applies each batch as a
whole, storage always holds the state of some moment: a reload restores the last committed one.

Generations number the batches: everything submitted up to :attr:`committed` is in storage,
which is what ``await client.persisted()`` waits for. A failed write is merged back in front of
what waits (applying it again is harmless) and retried after :meth:`retry_delay`, or at once
when a new batch comes.
"""

from __future__ import annotations

from pyrt.persist.records import Changes

__all__ = ["WriteQueue"]

_MAX_RETRY_DELAY = 30.0


class WriteQueue:
    """See the module docstring. Pure: the caller performs the writes it returns."""

    __slots__ = (
        "_flight_generation",
        "committed",
        "failures",
        "in_flight",
        "last_error",
        "submitted",
        "waiting",
    )

    def __init__(self) -> None:
        self.in_flight: Changes | None = None
        self.waiting: Changes | None = None
        self.submitted = 0  # generation of the newest batch submitted
        self.committed = 0  # every batch up to this generation is in storage
        self._flight_generation = 0
        self.failures = 0  # consecutive failed writes
        self.last_error: Exception | None = None

    @property
    def idle(self) -> bool:
        """Nothing in flight and nothing waiting."""
        return self.in_flight is None and self.waiting is None

    def submit(self, changes: Changes) -> Changes | None:
        """Add a batch; returns the batch to write now (``None``: a write is in flight, the batch
        waits merged with the others)."""
        self.submitted += 1
        if self.waiting is None:
            self.waiting = changes
        else:
            self.waiting.absorb(changes)
        if self.in_flight is None:
            return self._start()
        return None

    def finished(self, error: Exception | None) -> Changes | None:
        """The write in flight is done (``error``: it failed). Returns the next batch to write
        now, if any; after a failure, ``None`` (call :meth:`retry` after :meth:`retry_delay`)."""
        done = self.in_flight
        if done is None:
            raise RuntimeError("finished() without a write in flight")
        self.in_flight = None
        if error is None:
            self.committed = self._flight_generation
            self.failures = 0
            self.last_error = None
            return self._start() if self.waiting is not None else None
        self.failures += 1
        self.last_error = error
        if self.waiting is not None:
            done.absorb(self.waiting)
        self.waiting = done
        return None

    def retry(self) -> Changes | None:
        """Start what waits, unless a write is in flight."""
        if self.in_flight is None and self.waiting is not None:
            return self._start()
        return None

    def retry_delay(self) -> float:
        """Seconds before retrying after :attr:`failures` consecutive failures (0.5 s doubling,
        at most 30 s)."""
        return float(min(_MAX_RETRY_DELAY, 0.5 * 2.0 ** max(0, self.failures - 1)))

    def _start(self) -> Changes | None:
        batch, self.waiting = self.waiting, None
        self.in_flight = batch
        self._flight_generation = self.submitted
        return batch
