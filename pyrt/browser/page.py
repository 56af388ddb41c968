"""The page around a client: ``online``, ``visibilitychange``, ``pagehide`` and ``pageshow``.

:class:`PageWatcher` listens on ``globalThis`` and ``document`` (a worker has no document: it
reports ``online`` only) and reports to one :class:`~pyrt.ports.transport.PageEvents`. Its proxies
belong to its own :class:`~pyrt.browser.proxies.ProxyOwner`, all destroyed by :meth:`dispose`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import js

from pyrt.browser.proxies import ProxyOwner
from pyrt.ports.transport import PageEvents

__all__ = ["PageWatcher"]


class PageWatcher:
    """Reports the page's events to one client until :meth:`dispose`."""

    def __init__(self) -> None:
        self._owner = ProxyOwner()
        self._listeners: list[tuple[Any, str, Any]] = []

    def watch(self, events: PageEvents) -> None:
        """Start reporting to ``events`` (once; later calls do nothing). When the page is already
        hidden, ``page_backgrounded`` is reported at once."""
        if self._listeners:
            return
        document = getattr(js, "document", None)

        def on_visibility(event: Any) -> None:
            if document is not None and document.hidden:
                events.page_backgrounded()
            else:
                events.page_visible()

        def on_pageshow(event: Any) -> None:
            if getattr(event, "persisted", False):
                events.page_shown()

        target = js.globalThis
        listen: list[tuple[Any, str, Callable[[Any], None]]] = [
            (target, "online", lambda event: events.page_online()),
            (target, "pagehide", lambda event: events.page_hidden()),
            (target, "pageshow", on_pageshow),
        ]
        if document is not None:
            listen.append((document, "visibilitychange", on_visibility))
        for where, name, func in listen:
            proxy = self._owner.proxy(func)
            where.addEventListener(name, proxy)
            self._listeners.append((where, name, proxy))
        if document is not None and document.hidden:
            events.page_backgrounded()

    def dispose(self) -> None:
        """Stop listening and destroy every proxy."""
        for where, name, proxy in self._listeners:
            where.removeEventListener(name, proxy)
        self._listeners.clear()
        self._owner.destroy_all()
