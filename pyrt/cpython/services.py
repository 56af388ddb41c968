"""CPython's runtime services (:class:`~pyrt.ports.services.Services`): no page, files, the loop's timers.

:class:`CPythonServices` is what a client outside the browser gets from :mod:`pyrt.aio.runtime`:

- no page: :meth:`~CPythonServices.watch_page` reports nothing (no ``online``, visibility or
  ``pagehide`` events exist here);
- ``persist=`` goes to a journal file per key (:class:`~pyrt.cpython.storage.FileStore`, in
  ``storage_dir`` or :func:`~pyrt.cpython.storage.default_directory`);
- a client's timer is the event loop's own ``call_later`` (:class:`LoopTimers`: nothing
  throttles it);
- no sharing: ``share=`` needs a browser's Web Locks and ``BroadcastChannel``.

Pass ``services=CPythonServices(storage_dir=...)`` to a client to keep its files elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pyrt.cpython.storage import FileStore, default_directory
from pyrt.errors import ShareUnavailable

if TYPE_CHECKING:
    from pyrt.ports.services import PageEvents
    from pyrt.share.channel import ShareChannel

__all__ = ["CPythonServices", "FilePreferences", "LoopTimers"]


class LoopTimers:
    """The event loop's own ``call_later`` (CPython: nothing throttles it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self.loop.call_later(delay, callback)

    def dispose(self) -> None:
        """Nothing to release."""


class _NoPage:
    """The watcher of a page that does not exist: nothing to report, nothing to stop."""

    def stop(self) -> None:
        """Nothing to release."""


_NO_PAGE = _NoPage()


class CPythonServices:
    """See the module docstring."""

    def __init__(self, storage_dir: str | Path | None = None) -> None:
        self.storage_dir = storage_dir

    def watch_page(self, events: PageEvents) -> _NoPage:
        """No page outside the browser: nothing is ever reported."""
        return _NO_PAGE

    def record_store(self) -> FileStore:
        return FileStore(self.storage_dir)

    def timers(self, loop: asyncio.AbstractEventLoop) -> LoopTimers:
        return LoopTimers(loop)

    def share_channel(self, name: str) -> ShareChannel:
        raise ShareUnavailable("tabs share connections in a browser only")

    def preferences(self) -> FilePreferences:
        return FilePreferences(self.storage_dir)


class FilePreferences:
    """Remembered facts in ``preferences.json`` next to the ``persist=`` files."""

    def __init__(self, directory: str | Path | None) -> None:
        self.path = Path(directory if directory is not None else default_directory()) / "preferences.json"

    def get(self, key: str) -> str | None:
        value = self._read().get(key)
        return value if isinstance(value, str) else None

    def set(self, key: str, value: str | None) -> None:
        data = self._read()
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            spare = self.path.with_suffix(".tmp")
            spare.write_text(json.dumps(data), encoding="utf-8")
            os.replace(spare, self.path)
        except OSError:  # a read-only home: a preference is best effort
            return

    def _read(self) -> dict[str, object]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}
