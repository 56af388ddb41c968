"""``GET /ws``: the pyrt JSON protocol over WebSocket (docs/protocol.md).

:class:`WebSocketEndpoint` is a raw ASGI app: it checks Origin, the per-IP cap and the token,
accepts with subprotocol ``pyrt.v1``, then a :class:`WsSession` reads frames one at a time, in
order, and answers through the connection's send queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any
from urllib.parse import parse_qs

from pyrt.server.application import HandlerError, IncomingMessage
from pyrt.server.auth import SUBPROTOCOL, Claims, origin_allowed, token_from_scope, verify_token
from pyrt.server.brokers.base import BrokerError
from pyrt.server.connection import Connection
from pyrt.server.hub import Subscriber
from pyrt.server.limits import TokenBucket
from pyrt.server.offsets import is_channel_name, offset_key, parse_offset
from pyrt.server.runtime import Runtime

__all__ = ["WebSocketEndpoint", "WsSession", "client_ip", "query_param", "scope_transport"]

log = logging.getLogger("pyrt.server")

_ID_MAX = 128
_EVENT = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_MAX_SUBSCRIPTIONS = 256
_CHANNEL_RULE = "channel must be 1-128 characters of letters, digits and _ . : @ -"
_EVENT_RULE = "event must be 1-64 characters of letters, digits and _ . : -"
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def client_ip(scope: dict[str, Any]) -> str:
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
        settings = rt.settings
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if not origin_allowed(scope, settings.allowed_origins):
            rt.stats.rejected["origin"] += 1
            await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
            return
        if rt.draining:
            await send({"type": "websocket.close", "code": 1001})
            return
        ip = client_ip(scope)
        if not rt.cap.acquire(ip):
            rt.stats.rejected["per_ip"] += 1
            await _deny(scope, send, 429, b"too many connections from your address")
            return
        try:
            accept: dict[str, Any] = {"type": "websocket.accept"}
            if SUBPROTOCOL in scope.get("subprotocols", ()):
                accept["subprotocol"] = SUBPROTOCOL
            claims: Claims | None = None
            if settings.token_secret:
                claims = verify_token(settings.token_secret, token_from_scope(scope))
                if claims is None:
                    rt.stats.rejected["auth"] += 1
                    await send(accept)
                    reason = "missing, bad or expired token"
                    await send({"type": "websocket.close", "code": 4401, "reason": reason})
                    return
            await send(accept)
            conn = Connection(
                "ws",
                send,
                stats=rt.stats,
                limit_bytes=settings.send_queue_bytes,
                session=rt.new_session(),
                cid=query_param(scope, "cid"),
                client_ip=ip,
                transport=scope_transport(scope),
            )
            session = WsSession(rt, conn, claims)
            rt.register(conn, session)
            try:
                await session.run(receive)
            finally:
                session.cleanup()
                rt.unregister(conn)
        finally:
            rt.cap.release(ip)


async def _deny(scope: dict[str, Any], send: Any, status: int, body: bytes) -> None:
    """Refuse a WebSocket handshake with an HTTP status (when the server supports it), else 403."""
    if "websocket.http.response" in scope.get("extensions", {}):
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


class WsSession:
    """One ``/ws`` connection after the handshake: reads frames and answers them."""

    def __init__(self, runtime: Runtime, conn: Connection, claims: Claims | None) -> None:
        self.rt = runtime
        self.conn = conn
        self.claims = claims
        self.subject = claims.subject if claims else None
        self.subscriptions: dict[str, Subscriber] = {}
        #: True while a frame is being handled (a graceful shutdown closes after it).
        self.busy = False
        settings = runtime.settings
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.last_seen = now
        self._pinged = False
        self._bucket = TokenBucket(settings.rate_limit, settings.rate_burst, now)
        self._abuse = TokenBucket(1.0 if settings.rate_limit > 0 else 0.0, settings.abuse_limit, now)
        self._loop = loop
        self._handlers = {
            "ping": self._on_ping,
            "pong": self._on_pong,
            "message": self._on_message,
            "subscribe": self._on_subscribe,
            "unsubscribe": self._on_unsubscribe,
            "publish": self._on_publish,
        }

    async def run(self, receive: Any) -> None:
        """Serve frames until the client disconnects."""
        conn = self.conn
        rt = self.rt
        conn.push(
            _dumps(
                {
                    "type": "welcome",
                    "session": conn.session,
                    "server": rt.name,
                    "heartbeat": rt.settings.heartbeat,
                }
            )
        )
        max_chars = rt.settings.max_message_bytes
        stats = rt.stats
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                return
            if kind != "websocket.receive" or conn.closed:
                continue
            self.last_seen = self._loop.time()
            self._pinged = False
            stats.frames_in += 1
            await conn.unstalled()
            text = message.get("text")
            self.busy = True
            try:
                if text is None:
                    if self._admit():
                        size = len(message.get("bytes") or b"")
                        if size > max_chars:
                            self._too_large()
                        else:
                            self._error("binary_not_supported", "binary frames are not pyrt frames")
                elif len(text) > max_chars:
                    self._too_large()
                elif self._admit():
                    await self._on_text(text)
            finally:
                self.busy = False
            if rt.draining and not conn.closed:
                conn.close(1001, "server shutting down")

    def cleanup(self) -> None:
        """The connection is gone: drop subscriptions and the send queue."""
        for subscriber in self.subscriptions.values():
            self.rt.hub.unsubscribe(subscriber)
        self.subscriptions.clear()
        self.conn.detach()

    def check_liveness(self, now: float, interval: float) -> None:
        """Called periodically: ping a quiet client; drop one silent for three intervals."""
        conn = self.conn
        if conn.closed:
            return
        silent = now - self.last_seen
        if silent > 3 * interval:
            self.rt.stats.drop("heartbeat")
            log.info("session %s silent for %.1fs: dropping it", conn.session, silent)
            conn.abort()
        elif silent >= interval and not self._pinged:
            self._pinged = True
            conn.push(_dumps({"type": "ping", "t": round(now * 1000)}))

    # --- plumbing -----------------------------------------------------------------------------

    def _admit(self) -> bool:
        """Rate limit: ``False`` (with an error frame, or a 1008 close for sustained abuse) if over."""
        now = self._loop.time()
        if self._bucket.take(now):
            return True
        if not self._abuse.take(now):
            self.rt.stats.drop("rate_limit")
            self.conn.close(1008, "rate limit exceeded")
            return False
        self._error("rate_limited", "too many frames: slow down")
        return False

    def _too_large(self) -> None:
        self.rt.stats.rejected["too_large"] += 1
        self.conn.close(1009, "message too big")

    def _error(self, code: str, message: str, frame_id: object = None) -> None:
        self.rt.stats.error(code)
        error: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if isinstance(frame_id, str) and len(frame_id) <= _ID_MAX:
            error["id"] = frame_id
        self.conn.push(_dumps(error))

    async def _on_text(self, text: str) -> None:
        try:
            frame = json.loads(text)
        except (ValueError, RecursionError):
            self._error("bad_json", "the frame is not valid JSON")
            return
        if not isinstance(frame, dict):
            self._error("bad_frame", "a frame must be a JSON object")
            return
        kind = frame.get("type")
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            self._error("unknown_type", f"unknown frame type {str(kind)[:40]!r}", frame.get("id"))
            return
        self.rt.stats.messages_in[str(kind)] += 1
        await handler(frame)

    def _send_json(self, value: dict[str, Any], frame_id: object = None) -> bool:
        try:
            text = _dumps(value)
        except (ValueError, TypeError, RecursionError):
            self._error("bad_frame", "the frame cannot be answered (too deep or not JSON)", frame_id)
            return False
        return self.conn.push(text)

    # --- frames -------------------------------------------------------------------------------

    async def _on_ping(self, frame: dict[str, Any]) -> None:
        answer: dict[str, Any] = {"type": "pong"}
        if "t" in frame:
            answer["t"] = frame["t"]
        self._send_json(answer)

    async def _on_pong(self, frame: dict[str, Any]) -> None:
        return None

    async def _on_message(self, frame: dict[str, Any]) -> None:
        message_id = frame.get("id")
        conn = self.conn

        def reply(data: Any) -> bool:
            return self._send_json({"type": "message", "data": data})

        message = IncomingMessage(
            data=frame.get("data"),
            id=message_id if isinstance(message_id, str) else None,
            session=conn.session,
            cid=conn.cid,
            subject=self.subject,
            reply=reply,
        )
        if message_id is None:
            try:
                await self.rt.handler(message)
            except Exception:
                log.exception("message handler failed (fire-and-forget message)")
            return
        if not _valid_id(message_id):
            self._error("bad_frame", f"id must be a non-empty string of at most {_ID_MAX} characters")
            return
        assert isinstance(message_id, str)
        stats = self.rt.stats

        async def compute() -> tuple[str, bool]:
            try:
                result = await self.rt.handler(message)
            except HandlerError as exc:
                return _ack_error(message_id, str(exc)), True
            except Exception:
                log.exception("message handler failed")
                return _ack_error(message_id, "internal error"), False
            try:
                return _dumps({"type": "ack", "id": message_id, "ok": True, "data": result}), True
            except (ValueError, TypeError, RecursionError):
                return _ack_error(message_id, "the handler's result is not JSON"), True

        try:
            ack, duplicate = await self.rt.broker.message_dedup.run_once(message_id, compute)
        except BrokerError as exc:
            log.warning("message %s not handled: %s", message_id, exc)
            ack, duplicate = _ack_error(message_id, "temporarily unavailable, retry"), False
        except RuntimeError as exc:  # the first copy of this id failed while we waited for it
            ack, duplicate = _ack_error(message_id, str(exc)), False
        if duplicate:
            stats.dedup_hits["message"] += 1
        ok = ack.startswith('{"type":"ack","id":' + _dumps(message_id) + ',"ok":true')
        stats.acks["ok" if ok else "error"] += 1
        conn.push(ack)

    async def _on_subscribe(self, frame: dict[str, Any]) -> None:
        channel = frame.get("channel")
        if not is_channel_name(channel):
            self._error("bad_frame", _CHANNEL_RULE)
            return
        assert isinstance(channel, str)
        if not self.rt.channel_policy(channel, self.subject, "subscribe"):
            self._error("forbidden", f"you may not subscribe to {channel!r}")
            return
        since_raw = frame.get("since")
        try:
            since = None if since_raw is None else parse_offset(since_raw)
        except ValueError as exc:
            self._error("bad_frame", str(exc))
            return
        old = self.subscriptions.pop(channel, None)
        if old is not None:
            self.rt.hub.unsubscribe(old)
        elif len(self.subscriptions) >= _MAX_SUBSCRIPTIONS:
            self._error("forbidden", f"at most {_MAX_SUBSCRIPTIONS} subscriptions per connection")
            return
        conn = self.conn
        subscriber = Subscriber(conn, channel)
        self.subscriptions[channel] = subscriber
        try:
            history = await self.rt.hub.subscribe(subscriber, since)
        except BrokerError as exc:
            self.subscriptions.pop(channel, None)
            self._error("unavailable", f"cannot subscribe now: {exc}")
            return
        conn.push(
            _dumps(
                {
                    "type": "subscribed",
                    "channel": channel,
                    "offset": history.latest,
                    "recovered": history.recovered,
                }
            )
        )
        floor = offset_key(history.latest)
        limit = self.rt.settings.send_queue_bytes // 2
        for publication in history.publications:
            if conn.closed:
                break
            conn.push(publication.ws_frame)
            floor = max(floor, publication.key)
            if conn.queued_bytes > limit:
                await conn.wait_room()
        self.rt.stats.replayed += len(history.publications)
        if self.subscriptions.get(channel) is subscriber:
            subscriber.go_live(floor)

    async def _on_unsubscribe(self, frame: dict[str, Any]) -> None:
        channel = frame.get("channel")
        if not isinstance(channel, str):
            self._error("bad_frame", "unsubscribe needs a channel")
            return
        subscriber = self.subscriptions.pop(channel, None)
        if subscriber is not None:
            self.rt.hub.unsubscribe(subscriber)
        self._send_json({"type": "unsubscribed", "channel": channel})

    async def _on_publish(self, frame: dict[str, Any]) -> None:
        publish_id = frame.get("id")
        if publish_id is not None and not _valid_id(publish_id):
            self._error("bad_frame", f"id must be a non-empty string of at most {_ID_MAX} characters")
            return
        channel = frame.get("channel")
        if not is_channel_name(channel):
            self._error("bad_frame", _CHANNEL_RULE, publish_id)
            return
        assert isinstance(channel, str)
        if not self.rt.channel_policy(channel, self.subject, "publish"):
            self._error("forbidden", f"you may not publish to {channel!r}", publish_id)
            return
        event = frame.get("event", "message")
        if not isinstance(event, str) or not _EVENT.fullmatch(event):
            self._error("bad_frame", _EVENT_RULE, publish_id)
            return
        try:
            data_json = _dumps(frame.get("data"))
        except (ValueError, TypeError, RecursionError):
            self._error("bad_frame", "data cannot be encoded", publish_id)
            return
        stats = self.rt.stats
        try:
            offset, duplicate = await self.rt.broker.publish(
                channel, event, data_json, publish_id=publish_id if isinstance(publish_id, str) else None
            )
        except BrokerError as exc:
            log.warning("publish to %s failed: %s", channel, exc)
            if publish_id is not None:
                stats.acks["error"] += 1
                self.conn.push(_ack_error(str(publish_id), "temporarily unavailable, retry"))
            else:
                self._error("unavailable", "cannot publish now")
            return
        if duplicate:
            stats.dedup_hits["publish"] += 1
        else:
            stats.publications += 1
        if publish_id is not None:
            stats.acks["ok"] += 1
            self._send_json({"type": "ack", "id": publish_id, "ok": True, "data": {"offset": offset}})


def _valid_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= _ID_MAX


def _ack_error(message_id: str, error: str) -> str:
    return _dumps({"type": "ack", "id": message_id, "ok": False, "error": error})
