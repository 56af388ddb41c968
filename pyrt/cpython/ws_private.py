"""The internals of the ``websockets`` library that pyrt leans on, in one place.

:class:`~pyrt.cpython.ws_transport.CPythonTransport` behaves as ``js.WebSocket`` does: ``send()``
is synchronous and never waits, ``bufferedAmount`` is known, a dead connection can be dropped at
once. The asyncio API of ``websockets`` has no public way to do those, so this module reaches
under it — and nowhere else does:

- ``ClientConnection.protocol``: the sans-I/O ``ClientProtocol`` of the connection (its
  ``state``, ``send_text``/``send_binary``, ``close_rcvd``/``close_sent`` are public, the
  attribute is not);
- ``ClientConnection.send_data()``: writes what the protocol queued to the socket;
- ``ClientConnection.transport``: the asyncio transport (its write buffer size; ``abort()``).

``tests/server/test_cpython_ws_private.py::test_canary_*`` fails loudly, naming the missing
piece, when a ``websockets`` release moves any of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyrt.wire.types import Frame

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = ["abort", "closed_cleanly", "send_now", "write_buffer_size"]


def send_now(conn: ClientConnection, frame: Frame, open_state: Any) -> bool:
    """Put ``frame`` in the connection's write buffer at once. False (nothing sent) when the
    connection is no longer ``open_state`` (closing: the close event follows, as in a browser)."""
    protocol = conn.protocol
    if protocol.state is not open_state:
        return False
    if isinstance(frame, str):
        protocol.send_text(frame.encode())
    else:
        protocol.send_binary(frame)
    conn.send_data()
    return True


def write_buffer_size(conn: ClientConnection) -> int:
    """Bytes written but not yet sent: what a browser calls ``bufferedAmount``."""
    return int(conn.transport.get_write_buffer_size())


def closed_cleanly(conn: ClientConnection) -> bool:
    """True when both close frames were exchanged (a browser's ``wasClean``)."""
    protocol = conn.protocol
    return protocol.close_rcvd is not None and protocol.close_sent is not None


def abort(conn: ClientConnection) -> None:
    """Drop the TCP connection now, without a closing handshake."""
    conn.transport.abort()
