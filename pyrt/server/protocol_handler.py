"""``GET /ws``: the pyrt protocol over WebSocket (docs/protocol.md).

:class:`WebSocketEndpoint` is a raw ASGI app: it checks Origin, the per-IP cap and the token,
accepts with subprotocol ``pyrt.v1.msgpack`` (the binary binding), ``pyrt.v1.batch`` or
``pyrt.v1``, the first of them the client offers, in that order; then a :class:`WsSession` drives the
connection's :class:`~pyrt.session.server.ServerSession`: it feeds it the frames one at a time,
in order, and carries out what it asks — frames through the connection's send queue, publications
and reads through the broker, messages through the application. Every decision is the session's
(the same class answers for :class:`pyrt.testing.FakePyrtServer`); this module only does I/O.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from pyrt.server.auth import (
    BATCH_SUBPROTOCOL,
    MSGPACK_SUBPROTOCOL,
    SUBPROTOCOL,
    TOKEN_EXPIRED,
    Claims,
    origin_allowed,
    request_token,
    verify_token,
)
from pyrt.server.connection import Connection
from pyrt.server.runtime import Runtime
from pyrt.server.session_driver import FrameSource, SessionDriver
from pyrt.wire import binary
from pyrt.wire.types import Frame

__all__ = [
    "WebSocketEndpoint",
    "admit_websocket",
    "client_ip",
    "expire_with_token",
    "query_param",
    "scope_transport",
]

log = logging.getLogger("pyrt.server")

_LARGE_ANSWER = 64 * 1024  # answers this large count against the client's identity budget


def client_ip(scope: Mapping[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def query_param(scope: dict[str, Any], name: str) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else None


def scope_transport(scope: dict[str, Any]) -> asyncio.Transport | None:
    transport = scope.get("pyrt.transport")
    return transport if isinstance(transport, asyncio.Transport) else None


class WebSocketEndpoint:
    """The ASGI app behind ``/ws``."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        rt = self.rt
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        admitted = await admit_websocket(rt, scope, send)
        if admitted is None:
            return
        ip, claims, wire = admitted
        binary = wire == "msgpack"
        try:
            conn = Connection(
                "ws",
                send,
                stats=rt.stats,
                limit_bytes=rt.settings.send_queue_bytes,
                session=rt.new_session(),
                cid=query_param(scope, "cid"),
                client_ip=ip,
                transport=scope_transport(scope),
                identity=rt.identity(claims.subject if claims else None, ip),
                batch=wire != "json",
                binary=binary,
                direct=None if binary else scope.get("pyrt.direct"),
                flusher=rt.flusher,
            )
            session = SessionDriver(rt, conn, claims, binary=binary)
            rt.register(conn, session)
            try:
                await session.run(websocket_frames(receive, session))
            finally:
                session.cleanup()
                rt.unregister(conn)
        finally:
            rt.cap.release(ip)


async def admit_websocket(
    rt: Runtime, scope: dict[str, Any], send: Any
) -> tuple[str, Claims | None, str] | None:
    """Check a WebSocket handshake (Origin, shutdown, per-address cap, token) and accept it.

    Returns the client's address, its token's claims and the binding it accepted: ``"msgpack"``
    (subprotocol ``pyrt.v1.msgpack``, binary frames, batched), ``"batch"`` (``pyrt.v1.batch``) or
    ``"json"`` (``pyrt.v1``, or none), preferred in that order; the caller must call
    ``rt.cap.release(address)`` when the connection ends. ``None``: refused (and answered).
    """
    settings = rt.settings
    if not origin_allowed(scope, settings.allowed_origins):
        rt.stats.rejected["origin"] += 1
        await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
        return None
    if rt.draining:  # come back later: to this address restarted, or another instance
        rt.stats.rejected["draining"] += 1
        await _deny(scope, send, 503, b"server shutting down", rt.retry_after_header())
        return None
    ip = client_ip(scope)
    if rt.upgrade_blocked(ip, query_param(scope, "cid")):  # the demo's "block WebSockets"
        rt.stats.rejected["blocked"] += 1
        await _deny(scope, send, 403, b"WebSockets are blocked for this client (demo)", None)
        return None
    if not rt.cap.acquire(ip):
        rt.stats.rejected["per_ip"] += 1
        await _deny(scope, send, 429, b"too many connections from your address", b"5")
        return None
    try:
        accept: dict[str, Any] = {"type": "websocket.accept"}
        offered = scope.get("subprotocols", ())
        wire = "json"
        if MSGPACK_SUBPROTOCOL in offered and binary.available():
            wire = "msgpack"
            accept["subprotocol"] = MSGPACK_SUBPROTOCOL
        elif BATCH_SUBPROTOCOL in offered:
            wire = "batch"
            accept["subprotocol"] = BATCH_SUBPROTOCOL
        elif SUBPROTOCOL in offered:
            accept["subprotocol"] = SUBPROTOCOL
        claims: Claims | None = None
        if settings.token_secret:
            claims = verify_token(settings.token_secret, request_token(scope, settings.allowed_origins))
            if claims is None:
                rt.stats.rejected["auth"] += 1
                await send(accept)
                reason = "missing, bad or expired token"
                await send({"type": "websocket.close", "code": 4401, "reason": reason})
                rt.cap.release(ip)
                return None
        await send(accept)
    except BaseException:
        rt.cap.release(ip)
        raise
    return ip, claims, wire


def expire_with_token(conn: Connection, claims: Claims | None) -> asyncio.TimerHandle | None:
    """Close ``conn`` when its token expires: 4001 for a WebSocket (the client reconnects with a
    fresh token), the end of the stream for SSE. Cancel the returned timer when ``conn`` ends."""
    if claims is None:
        return None
    delay = max(0.0, claims.expires - time.time())
    return asyncio.get_running_loop().call_later(
        delay, conn.close, TOKEN_EXPIRED, "token expired: reconnect with a fresh token"
    )


async def _deny(
    scope: dict[str, Any], send: Any, status: int, body: bytes, retry_after: bytes | None = None
) -> None:
    """Refuse a WebSocket handshake with an HTTP status (when the server supports it), else 403.
    ``retry_after``: the ``Retry-After`` header (whole seconds; CPython clients honour it,
    browsers never see the status)."""
    if "websocket.http.response" in scope.get("extensions", {}):
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        if retry_after is not None:
            headers.append((b"retry-after", retry_after))
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


def websocket_frames(receive: Any, session: SessionDriver) -> FrameSource:
    """The frames of a WebSocket (ASGI ``receive``): text as ``str``, binary as ``bytes``; ``None``
    when the client is gone (its close code tells whether it said goodbye)."""

    async def next_frame() -> Frame | None:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                closing = session.conn.closed
                session.protocol.clean_exit = message.get("code", 1006) in (1000, 1001) and not closing
                return None
            if kind == "websocket.receive":
                text = message.get("text")
                return text if text is not None else (message.get("bytes") or b"")

    return next_frame
