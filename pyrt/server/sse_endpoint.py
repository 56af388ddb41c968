"""``GET /sse?channel=C``: one channel's publications as Server-Sent Events, with resume.

``id:`` is the offset, ``event:`` the event type, ``data:`` the data as JSON, all written by
:func:`pyrt.wire.sse_encode.encode_event` (nothing in the data can start a field). The stream starts
with ``retry:``; comment heartbeats (``: hb``) keep proxies from closing it. Resume point: the
``Last-Event-ID`` header, else the ``lastEventId`` query parameter (``"0"``: all retained).
Streams are gzip-compressed for clients that accept it (:mod:`pyrt.server.sse_gzip`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from pyrt.server.auth import Claims, check_origin, header, origin_allowed, request_token, verify_token
from pyrt.server.brokers.base import BrokerError
from pyrt.server.chunk_writer import chunk_writer
from pyrt.server.connection import Connection
from pyrt.server.hub import Subscriber, TooManyChannels, replay
from pyrt.server.offsets import OffsetKey, is_channel_name, parse_offset
from pyrt.server.protocol_handler import client_ip, expire_with_token, query_param, scope_transport
from pyrt.server.runtime import Runtime
from pyrt.server.sse_gzip import GzipStream, accepts_gzip

__all__ = ["SSEEndpoint", "cors_headers"]

log = logging.getLogger("pyrt.server")


def cors_headers(scope: dict[str, Any], allowed: Iterable[str]) -> list[tuple[bytes, bytes]]:
    """CORS headers for an allowed cross-origin request (empty when there is no ``Origin``).

    An origin admitted only by ``"*"`` gets ``Access-Control-Allow-Origin: *`` and no
    credentials (the Fetch standard never combines them); the others get their origin echoed,
    with credentials.
    """
    origin = header(scope, "origin")
    if origin is None:
        return []
    check = check_origin(scope, allowed)
    if not check.credentials:
        return [(b"access-control-allow-origin", b"*")] if check.allowed else []
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-credentials", b"true"),
        (b"vary", b"Origin"),
    ]


async def plain_response(
    send: Any, status: int, text: str = "", headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class SSEEndpoint:
    """The ASGI app behind ``/sse``."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        rt = self.rt
        settings = rt.settings
        if not origin_allowed(scope, settings.allowed_origins):
            rt.stats.rejected["origin"] += 1
            await plain_response(send, 403, "origin not allowed")
            return
        cors = cors_headers(scope, settings.allowed_origins)
        if scope["method"] == "OPTIONS":
            await plain_response(
                send,
                204,
                headers=[
                    *cors,
                    (b"access-control-allow-methods", b"GET"),
                    (b"access-control-allow-headers", b"authorization, last-event-id, cache-control"),
                    (b"access-control-max-age", b"600"),
                ],
            )
            return
        if scope["method"] not in ("GET", "HEAD"):
            await plain_response(send, 405, "use GET", [(b"allow", b"GET")])
            return
        claims = None
        if settings.token_secret:
            claims = verify_token(settings.token_secret, request_token(scope, settings.allowed_origins))
            if claims is None:
                rt.stats.rejected["auth"] += 1
                await plain_response(send, 403, "missing, bad or expired token", cors)
                return
        channel = query_param(scope, "channel") or ""
        if not is_channel_name(channel) or not rt.allowed(channel, claims, "subscribe"):
            await plain_response(send, 204, headers=cors)  # EventSource stops reconnecting on 204
            return
        if rt.draining:  # come back later (to this address, restarted, or another instance)
            rt.stats.rejected["draining"] += 1
            retry = [(b"retry-after", rt.retry_after_header())]
            await plain_response(send, 503, "server shutting down", [*cors, *retry])
            return
        since = _resume_point(scope)
        ip = client_ip(scope)
        if not rt.cap.acquire(ip):
            rt.stats.rejected["per_ip"] += 1
            retry = [(b"retry-after", b"5")]
            await plain_response(send, 429, "too many connections from your address", [*cors, *retry])
            return
        try:
            await self._stream(scope, receive, send, channel, since, ip, cors, claims)
        finally:
            rt.cap.release(ip)

    async def _stream(
        self,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        channel: str,
        since: OffsetKey | None,
        ip: str,
        cors: list[tuple[bytes, bytes]],
        claims: Claims | None,
    ) -> None:
        rt = self.rt
        compress = None
        if rt.settings.sse_gzip and accepts_gzip(header(scope, "accept-encoding")):
            gzip = GzipStream(send)
            send, compress = gzip, gzip.compress
        conn = Connection(
            "sse",
            send,
            stats=rt.stats,
            limit_bytes=rt.settings.send_queue_bytes,
            session=rt.new_session(),
            cid=query_param(scope, "cid"),
            client_ip=ip,
            transport=scope_transport(scope),
            direct=chunk_writer(scope.get("pyrt.send"), compress),
            flusher=rt.flusher,
            identity=rt.identity(claims.subject if claims else None, ip),
        )
        subscriber = Subscriber(conn, channel)
        try:
            history = await rt.hub.subscribe(subscriber, since)
        except TooManyChannels as exc:
            rt.stats.drop(f"channels_{exc.scope}")
            retry = [(b"retry-after", b"5")]
            await plain_response(send, 429, f"too many channels ({exc.scope})", [*cors, *retry])
            return
        except BrokerError as exc:
            log.warning("SSE subscribe to %s failed: %s", channel, exc)
            await plain_response(send, 503, "temporarily unavailable", [*cors, (b"retry-after", b"1")])
            return
        rt.register(conn)
        expiry = expire_with_token(conn, claims)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-cache, no-transform"),
                        (b"x-accel-buffering", b"no"),
                        *cors,
                    ],
                }
            )
            conn.push(f"retry: {rt.settings.sse_retry_ms}\n\n".encode())
            floor = await replay(conn, history)
            rt.stats.replayed += len(history.publications)
            subscriber.go_live(floor)
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
        finally:
            if expiry is not None:
                expiry.cancel()
            rt.hub.unsubscribe(subscriber)
            conn.detach()
            rt.unregister(conn)


def _resume_point(scope: dict[str, Any]) -> OffsetKey | None:
    """Where to resume: ``Last-Event-ID``, else ``lastEventId``; ``None`` (live only) if neither
    is a valid offset."""
    for raw in (header(scope, "last-event-id"), query_param(scope, "lastEventId")):
        if raw is not None and raw.strip():
            try:
                return parse_offset(raw.strip())
            except ValueError:
                return None
    return None
