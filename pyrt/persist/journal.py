"""The account of what changed in a client's persisted state since its last write.

The engine tells the :class:`Journal` when a message enters the persisted set (:meth:`add`),
when it leaves (:meth:`remove`: acknowledged, failed, sent without an ack, dropped) and when an
offset moves (:meth:`offsets_changed`). :meth:`take` then hands over one
:class:`~pyrt.persist.records.Changes` batch holding only that difference, so a write costs the size of
the change, whatever the size of the queue:

- a record gets its ``seq`` when it is first taken, in the order of :meth:`add`; a message
  that leaves before that is never written at all (acked within one write interval: no I/O);
- a message that leaves after its record was written becomes one delete;
- the offsets are one small record, rewritten when they changed.

While ``held`` (a client waiting for its saved state to load) nothing is taken: the saved
records' numbers are not known yet. :meth:`restored` registers each saved record and releases
the hold. Keys identify messages: an acked message's id, or the queue entry of a plain one.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from pyrt.persist.records import Changes, SavedFrame

__all__ = ["Journal"]


class Journal:
    """See the module docstring."""

    __slots__ = ("_gone", "_new", "_offsets_dirty", "_written", "held", "next_seq")

    def __init__(self, held: bool = True) -> None:
        self._written: dict[Hashable, int] = {}  # key -> seq of a record taken already
        self._new: dict[Hashable, SavedFrame] = {}  # added since the last take, in order
        self._gone: set[int] = set()
        self._offsets_dirty = False
        self.next_seq = 1
        self.held = held

    def __len__(self) -> int:
        """Messages in the persisted set (written or not yet)."""
        return len(self._written) + len(self._new)

    @property
    def dirty(self) -> bool:
        """True when :meth:`take` would return a batch."""
        return not self.held and bool(self._new or self._gone or self._offsets_dirty)

    def add(self, key: Hashable, saved: SavedFrame) -> None:
        """A message entered the persisted set."""
        self._new[key] = saved

    def remove(self, key: Hashable) -> None:
        """A message left the persisted set (unknown keys are ignored)."""
        if self._new.pop(key, None) is not None:
            return
        seq = self._written.pop(key, None)
        if seq is not None:
            self._gone.add(seq)

    def offsets_changed(self) -> None:
        self._offsets_dirty = True

    def restored(self, key: Hashable, saved: SavedFrame) -> None:
        """A saved record came back under ``key``: it is in storage already (or, without a
        ``seq``, from an older format: it is written again as a new record)."""
        if saved.seq is None:
            self._new[key] = saved
            return
        self._written[key] = saved.seq
        if saved.seq >= self.next_seq:
            self.next_seq = saved.seq + 1

    def release(self) -> None:
        """End the hold (the saved state is loaded, or there is none)."""
        self.held = False

    def take(self, offsets: Callable[[], dict[str, str]]) -> Changes | None:
        """The batch of everything that changed since the last take, or ``None``.
        ``offsets`` is called only when they changed."""
        if not self.dirty:
            return None
        changes = Changes()
        if self._new:
            seq = self.next_seq
            puts = changes.puts
            written = self._written
            for key, saved in self._new.items():
                puts[seq] = SavedFrame(saved.frame, saved.ack_id, saved.kind, seq)
                written[key] = seq
                seq += 1
            self.next_seq = seq
            self._new = {}
        if self._gone:
            changes.deletes, self._gone = self._gone, set()
        if self._offsets_dirty:
            changes.offsets = offsets()
            self._offsets_dirty = False
        return changes
