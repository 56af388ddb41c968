"""The ASGI application: ``create_app(broker=..., settings=...)`` returns a Starlette app serving pyrt.

Mount it anywhere (``Mount("/rt", app=create_app())``); paths are relative to the mount point.
It starts its broker on the first request or at lifespan startup, whichever comes first. On
shutdown, ``await app.runtime.drain()`` closes every client with 1001 before the server stops
(``serve.py`` does this on SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from pyrt.server.admin import Admin
from pyrt.server.application import Handler, echo_handler
from pyrt.server.assets import asset_routes
from pyrt.server.brokers.base import Broker
from pyrt.server.brokers.memory import MemoryBroker
from pyrt.server.csp import SecurityHeaders
from pyrt.server.demo import demo_channel_policy, demo_routes, recording_handler, run_feed
from pyrt.server.history_endpoint import HistoryEndpoint
from pyrt.server.hosts import HostGuard
from pyrt.server.http_binding import HttpBinding
from pyrt.server.metrics import StatsCollector, metrics_endpoint
from pyrt.server.protocol_handler import WebSocketEndpoint, admit_websocket
from pyrt.server.publish_endpoint import PublishEndpoint
from pyrt.server.runtime import (
    ChannelPolicy,
    PresenceInfo,
    Runtime,
    default_channel_policy,
    default_presence_info,
)
from pyrt.server.settings import Settings
from pyrt.server.sse_endpoint import SSEEndpoint
from pyrt.server.uvicorn_private import text_writer_of, transport_of
from pyrt.server.wheels import wheel_routes

__all__ = ["ENDPOINT_OFF", "EndpointOff", "PyrtApp", "create_app"]


class EchoEndpoint:
    """``/echo`` (only with ``Settings.echo``): every text or binary frame goes back unchanged.

    The handshake is checked like ``/ws`` (Origin, per-address cap, token); frames are bounded by
    the message size limit, and the server stops reading from a client that does not read its
    echoes (``serve.py``'s protocol), so it holds no more than one socket buffer for it.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket" or (await receive())["type"] != "websocket.connect":
            return
        admitted = await admit_websocket(self.rt, scope, send)
        if admitted is None:
            return
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") is not None:
                    await send({"type": "websocket.send", "text": message["text"]})
                elif message.get("bytes") is not None:
                    await send({"type": "websocket.send", "bytes": message["bytes"]})
        except OSError:  # the client went away mid-send
            return
        finally:
            self.rt.cap.release(admitted[0])


#: The close code of a WebSocket endpoint this server does not offer (application "don't retry").
ENDPOINT_OFF = 4404


class EndpointOff:
    """A WebSocket endpoint the server was started without (``/echo`` without ``--echo``): the
    handshake is accepted only to close at once with :data:`ENDPOINT_OFF` and a reason that names
    the option. A refused handshake reaches a browser as a bare 1006 and a client would retry it;
    a close reason reaches every client, and 4404 is one pyrt's clients do not retry.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket" or (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": ENDPOINT_OFF, "reason": self.reason})


DEMO_CONTROLS = ("drop", "stall", "block", "received")  # /demo/NAME with --demo (pyrt.server.demo)


async def _demo_off(request: Request) -> Response:
    """``/demo/*`` on a server started without ``--demo``: not here, and how to turn it on."""
    return PlainTextResponse("the demo controls are off: start serve.py with --demo", status_code=404)


class PyrtApp(Starlette):
    """A Starlette app that owns a :class:`Runtime` (``app.runtime``)."""

    runtime: Runtime

    def __init__(self, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runtime = runtime
        self._start_lock: asyncio.Lock | None = None
        self._ready = False

    async def ensure_started(self) -> None:
        """Start the broker and background tasks once (safe to call concurrently)."""
        if self._ready:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._ready:
                return
            runtime = self.runtime
            await runtime.start()
            settings = runtime.settings
            if settings.demo and settings.demo_tick > 0:
                feed = run_feed(runtime.broker, settings.demo_tick)
                runtime.add_task(asyncio.get_running_loop().create_task(feed))
            self._ready = True

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            # The socket, when the ASGI server exposes it, lets /demo/drop and slow-consumer
            # handling abort a connection without a close frame (uvicorn does).
            transport = transport_of(send)
            if transport is not None:
                scope["pyrt.transport"] = transport
            direct = text_writer_of(send) if scope["type"] == "websocket" else None
            if direct is not None:
                scope["pyrt.direct"] = direct  # serve.py's protocol: a send path with no task
            elif scope["type"] == "http":
                scope["pyrt.send"] = send  # the server's own send: SSE streams write around ASGI
            if not self._ready:
                await self.ensure_started()
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    broker: Broker | None = None,
    handler: Handler | None = None,
    channel_policy: ChannelPolicy | None = None,
    presence_info: PresenceInfo | None = None,
) -> PyrtApp:
    """Build the server app.

    ``broker`` defaults to a :class:`MemoryBroker` bounded by ``settings`` (retention, history
    bytes, channels, TTL, dedup); pass a ``RedisBroker`` to share channels between instances.
    ``handler`` is the application for
    ``message`` frames (default :func:`echo_handler`); ``channel_policy(channel, subject, action)``
    decides who may subscribe, publish or join presence where (after the token's capabilities);
    ``presence_info(channel, subject, info)`` decides what others see of a member who joins
    with ``info`` (default: ``info`` itself; raise ``HandlerError`` to refuse the join).
    """
    settings = settings or Settings()
    broker = broker or MemoryBroker(
        settings.retention,
        settings.dedup_ttl,
        settings.dedup_max,
        history_bytes=settings.history_bytes,
        max_channels=settings.max_channels,
        history_ttl=settings.history_ttl,
        dedup_per_identity=settings.dedup_per_identity,
        presence_ttl=settings.presence_ttl,
        presence_grace=settings.presence_grace,
        max_presence_total=settings.max_presence_total,
    )
    app_handler = handler or echo_handler
    policy = channel_policy or default_channel_policy
    if settings.demo:
        app_handler = recording_handler(app_handler, broker)
        policy = demo_channel_policy(policy)
    runtime = Runtime(settings, broker, app_handler, policy, presence_info or default_presence_info)

    registry = CollectorRegistry()
    queues = lambda: [conn.buffered_bytes for conn in list(runtime.connections)]  # noqa: E731
    registry.register(StatsCollector(runtime.stats, lambda: broker.kind, runtime.histograms, queues))
    ProcessCollector(registry=registry)

    async def healthz(request: Request) -> Response:
        if runtime.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        if not await broker.healthy():
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok", "demo": settings.demo})

    publish = PublishEndpoint(runtime)
    sse = SSEEndpoint(runtime)
    admin = Admin(runtime)
    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/metrics", metrics_endpoint(registry)),
        WebSocketRoute("/ws", WebSocketEndpoint(runtime)),
        Route("/ws", HttpBinding(runtime), methods=["GET", "HEAD", "POST", "OPTIONS"]),
        Route("/sse", sse, methods=["GET", "HEAD", "OPTIONS"]),
        Route("/publish", publish.__call__, methods=["POST", "OPTIONS"]),
        Route("/history", HistoryEndpoint(runtime).__call__, methods=["GET", "OPTIONS"]),
        Route("/admin/trace", admin.trace, methods=["GET"]),
        Route("/admin/connections", admin.connections, methods=["GET"]),
    ]
    if settings.echo:
        routes.append(WebSocketRoute("/echo", EchoEndpoint(runtime)))
    else:
        routes.append(WebSocketRoute("/echo", EndpointOff("/echo is off: start serve.py with --echo")))
    if settings.demo:
        routes.extend(demo_routes(runtime))
    else:
        routes.extend(Route(f"/demo/{name}", _demo_off, methods=["GET", "POST"]) for name in DEMO_CONTROLS)
    routes.extend(wheel_routes(settings))
    routes.extend(asset_routes(settings))
    connect = (*settings.allowed_origins, *settings.connect_src)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        assert isinstance(app, PyrtApp)
        await app.ensure_started()
        try:
            yield
        finally:
            await runtime.stop()

    return PyrtApp(
        runtime,
        routes=routes,
        middleware=[
            Middleware(HostGuard, allowed=settings.allowed_hosts),
            Middleware(SecurityHeaders, connect=connect),
        ],
        lifespan=lifespan,
    )
