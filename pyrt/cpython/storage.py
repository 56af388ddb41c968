"""``persist=`` outside the browser: one file per key instead of ``localStorage``.

``persist="chat"`` stores ``<cache dir>/chat.json`` where the cache directory is
``$XDG_CACHE_HOME/pyrt`` (``~/.cache/pyrt`` when unset). A key that looks like a path — it
contains a ``/`` (or the OS separator), starts with ``~`` or ends with ``.json`` — is used as the
file path itself: ``persist="~/state/chat.json"`` or ``persist="/var/lib/app/ws.json"``.

:class:`FileStore` (the default) keeps the file as a journal: one JSON line per batch of changes
(records put, records deleted, offsets), appended, so a write costs the size of the change; the
file is rewritten whole (a temporary file renamed over the old one) when it has grown by more
than its live size, and once when it is first read. A process killed mid-append leaves at most
one torn last line, which is ignored. A file written by an older pyrt (one JSON snapshot) reads
as a journal of one line. :class:`FileStorage` is the plain ``getItem``/``setItem`` variant.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pyrt.persist.records import (
    Changes,
    SavedFrame,
    Snapshot,
    dumps,
    loads,
    numbered,
    record_from_obj,
    record_obj,
)

__all__ = ["FileStorage", "FileStore", "default_directory", "key_path"]

_MIN_COMPACT_BYTES = 64 * 1024


def default_directory() -> Path:
    """``$XDG_CACHE_HOME/pyrt``, or ``~/.cache/pyrt``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pyrt"


def key_path(directory: Path, key: str) -> Path:
    """The file that holds ``key`` (see the module docstring)."""
    if not key:
        raise ValueError("a persistence key must not be empty")
    if "/" in key or os.sep in key or key.startswith("~") or key.endswith(".json"):
        return Path(key).expanduser()
    return directory / (quote(key, safe="-_.") + ".json")


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file renamed over the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class FileStorage:
    """A :class:`~pyrt.persist.records.Storage` (``getItem``/``setItem``/``removeItem``) backed by files,
    one whole text per key, rewritten atomically on every ``setItem``.

    ``directory`` holds the files of plain keys (default: :func:`default_directory`, created on
    the first write). See the module docstring for how a key maps to a file.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_directory()

    def path(self, key: str) -> Path:
        """The file that holds ``key``."""
        return key_path(self.directory, key)

    def getItem(self, key: str) -> str | None:
        try:
            return self.path(key).read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
            return None

    def setItem(self, key: str, value: str) -> None:
        _replace(self.path(key), value)

    def removeItem(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(key).unlink()


class _Journal:
    """The live records of one key and how big its file has grown."""

    __slots__ = ("appended", "compacted", "offsets", "records")

    def __init__(self, snapshot: Snapshot) -> None:
        self.records: dict[int, SavedFrame] = {s.seq: s for s in snapshot.frames if s.seq is not None}
        self.offsets = dict(snapshot.offsets)
        self.compacted = 0  # bytes of the file at its last rewrite
        self.appended = 0  # bytes appended since

    def snapshot(self) -> Snapshot:
        return Snapshot(tuple(self.records[seq] for seq in sorted(self.records)), self.offsets)


def _batch_line(changes: Changes) -> str:
    obj: dict[str, Any] = {}
    if changes.puts:
        obj["p"] = [record_obj(saved) for saved in changes.puts.values()]
    if changes.deletes:
        obj["d"] = sorted(changes.deletes)
    if changes.offsets is not None:
        obj["o"] = changes.offsets
    return json.dumps(obj, separators=(",", ":")) + "\n"


def _read(text: str) -> Snapshot:
    """Replay a journal: snapshot lines reset the state, batch lines change it."""
    records: dict[int, SavedFrame] = {}
    offsets: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue  # a torn last line: the process died while appending it
        if not isinstance(obj, dict):
            continue
        if "v" in obj:
            snapshot = numbered(loads(line))
            records = {s.seq: s for s in snapshot.frames if s.seq is not None}
            offsets = dict(snapshot.offsets)
            continue
        for seq in obj.get("d", ()):
            if isinstance(seq, int):
                records.pop(seq, None)
        for item in obj.get("p", ()):
            saved = record_from_obj(item)
            if saved is not None and saved.seq is not None:
                records[saved.seq] = saved
        if isinstance(obj.get("o"), dict):
            offsets = {str(k): str(v) for k, v in obj["o"].items()}
    return Snapshot(tuple(records[seq] for seq in sorted(records)), offsets)


class FileStore:
    """The default :class:`~pyrt.persist.records.RecordStore` on CPython: a journal file per key (see
    the module docstring). ``directory`` as for :class:`FileStorage`."""

    kind = "file"
    durable = True

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_directory()
        self._journals: dict[str, _Journal] = {}

    def path(self, key: str) -> Path:
        """The file that holds ``key``."""
        return key_path(self.directory, key)

    def load(self, key: str, done: Callable[[Snapshot], None], failed: Callable[[Exception], None]) -> None:
        path = self.path(key)
        try:
            text = path.read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
            text = ""
        except OSError as exc:
            failed(exc)
            return
        journal = self._journals[key] = _Journal(_read(text))
        snapshot = journal.snapshot()
        if text:
            try:
                self._compact(path, journal)
            except OSError as exc:
                failed(exc)
                return
        done(snapshot)

    def write(self, key: str, changes: Changes, done: Callable[[Exception | None], None]) -> None:
        journal = self._journals.get(key)
        if journal is None:
            journal = self._journals[key] = _Journal(Snapshot())
        changes.apply_to(journal.records)
        if changes.offsets is not None:
            journal.offsets = dict(changes.offsets)
        path = self.path(key)
        try:
            if journal.appended > max(_MIN_COMPACT_BYTES, journal.compacted):
                self._compact(path, journal)
            else:
                line = _batch_line(changes)
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as file:
                    file.write(line)
                journal.appended += len(line)
        except OSError as exc:
            done(exc)
            return
        done(None)

    def _compact(self, path: Path, journal: _Journal) -> None:
        text = dumps(journal.snapshot()) + "\n"
        _replace(path, text)
        journal.compacted = len(text)
        journal.appended = 0

    def dispose(self) -> None:
        """Nothing stays open between writes."""
