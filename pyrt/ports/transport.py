"""What a :class:`~pyrt.WebSocketClient` needs of a socket: open one, send on it, close it.

A transport opens one native socket at a time and reports its events, nothing more; the page,
storage, timers and sharing are the runtime's services (:mod:`pyrt.ports.services`). The browser
transport wraps ``js.WebSocket`` (:mod:`pyrt.browser.ws_transport`), the CPython one the
``websockets`` library (:mod:`pyrt.cpython.ws_transport`), and :class:`pyrt.testing.FakeTransport`
is an in-memory one. :mod:`pyrt.aio.runtime` picks the default. Typing only: nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pyrt.wire.types import Frame

__all__ = ["SocketEvents", "Transport"]


class SocketEvents(Protocol):
    """Where a transport reports the events of the socket it opened."""

    def socket_opened(self) -> None: ...

    def socket_message(self, data: Frame) -> None: ...

    def socket_closed(self, code: int, reason: str, was_clean: bool) -> None: ...


class Transport(Protocol):
    """One native socket at a time.

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

    def dispose(self) -> None: ...
