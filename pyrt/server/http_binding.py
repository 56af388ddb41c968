"""The HTTP binding of ``/ws``: the pyrt protocol where WebSockets do not pass (docs/protocol.md).

On the WebSocket's own path, plain HTTP requests carry the same frames:

- ``GET`` with ``Accept: text/event-stream`` opens a connection: a :class:`SessionDriver`, as for a
  WebSocket, whose frames leave as the events of this response (``welcome`` first, with the
  connection's secret ``key``; an event of type ``close`` at the end);
- ``POST ?key=K&seq=N`` carries the client's frames, one per line: they go to the connection's
  driver in order, and the answer (``204``) comes once it has read them; each ``seq`` is applied
  once (a repeat gets ``204`` again, a gap ``409``), so a POST the network lost can be sent again.
  ``&close=C`` ends the connection after its frames, as a close frame would;
- any other ``GET`` of the path is answered ``426 Upgrade Required`` saying both ways in.

Origin, Host, the per-address cap, tokens and every limit of ``/ws`` apply: the session is the same.
A POST must carry the stream's token subject (``403`` otherwise). A POST for a connection another
instance holds is handed to it through the broker (:mod:`pyrt.server.http_relay`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable
from typing import Any, Final

from pyrt.server.auth import Claims, header, origin_allowed, request_token, verify_token
from pyrt.server.chunk_writer import chunk_writer
from pyrt.server.connection import Connection
from pyrt.server.protocol_handler import client_ip, query_param, scope_transport
from pyrt.server.runtime import Runtime
from pyrt.server.session_driver import SessionDriver
from pyrt.server.sse_endpoint import cors_headers, plain_response
from pyrt.wire import codec
from pyrt.wire.close_codes import TOKEN_REFUSED
from pyrt.wire.types import Frame

__all__ = ["MAX_POST_BYTES", "HttpBinding", "HttpConnection"]

log = logging.getLogger("pyrt.server")

MAX_POST_BYTES: Final = 4 * 1024 * 1024  # the frames of one POST, together
_STREAM_HEADERS: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


class PostBytes:
    """Bytes of POST bodies read and not yet applied, per client address and in all: bounded by
    ``--inbox-bytes-per-ip`` and ``--inbox-bytes``, as the received WebSocket messages waiting for
    the application are. Over either, a POST is refused with ``429`` (the client reconnects and
    sends again)."""

    def __init__(self, per_address: int, total: int) -> None:
        self.per_address = per_address
        self.total = total
        self.held: dict[str, int] = {}
        self.held_total = 0

    def take(self, address: str, size: int) -> bool:
        held = self.held.get(address, 0)
        if (self.per_address and held + size > self.per_address) or (
            self.total and self.held_total + size > self.total
        ):
            return False
        self.held[address] = held + size
        self.held_total += size
        return True

    def give(self, address: str, size: int) -> None:
        held = self.held.get(address, 0) - size
        if held > 0:
            self.held[address] = held
        else:
            self.held.pop(address, None)
        self.held_total -= size


class HttpConnection:
    """One connection over the HTTP binding: its driver, its inbox of posted frames, its ``seq``."""

    def __init__(self, driver: SessionDriver, key: str, subject: str | None) -> None:
        self.driver = driver
        self.key = key
        self.subject = subject
        self.inbox: asyncio.Queue[Frame | None] = asyncio.Queue()
        self.applied = 0  # the last seq applied
        self.posting = asyncio.Lock()  # one POST at a time feeds the inbox
        #: POSTs received and not answered yet: the one being applied, and a copy the client
        #: sent again when the network lost its answer. A third is refused before its body is read.
        self.in_flight = 0

    async def next_frame(self) -> Frame | None:
        return await self.inbox.get()

    def consumed(self) -> None:
        self.inbox.task_done()

    def gone(self) -> None:
        """The stream ended (the client left, or the server closed it): the driver stops."""
        self.inbox.put_nowait(None)

    async def post(self, seq: int, frames: list[str], close: int | None) -> int:
        """Apply a POST: its status."""
        async with self.posting:
            if seq <= self.applied:
                return 204  # a repeat of a POST the network lost on its way back: applied once
            if seq != self.applied + 1:
                return 409
            self.applied = seq
            for frame in frames:
                self.inbox.put_nowait(frame)
            await self.inbox.join()  # read, in order: their answers are on the stream already
            if close is not None:
                self.driver.protocol.clean_exit = close in (1000, 1001)
                self.driver.conn.close(close, "")
                self.gone()
            return 204


class HttpBinding:
    """The ASGI app of ``/ws`` for plain HTTP requests (Starlette routes WebSockets elsewhere)."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.connections: dict[str, HttpConnection] = {}
        settings = runtime.settings
        self.post_bytes = PostBytes(settings.address_inbox_bytes, settings.total_inbox_bytes)
        runtime.apply_held_post = self._apply_held

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        rt = self.rt
        if not origin_allowed(scope, rt.settings.allowed_origins):
            rt.stats.rejected["origin"] += 1
            await plain_response(send, 403, "origin not allowed")
            return
        cors = cors_headers(scope, rt.settings.allowed_origins)
        method = scope["method"]
        if method == "OPTIONS":
            allow = [
                (b"access-control-allow-methods", b"GET, POST"),
                (b"access-control-allow-headers", b"authorization, content-type, cache-control"),
                (b"access-control-max-age", b"600"),
            ]
            await plain_response(send, 204, headers=[*cors, *allow])
        elif method == "POST":
            await self._post(scope, receive, send, cors)
        elif method in ("GET", "HEAD") and "text/event-stream" in (header(scope, "accept") or ""):
            await self._stream(scope, receive, send, cors)
        elif method in ("GET", "HEAD"):
            why = (
                "this is pyrt's WebSocket endpoint: open it as a WebSocket, or GET it with "
                "Accept: text/event-stream for the HTTP binding (docs/protocol.md)"
            )
            await plain_response(send, 426, why, [*cors, (b"upgrade", b"websocket")])
        else:
            await plain_response(send, 405, "use GET or POST", [*cors, (b"allow", b"GET, POST, OPTIONS")])

    # ------------------------------------------------------------------------------ the stream

    async def _stream(
        self, scope: dict[str, Any], receive: Any, send: Any, cors: list[tuple[bytes, bytes]]
    ) -> None:
        rt = self.rt
        settings = rt.settings
        if rt.draining:
            rt.stats.rejected["draining"] += 1
            await plain_response(
                send, 503, "server shutting down", [*cors, (b"retry-after", rt.retry_after_header())]
            )
            return
        ip = client_ip(scope)
        if not rt.cap.acquire(ip):
            rt.stats.rejected["per_ip"] += 1
            await plain_response(
                send, 429, "too many connections from your address", [*cors, (b"retry-after", b"5")]
            )
            return
        try:
            claims: Claims | None = None
            if settings.token_secret:
                claims = verify_token(settings.token_secret, request_token(scope, settings.allowed_origins))
                if claims is None:  # as on /ws: accepted, then closed with 4401 (do not retry)
                    rt.stats.rejected["auth"] += 1
                    event = codec.http_close_event(TOKEN_REFUSED, "missing, bad or expired token")
                    await send(
                        {"type": "http.response.start", "status": 200, "headers": [*_STREAM_HEADERS, *cors]}
                    )
                    await send({"type": "http.response.body", "body": event, "more_body": False})
                    return
            await self._serve(scope, receive, send, cors, ip, claims)
        finally:
            rt.cap.release(ip)

    async def _serve(
        self,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        cors: list[tuple[bytes, bytes]],
        ip: str,
        claims: Claims | None,
    ) -> None:
        rt = self.rt
        conn = Connection(
            "http",
            send,
            stats=rt.stats,
            limit_bytes=rt.settings.send_queue_bytes,
            session=rt.new_session(),
            cid=query_param(scope, "cid"),
            client_ip=ip,
            transport=scope_transport(scope),
            identity=rt.identity(claims.subject if claims else None, ip),
            direct=chunk_writer(scope.get("pyrt.send")),
            flusher=rt.flusher,
        )
        key = secrets.token_urlsafe(24)
        driver = SessionDriver(rt, conn, claims, key=key)
        connection = HttpConnection(driver, key, claims.subject if claims else None)
        driver.ended = connection.gone
        self.connections[key] = connection
        rt.register(conn, driver)
        watcher = asyncio.get_running_loop().create_task(self._watch(receive, connection))
        relay = rt.post_relay
        try:
            if relay is not None:
                await _quietly(relay.hold(key), "hold")
            await send({"type": "http.response.start", "status": 200, "headers": [*_STREAM_HEADERS, *cors]})
            await driver.run(connection.next_frame, connection.consumed)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            self.connections.pop(key, None)
            if relay is not None:
                await _quietly(relay.release(key), "release")
            driver.cleanup()
            rt.unregister(conn)
            if not conn.closed:
                conn.close(1000, "")
            await conn.finished()

    @staticmethod
    async def _watch(receive: Any, connection: HttpConnection) -> None:
        """The stream's request side: the client going away ends the connection."""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                connection.gone()
                return

    # ------------------------------------------------------------------------------- the POSTs

    async def _post(
        self, scope: dict[str, Any], receive: Any, send: Any, cors: list[tuple[bytes, bytes]]
    ) -> None:
        rt = self.rt
        settings = rt.settings
        key = query_param(scope, "key") or ""
        connection = self.connections.get(key)
        relay = rt.post_relay
        if connection is None and relay is None:
            await plain_response(send, 404, "no such connection: reconnect", cors)
            return
        subject: str | None = None
        if settings.token_secret:
            claims = verify_token(settings.token_secret, request_token(scope, settings.allowed_origins))
            subject = claims.subject if claims is not None else None
        if connection is not None and not _same_subject(connection, subject):
            rt.stats.rejected["auth"] += 1
            await plain_response(send, 403, _NOT_YOURS, cors)
            return
        try:
            seq = int(query_param(scope, "seq") or "")
            close_text = query_param(scope, "close")
            close = int(close_text) if close_text is not None else None
        except ValueError:
            await plain_response(send, 400, "seq (and close) must be whole numbers", cors)
            return
        if connection is not None and connection.in_flight >= 2:
            rt.stats.rejected["posts"] += 1
            await plain_response(send, 429, "one POST at a time per connection", cors)
            return
        address = client_ip(scope)
        reader = _Body(self.post_bytes, address)
        if connection is not None:
            connection.in_flight += 1
        try:
            status = await self._apply_post(receive, send, cors, reader, key, connection, seq, close, subject)
        finally:
            reader.release()
            if connection is not None:
                connection.in_flight -= 1
        if status is not None:
            await plain_response(send, status, _STATUS_TEXT.get(status, ""), cors)

    async def _apply_post(
        self,
        receive: Any,
        send: Any,
        cors: list[tuple[bytes, bytes]],
        reader: _Body,
        key: str,
        connection: HttpConnection | None,
        seq: int,
        close: int | None,
        subject: str | None,
    ) -> int | None:
        """Read a POST's body and apply it, here or on the instance holding ``key``: its status
        (``None``: answered already)."""
        rt = self.rt
        body = await reader.read(receive, MAX_POST_BYTES)
        if body is None:
            if reader.gone:
                return None
            if reader.over_budget:
                rt.stats.rejected["inbox"] += 1
                await plain_response(
                    send, 429, "too many bytes waiting from your address", [*cors, (b"retry-after", b"1")]
                )
            else:
                await plain_response(
                    send, 413, f"the frames of one POST must be at most {MAX_POST_BYTES} bytes", cors
                )
            return None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            if connection is not None:
                connection.driver.close(1007, "frames must be UTF-8")
            await plain_response(send, 400, "frames must be UTF-8", cors)
            return None
        if connection is not None:
            return await connection.post(seq, codec.split_posted(text), close)
        relay = rt.post_relay
        if relay is None:
            return 404
        try:  # held by another instance, maybe
            status = await relay.forward(key, seq, text, close, subject)
        except Exception as exc:
            log.warning("HTTP binding relay: %s", exc)
            status = 503
        if status == 403:
            rt.stats.rejected["auth"] += 1
        return status

    async def _apply_held(self, key: str, seq: int, text: str, close: int | None, subject: str | None) -> int:
        """A POST another instance forwarded here (its subject verified there)."""
        connection = self.connections.get(key)
        if connection is None:
            return 404
        if not _same_subject(connection, subject):
            return 403
        return await connection.post(seq, codec.split_posted(text), close)


_NOT_YOURS: Final = "this connection's token is not the one given"
_STATUS_TEXT: Final = {
    404: "no such connection: reconnect",
    403: _NOT_YOURS,
    409: "seq out of order",
    503: "the connection's instance could not be reached: reconnect",
    504: "the connection's instance did not answer: reconnect",
}


def _same_subject(connection: HttpConnection, subject: str | None) -> bool:
    """Whether a POST made with a token of ``subject`` may feed ``connection`` (a connection
    opened with a token takes POSTs with a token of the same subject only)."""
    return connection.subject is None or subject == connection.subject


async def _quietly(step: Awaitable[None], what: str) -> None:
    """A relay step whose failure only means POSTs must reach this instance directly."""
    try:
        await step
    except Exception as exc:
        log.warning("HTTP binding relay (%s): %s", what, exc)


class _Body:
    """Reads a POST's body within :class:`PostBytes` (what it took is given back by
    :meth:`release`, once the POST is answered)."""

    def __init__(self, budget: PostBytes, address: str) -> None:
        self.budget = budget
        self.address = address
        self.taken = 0
        self.over_budget = False
        self.gone = False

    async def read(self, receive: Any, limit: int) -> bytes | None:
        """The body; ``None`` when larger than ``limit``, over the budget (:attr:`over_budget`),
        or cut short by the client going away (:attr:`gone`: nothing of it is applied; the
        client sends it again with the same ``seq``)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.gone = True
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            if chunk:
                if not self.budget.take(self.address, len(chunk)):
                    self.over_budget = True
                    return None
                self.taken += len(chunk)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def release(self) -> None:
        if self.taken:
            self.budget.give(self.address, self.taken)
            self.taken = 0
