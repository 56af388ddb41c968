"""What a :class:`~pyrt.WebSocketClient` needs from the runtime it runs on, and the page events.

A transport opens one native socket at a time and reports its events; it also watches the page
(online, visibility, pagehide/pageshow) and offers a record store for ``persist=``. The browser
transport wraps ``js.WebSocket`` (:mod:`pyrt.browser.ws_transport`), the CPython one the
``websockets`` library (:mod:`pyrt.cpython.ws_transport`), and :class:`pyrt.testing.FakeTransport`
is an in-memory one. :mod:`pyrt.aio.runtime` picks the default. Typing only: nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pyrt.persist.records import RecordStore
    from pyrt.wire.types import Frame

__all__ = ["PageEvents", "SocketEvents", "Transport"]


class SocketEvents(Protocol):
    """Where a transport reports the events of the socket it opened."""

    def socket_opened(self) -> None: ...

    def socket_message(self, data: Frame) -> None: ...

    def socket_closed(self, code: int, reason: str, was_clean: bool) -> None: ...


class PageEvents(Protocol):
    """Where a transport reports what happens to the page (in a browser; elsewhere, nothing).

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


class Transport(Protocol):
    """One native socket at a time, plus the page around it.

    Contract: :meth:`open` replaces any previous socket (which was closed first); after
    :meth:`close` with ``detach=True`` or :meth:`dispose`, no event of that socket is reported.
    :meth:`send` is only called while the socket is open. :meth:`check_url` raises at once for a
    URL this runtime can never open (a relative one outside a browser).
    """

    def check_url(self, url: str) -> None: ...

    def open(self, url: str, protocols: Sequence[str], events: SocketEvents) -> None: ...

    def send(self, frame: Frame) -> None: ...

    def buffered_amount(self) -> int: ...

    def close(self, code: int, reason: str, detach: bool) -> None: ...

    def watch_page(self, events: PageEvents) -> None: ...

    def storage(self) -> RecordStore | None:
        """Where ``persist=`` state goes by default here (``None``: nowhere durable)."""
        ...

    def dispose(self) -> None: ...
