"""The browser's runtime services (:class:`~pyrt.ports.services.Services`): page, storage, timers, sharing.

:class:`BrowserServices` hands out, for each client that asks:

- a :class:`~pyrt.browser.page.PageWatcher` (``online``, ``visibilitychange``, ``pagehide``,
  ``pageshow``), its proxies destroyed when the client stops watching;
- the default record store of ``persist=`` (:func:`~pyrt.browser.storage.default_store`:
  ``localStorage`` on a page's main thread, IndexedDB in a worker);
- a :class:`~pyrt.browser.timers.BrowserTimers`, which hidden tabs do not throttle to once a
  minute;
- a :class:`~pyrt.browser.share_channel.BrowserShareChannel` (Web Locks and ``BroadcastChannel``)
  for ``share=``, where the context has both.

It holds nothing itself: every object it makes has one owner, the client that asked, which
releases it. :mod:`pyrt.aio.runtime` picks it in Pyodide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyrt.browser.page import PageWatcher
from pyrt.browser.share_channel import BrowserShareChannel, sharing_supported
from pyrt.browser.storage import default_store, usable_local_storage
from pyrt.browser.timers import BrowserTimers
from pyrt.errors import ShareUnavailable

if TYPE_CHECKING:
    import asyncio

    from pyrt.persist.records import RecordStore
    from pyrt.ports.services import PageEvents

__all__ = ["BrowserServices", "LocalPreferences"]


class BrowserServices:
    """See the module docstring (Pyodide only)."""

    def watch_page(self, events: PageEvents) -> PageWatcher:
        return PageWatcher(events)

    def record_store(self) -> RecordStore | None:
        return default_store()

    def timers(self, loop: asyncio.AbstractEventLoop) -> BrowserTimers:
        return BrowserTimers()

    def share_channel(self, name: str) -> BrowserShareChannel:
        if not sharing_supported():
            raise ShareUnavailable(
                "no Web Locks (navigator.locks needs a secure context) or no BroadcastChannel here"
            )
        return BrowserShareChannel(name)

    def preferences(self) -> LocalPreferences | None:
        storage = usable_local_storage()
        return LocalPreferences(storage) if storage is not None else None


class LocalPreferences:
    """Remembered facts in ``localStorage`` (a page's main thread; workers have none)."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage

    def get(self, key: str) -> str | None:
        try:
            value = self.storage.getItem(key)
        except Exception:  # storage disabled or refused: nothing is known
            return None
        return value if isinstance(value, str) else None

    def set(self, key: str, value: str | None) -> None:
        try:
            if value is None:
                self.storage.removeItem(key)
            else:
                self.storage.setItem(key, value)
        except Exception:  # full or refused: a preference is best effort
            return
