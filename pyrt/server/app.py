"""The ASGI application: ``create_app(settings)`` returns a Starlette app serving pyrt."""

from __future__ import annotations

import asyncio
import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from pyrt.server.assets import asset_routes
from pyrt.server.settings import Settings
from pyrt.server.wheels import wheel_routes

__all__ = ["create_app"]


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def echo(websocket: WebSocket) -> None:
    """Raw echo: every text or binary frame goes back unchanged."""
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            elif message.get("bytes") is not None:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        return


async def sse(request: Request) -> Response:
    """A short numbered event stream (the full channel stream is the broker's job)."""

    async def events() -> object:
        yield "retry: 1000\n\n"
        for n in range(1, 4):
            yield f"id: {n}\nevent: tick\ndata: {json.dumps({'n': n})}\n\n"
        while True:
            await asyncio.sleep(15)
            yield ": hb\n\n"

    return StreamingResponse(
        events(),  # type: ignore[arg-type]  # an async generator of str
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the server app. Mount it anywhere; all paths are relative to the mount point."""
    settings = settings or Settings()
    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        WebSocketRoute("/echo", echo),
        WebSocketRoute("/ws", echo),
        Route("/sse", sse),
        *wheel_routes(settings),
        *asset_routes(settings),
    ]
    return Starlette(routes=routes)
