"""How ``serve.py``'s protocols turn a request or a connection away, below the application: a
plain-text status written straight to the socket, a 429 answered as an ASGI app, a TCP reset."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Any

__all__ = ["reset", "status_response", "too_many_connections"]


def status_response(status: int, reason: str, text: str) -> bytes:
    """A whole ``connection: close`` response with ``text`` as its body."""
    body = text.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


async def too_many_connections(scope: Any, receive: Any, send: Any) -> None:
    """The application of every request of a connection over the per-address cap."""
    body = b"too many connections from your address"
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"retry-after", b"5"),  # when to come back (pyrt's CPython client honours it)
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def reset(transport: asyncio.BaseTransport) -> None:
    """Drop the connection with a TCP reset (``SO_LINGER`` 0: nothing the kernel still buffers
    for it is sent)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    else:
        transport.close()
