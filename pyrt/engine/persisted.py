"""Persistence on the engine's side (``persist=True``): what a client saves, and when.

The engine never serialises its queue. A message enters the
:class:`~pyrt.persist.journal.Journal` when it is queued (or sent with an ack), leaves when it is
sent (a plain message) or answered (a request), and the channel offsets are marked whenever one
moves; a save (:class:`~pyrt.engine.actions.SaveState`) hands over only what changed, at most
every ``persist_interval`` seconds (by default at the next turn of the event loop), and at once
on :meth:`~pyrt.engine.websocket.WebSocketEngine.save_now`, on a pause, on a hidden page and when
the client closes. Only the kinds of request that survive a page reload are saved
(:mod:`pyrt.engine.requests`): messages and publications, never reads or token refreshes.

:func:`restore` and :func:`snapshot` are the two ends: what a previous page saved goes back in
(before anything sent since), and what the client would save now comes out.

This module loads only for clients that persist (an import costs in Pyodide).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

from pyrt.engine.actions import SaveState
from pyrt.engine.outbox import Queued, frame_size
from pyrt.engine.requests import RESTORED, SAVED_KINDS, Request
from pyrt.engine.states import State
from pyrt.errors import InvalidStateError
from pyrt.persist.journal import Journal
from pyrt.persist.records import SavedFrame, Snapshot
from pyrt.wire.types import AckId, Frame

if TYPE_CHECKING:
    from pyrt.engine.connection import ConnectionCore

__all__ = ["PersistedState", "restore", "snapshot"]


class PersistedState:
    """The journal of one client and the time of its next save (see the module docstring)."""

    __slots__ = ("core", "interval", "journal", "save_at")

    def __init__(self, core: ConnectionCore, interval: float) -> None:
        self.core = core
        self.interval = interval
        self.journal = Journal()  # held until the saved state is restored (or connect())
        self.save_at: float | None = None

    def added(self, key: Hashable, frame: Frame, ack_id: AckId | None = None, kind: str = "message") -> None:
        """A message entered the persisted set (``key``: its id, or its queue entry)."""
        self.journal.add(key, SavedFrame(frame, ack_id, kind))

    def removed(self, key: Hashable) -> None:
        """A message left the persisted set (unknown keys are ignored)."""
        self.journal.remove(key)

    def offsets_moved(self, now: float) -> None:
        self.journal.offsets_changed()
        self.dirty(now)

    def dirty(self, now: float) -> None:
        """Something may have changed: save within ``persist_interval``."""
        if self.save_at is None and self.journal.dirty:
            self.save_at = now + self.interval

    def connecting(self, now: float) -> None:
        """``connect()`` with nothing restored: there was nothing to restore."""
        if self.journal.held:
            self.journal.release()
            self.dirty(now)

    def save(self) -> None:
        """Hand what changed over now (a :class:`SaveState`, when something did)."""
        self.save_at = None
        changes = self.journal.take(self.core.channels.offsets)
        if changes is not None:
            self.core._actions.append(SaveState(changes))

    def tick(self, now: float) -> None:
        if self.save_at is not None and now >= self.save_at:
            self.save()

    def next_deadline(self) -> float | None:
        return self.save_at


def restore(core: ConnectionCore, saved: Snapshot) -> None:
    """Load what a previous page saved, before ``connect()`` (see
    :meth:`~pyrt.engine.websocket.WebSocketEngine.restore`)."""
    if core._sm.state is not State.IDLE:
        raise InvalidStateError("restore() must be called before connect()")
    persisted = core.persisted
    journal = persisted.journal if persisted is not None else None
    requests = core.requests
    sender = core.sender
    outbox = sender.outbox
    waiting = outbox.clear()  # sent while the saved state was loading: after it
    for frame in saved.frames:
        if frame.ack_id is not None and frame.ack_id in requests.acks:
            continue  # the same message twice (a corrupt store): keep the first
        item = Queued(frame.frame, frame_size(frame.frame), frame.ack_id)
        if frame.ack_id is not None:
            kind = SAVED_KINDS.get(frame.kind, Request)
            requests.acks.add(kind(frame.ack_id, frame.frame, RESTORED, core.ack_timeout))
        if journal is not None:
            journal.restored(item if frame.ack_id is None else frame.ack_id, frame)
        core.stats.restored += 1
        for dropped in outbox.push(item):
            sender.drop(dropped, "restoring saved messages")
    for item in waiting:
        for dropped in outbox.push(item):
            sender.drop(dropped, "restoring saved messages")
    if journal is not None:
        journal.release()
    core.channels.restore_offsets(saved.offsets)


def snapshot(core: ConnectionCore) -> Snapshot:
    """What persistence would save now: unanswered and unsent messages in send order, and the
    resume offset of every channel."""
    requests = core.requests
    frames = [SavedFrame(e.frame, e.id, e.name) for e in requests.acks.in_flight() if e.persisted]
    for item in core.sender.outbox:
        entry = requests.get(item.ack_id) if item.ack_id is not None else None
        if entry is None:
            frames.append(SavedFrame(item.frame, item.ack_id, "message"))
        elif entry.persisted:  # reads and token refreshes die with the page
            frames.append(SavedFrame(item.frame, item.ack_id, entry.name))
    return Snapshot(tuple(frames), core.channels.offsets())
