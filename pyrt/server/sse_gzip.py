"""gzip for Server-Sent Events: an ASGI ``send`` wrapper that compresses a streamed response.

Every body chunk is compressed and flushed at once (``Z_SYNC_FLUSH``), so the client can decode
each event as soon as it arrives; the stream ends with the gzip trailer. The compressor uses a
small window and little memory (about 6 KiB per stream), because an SSE server holds many idle
streams: SSE text (JSON with repeated keys) still shrinks several times.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["GzipStream", "accepts_gzip", "gzip_send"]

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

_WINDOW_BITS = 10  # 1 KiB history
_MEM_LEVEL = 2


def accepts_gzip(accept_encoding: str | None) -> bool:
    """True when an ``Accept-Encoding`` header value admits gzip (``q=0`` refuses it)."""
    if not accept_encoding:
        return False
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            return True
    return False


class GzipStream:
    """An ASGI ``send`` that gzip-encodes the response it carries (headers adjusted).

    :meth:`compress` encodes a body chunk with the same compressor, for a writer that bypasses
    ``send`` (``serve.py``'s direct path): every chunk of one stream must go through it, in order.
    """

    __slots__ = ("_compressor", "_send")

    def __init__(self, send: Send) -> None:
        self._send = send
        self._compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + _WINDOW_BITS, _MEM_LEVEL)

    def compress(self, body: bytes, more: bool = True) -> bytes:
        """``body`` compressed and flushed (the gzip trailer when ``more`` is false)."""
        compressor = self._compressor
        return compressor.compress(body) + compressor.flush(zlib.Z_SYNC_FLUSH if more else zlib.Z_FINISH)

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            headers = [
                (name, value)
                for name, value in message.get("headers", [])
                if name.lower() != b"content-length"
            ]
            headers += [(b"content-encoding", b"gzip"), (b"vary", b"Accept-Encoding")]
            await self._send({**message, "headers": headers})
        elif kind == "http.response.body":
            more = message.get("more_body", False)
            await self._send({**message, "body": self.compress(message.get("body", b""), more)})
        else:
            await self._send(message)


def gzip_send(send: Send) -> GzipStream:
    """Wrap ``send`` so the response it carries is gzip-encoded (headers adjusted)."""
    return GzipStream(send)
