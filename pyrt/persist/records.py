"""Persistence of what must survive a page reload: unacknowledged messages and channel offsets.

The state is a set of **records**: one per message not yet acknowledged (or not yet sent at
all), numbered by a sequence number ``seq`` that gives their send order, plus one record of
channel offsets. The engine never rewrites the whole set: it reports what changed since its last
write as a :class:`Changes` batch (records put, records deleted, the offsets), so writing costs
the size of the change, not the size of the queue (:mod:`pyrt.persist.journal` keeps that account).

A :class:`RecordStore` applies batches, one at a time and each as a whole, and loads the set
back as a :class:`Snapshot` after a reload:

- in the browser, ``localStorage`` on a page's main thread (synchronous: written before the
  page can go away) and IndexedDB in workers (JupyterLite kernels, PyScript workers), see
  :mod:`pyrt.browser.storage`;
- on CPython, an append-only file compacted as it grows, see :mod:`pyrt.cpython.storage`;
- :class:`MemoryRecordStore` keeps it in memory (tests, and runtimes with no durable storage:
  the client then says so through ``on_error``), and :class:`SnapshotStore` adapts any object
  with ``getItem``/``setItem``/``removeItem`` (a :class:`Storage`, such as
  :class:`MemoryStorage`) by writing the whole set as one text on each batch.

After a reload, the restored messages are sent again with their original ids, so a server that
deduplicates ids (the pyrt reference server does) delivers each of them exactly once; the fate of
each one that wanted an ack is reported as a :class:`RestoredMessage`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from pyrt.wire.types import AckId, Frame

__all__ = [
    "Changes",
    "MemoryRecordStore",
    "MemoryStorage",
    "RecordStore",
    "RestoredMessage",
    "SavedFrame",
    "Snapshot",
    "SnapshotStore",
    "Storage",
    "as_record_store",
    "dumps",
    "is_snapshot_text",
    "loads",
    "numbered",
    "record_from_obj",
    "record_from_text",
    "record_obj",
    "record_text",
]

VERSION = 1


class Storage(Protocol):
    """The subset of the Web Storage API :class:`SnapshotStore` uses."""

    def getItem(self, key: str) -> str | None: ...

    def setItem(self, key: str, value: str) -> None: ...

    def removeItem(self, key: str) -> None: ...


class MemoryStorage:
    """An in-memory :class:`Storage` (for tests)."""

    def __init__(self) -> None:
        self.items: dict[str, str] = {}

    def getItem(self, key: str) -> str | None:
        return self.items.get(key)

    def setItem(self, key: str, value: str) -> None:
        self.items[key] = value

    def removeItem(self, key: str) -> None:
        self.items.pop(key, None)


@dataclass(frozen=True, slots=True)
class SavedFrame:
    """A frame not yet acknowledged (``ack_id`` set) or not yet sent at all. ``seq`` orders the
    records of one key (``None`` before the record was first written)."""

    frame: Frame
    ack_id: AckId | None = None
    kind: str = "message"
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a reloaded page needs to carry on where the previous one stopped."""

    frames: tuple[SavedFrame, ...] = ()  # in send order
    offsets: dict[str, str] = field(default_factory=dict)  # channel -> last delivered offset


@dataclass(slots=True)
class Changes:
    """One batch of changes to the records of a key, applied as a whole.

    ``puts``: new records by ``seq`` (a seq is put once and never reused); ``deletes``: seqs of
    records to remove; ``offsets``: the channel offsets to store, when they changed.
    """

    puts: dict[int, SavedFrame] = field(default_factory=dict)
    deletes: set[int] = field(default_factory=set)
    offsets: dict[str, str] | None = None

    def __bool__(self) -> bool:
        return bool(self.puts or self.deletes or self.offsets is not None)

    def absorb(self, later: Changes) -> None:
        """Fold ``later`` into this batch, as if both were applied in order: a record put here
        and deleted by ``later`` is neither written nor deleted; the newest offsets win."""
        puts = self.puts
        for seq in later.deletes:
            if puts.pop(seq, None) is None:
                self.deletes.add(seq)
        puts.update(later.puts)
        if later.offsets is not None:
            self.offsets = later.offsets

    def apply_to(self, records: dict[int, SavedFrame]) -> None:
        """Apply the puts and deletes to ``records`` (by seq)."""
        for seq in self.deletes:
            records.pop(seq, None)
        records.update(self.puts)


@dataclass(frozen=True, slots=True)
class RestoredMessage:
    """What became of a message a previous page saved and this one sent again.

    ``id`` and ``kind`` (``"message"`` from ``send_with_ack``, ``"publish"``) are the original
    message's; ``data`` and ``channel`` are read back from its saved frame (``None`` when the
    protocol's frames are not JSON objects). ``ok`` tells whether the server acknowledged it:
    then ``reply`` is the ack's data (``send_with_ack``) or the publication's offset
    (``publish``); otherwise ``error`` says why it failed.
    """

    id: AckId
    kind: str
    data: Any
    channel: str | None
    ok: bool
    reply: Any = None
    error: Exception | None = None


def describe(frame: Frame) -> tuple[Any, str | None]:
    """The ``data`` and ``channel`` of a saved JSON-object frame (best effort)."""
    if isinstance(frame, str) and frame.startswith("{"):
        try:
            obj = json.loads(frame)
        except ValueError:
            return None, None
        if isinstance(obj, dict):
            channel = obj.get("channel")
            return obj.get("data"), channel if isinstance(channel, str) else None
    return None, None


class RecordStore(Protocol):
    """Where the records of ``persist=`` keys live (see the module docstring).

    Contract: :meth:`load` calls exactly one of ``done``/``failed``, maybe before it returns.
    :meth:`write` is never called again before its ``done`` was called (the caller keeps one
    write in flight and merges what comes meanwhile); a batch is applied as a whole or, when
    ``done`` receives an error, possibly in part: applying it again must be harmless (puts and
    deletes are idempotent). ``durable`` is False when records do not outlive the process.
    """

    kind: str
    durable: bool

    def load(
        self, key: str, done: Callable[[Snapshot], None], failed: Callable[[Exception], None]
    ) -> None: ...

    def write(self, key: str, changes: Changes, done: Callable[[Exception | None], None]) -> None: ...

    def dispose(self) -> None: ...


class MemoryRecordStore:
    """A :class:`RecordStore` in memory: ``durable`` is False unless you say otherwise (a test
    playing a browser's storage across "reloads" shares one instance between two clients)."""

    kind = "memory"

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable
        self.records: dict[str, dict[int, SavedFrame]] = {}
        self.offsets: dict[str, dict[str, str]] = {}
        self.writes = 0  # batches applied, for tests

    def load(self, key: str, done: Callable[[Snapshot], None], failed: Callable[[Exception], None]) -> None:
        records = self.records.get(key, {})
        done(Snapshot(tuple(records[seq] for seq in sorted(records)), dict(self.offsets.get(key, {}))))

    def write(self, key: str, changes: Changes, done: Callable[[Exception | None], None]) -> None:
        changes.apply_to(self.records.setdefault(key, {}))
        if changes.offsets is not None:
            self.offsets[key] = dict(changes.offsets)
        self.writes += 1
        done(None)

    def dispose(self) -> None:
        """Nothing to release: the records stay for the next client of the same key."""


class SnapshotStore:
    """A :class:`RecordStore` over a :class:`Storage`: every batch rewrites the whole set as one
    text (:func:`dumps`) under the key, so a write costs the size of the set. For your own
    key-value storage; pyrt's own stores write only what changed."""

    kind = "storage"

    def __init__(self, storage: Storage, durable: bool = True) -> None:
        self.storage = storage
        self.durable = durable
        self._records: dict[str, dict[int, SavedFrame]] = {}
        self._offsets: dict[str, dict[str, str]] = {}

    def load(self, key: str, done: Callable[[Snapshot], None], failed: Callable[[Exception], None]) -> None:
        try:
            text = self.storage.getItem(key)
        except Exception as exc:  # storage forbidden: the caller falls back and says so
            failed(exc)
            return
        snapshot = numbered(loads(text))
        self._records[key] = {s.seq: s for s in snapshot.frames if s.seq is not None}
        self._offsets[key] = dict(snapshot.offsets)
        done(snapshot)

    def write(self, key: str, changes: Changes, done: Callable[[Exception | None], None]) -> None:
        records = self._records.setdefault(key, {})
        changes.apply_to(records)
        if changes.offsets is not None:
            self._offsets[key] = dict(changes.offsets)
        snapshot = Snapshot(tuple(records[seq] for seq in sorted(records)), self._offsets.get(key, {}))
        try:
            self.storage.setItem(key, dumps(snapshot))
        except Exception as exc:  # storage full or forbidden
            done(exc)
            return
        done(None)

    def dispose(self) -> None:
        """Nothing to release."""


def as_record_store(storage: Storage | RecordStore) -> RecordStore:
    """``storage`` itself when it is a :class:`RecordStore` (it has ``write``), else a
    :class:`SnapshotStore` over it."""
    if hasattr(storage, "write") and hasattr(storage, "load"):
        return cast(RecordStore, storage)
    return SnapshotStore(storage)


def _frame_out(frame: Frame) -> Any:
    if isinstance(frame, bytes):
        return {"b64": base64.b64encode(frame).decode("ascii")}
    return frame


def _frame_in(value: Any) -> Frame:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("b64"), str):
        return base64.b64decode(value["b64"])
    raise ValueError(f"bad saved frame {value!r}")


def record_obj(saved: SavedFrame) -> dict[str, Any]:
    """One record as a JSON-ready dict."""
    obj: dict[str, Any] = {"f": _frame_out(saved.frame), "id": saved.ack_id, "k": saved.kind}
    if saved.seq is not None:
        obj["s"] = saved.seq
    return obj


def _record_in(item: Any) -> SavedFrame:
    if not isinstance(item, dict):
        raise ValueError(f"bad record {item!r}")
    seq = item.get("s")
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool)):
        raise ValueError(f"bad record number {seq!r}")
    return SavedFrame(_frame_in(item["f"]), item.get("id"), str(item.get("k", "message")), seq)


_compact = json.JSONEncoder(separators=(",", ":")).encode


def record_text(saved: SavedFrame) -> str:
    """One record as JSON text (what the browser and file stores keep per message)."""
    return _compact(record_obj(saved))


def record_from_obj(item: Any) -> SavedFrame | None:
    """A record back from :func:`record_obj`; ``None`` for a corrupt or foreign value."""
    try:
        return _record_in(item)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def record_from_text(text: str) -> SavedFrame | None:
    """A record back from :func:`record_text`; ``None`` for corrupt or foreign text."""
    try:
        item = json.loads(text)
    except ValueError:
        return None
    return record_from_obj(item)


def numbered(snapshot: Snapshot) -> Snapshot:
    """``snapshot`` with a ``seq`` on every record: records saved without one (an older format)
    get the next numbers after the highest, in their order."""
    if all(saved.seq is not None for saved in snapshot.frames):
        return snapshot
    seq = max((saved.seq for saved in snapshot.frames if saved.seq is not None), default=0)
    frames: list[SavedFrame] = []
    for saved in snapshot.frames:
        if saved.seq is None:
            seq += 1
            saved = SavedFrame(saved.frame, saved.ack_id, saved.kind, seq)
        frames.append(saved)
    return Snapshot(tuple(frames), snapshot.offsets)


def offsets_from_text(text: str | None) -> dict[str, str]:
    """The offsets record back; ``{}`` for missing, corrupt or foreign text."""
    if not text:
        return {}
    try:
        obj = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(obj, dict):
        return {}
    return {str(k): str(v) for k, v in obj.items()}


def offsets_text(offsets: dict[str, str]) -> str:
    return _compact(offsets)


def dumps(snapshot: Snapshot) -> str:
    """The whole snapshot as one JSON text (binary frames in base64)."""
    return _compact(
        {
            "v": VERSION,
            "frames": [record_obj(s) for s in snapshot.frames],
            "offsets": snapshot.offsets,
        }
    )


def is_snapshot_text(text: str | None) -> bool:
    """True when ``text`` is a snapshot :func:`dumps` wrote (not someone else's value)."""
    if not text or not text.startswith("{"):
        return False
    try:
        obj = json.loads(text)
    except ValueError:
        return False
    return isinstance(obj, dict) and obj.get("v") == VERSION and isinstance(obj.get("frames"), list)


def loads(text: str | None) -> Snapshot:
    """Read a snapshot back; missing, foreign or corrupt text gives an empty snapshot."""
    if not text:
        return Snapshot()
    try:
        obj = json.loads(text)
        if not isinstance(obj, dict) or obj.get("v") != VERSION:
            return Snapshot()
        frames = tuple(_record_in(item) for item in obj.get("frames", []))
        offsets = {str(k): str(v) for k, v in dict(obj.get("offsets", {})).items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        return Snapshot()
    return Snapshot(frames, offsets)
