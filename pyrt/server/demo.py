"""Demo mode (``--demo``, off unless asked for): the live feed, connection-breaking controls, and
what the app received.

- ``POST /demo/drop`` ``{"session": SID}`` or ``{"cid": CID}``: abort matching connections without
  a close frame (the browser sees 1006). Answers ``{"dropped": N}``.
- ``POST /demo/stall`` ``{... , "seconds": N}``: stop answering them for N seconds (half-open).
- ``POST /demo/block`` ``{"cid": CID, "seconds": N}``: refuse the WebSocket upgrades of client
  ``CID`` from the caller's address for N seconds (``0`` lifts the block), as a network that
  blocks WebSockets would, and abort its open WebSocket connections: the client moves to the
  HTTP binding, and back once the block is lifted. Answers ``{"blocked": N, "dropped": N}``.
- ``GET /demo/received?cid=CID`` (or ``session=SID``): the ``message`` frames the application
  handled for that client, in order, once per id: ``{"messages": [{"id": ID, "data": D}, ...]}``.
  They are kept in the broker channel ``_received.<cid or session>``, so with Redis every instance
  sees the same list; that channel is private (no client may subscribe to it), and each record
  is shown only to callers from the address that sent it.
- The ``feed`` channel gets ``tick`` events every ``demo_tick`` seconds, an ``update`` every third
  tick and a ``notification`` every fifth; only the server publishes there. The chat room is the
  ``chat`` channel (plain pub/sub).

The controls act on the connections of the instance that receives the request, and only on those
opened from the caller's own address. Demo mode refuses to run with authentication (see
:class:`~pyrt.server.settings.Settings`): there are no users to tell apart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from pyrt.server.application import Handler, IncomingMessage
from pyrt.server.auth import origin_allowed
from pyrt.server.brokers.base import Broker, BrokerError
from pyrt.server.offsets import ZERO, is_channel_name
from pyrt.server.protocol_handler import client_ip
from pyrt.server.publish_endpoint import BadRequest, read_json_body
from pyrt.server.runtime import ChannelPolicy, Runtime
from pyrt.wire import binary

__all__ = [
    "FEED_CHANNEL",
    "demo_channel_policy",
    "demo_routes",
    "received_channel",
    "recording_handler",
    "run_feed",
]

log = logging.getLogger("pyrt.server")

FEED_CHANNEL = "feed"
RECEIVED_PREFIX = "_received."
RECEIVED_RETENTION = 10_000
_NOTIFICATIONS = [
    ("info", "Someone joined the chat"),
    ("success", "Backup finished"),
    ("warning", "Disk 80% full"),
    ("info", "New version available"),
]


def received_channel(key: str) -> str | None:
    """The channel recording what the application received from client ``key`` (cid or session)."""
    name = f"{RECEIVED_PREFIX}{key}"
    return name if is_channel_name(name) else None


def demo_channel_policy(inner: ChannelPolicy) -> ChannelPolicy:
    """``inner``, plus: nobody subscribes to the private ``_received.*`` records, and only the
    server publishes into ``feed``."""

    def policy(channel: str, subject: str | None, action: str) -> bool:
        if channel.startswith(RECEIVED_PREFIX) or (channel == FEED_CHANNEL and action == "publish"):
            return False
        return inner(channel, subject, action)

    return policy


def recording_handler(inner: Handler, broker: Broker) -> Handler:
    """Wrap ``inner`` so every message it handles is also recorded for ``/demo/received``."""

    async def handler(message: IncomingMessage) -> Any:
        result = await inner(message)
        channel = received_channel(message.cid or message.session)
        if channel is not None:
            entry = {"id": message.id, "data": binary.json_form(message.data), "from": message.address}
            record = json.dumps(entry, separators=(",", ":"), ensure_ascii=False)
            await broker.publish(channel, "received", record, retention=RECEIVED_RETENTION)
        return result

    return handler


async def run_feed(broker: Broker, interval: float) -> None:
    """Publish the demo feed forever (cancel to stop)."""
    n = 0
    while True:
        await asyncio.sleep(interval)
        n += 1
        events: list[tuple[str, dict[str, Any]]] = [("tick", {"n": n, "time": time.time()})]
        if n % 3 == 0:
            events.append(("update", {"n": n, "item": f"build #{n // 3}", "progress": (n * 7) % 101}))
        if n % 5 == 0:
            level, text = _NOTIFICATIONS[(n // 5) % len(_NOTIFICATIONS)]
            events.append(("notification", {"n": n, "level": level, "text": text}))
        for event, data in events:
            try:
                await broker.publish(FEED_CHANNEL, event, json.dumps(data, separators=(",", ":")))
            except BrokerError as exc:
                log.warning("demo feed: %s", exc)


def demo_routes(runtime: Runtime) -> list[BaseRoute]:
    """``/demo/drop``, ``/demo/stall``, ``/demo/block`` and ``/demo/received``."""

    async def selected(request: Request) -> tuple[dict[str, Any], list[Any]]:
        if not origin_allowed(request.scope, runtime.settings.allowed_origins):
            raise BadRequest(403, "origin not allowed")
        body = await read_json_body(request, 64 * 1024)
        if not isinstance(body, dict):
            raise BadRequest(400, "the body must be a JSON object")
        session, cid = body.get("session"), body.get("cid")
        if not isinstance(session, str) and not isinstance(cid, str):
            raise BadRequest(400, 'name the connections: {"session": SID} or {"cid": CID}')
        caller = client_ip(request.scope)
        connections = runtime.select(
            session if isinstance(session, str) else None, cid if isinstance(cid, str) else None
        )
        return body, [conn for conn in connections if conn.client_ip == caller]

    async def drop(request: Request) -> Response:
        try:
            _, connections = await selected(request)
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except ClientDisconnect:
            return Response(status_code=400)
        for conn in connections:
            runtime.stats.drop("demo")
            conn.abort()
        return JSONResponse({"dropped": len(connections)})

    async def stall(request: Request) -> Response:
        try:
            body, connections = await selected(request)
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except ClientDisconnect:
            return Response(status_code=400)
        seconds = body.get("seconds", 5)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= 3600:
            return JSONResponse({"error": "seconds must be a number from 0 to 3600"}, status_code=400)
        for conn in connections:
            conn.stall(float(seconds))
        return JSONResponse({"stalled": len(connections)})

    async def block(request: Request) -> Response:
        try:
            body, connections = await selected(request)
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except ClientDisconnect:
            return Response(status_code=400)
        cid, seconds = body.get("cid"), body.get("seconds", 60)
        if not isinstance(cid, str):
            return JSONResponse({"error": 'name the client: {"cid": CID}'}, status_code=400)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= 3600:
            return JSONResponse({"error": "seconds must be a number from 0 to 3600"}, status_code=400)
        runtime.block_upgrades(client_ip(request.scope), cid, float(seconds))
        dropped = [conn for conn in connections if conn.kind == "ws"] if seconds > 0 else []
        for conn in dropped:
            runtime.stats.drop("demo")
            conn.abort()
        return JSONResponse({"blocked": seconds, "dropped": len(dropped)})

    async def received(request: Request) -> Response:
        key = request.query_params.get("cid") or request.query_params.get("session")
        channel = received_channel(key) if key else None
        if channel is None:
            return JSONResponse({"error": "give ?cid=CID or ?session=SID"}, status_code=400)
        try:
            history = await runtime.broker.history(channel, ZERO)
        except BrokerError:
            return JSONResponse({"error": "temporarily unavailable"}, status_code=503)
        caller = client_ip(request.scope)
        records = (json.loads(p.data_json) for p in history.publications)
        messages = [{"id": r["id"], "data": r["data"]} for r in records if r.get("from") == caller]
        return JSONResponse({"messages": messages})

    return [
        Route("/demo/drop", drop, methods=["POST"]),
        Route("/demo/stall", stall, methods=["POST"]),
        Route("/demo/block", block, methods=["POST"]),
        Route("/demo/received", received, methods=["GET"]),
    ]
