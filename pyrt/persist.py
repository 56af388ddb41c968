"""Persistence of what must survive a page reload: unacknowledged messages and channel offsets.

The engine produces a snapshot (:class:`Snapshot`), this module turns it into text and back, and
the adapter stores the text under a key in a :class:`Storage` (``localStorage`` in the browser,
a file or a dict elsewhere). :class:`MemoryStorage` is the fake for tests.

After a reload, the restored messages are sent again with their original ids, so a server that
deduplicates ids (the pyrt reference server does) delivers each of them exactly once.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from pyrt.wire import Frame

__all__ = ["MemoryStorage", "SavedFrame", "Snapshot", "Storage", "dumps", "loads"]

VERSION = 1


class Storage(Protocol):
    """The subset of the Web Storage API pyrt uses."""

    def getItem(self, key: str) -> str | None: ...

    def setItem(self, key: str, value: str) -> None: ...

    def removeItem(self, key: str) -> None: ...


class MemoryStorage:
    """An in-memory :class:`Storage` (for tests, and for runtimes without ``localStorage``)."""

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
    """A frame not yet acknowledged (``ack_id`` set) or not yet sent at all."""

    frame: Frame
    ack_id: str | int | None = None
    kind: str = "message"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a reloaded page needs to carry on where the previous one stopped."""

    frames: tuple[SavedFrame, ...] = ()  # in send order
    offsets: dict[str, str] = field(default_factory=dict)  # channel -> last delivered offset


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


def dumps(snapshot: Snapshot) -> str:
    """The snapshot as a JSON text (binary frames in base64)."""
    return json.dumps(
        {
            "v": VERSION,
            "frames": [{"f": _frame_out(s.frame), "id": s.ack_id, "k": s.kind} for s in snapshot.frames],
            "offsets": snapshot.offsets,
        },
        separators=(",", ":"),
    )


def loads(text: str | None) -> Snapshot:
    """Read a snapshot back; missing, foreign or corrupt text gives an empty snapshot."""
    if not text:
        return Snapshot()
    try:
        obj = json.loads(text)
        if not isinstance(obj, dict) or obj.get("v") != VERSION:
            return Snapshot()
        frames = tuple(
            SavedFrame(_frame_in(item["f"]), item.get("id"), str(item.get("k", "message")))
            for item in obj.get("frames", [])
        )
        offsets = {str(k): str(v) for k, v in dict(obj.get("offsets", {})).items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        return Snapshot()
    return Snapshot(frames, offsets)
