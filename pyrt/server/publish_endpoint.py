"""``POST /publish``: publish into a channel over plain HTTP (other services, scripts, tests).

Body: ``{"channel": C, "data": D, "event": E?, "id": ID?}``; answer ``{"offset": O, "duplicate": B}``.
A re-sent ``id`` publishes nothing new and answers the first offset with ``duplicate: true``.
Errors: 400 (bad body), 403 (origin, token or channel not allowed), 413 (too large), 503 (broker).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pyrt.server.auth import origin_allowed, token_from_scope, verify_token
from pyrt.server.brokers.base import BrokerError
from pyrt.server.offsets import is_channel_name
from pyrt.server.runtime import Runtime
from pyrt.server.sse_endpoint import cors_headers

__all__ = ["PublishEndpoint", "read_json_body"]

log = logging.getLogger("pyrt.server")

_EVENT = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_json_body(request: Request, limit: int) -> Any:
    """The request's JSON body; :class:`BadRequest` 413 over ``limit`` bytes, 400 if not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, RecursionError):
        raise BadRequest(400, "the body is not valid JSON") from None


class PublishEndpoint:
    """The Starlette endpoint behind ``/publish``."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def __call__(self, request: Request) -> Response:
        rt = self.rt
        settings = rt.settings
        scope = request.scope
        if not origin_allowed(scope, settings.allowed_origins):
            rt.stats.rejected["origin"] += 1
            return JSONResponse({"error": "origin not allowed"}, status_code=403)
        cors = {k.decode(): v.decode("latin-1") for k, v in cors_headers(dict(scope))}
        if request.method == "OPTIONS":
            return Response(
                status_code=204,
                headers={
                    **cors,
                    "access-control-allow-methods": "POST",
                    "access-control-allow-headers": "authorization, content-type",
                    "access-control-max-age": "600",
                },
            )
        subject = None
        if settings.token_secret:
            claims = verify_token(settings.token_secret, token_from_scope(scope))
            if claims is None:
                rt.stats.rejected["auth"] += 1
                return JSONResponse({"error": "missing, bad or expired token"}, status_code=403, headers=cors)
            subject = claims.subject
        try:
            body = await read_json_body(request, settings.max_message_bytes)
            channel, event, data_json, publish_id = _validate(body)
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=cors)
        if not rt.channel_policy(channel, subject, "publish"):
            refusal = {"error": f"you may not publish to {channel!r}"}
            return JSONResponse(refusal, status_code=403, headers=cors)
        try:
            offset, duplicate = await rt.broker.publish(channel, event, data_json, publish_id=publish_id)
        except BrokerError as exc:
            log.warning("publish to %s failed: %s", channel, exc)
            return JSONResponse({"error": "temporarily unavailable"}, status_code=503, headers=cors)
        if duplicate:
            rt.stats.dedup_hits["publish"] += 1
        else:
            rt.stats.publications += 1
        return JSONResponse({"offset": offset, "duplicate": duplicate}, headers=cors)


def _validate(body: Any) -> tuple[str, str, str, str | None]:
    if not isinstance(body, dict):
        raise BadRequest(400, "the body must be a JSON object")
    channel = body.get("channel")
    if not is_channel_name(channel):
        raise BadRequest(400, "channel must be 1-128 characters of letters, digits and _ . : @ -")
    event = body.get("event", "message")
    if not isinstance(event, str) or not _EVENT.fullmatch(event):
        raise BadRequest(400, "event must be 1-64 characters of letters, digits and _ . : -")
    publish_id = body.get("id")
    if publish_id is not None and not (isinstance(publish_id, str) and 0 < len(publish_id) <= 128):
        raise BadRequest(400, "id must be a non-empty string of at most 128 characters")
    try:
        data_json = _dumps(body.get("data"))
    except (ValueError, TypeError, RecursionError):
        raise BadRequest(400, "data cannot be encoded") from None
    return str(channel), event, data_json, publish_id
