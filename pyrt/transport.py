"""What a :class:`~pyrt.aio.websocket.WebSocketClient` needs from the runtime it runs on.

A transport opens one native socket at a time and reports its events; it also watches the page
(online, visibility, pagehide/pageshow) and offers a storage for persistence. The browser
transport wraps ``js.WebSocket``; :class:`pyrt.testing.FakeTransport` is an in-memory one; a
CPython transport can wrap the ``websockets`` library. Typing only: nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pyrt.persist import Storage
from pyrt.wire import Frame

__all__ = ["PageEvents", "SocketEvents", "Transport"]



class SocketEvents(Protocol):
    """Where a transport reports the events of the socket it opened."""

    def socket_opened(self) -> None: ...

    def socket_message(self, data: Frame) -> None: ...

    def socket_closed(self, code: int, reason: str, was_clean: bool) -> None: ...


class PageEvents(Protocol):
    """Where a transport reports what happens to the page (browser only)."""

    def page_online(self) -> None: ...

    def page_visible(self) -> None: ...

    def page_hidden(self) -> None: ...

    def page_shown(self) -> None: ...


class Transport(Protocol):
    """One native socket at a time, plus the page around it.

    Contract: :meth:`open` replaces any previous socket (which was closed first); after
    :meth:`close` with ``detach=True`` or :meth:`dispose`, no event of that socket is reported.
    :meth:`send` is only called while the socket is open.
    """

    def open(self, url: str, protocols: Sequence[str], events: SocketEvents) -> None: ...

    def send(self, frame: Frame) -> None: ...

    def buffered_amount(self) -> int: ...

    def close(self, code: int, reason: str, detach: bool) -> None: ...

    def watch_page(self, events: PageEvents) -> None: ...

    def storage(self) -> Storage | None: ...

    def dispose(self) -> None: ...
