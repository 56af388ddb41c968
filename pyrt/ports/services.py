"""What a client needs from the runtime besides its socket: the page, storage, timers, sharing.

A transport (:mod:`pyrt.ports.transport`, :mod:`pyrt.ports.sse_transport`) carries one
connection; everything else a client asks of the place it runs in is one :class:`Services`
object:

- the page's events (``online``, ``visibilitychange``, ``pagehide``/``pageshow``) for
  :meth:`Services.watch_page`;
- the record store ``persist=`` uses by default (:meth:`Services.record_store`);
- the client's one timer (:meth:`Services.timers`), which a browser must arm so that hidden
  tabs do not throttle it;
- the lock and channel of a share group, for ``share=`` (:meth:`Services.share_channel`);
- small remembered facts (:meth:`Services.preferences`): which transport works for an origin.

:class:`pyrt.browser.services.BrowserServices` is the browser's (``document``/``globalThis``
listeners, ``localStorage`` or IndexedDB, ``setTimeout`` armed from a message task, Web Locks
and ``BroadcastChannel``), :class:`pyrt.cpython.services.CPythonServices` CPython's (no page,
files, the loop's ``call_later``, no sharing) and :class:`pyrt.testing.FakeServices` an
in-memory one whose page a test moves by hand. :mod:`pyrt.aio.runtime` picks the default; a
client takes ``services=`` to choose. A transport may carry the services it belongs with as its
``services`` attribute (the fakes of :mod:`pyrt.testing` do, so that
``WebSocketClient(url, transport=FakeTransport(server))`` needs nothing else); a client given no
``services=`` uses those, else the runtime's. Typing only: nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import asyncio

    from pyrt.persist.records import RecordStore
    from pyrt.share.channel import ShareChannel

__all__ = ["Cancellable", "PageEvents", "Preferences", "Services", "Timers", "Watching"]


class PageEvents(Protocol):
    """Where the page's events go (in a browser; elsewhere there are none).

    Every client implements all five and ignores what does not concern it.
    """

    def page_online(self) -> None:
        """The ``online`` event: the network is back."""

    def page_visible(self) -> None:
        """``visibilitychange`` to visible."""

    def page_backgrounded(self) -> None:
        """``visibilitychange`` to hidden (a background tab); also reported at once when the
        page is already hidden as the watching starts."""

    def page_hidden(self) -> None:
        """``pagehide``: the page is going away (unloaded, or into the back/forward cache)."""

    def page_shown(self) -> None:
        """``pageshow`` from the back/forward cache: the page is back."""


class Watching(Protocol):
    """One watcher of the page: :meth:`stop` ends its reports (and releases what it holds)."""

    def stop(self) -> None: ...


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Timers(Protocol):
    """One client's timer: ``call_later`` as the event loop's; nothing fires after :meth:`dispose`."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable: ...

    def dispose(self) -> None: ...


class Preferences(Protocol):
    """A few strings kept across page loads (or processes): ``get`` and ``set`` (``None``
    removes). Best effort: where nothing can be kept, a write is lost, never an error."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str | None) -> None: ...


class Services(Protocol):
    """The runtime around the clients (see the module docstring).

    Contract: each call of :meth:`watch_page`, :meth:`timers` and :meth:`share_channel` makes a
    new object owned by its caller, who ends it (:meth:`Watching.stop`, :meth:`Timers.dispose`,
    :meth:`~pyrt.share.channel.ShareChannel.dispose`); one services object serves any number of
    clients.
    """

    def watch_page(self, events: PageEvents) -> Watching:
        """Report the page's events to ``events`` until the returned watcher is stopped."""
        ...

    def record_store(self) -> RecordStore | None:
        """A new store where ``persist=`` state goes by default here (``None``: nowhere)."""
        ...

    def timers(self, loop: asyncio.AbstractEventLoop) -> Timers:
        """A new timer for one client running on ``loop``."""
        ...

    def share_channel(self, name: str) -> ShareChannel:
        """The lock and channel of share group ``name``; raises
        :class:`~pyrt.errors.ShareUnavailable`, saying why, where sharing cannot work."""
        ...

    def preferences(self) -> Preferences | None:
        """Where remembered facts go here (``None``: nowhere: nothing is remembered)."""
        ...
