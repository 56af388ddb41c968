"""One client at the per-address connection cap, attacking a server: a process of its own, so
that its CPU is not the victim's (``python -m tests.server.attacker MODE HTTP_URL CONNECTIONS``).

It opens the connections (each makes one attack step first, so they are all established), prints
``ready``, then attacks while told ``go`` (a line on stdin) and rests when told ``stop``; after
``stop`` it prints ``stopped`` once every connection has finished the step it was in. ``quit``
ends it. Every step waits for the server's answer: the attacker goes as fast as the server lets
it, and its own CPU stays small.

Modes (the rows of the security review): ``redaction`` (31 KB request lines of keywords),
``trailers`` (chunked bodies with trailer fields: refused, so it reconnects), ``origin`` (an
``Origin`` that is not a URL), ``deflate`` (1 KB frames inflating to 1 MB: refused, so it
reconnects), ``presence`` (join and leave with a 480-character info), ``channels`` (subscribe
to a new channel, unsubscribe, again), ``pings`` (pyrt pings).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable

import websockets

KEYS_LINE = b"GET /anything?" + b"key" * 10_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
ORIGIN_LINE = b"GET /history?channel=c HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://[\r\n\r\n"
TRAILERS = (
    b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b'Transfer-Encoding: chunked\r\n\r\n1f\r\n{"channel":"trailers","data":1}\r\n0\r\nX-Pad: '
    + b"a" * 8000
    + b"\r\n\r\n"
)
CHANNEL = "attacked"  # the presence mode churns here: the victim follows it


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    """One HTTP answer (its status line), read whole."""
    status = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return status


class Http:
    """A keep-alive HTTP connection (re-opened when the server closes it)."""

    def __init__(self, host: str, port: int, request: bytes) -> None:
        self.host, self.port, self.request = host, port, request
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def step(self) -> None:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        try:
            writer.write(self.request)
            await writer.drain()
            status = await read_answer(reader)
            if not status or b"connection: close" in status.lower():
                raise ConnectionError
        except (OSError, asyncio.IncompleteReadError):
            writer.transport.abort()
            self.streams = None


class Ws:
    """A WebSocket connection doing one mode's step (re-opened when the server closes it)."""

    def __init__(self, url: str, mode: str, n: int) -> None:
        self.url, self.mode, self.n = url, mode, n
        self.ws: websockets.ClientConnection | None = None
        self.count = 0

    async def step(self) -> None:
        self.count += 1
        try:
            if self.ws is None:
                compression = "deflate" if self.mode == "deflate" else None
                self.ws = await websockets.connect(
                    self.url,
                    subprotocols=["pyrt.v1"],
                    compression=compression,
                    max_queue=None,
                    ping_interval=None,  # type: ignore[list-item]
                )
                await self.ws.recv()  # welcome
            await getattr(self, self.mode)(self.ws)
        except (TimeoutError, OSError, websockets.ConnectionClosed):
            if self.ws is not None:
                self.ws.transport.abort()
            self.ws = None

    async def ask(self, ws: websockets.ClientConnection, frame: dict[str, object]) -> None:
        """Send ``frame`` (with an id) and read until the answer naming it."""
        frame_id = f"a{self.count}"
        await ws.send(json.dumps({**frame, "id": frame_id}))
        while json.loads(await asyncio.wait_for(ws.recv(), 30)).get("id") != frame_id:
            pass

    async def deflate(self, ws: websockets.ClientConnection) -> None:
        ws.protocol.send_text(json.dumps({"type": "pong", "pad": "y" * 1_000_000}).encode())
        ws.transport.write(b"".join(ws.protocol.data_to_send()))
        await asyncio.wait_for(ws.recv(), 30)  # closed: refused

    async def presence(self, ws: websockets.ClientConnection) -> None:
        if self.count % 2:
            await self.ask(ws, {"type": "presence_join", "channel": CHANNEL, "info": "i" * 480})
        else:
            await self.ask(ws, {"type": "presence_leave", "channel": CHANNEL})

    async def channels(self, ws: websockets.ClientConnection) -> None:
        channel = f"churn-{self.n}-{self.count}"
        await ws.send(json.dumps({"type": "subscribe", "channel": channel}))
        while json.loads(await asyncio.wait_for(ws.recv(), 30)).get("channel") != channel:
            pass
        await ws.send(json.dumps({"type": "unsubscribe", "channel": channel}))
        while json.loads(await asyncio.wait_for(ws.recv(), 30)).get("type") != "unsubscribed":
            pass

    async def pings(self, ws: websockets.ClientConnection) -> None:
        await ws.send(json.dumps({"type": "ping", "t": self.count}))
        while json.loads(await asyncio.wait_for(ws.recv(), 30)).get("type") != "pong":
            pass


async def main(mode: str, url: str, connections: int) -> None:
    host, port = url.split("//", 1)[1].split(":")
    steps: list[Callable[[], Awaitable[None]]] = []
    for n in range(connections):
        if mode in ("redaction", "trailers", "origin"):
            request = {"redaction": KEYS_LINE, "trailers": TRAILERS, "origin": ORIGIN_LINE}[mode]
            steps.append(Http(host, int(port), request).step)
        else:
            steps.append(Ws("ws://" + url.split("//", 1)[1] + "/ws", mode, n).step)
    go = asyncio.Event()
    idle = asyncio.Event()  # no connection is in the middle of a step
    idle.set()
    opened = 0
    all_open = asyncio.Event()
    busy = 0

    async def run(step: Callable[[], Awaitable[None]]) -> None:
        nonlocal busy, opened
        await step()  # opened (and one step made) before "ready"
        opened += 1
        if opened == len(steps):
            all_open.set()
        while True:
            await go.wait()
            busy += 1
            idle.clear()
            try:
                await step()
            finally:
                busy -= 1
                if not busy:
                    idle.set()

    tasks = [asyncio.ensure_future(run(step)) for step in steps]
    await all_open.wait()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    while True:
        command = (await reader.readline()).decode().strip()
        if command == "go":
            go.set()
            print("going", flush=True)
        elif command == "stop":
            go.clear()
            await idle.wait()
            print("stopped", flush=True)
        else:
            for task in tasks:
                task.cancel()
            return


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
