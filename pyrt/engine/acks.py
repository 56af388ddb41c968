"""The bookkeeping of requests waiting for an answer: their ids, and when each attempt times out.

What a request *is* (a message, a publication, a read, a presence join, a token refresh) and what
it does when answered, refused or timed out is in :mod:`pyrt.engine.requests`; this module only
numbers and times them.

- Ids are unique across reconnects and page reloads: a random prefix drawn once per client plus a
  counter (``"k3f9x2a1-17"``); the numeric form (for servers that expect numbers) puts the random
  part in the high bits of an integer below 2**53, so JavaScript reads it exactly.
- :class:`PendingAcks` holds the entries in send order, with a heap of their deadlines. The
  timeout clock of an entry runs only while it is on the wire: it starts when the frame is sent
  and stops when the socket goes away or the server refuses it for now.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pyrt.wire.types import AckId, Frame

__all__ = ["AckIds", "Pending", "PendingAcks"]

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_NUMERIC_COUNTER_BITS = 21


class AckIds:
    """Generates message ids: ``"<8 random base-36 chars>-<counter>"``, or integers."""

    __slots__ = ("counter", "numeric", "prefix")

    def __init__(self, rng: Callable[[], float], numeric: bool = False) -> None:
        self.numeric = numeric
        value = int(rng() * 36**8)
        self.prefix = "".join(_DIGITS[(value // 36**i) % 36] for i in range(7, -1, -1))
        self.counter = 0
        if numeric:
            self.counter = int(rng() * 2**32) << _NUMERIC_COUNTER_BITS

    def next(self) -> AckId:
        """A new id, never returned before by this generator."""
        self.counter += 1
        if self.numeric:
            return self.counter
        return f"{self.prefix}-{self.counter}"


@dataclass(slots=True, eq=False)
class Pending:
    """One frame waiting for its answer (the kinds of request are subclasses, see
    :mod:`pyrt.engine.requests`).

    ``handle`` is whatever the adapter passed to be resolved later (a future, a callback); pyrt
    never calls it.
    """

    id: AckId
    frame: Frame
    handle: object
    timeout: float = 10.0
    attempts: int = 0  # transmissions so far
    deadline: float | None = None  # when the current transmission times out; None off the wire
    seq: int = 0  # the pacer's number of the current transmission (see pyrt.engine.pacing)
    order: int = 0  # when it was added: the send order, which re-sends keep
    refusals: int = 0  # transient refusals so far (pyrt.wire.refusals): at most ``retries`` re-sends


P = TypeVar("P", bound=Pending)


class PendingAcks(Generic[P]):
    """The pending entries in send order, with a heap of their deadlines."""

    __slots__ = ("_added", "_entries", "_heap", "_seq", "retries")

    def __init__(self, retries: int = 3) -> None:
        if retries < 0:
            raise ValueError(f"ack_retries must be >= 0, got {retries!r}")
        self.retries = retries
        self._entries: dict[AckId, P] = {}
        self._heap: list[tuple[float, int, P]] = []
        self._seq = 0
        self._added = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, ack_id: object) -> bool:
        return ack_id in self._entries

    def add(self, entry: P) -> None:
        """Track a new entry (not sent yet)."""
        if entry.id in self._entries:
            raise ValueError(f"message id {entry.id!r} is already pending")
        self._added += 1
        entry.order = self._added
        self._entries[entry.id] = entry

    def get(self, ack_id: Any) -> P | None:
        """The entry for ``ack_id`` (any JSON value read off the wire), or None."""
        return self._entries.get(ack_id)

    def sent(self, entry: P, now: float) -> None:
        """``entry`` was just transmitted: count the attempt and start its timeout."""
        entry.attempts += 1
        entry.deadline = now + entry.timeout
        self._seq += 1
        heapq.heappush(self._heap, (entry.deadline, self._seq, entry))

    def pop(self, ack_id: Any) -> P | None:
        """Remove and return the entry for ``ack_id``; None when unknown (a duplicate ack)."""
        return self._entries.pop(ack_id, None)

    def discard(self, entry: P) -> None:
        self._entries.pop(entry.id, None)

    def in_flight(self) -> list[P]:
        """Entries sent at least once and not acknowledged, oldest first."""
        return [entry for entry in self._entries.values() if entry.attempts]

    def recall(self, entry: P) -> None:
        """The server refused ``entry``'s transmission: stop its timeout until it is sent again."""
        entry.deadline = None

    def off_the_wire(self) -> None:
        """The socket is gone: stop every timeout clock until the entries are sent again."""
        for entry in self._entries.values():
            entry.deadline = None
        self._heap.clear()

    def due(self, now: float) -> list[P]:
        """Entries whose current transmission timed out at ``now``, oldest deadline first.

        Each is either re-sent by the caller (``attempts <= retries``) or given up.
        """
        expired: list[P] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, entry = heapq.heappop(heap)
            if entry.deadline == deadline and self._entries.get(entry.id) is entry:
                entry.deadline = None
                expired.append(entry)
        return expired

    def exhausted(self, entry: P) -> bool:
        """True when ``entry`` was sent ``1 + retries`` times already."""
        return entry.attempts > self.retries

    def next_deadline(self) -> float | None:
        """The earliest running timeout, or None."""
        heap = self._heap
        while heap:
            deadline, _, entry = heap[0]
            if entry.deadline == deadline and self._entries.get(entry.id) is entry:
                return deadline
            heapq.heappop(heap)
        return None

    def clear(self) -> list[P]:
        """Forget every entry and return them, oldest first."""
        entries = list(self._entries.values())
        self._entries.clear()
        self._heap.clear()
        return entries

    def entries(self) -> list[P]:
        """Every entry, oldest first."""
        return list(self._entries.values())
