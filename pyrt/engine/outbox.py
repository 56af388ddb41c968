"""The bounded queue of frames waiting for an open socket.

Frames wait here while the client is not open (or the browser's send buffer is over its
high-water mark) and leave in order. The queue is bounded by a count and by bytes; when a new
frame does not fit, the overflow policy decides:

- ``"drop_oldest"`` (default): drop queued frames from the front until the new one fits;
- ``"drop_newest"``: refuse the new frame;
- ``"raise"``: refuse the new frame and raise :class:`~pyrt.errors.QueueFull` to the sender.

Dropped entries are returned to the caller, which reports every one of them: nothing disappears
silently.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pyrt.errors import QueueFull
from pyrt.wire.types import Frame

__all__ = ["OVERFLOW_POLICIES", "Outbox", "Overflow", "Queued", "frame_size"]

Overflow = Literal["drop_oldest", "drop_newest", "raise"]
OVERFLOW_POLICIES: tuple[Overflow, ...] = ("drop_oldest", "drop_newest", "raise")


def frame_size(frame: Frame) -> int:
    """Bytes the frame takes on the wire (UTF-8 for text)."""
    if isinstance(frame, str):
        return len(frame) if frame.isascii() else len(frame.encode("utf-8"))
    return len(frame)


@dataclass(slots=True, eq=False)
class Queued:
    """One waiting frame. ``ack_id`` is set for frames that expect an acknowledgement.
    Compared (and hashed) by identity: each entry is one message."""

    frame: Frame
    size: int
    ack_id: str | int | None = None


class Outbox:
    """A FIFO of :class:`Queued` frames bounded by ``limit`` frames and ``max_bytes`` bytes."""

    __slots__ = ("_items", "bytes", "limit", "max_bytes", "overflow")

    def __init__(
        self, limit: int = 1000, max_bytes: int = 1 << 20, overflow: Overflow = "drop_oldest"
    ) -> None:
        if limit < 1:
            raise ValueError(f"queue_limit must be >= 1, got {limit!r}")
        if max_bytes < 1:
            raise ValueError(f"queue_bytes must be >= 1, got {max_bytes!r}")
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES}, got {overflow!r}")
        self.limit = limit
        self.max_bytes = max_bytes
        self.overflow: Overflow = overflow
        self._items: deque[Queued] = deque()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[Queued]:
        return iter(self._items)

    def push(self, item: Queued) -> list[Queued]:
        """Queue ``item``; return what the overflow policy dropped (possibly ``item`` itself).

        With ``overflow="raise"`` a frame that does not fit raises :class:`QueueFull` and nothing
        changes. A frame larger than ``max_bytes`` on its own never fits.
        """
        if item.size > self.max_bytes:
            if self.overflow == "raise":
                raise QueueFull(
                    f"a {item.size}-byte frame is larger than the whole queue ({self.max_bytes} bytes)"
                )
            return [item]
        if self._fits(item):
            self._append(item)
            return []
        if self.overflow == "raise":
            raise QueueFull(
                f"the outgoing queue is full ({len(self._items)} frames, {self.bytes} bytes; "
                f"limits {self.limit} frames, {self.max_bytes} bytes)"
            )
        if self.overflow == "drop_newest":
            return [item]
        dropped: list[Queued] = []
        while not self._fits(item):
            dropped.append(self.popleft())
        self._append(item)
        return dropped

    def push_front(self, items: list[Queued]) -> None:
        """Put ``items`` back at the front, in their order, ignoring the limits (they were queued)."""
        for item in reversed(items):
            self._items.appendleft(item)
            self.bytes += item.size

    def popleft(self) -> Queued:
        """Take the oldest frame."""
        item = self._items.popleft()
        self.bytes -= item.size
        return item

    def peek(self) -> Queued:
        """The oldest frame, left in place."""
        return self._items[0]

    def clear(self) -> list[Queued]:
        """Empty the queue and return what it held, oldest first."""
        items = list(self._items)
        self._items.clear()
        self.bytes = 0
        return items

    def _fits(self, item: Queued) -> bool:
        return len(self._items) < self.limit and self.bytes + item.size <= self.max_bytes

    def _append(self, item: Queued) -> None:
        self._items.append(item)
        self.bytes += item.size
