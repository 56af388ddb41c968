"""``POST /publish``: publish into a channel over plain HTTP (other services, scripts, tests).

Body: ``{"channel": C, "data": D, "event": E?, "id": ID?}``; answer ``{"offset": O, "duplicate": B}``.
A re-sent ``id`` (from the same client identity, into the same channel) publishes nothing new and
answers the first offset with ``duplicate: true``. Errors: 400 (bad body: not UTF-8 JSON, lone
surrogates, NaN), 403 (origin, token or channel not allowed), 413 (too large), 429 with
``Retry-After`` (over the identity's publication rate), 503 with ``Retry-After`` (broker down).
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from pyrt.server.brokers.base import BrokerError
from pyrt.server.http_guard import guard
from pyrt.server.offsets import is_channel_name
from pyrt.server.protocol_handler import client_ip
from pyrt.server.runtime import Runtime
from pyrt.wire.ingress import IngressError, loads_body

__all__ = ["PublishEndpoint", "read_json_body"]

log = logging.getLogger("pyrt.server")

_EVENT = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_json_body(request: Request, limit: int) -> Any:
    """The request's JSON body; :class:`BadRequest` 413 over ``limit`` bytes, 400 if it is not
    UTF-8 JSON by :mod:`pyrt.wire.ingress`'s rules. A client that goes away mid-body raises
    Starlette's ``ClientDisconnect``."""
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
        return loads_body(b"".join(chunks))
    except IngressError as exc:
        text = "the body is not valid JSON" if exc.code == "bad_json" else str(exc)
        raise BadRequest(400, text) from None


class PublishEndpoint:
    """The Starlette endpoint behind ``/publish``."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def __call__(self, request: Request) -> Response:
        try:
            return await self._publish(request)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody reads it: the client has gone

    async def _publish(self, request: Request) -> Response:
        rt = self.rt
        settings = rt.settings
        scope = request.scope
        admitted = guard(rt, request, "POST", "authorization, content-type")
        if isinstance(admitted, Response):
            return admitted
        cors, claims = admitted.cors, admitted.claims
        subject = claims.subject if claims is not None else None
        try:
            body = await read_json_body(request, settings.max_message_bytes)
            channel, event, data_json, publish_id = _validate(body)
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=cors)
        if not rt.allowed(channel, claims, "publish"):
            forbidden = {"error": f"you may not publish to {channel!r}"}
            return JSONResponse(forbidden, status_code=403, headers=cors)
        identity = rt.identity(subject, client_ip(scope))
        retry_after = rt.publish_wait(identity, len(data_json), rt.now())
        if retry_after:
            rt.stats.drop("publish_quota")
            seconds = max(1, math.ceil(retry_after))
            refusal: dict[str, Any] = {
                "error": "too many publications (or bytes of them) from you: retry later",
                "retry_after": seconds,
            }
            return JSONResponse(refusal, status_code=429, headers={**cors, "retry-after": str(seconds)})
        try:
            offset, duplicate = await rt.broker.publish(
                channel, event, data_json, publish_id=publish_id, scope=identity
            )
        except IngressError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400, headers=cors)
        except BrokerError as exc:
            log.warning("publish to %r failed: %s", channel, exc)
            retry = {**cors, "retry-after": "1"}
            return JSONResponse({"error": "temporarily unavailable"}, status_code=503, headers=retry)
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
