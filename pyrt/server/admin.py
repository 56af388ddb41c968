"""The operators' endpoints: ``GET /admin/trace`` and ``GET /admin/connections``.

Both are **off** unless the server has an admin token (``--admin-token``, ``$PYRT_ADMIN_TOKEN``,
``Settings.admin_token``): without one they answer 404, whatever the request carries. With one:

- every request is counted against its address first (``admin_rate`` per second, a burst of
  ten; over it: 429 with ``Retry-After``), so guessing the token is slow;
- the token must come as ``Authorization: Bearer <token>`` (never in a URL, which logs keep);
  missing or wrong: 401. It is compared in constant time (:func:`hmac.compare_digest`).

``GET /admin/trace?channel=C`` (or ``?user=U``, ``?session=S``) streams the events of
:mod:`pyrt.server.trace` as Server-Sent Events (``event: trace``, ``data:`` one JSON object),
with a comment heartbeat every 15 s; at most ``max_trace_readers`` streams at once (503 beyond).
``GET /admin/connections`` answers JSON: every connection of this instance (session, transport,
identity, address, channels, bytes queued, since when) and the open traces (their filter,
queue, drops).
"""

from __future__ import annotations

import asyncio
import hmac
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from pyrt.server.limits import KeyedBuckets
from pyrt.server.offsets import is_channel_name
from pyrt.server.protocol_handler import client_ip
from pyrt.server.runtime import Runtime
from pyrt.server.trace import Filter, TraceReader
from pyrt.wire.sse_encode import encode_comment, encode_event

__all__ = ["Admin"]

HEARTBEAT = 15.0  # seconds between comment lines on an idle trace (proxies close silent streams)
MAX_FILTER = 200  # characters of a user or session name


class Admin:
    """The two endpoints over one runtime (see the module docstring)."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        settings = runtime.settings
        self._token = settings.admin_token.encode()
        self._requests = KeyedBuckets(settings.admin_rate, 10.0, max_keys=10_000)

    def _refused(self, request: Request) -> Response | None:
        if not self._token:
            return PlainTextResponse("not found", status_code=404)
        wait = self._requests.wait(client_ip(request.scope), time.monotonic())
        if wait > 0:
            return PlainTextResponse(
                "too many admin requests", status_code=429, headers={"retry-after": str(math.ceil(wait))}
            )
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._token):
            return PlainTextResponse(
                "an admin token is needed (Authorization: Bearer ...)",
                status_code=401,
                headers={"www-authenticate": 'Bearer realm="pyrt admin"'},
            )
        return None

    async def connections(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        rt = self.rt
        rows: list[dict[str, Any]] = []
        for conn, driver in list(rt.connections.items()):
            subscribers = getattr(driver, "subscribers", None)
            rows.append(
                {
                    "session": conn.session,
                    "transport": conn.kind,
                    "identity": conn.identity,
                    "user": getattr(driver, "subject", None),
                    "address": conn.client_ip,
                    "channels": sorted(subscribers) if isinstance(subscribers, dict) else [],
                    "queued_bytes": conn.buffered_bytes,
                    "since": rt.since.get(conn),
                }
            )
        traces = [
            {
                "filter": reader.filter.describe(),
                "queued": len(reader.queue),
                "limit": reader.limit,
                "dropped": reader.total_dropped,
                "since": reader.since,
            }
            for reader in rt.tracer.readers
        ]
        return JSONResponse({"instance": rt.name, "connections": rows, "traces": traces})

    async def trace(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        params = request.query_params
        channel, user, session = params.get("channel"), params.get("user"), params.get("session")
        given = [value for value in (channel, user, session) if value is not None]
        if len(given) != 1:
            return PlainTextResponse("name exactly one of channel=, user=, session=", status_code=400)
        if channel is not None and not is_channel_name(channel):
            return PlainTextResponse("channel= is not a channel name", status_code=400)
        if len(given[0]) > MAX_FILTER or not given[0]:
            return PlainTextResponse(f"user= and session= take 1 to {MAX_FILTER} characters", status_code=400)
        tracer = self.rt.tracer
        if len(tracer.readers) >= self.rt.settings.max_trace_readers:
            return PlainTextResponse("too many traces open", status_code=503, headers={"retry-after": "5"})
        reader = tracer.attach(Filter(channel, user, session), self.rt.settings.trace_queue)
        return StreamingResponse(
            self._stream(reader),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    async def _stream(self, reader: TraceReader) -> AsyncIterator[str]:
        tracer = self.rt.tracer
        try:
            yield encode_comment(f"tracing {reader.filter.describe()}")
            while True:
                try:
                    batch = await asyncio.wait_for(reader.next_batch(), HEARTBEAT)
                except TimeoutError:
                    yield encode_comment("hb")
                    continue
                yield "".join(encode_event(line, "trace") for line in batch)
        finally:
            tracer.detach(reader)
