"""``GET /history?channel=C&limit=N&since=S&reverse=true``: a page of a channel's history over
plain HTTP, for clients without a WebSocket (the grammar and the answer are those of the
``history`` frame, :mod:`pyrt.server.history`).

Answers: 200 with the page; 400 for a bad query; 403 for a foreign origin or host, a missing or
bad token, or a channel the caller may not subscribe to; 429 with ``Retry-After`` over the
identity's query rate; 503 while the broker is down. Cross-origin requests from allowed origins
get CORS headers, as ``/sse`` does.
"""

from __future__ import annotations

import logging
import math

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pyrt.server.brokers.base import BrokerError
from pyrt.server.history import BadQuery, encode_page, parse_query, read_page
from pyrt.server.http_guard import guard
from pyrt.server.protocol_handler import client_ip
from pyrt.server.runtime import Runtime

__all__ = ["HistoryEndpoint"]

log = logging.getLogger("pyrt.server")

_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


class HistoryEndpoint:
    """The Starlette endpoint behind ``/history``."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def __call__(self, request: Request) -> Response:
        rt = self.rt
        settings = rt.settings
        admitted = guard(rt, request, "GET", "authorization")
        if isinstance(admitted, Response):
            return admitted
        cors, claims = admitted.cors, admitted.claims
        params = request.query_params
        try:
            limit = params.get("limit")
            if limit is not None and not (limit.isascii() and limit.isdigit() and len(limit) <= 9):
                raise BadQuery("limit must be a whole number from 1")
            reverse = params.get("reverse")
            if reverse is not None and reverse.lower() not in _BOOLEANS:
                raise BadQuery("reverse must be true or false")
            query = parse_query(
                params.get("channel"),
                params.get("since"),
                None if limit is None else int(limit),
                None if reverse is None else _BOOLEANS[reverse.lower()],
                max_limit=settings.history_page_limit,
            )
        except BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=400, headers=cors)
        if not rt.allowed(query.channel, claims, "subscribe"):
            forbidden = {"error": f"you may not read {query.channel!r}"}
            return JSONResponse(forbidden, status_code=403, headers=cors)
        identity = rt.identity(claims.subject if claims else None, client_ip(request.scope))
        retry_after = rt.query_quota.wait(identity, rt.now())
        if retry_after:
            rt.stats.drop("query_quota")
            seconds = max(1, math.ceil(retry_after))
            body = {"error": "too many reads: retry later", "retry_after": seconds}
            return JSONResponse(body, status_code=429, headers={**cors, "retry-after": str(seconds)})
        try:
            page = await read_page(rt.broker, query, settings.history_page_bytes)
        except BrokerError as exc:
            log.warning("history of %r failed: %s", query.channel, exc)
            return JSONResponse({"error": "temporarily unavailable"}, status_code=503, headers=cors)
        rt.stats.history_reads += 1
        return Response(
            encode_page(page),
            media_type="application/json",
            headers={**cors, "cache-control": "no-store"},
        )
