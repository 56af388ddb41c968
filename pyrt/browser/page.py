"""The page around a client: ``online``, ``visibilitychange``, ``pagehide`` and ``pageshow``.

A :class:`PageWatcher` listens on ``globalThis`` and ``document`` (a worker has no document: it
reports ``online`` only) and reports to one :class:`~pyrt.ports.services.PageEvents` until
:meth:`~PageWatcher.stop`. Its proxies belong to its own :class:`~pyrt.browser.proxies.ProxyOwner`,
all destroyed by :meth:`~PageWatcher.stop`. :class:`~pyrt.browser.services.BrowserServices` makes
one for every watcher.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import js

from pyrt.browser.proxies import ProxyOwner
from pyrt.ports.services import PageEvents

__all__ = ["PageWatcher"]


class PageWatcher:
    """Reports the page's events to ``events`` from creation until :meth:`stop`. When the page
    is already hidden, ``page_backgrounded`` is reported at once."""

    def __init__(self, events: PageEvents) -> None:
        self._owner = ProxyOwner()
        self._listeners: list[tuple[Any, str, Any]] = []
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

    def stop(self) -> None:
        """Stop listening and destroy every proxy (stopping twice does nothing)."""
        for where, name, proxy in self._listeners:
            where.removeEventListener(name, proxy)
        self._listeners.clear()
        self._owner.destroy_all()
