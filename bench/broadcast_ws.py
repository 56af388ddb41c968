"""A minimal broadcast server written directly on the ``websockets`` library (fan-out baseline).

It does the least a broadcast server can: every text frame on ``/pub`` goes, encoded once
(``websockets.broadcast``), to every connection on ``/sub``, and as one SSE event to every
``GET /sse`` stream (a second listener on plain asyncio streams, since ``websockets`` speaks no
SSE). No offsets, no replay, no acks, no auth, no limits: that is the point of the comparison.

Run: ``python -m bench.broadcast_ws``; it prints
``broadcast-server listening on http://127.0.0.1:WS_PORT sse=http://127.0.0.1:SSE_PORT``.
"""

from __future__ import annotations

import asyncio
import contextlib

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

READY_PREFIX = "broadcast-server listening on "

subscribers: set[ServerConnection] = set()
streams: set[asyncio.StreamWriter] = set()


async def ws_handler(ws: ServerConnection) -> None:
    assert ws.request is not None
    try:
        if ws.request.path.startswith("/sub"):
            subscribers.add(ws)
            await ws.wait_closed()
        elif ws.request.path.startswith("/pub"):
            async for message in ws:
                broadcast(subscribers, message)
                if streams:
                    text = message if isinstance(message, str) else message.decode()
                    event = b"data: " + text.encode() + b"\n\n"
                    for writer in list(streams):
                        writer.write(event)
    except ConnectionClosed:
        pass
    finally:
        subscribers.discard(ws)


async def sse_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Connection: keep-alive\r\n\r\nretry: 1000\n\n"
        )
        streams.add(writer)
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the client goes away
    streams.discard(writer)
    writer.close()


async def main_async() -> None:
    async with serve(
        ws_handler, "127.0.0.1", 0, compression=None, ping_interval=None, max_queue=None, backlog=2048
    ) as ws_server:
        sse_server = await asyncio.start_server(sse_handler, "127.0.0.1", 0, backlog=2048)
        ws_port = next(iter(ws_server.sockets)).getsockname()[1]
        sse_port = sse_server.sockets[0].getsockname()[1]
        print(f"{READY_PREFIX}http://127.0.0.1:{ws_port} sse=http://127.0.0.1:{sse_port}", flush=True)
        await asyncio.Future()


def main() -> None:
    from bench.loadgen import run

    with contextlib.suppress(KeyboardInterrupt):
        run(main_async())


if __name__ == "__main__":
    main()
