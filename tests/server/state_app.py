"""A small application on pyrt's server, for the state-then-stream tests (run as a script).

It keeps a counter: every ``message`` ``{"add": N}`` adds N and publishes N into the ``counter``
channel, under one lock, so the state and the offset of the last publication it holds always go
together; ``GET /state`` returns both: ``{"total": T, "count": C, "offset": O}``. This is the
application's half of the pattern docs/protocol.md ("State then stream") describes.

``python tests/server/state_app.py --host 127.0.0.1 --port 0 [--retention N]`` prints
``pyrt-serve listening on URL`` once it listens, as ``serve.py`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from pyrt.server import Settings, create_app
from pyrt.server.application import HandlerError, IncomingMessage
from pyrt.server.brokers.memory import MemoryBroker

CHANNEL = "counter"


def build(retention: int) -> Starlette:
    settings = Settings(retention=retention)
    broker = MemoryBroker(retention)
    lock = asyncio.Lock()
    state: dict[str, Any] = {"total": 0, "count": 0, "offset": "0"}

    async def on_message(message: IncomingMessage) -> Any:
        add = message.data.get("add") if isinstance(message.data, dict) else None
        if not isinstance(add, int) or isinstance(add, bool):
            raise HandlerError('send {"add": N}')
        async with lock:  # the change and its publication, one at a time: offsets follow the state
            offset, _ = await broker.publish(CHANNEL, "add", json.dumps(add))
            state["total"] += add
            state["count"] += 1
            state["offset"] = offset
        return {"offset": offset}

    async def snapshot(request: Request) -> Response:
        async with lock:
            return JSONResponse(dict(state))

    realtime = create_app(settings, broker=broker, handler=on_message)
    return Starlette(routes=[Route("/state", snapshot), Mount("/", app=realtime)])


async def serve(host: str, port: int, retention: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(build(retention), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    print(f"pyrt-serve listening on http://{host}:{sock.getsockname()[1]}", flush=True)
    await serving


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--retention", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.retention))


if __name__ == "__main__":
    main()
