"""A streamed HTTP response's direct way out under uvicorn's httptools protocol (SSE streams).

Body chunks are written straight to the socket with the chunked transfer encoding uvicorn chose,
with no task, ASGI message or wrapper per chunk (:class:`pyrt.server.connection.Connection` calls
it at the end of a turn of the event loop). Only for uvicorn's httptools protocol, whose response
state it reads: any other server (or protocol) gets ``None`` and the ASGI ``send`` path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["ChunkWriter", "chunk_writer"]


class ChunkWriter:
    """Writes body chunks of one streamed response; ``compress`` (the stream's gzip encoder, when
    it has one) encodes each chunk first, so every chunk of the stream goes through it in order."""

    __slots__ = ("_compress", "_cycle")

    def __init__(self, cycle: Any, compress: Callable[[bytes], bytes] | None) -> None:
        self._cycle = cycle
        self._compress = compress

    def pyrt_ready(self) -> bool:
        """Whether a chunk can go now: the response started chunked, is not complete, the
        client is still there and the socket's buffer is under its high-water mark."""
        cycle = self._cycle
        return bool(
            cycle.response_started
            and cycle.chunked_encoding
            and not cycle.response_complete
            and not cycle.disconnected
            and not cycle.flow.write_paused
            and not cycle.transport.is_closing()
        )

    def pyrt_send_body(self, body: bytes) -> None:
        if self._compress is not None:
            body = self._compress(body)
        if body:
            self._cycle.transport.write(b"%x\r\n%b\r\n" % (len(body), body))


def chunk_writer(send: Any, compress: Callable[[bytes], bytes] | None = None) -> ChunkWriter | None:
    """The :class:`ChunkWriter` of the response ``send`` (the server's own ASGI send) belongs
    to; ``None`` unless it is uvicorn's httptools protocol."""
    try:
        from uvicorn.protocols.http.httptools_impl import RequestResponseCycle
    except ImportError:  # no httptools: another server's send path
        return None
    cycle = getattr(send, "__self__", None)
    return ChunkWriter(cycle, compress) if isinstance(cycle, RequestResponseCycle) else None
