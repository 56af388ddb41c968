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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pyrt.cpython.storage import FileStore
from pyrt.errors import ShareUnavailable

if TYPE_CHECKING:
    from pyrt.ports.services import PageEvents
    from pyrt.share.channel import ShareChannel

__all__ = ["CPythonServices", "LoopTimers"]


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
