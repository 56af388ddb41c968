"""``GET /ws``: the pyrt JSON protocol over WebSocket (docs/protocol.md).

:class:`WebSocketEndpoint` is a raw ASGI app: it checks Origin, the per-IP cap and the token,
accepts with subprotocol ``pyrt.v1``, then a :class:`WsSession` reads frames one at a time, in
order, and answers through the connection's send queue. A connection whose token expires is
closed with 4001 (reconnect with a fresh token); ``welcome`` tells the client how long its token
lasts (``ttl``) and a ``refresh`` frame with a new token for the same subject extends it in place.

Every frame is parsed by :mod:`pyrt.server.ingress` (no lone surrogates, no NaN): what is
accepted can always be stored, echoed and fanned out. Message and publish ids are scoped by the
client's identity (the token's subject, else its address).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import math
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from pyrt.admission import FlowGate, Verdict
from pyrt.names import ID_RULE
from pyrt.refusals import RATE_LIMITED, UNAVAILABLE
from pyrt.server.application import HandlerError, IncomingMessage
from pyrt.server.auth import (
    BATCH_SUBPROTOCOL,
    SUBPROTOCOL,
    TOKEN_EXPIRED,
    Claims,
    origin_allowed,
    request_token,
    verify_token,
)
from pyrt.server.brokers.base import BrokerError
from pyrt.server.connection import Connection
from pyrt.server.history import BadQuery, encode_page, parse_query, read_page
from pyrt.server.hub import Subscriber, TooManyChannels, replay
from pyrt.server.ingress import IngressError, check_text, loads
from pyrt.server.limits import Meter, TokenBucket
from pyrt.server.offsets import is_channel_name, offset_key, parse_offset
from pyrt.server.presence import member_id
from pyrt.server.runtime import Runtime

__all__ = [
    "WebSocketEndpoint",
    "WsSession",
    "admit_websocket",
    "client_ip",
    "expire_with_token",
    "query_param",
    "scope_transport",
]

log = logging.getLogger("pyrt.server")

_ID_MAX = 128
_EVENT = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
#: Publications of one connection in flight to the broker at once (a Redis round trip each would
#: otherwise cap one publisher at one publication per round trip), and their bytes at most (a
#: larger one goes alone): what a connection holds beyond the frame it is handling.
_PUBLISH_WINDOW = 1024
_PUBLISH_WINDOW_BYTES = 64 * 1024
_REMEMBER_MAX = 512  # characters of an ack kept for re-sent copies; bigger ones lose their data
_LARGE_ANSWER = 64 * 1024  # answers this large count against the client's identity budget
_CHANNEL_RULE = "channel must be 1-128 characters of letters, digits and _ . : @ -"
_EVENT_RULE = "event must be 1-64 characters of letters, digits and _ . : -"
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_KEY_MAX = 64  # characters of a presence key (the client's own name for its member)
_PRESENCE_FULL = {
    "full": "the presence of {channel!r} is full",
    "identity": "you have as many members in {channel!r} as one client may",
    "identity_total": "you have as many members on this server as one client may",
    "total": "the server's presence is full",
}
_BROKER_RETRY = 1.0  # retry_after of an ``unavailable`` refusal, seconds


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
        ip, claims, batch = admitted
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
                batch=batch,
                direct=scope.get("pyrt.direct"),
                flusher=rt.flusher,
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


async def admit_websocket(
    rt: Runtime, scope: dict[str, Any], send: Any
) -> tuple[str, Claims | None, bool] | None:
    """Check a WebSocket handshake (Origin, shutdown, per-address cap, token) and accept it.

    Returns the client's address, its token's claims and whether it accepted batched frames
    (subprotocol ``pyrt.v1.batch``, preferred over ``pyrt.v1``); the caller must call
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
    if not rt.cap.acquire(ip):
        rt.stats.rejected["per_ip"] += 1
        await _deny(scope, send, 429, b"too many connections from your address", b"5")
        return None
    try:
        accept: dict[str, Any] = {"type": "websocket.accept"}
        offered = scope.get("subprotocols", ())
        batch = BATCH_SUBPROTOCOL in offered
        if batch:
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
    return ip, claims, batch


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


class WsSession:
    """One ``/ws`` connection after the handshake: reads frames and answers them."""

    def __init__(self, runtime: Runtime, conn: Connection, claims: Claims | None) -> None:
        self.rt = runtime
        self.conn = conn
        self.claims = claims
        self.subject = claims.subject if claims else None
        #: Who this client is for dedup scopes and per-identity quotas.
        self.identity = runtime.identity(self.subject, conn.client_ip)
        self.subscriptions: dict[str, Subscriber] = {}
        #: The presence members this connection holds: (channel, member). Several per channel
        #: when several clients share the connection (tabs of one site: ``share=``), one per key.
        self.presence: set[tuple[str, str]] = set()
        #: The client said goodbye with a close frame (1000/1001) the server did not ask for:
        #: its presence leaves at once, not after the grace.
        self.clean_exit = False
        self._expiry = expire_with_token(conn, claims)
        #: True while a frame is being handled.
        self._handling = False
        #: Publications sent to the broker and not yet answered, oldest first (see ``_publish``).
        self._in_flight: list[asyncio.Task[None]] = []
        self._in_flight_bytes = 0
        settings = runtime.settings
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.last_seen = now
        self._pinged = False
        self._gate = FlowGate(
            settings.rate_limit, settings.rate_burst, settings.rate_window, settings.abuse_limit, now
        )
        self._refreshes = TokenBucket(settings.refresh_rate, settings.refresh_burst, now)
        rate = settings.receive_rate
        self._received = Meter(rate, max(rate, settings.max_message_bytes), now)
        self._loop = loop
        self._handlers = {
            "ping": self._on_ping,
            "pong": self._on_pong,
            "message": self._on_message,
            "subscribe": self._on_subscribe,
            "unsubscribe": self._on_unsubscribe,
            "publish": self._on_publish,
            "refresh": self._on_refresh,
            "history": self._on_history,
            "presence": self._on_presence,
            "presence_join": self._on_presence_join,
            "presence_leave": self._on_presence_leave,
        }

    async def run(self, receive: Any) -> None:
        """Serve frames until the client disconnects."""
        conn = self.conn
        rt = self.rt
        welcome: dict[str, Any] = {
            "type": "welcome",
            "session": conn.session,
            "server": rt.name,
            "heartbeat": rt.settings.heartbeat,
            "limits": rt.limits,
        }
        if self.claims is not None:
            welcome["ttl"] = round(self.claims.ttl(), 3)
        conn.push(_dumps(welcome))
        max_chars = rt.settings.max_message_bytes
        stats = rt.stats
        gate = self._gate
        while True:
            message = text = None  # an idle client must not keep its last (maybe 1 MiB) frame here
            message = await receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                self.clean_exit = message.get("code", 1006) in (1000, 1001) and not conn.closed
                return
            if kind != "websocket.receive" or conn.closed:
                continue
            now = self.last_seen = self._loop.time()
            self._pinged = False
            stats.frames_in += 1
            await conn.unstalled()
            text = message.get("text")
            size = len(text) if text is not None else len(message.get("bytes") or b"")
            self._handling = True
            try:
                if text is None:
                    if gate.admit(now) or self._gated({}, now):
                        if size > max_chars:
                            self._too_large()
                        else:
                            self._error("binary_not_supported", "binary frames are not pyrt frames")
                elif size > max_chars:
                    self._too_large()
                elif gate.admit(now) or self._gated(_peek(text), now):
                    await self._on_text(text)
            finally:
                self._handling = False
            message = text = None
            wait = max(self._received.charge(size, now), rt.receive_quota.charge(self.identity, size, now))
            if wait > 0 and not conn.closed:  # over the received bytes' rate: read nothing meanwhile
                stats.throttled["receive"] += 1
                await asyncio.sleep(wait)
            if rt.draining and not conn.closed and not self._in_flight:
                conn.close(1001, rt.drain_reason)

    @property
    def busy(self) -> bool:
        """Whether a frame is being handled or publications are in flight: a graceful shutdown
        closes this connection after their answers."""
        return self._handling or bool(self._in_flight)

    def cleanup(self) -> None:
        """The connection is gone: drop subscriptions and the send queue."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        store = self.rt.broker.presence
        for channel, member in self.presence:
            store.release(channel, member, self._owner, clean=self.clean_exit)
        self.presence.clear()
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

    def _gated(self, frame: dict[str, Any], now: float) -> bool:
        """A frame the gate did not let through at once (``frame``: what :func:`_peek` read of
        it): ``True`` to handle it; else it was refused (``rate_limited`` naming its id or
        channel, with ``retry_after``; a new hold also pings), or the client closed with 1008."""
        gate = self._gate
        kind = frame.get("type")
        verdict = gate.check(now, kind if isinstance(kind, str) else None)
        if verdict is Verdict.ACCEPT:
            return True
        if verdict is Verdict.CLOSE:
            self.rt.stats.drop("rate_limit")
            log.info("session %s ignores rate_limited refusals: closing it", self.conn.session)
            self.conn.close(1008, "rate limit exceeded")
            return False
        channel = frame.get("channel") if kind in ("subscribe", "unsubscribe") else None
        self._refuse(frame.get("id"), channel, gate.retry_after(now))
        if verdict is Verdict.HOLD:
            self.conn.push(_dumps({"type": "ping", "t": gate.marker}))
        return False

    def _refuse(self, frame_id: object, channel: object, retry_after: float, why: str = "") -> None:
        """Answer ``rate_limited`` for a frame, naming it (its id, or the channel of a subscribe
        or unsubscribe) and when to send it again."""
        # rounded up: a wait of 0.0004 s is not "send again now"
        extra: dict[str, Any] = {"retry_after": math.ceil(retry_after * 1000) / 1000}
        if isinstance(channel, str) and is_channel_name(channel):
            extra["channel"] = channel
        self._error(RATE_LIMITED, why or "too many frames: slow down", frame_id, **extra)

    def _too_large(self) -> None:
        self.rt.stats.rejected["too_large"] += 1
        self.conn.close(1009, "message too big")

    def _error(self, code: str, message: str, frame_id: object = None, **extra: Any) -> None:
        self.rt.stats.error(code)
        error: dict[str, Any] = {"type": "error", "code": code, "message": message, **extra}
        if isinstance(frame_id, str) and len(frame_id) <= _ID_MAX:
            error["id"] = frame_id
        self.conn.push(_dumps(error))

    def _answer(self, text: str) -> bool:
        """Queue an answer made for this client alone (an ack, a pong, a reply). A large one is
        refused, and this connection cut off as a slow consumer (1013), when this client's
        connections already hold ``identity_queue_bytes`` between them: compressed requests
        must not make the server hold their inflated answers for a thousand connections."""
        if len(text) > _LARGE_ANSWER and not self.rt.room_for(self.conn, len(text)):
            self.rt.stats.drop("identity_budget")
            self.conn.cut_off()
            return False
        return self.conn.push(text)

    async def _on_text(self, text: str) -> None:
        try:
            frame = loads(text)
        except IngressError as exc:
            frame_id = exc.value.get("id") if isinstance(exc.value, dict) else None
            if isinstance(frame_id, str) and (frame_id.isascii() or _printable(frame_id)):
                self._error(exc.code, str(exc), frame_id)  # the client can fail that one call
            else:
                self._error(exc.code, str(exc))
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
        if self._in_flight and kind != "publish":
            await self.settled()  # answers keep the order of the frames they answer
        try:
            await handler(frame)
        except Exception:  # a bug (client input is refused with an error frame, never raised)
            log.exception("a %s frame could not be handled: closing the connection with 1011", kind)
            self.rt.stats.error("internal")
            self.conn.close(1011, "internal error")

    def _send_json(self, value: dict[str, Any], frame_id: object = None) -> bool:
        try:
            text = _dumps(value)
            check_text(text)
        except (ValueError, TypeError, RecursionError):
            self._error("bad_frame", "the frame cannot be answered (too deep or not JSON)", frame_id)
            return False
        return self._answer(text)

    # --- frames -------------------------------------------------------------------------------

    async def _on_ping(self, frame: dict[str, Any]) -> None:
        answer: dict[str, Any] = {"type": "pong"}
        if "t" in frame:
            answer["t"] = frame["t"]
        self._send_json(answer)

    async def _on_pong(self, frame: dict[str, Any]) -> None:
        self._gate.pong(frame.get("t"), self._loop.time())

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
            address=conn.client_ip,
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

        async def compute() -> tuple[str, str | None]:
            try:
                result = await self.rt.handler(message)
            except HandlerError as exc:
                return _remembered(_ack_error(message_id, str(exc)), message_id, False)
            except Exception:
                log.exception("message handler failed")
                return _ack_error(message_id, "internal error"), None
            try:
                ack = _dumps({"type": "ack", "id": message_id, "ok": True, "data": result})
                check_text(ack)
            except (ValueError, TypeError, RecursionError):
                refusal = _ack_error(message_id, "the handler's result is not JSON")
                return _remembered(refusal, message_id, False)
            return _remembered(ack, message_id, True)

        try:
            ack, duplicate = await self.rt.broker.message_dedup.run_once(self.identity, message_id, compute)
        except BrokerError as exc:
            log.warning("message %r not handled: %s", message_id, exc)
            ack, duplicate = _ack_unavailable(message_id), False
        except RuntimeError as exc:  # the first copy of this id failed while we waited for it
            ack, duplicate = _ack_error(message_id, str(exc)), False
        if duplicate:
            stats.dedup_hits["message"] += 1
        ok = ack.startswith('{"type":"ack","id":' + _dumps(message_id) + ',"ok":true')
        stats.acks["ok" if ok else "error"] += 1
        self._answer(ack)

    async def _on_subscribe(self, frame: dict[str, Any]) -> None:
        channel = frame.get("channel")
        if not is_channel_name(channel):
            self._error("bad_frame", _CHANNEL_RULE)
            return
        assert isinstance(channel, str)
        if not self.rt.allowed(channel, self.claims, "subscribe"):
            self._error("forbidden", f"you may not subscribe to {channel!r}", channel=channel)
            return
        since_raw = frame.get("since")
        try:
            since = None if since_raw is None else parse_offset(since_raw)
        except ValueError as exc:
            self._error("bad_frame", str(exc))
            return
        presence = frame.get("presence", False)
        if not isinstance(presence, bool):
            self._error("bad_frame", "presence must be true or false", channel=channel)
            return
        if presence:  # its snapshot of the members is a read, like a ``presence`` frame
            retry_after = self.rt.query_quota.wait(self.identity, self._loop.time())
            if retry_after:
                self.rt.stats.drop("query_quota")
                self._refuse(None, channel, retry_after, "too many reads: retry later")
                return
        old = self.subscriptions.pop(channel, None)
        most = self.rt.settings.max_subscriptions
        if old is not None:
            self.rt.hub.unsubscribe(old)
        elif len(self.subscriptions) >= most:
            self._error("forbidden", f"at most {most} subscriptions per connection", channel=channel)
            return
        conn = self.conn
        subscriber = Subscriber(conn, channel, presence)
        self.subscriptions[channel] = subscriber
        hub = self.rt.hub
        try:
            history = await hub.subscribe(subscriber, since)
            snapshot = await hub.subscribe_presence(subscriber) if presence else None
        except TooManyChannels as exc:
            if self.subscriptions.get(channel) is subscriber:
                del self.subscriptions[channel]
            self.rt.stats.drop(f"channels_{exc.scope}")
            whose = "you subscribe to" if exc.scope == "identity" else "this server follows"
            self._error("forbidden", f"{whose} as many channels as it may ({exc.most})", channel=channel)
            return
        except BrokerError as exc:
            if self.subscriptions.get(channel) is subscriber:
                del self.subscriptions[channel]
                hub.unsubscribe(subscriber)
            why = f"cannot subscribe now: {exc}"
            self._error(UNAVAILABLE, why, channel=channel, retry_after=_BROKER_RETRY)
            return
        answer = _dumps(
            {
                "type": "subscribed",
                "channel": channel,
                "offset": history.latest,
                "recovered": history.recovered,
            }
        )
        if snapshot is not None:
            members = ",".join(snapshot.members)
            answer = (
                answer[:-1]
                + ',"presence":{"members":['
                + members
                + '],"version":"'
                + snapshot.version
                + '"}}'
            )
            if not self._answer(answer):
                return
            subscriber.presence_live(offset_key(snapshot.version))
        else:
            conn.push(answer)
        floor = await replay(conn, history)
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
        if not self.rt.allowed(channel, self.claims, "publish"):
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
        now = self._loop.time()
        retry_after = self.rt.publish_wait(self.identity, len(data_json), now)
        if retry_after:
            self.rt.stats.drop("publish_quota")
            # A hold like the rate's: what follows in flight is refused too, so the client can
            # send the refused publications again in their order.
            marker = self._gate.hold(now, retry_after)
            wait = self._gate.retry_after(now) if marker is not None else retry_after
            self._refuse(
                publish_id, None, wait, "too many publications (or bytes of them) from you: retry later"
            )
            if marker is not None:
                self.conn.push(_dumps({"type": "ping", "t": marker}))
            return
        size = len(data_json)
        in_flight = self._in_flight
        while in_flight and (
            len(in_flight) >= _PUBLISH_WINDOW or self._in_flight_bytes + size > _PUBLISH_WINDOW_BYTES
        ):
            await asyncio.wait((in_flight[0],))
        self._in_flight_bytes += size
        pid = publish_id if isinstance(publish_id, str) else None
        in_flight.append(self._loop.create_task(self._publish(channel, event, data_json, pid, size)))

    async def _publish(
        self, channel: str, event: str, data_json: str, publish_id: str | None, size: int
    ) -> None:
        """Publish, then ack. Started in frame order, before its first suspension: the broker
        receives one client's publications in the order they were sent."""
        stats = self.rt.stats
        try:
            offset, duplicate = await self.rt.broker.publish(
                channel, event, data_json, publish_id=publish_id, scope=self.identity
            )
        except IngressError as exc:
            self._error(exc.code, str(exc), publish_id)
            return
        except BrokerError as exc:
            log.warning("publish to %r failed: %s", channel, exc)
            if publish_id is not None:
                stats.acks["error"] += 1
                self.conn.push(_ack_unavailable(publish_id))
            else:
                self._error(UNAVAILABLE, "cannot publish now", retry_after=_BROKER_RETRY)
            return
        except Exception:
            log.exception("publish to %r failed", channel)
            if publish_id is not None:
                stats.acks["error"] += 1
                self.conn.push(_ack_error(publish_id, "internal error"))
            return
        finally:
            self._in_flight_bytes -= size
            with contextlib.suppress(ValueError):
                self._in_flight.remove(asyncio.current_task())  # type: ignore[arg-type]
            if not self._in_flight and self.rt.draining and not self.busy and not self.conn.closed:
                self.conn.close(1001, self.rt.drain_reason)
        if duplicate:
            stats.dedup_hits["publish"] += 1
        else:
            stats.publications += 1
        if publish_id is not None:
            stats.acks["ok"] += 1
            self._send_json({"type": "ack", "id": publish_id, "ok": True, "data": {"offset": offset}})

    @property
    def _owner(self) -> str:
        """This connection as the owner of presence entries (instances share one broker)."""
        return f"{self.rt.instance}:{self.conn.session}"

    async def _on_presence(self, frame: dict[str, Any]) -> None:
        frame_id = self._read_allowed(frame)
        if frame_id is None:
            return
        channel = frame.get("channel")
        if not is_channel_name(channel):
            self._error("bad_frame", _CHANNEL_RULE, frame_id)
            return
        try:
            snapshot = await self.rt.broker.presence.members(channel)
        except BrokerError as exc:
            log.warning("presence of %r failed: %s", channel, exc)
            self._error("unavailable", "cannot read presence now", frame_id)
            return
        members = ",".join(snapshot.members)
        data = '{"members":[' + members + '],"version":"' + snapshot.version + '"}'
        self._answer('{"type":"ack","id":' + _dumps(frame_id) + ',"ok":true,"data":' + data + "}")

    async def _on_presence_join(self, frame: dict[str, Any]) -> None:
        """Join (or update) this client's member in a channel's presence."""
        frame_id = frame.get("id")
        if frame_id is not None and not _valid_id(frame_id):
            self._error("bad_frame", ID_RULE)
            return
        channel, key, info = frame.get("channel"), frame.get("key", ""), frame.get("info")
        settings = self.rt.settings
        if not is_channel_name(channel):
            self._error("bad_frame", _CHANNEL_RULE, frame_id)
            return
        if not isinstance(key, str) or len(key) > _KEY_MAX:
            self._error("bad_frame", f"key must be a string of at most {_KEY_MAX} characters", frame_id)
            return
        if not self.rt.allowed(channel, self.claims, "join"):
            self._error("forbidden", f"you may not join the presence of {channel!r}", frame_id)
            return
        if not self._presence_allowed(frame_id):
            return
        member = member_id(self.identity, key or self.conn.session)
        if (channel, member) not in self.presence and len(self.presence) >= settings.max_presence_joins:
            most = settings.max_presence_joins
            self._error("forbidden", f"at most {most} presence joins per connection", frame_id)
            return
        try:
            shown = self.rt.presence_info(channel, self.subject, info)
            if inspect.isawaitable(shown):
                shown = await shown
            info_json = _dumps(shown)
            check_text(info_json)
        except HandlerError as exc:
            self._error("forbidden", str(exc), frame_id)
            return
        except (ValueError, TypeError, RecursionError):
            self._error("bad_frame", "info cannot be encoded", frame_id)
            return
        except Exception:
            log.exception("the presence_info hook failed")
            self._error("bad_frame", "info was refused (internal error)", frame_id)
            return
        if len(info_json) > settings.max_presence_info_bytes:
            most = settings.max_presence_info_bytes
            self._error("bad_frame", f"info is too large (at most {most} characters of JSON)", frame_id)
            return
        member_json = (
            '{"client":"' + member + '","user":' + _dumps(self.subject) + ',"info":' + info_json + "}"
        )
        try:
            result = await self.rt.broker.presence.join(
                channel,
                member,
                member_json,
                self.identity,
                self._owner,
                max_members=settings.max_presence,
                max_per_identity=settings.max_presence_per_identity,
            )
        except BrokerError as exc:
            log.warning("presence join of %r failed: %s", channel, exc)
            self._error("unavailable", "cannot join presence now", frame_id)
            return
        if result.status != "ok":
            self.rt.stats.drop(f"presence_{result.status}")
            self._error("forbidden", _PRESENCE_FULL[result.status].format(channel=channel), frame_id)
            return
        self.presence.add((channel, member))
        if frame_id is not None:
            self._send_json({"type": "ack", "id": frame_id, "ok": True, "data": {"client": member}})

    async def _on_presence_leave(self, frame: dict[str, Any]) -> None:
        frame_id = frame.get("id")
        if frame_id is not None and not _valid_id(frame_id):
            self._error("bad_frame", ID_RULE)
            return
        channel, key = frame.get("channel"), frame.get("key", "")
        if not is_channel_name(channel) or not isinstance(key, str) or len(key) > _KEY_MAX:
            self._error(
                "bad_frame",
                f"presence_leave needs a channel and a key of at most {_KEY_MAX} characters",
                frame_id,
            )
            return
        if not self._presence_allowed(frame_id):
            return
        member = member_id(self.identity, key or self.conn.session)
        if not await self._leave_presence(channel, member):
            self._error("unavailable", "cannot leave presence now", frame_id)
            return
        if frame_id is not None:
            self._send_json({"type": "ack", "id": frame_id, "ok": True, "data": None})

    def _presence_allowed(self, frame_id: object) -> bool:
        """Whether a presence change (a join, an update, a leave) fits in the identity's presence
        rate: each one is a diff for every presence subscriber of the channel. Else refused
        (``rate_limited`` with ``retry_after``)."""
        retry_after = self.rt.presence_quota.wait(self.identity, self._loop.time())
        if retry_after:
            self.rt.stats.drop("presence_quota")
            self._refuse(frame_id, None, retry_after, "too many presence changes: retry later")
            return False
        return True

    async def _leave_presence(self, channel: str, member: str) -> bool:
        """Remove ``member`` (one of this client's) from ``channel``'s presence; ``False`` when
        the store is down."""
        self.presence.discard((channel, member))
        try:
            await self.rt.broker.presence.leave(channel, member)
        except BrokerError as exc:
            log.warning("presence leave of %r failed: %s", channel, exc)
            return False
        return True

    def _read_allowed(self, frame: dict[str, Any]) -> str | None:
        """The id of a read (``history``, ``presence``) that may go ahead, else ``None`` after
        refusing it: it needs an id (its answer is an ack), the right to subscribe to its
        channel, and room in the identity's query rate."""
        frame_id = frame.get("id")
        if not _valid_id(frame_id):
            self._error("bad_frame", f"a read needs an id: {ID_RULE}")
            return None
        assert isinstance(frame_id, str)
        channel = frame.get("channel")
        if is_channel_name(channel) and not self.rt.allowed(channel, self.claims, "subscribe"):
            self._error("forbidden", f"you may not read {channel!r}", frame_id)
            return None
        retry_after = self.rt.query_quota.wait(self.identity, self._loop.time())
        if retry_after:
            self.rt.stats.drop("query_quota")
            self._refuse(frame_id, None, retry_after, "too many reads: retry later")
            return None
        return frame_id

    async def _on_history(self, frame: dict[str, Any]) -> None:
        frame_id = self._read_allowed(frame)
        if frame_id is None:
            return
        settings = self.rt.settings
        try:
            query = parse_query(
                frame.get("channel"),
                frame.get("since"),
                frame.get("limit"),
                frame.get("reverse"),
                max_limit=settings.history_page_limit,
            )
            page = await read_page(self.rt.broker, query, settings.history_page_bytes)
        except BadQuery as exc:
            self._error("bad_frame", str(exc), frame_id)
            return
        except BrokerError as exc:
            log.warning("history of %r failed: %s", frame.get("channel"), exc)
            self._error("unavailable", "cannot read history now", frame_id)
            return
        self.rt.stats.history_reads += 1
        self._answer(
            '{"type":"ack","id":' + _dumps(frame_id) + ',"ok":true,"data":' + encode_page(page) + "}"
        )

    async def _on_refresh(self, frame: dict[str, Any]) -> None:
        """A new token for this connection: same subject, issued no earlier than the one in use
        (``iat``: a narrower token cannot be undone by sending back an older, broader one). Its
        capabilities replace the old ones (what they no longer allow ends, with ``forbidden``).
        The token is never echoed, logged or kept beyond its claims."""
        frame_id = frame.get("id")
        if frame_id is not None and not _valid_id(frame_id):
            self._error("bad_frame", f"id must be a non-empty string of at most {_ID_MAX} characters")
            return
        token = frame.get("token")
        if not isinstance(token, str):
            self._error("bad_frame", "refresh needs a token (a string)", frame_id)
            return
        retry_after = self._refreshes.wait(self._loop.time())
        if retry_after:  # checked before the token: a flood costs no HMAC and no policy calls
            self.rt.stats.rejected["refresh"] += 1
            self._refuse(frame_id, None, retry_after, "too many refreshes: retry later")
            return
        secret = self.rt.settings.token_secret
        if not secret:  # authentication is off: nothing expires
            if frame_id is not None:
                self._send_json({"type": "ack", "id": frame_id, "ok": True, "data": {"ttl": None}})
            return
        claims = verify_token(secret, token)
        why = ""
        if claims is None:
            why = "bad or expired token"
        elif claims.subject != self.subject:
            why = "a refresh must name the same subject"
        elif self.claims is not None and claims.issued < self.claims.issued:
            why = "a refresh must not be older than the token in use"  # e.g. one with broader caps
        if claims is None or why:
            self.rt.stats.rejected["refresh"] += 1
            self._error("unauthorized", why, frame_id)
            return
        self.claims = claims
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = expire_with_token(self.conn, claims)
        self.rt.stats.refreshes += 1
        self._revoke()
        if frame_id is not None:
            self._send_json(
                {"type": "ack", "id": frame_id, "ok": True, "data": {"ttl": round(claims.ttl(), 3)}}
            )

    def _revoke(self) -> None:
        """End what the current claims no longer allow (after a refresh)."""
        for channel in [c for c in self.subscriptions if not self.rt.allowed(c, self.claims, "subscribe")]:
            self.rt.hub.unsubscribe(self.subscriptions.pop(channel))
            self._error("forbidden", f"you may no longer subscribe to {channel!r}", channel=channel)
        store = self.rt.broker.presence
        for channel, member in [p for p in self.presence if not self.rt.allowed(p[0], self.claims, "join")]:
            self.presence.discard((channel, member))
            store.release(channel, member, self._owner, clean=True)
            self._error("forbidden", f"you may no longer be present in {channel!r}", channel=channel)

    async def settled(self) -> None:
        """Wait until this client's publications in flight are acked (or failed)."""
        while self._in_flight:
            await asyncio.wait((self._in_flight[-1],))


def _printable(text: str) -> bool:
    try:
        check_text(text)
    except ValueError:
        return False
    return True


def _valid_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= _ID_MAX


def _ack_error(message_id: str, error: str) -> str:
    return _dumps({"type": "ack", "id": message_id, "ok": False, "error": error})


def _ack_unavailable(message_id: str) -> str:
    """A failed ack the client retries (pyrt.refusals): the broker is down, nothing was done."""
    return _dumps(
        {
            "type": "ack",
            "id": message_id,
            "ok": False,
            "error": "temporarily unavailable, retry",
            "code": UNAVAILABLE,
            "retry_after": _BROKER_RETRY,
        }
    )


_PEEK_MAX = 8192  # a refused frame larger than this is read only up to its id: refusals stay cheap
_HEAD = re.compile(r'\{\s*"type"\s*:\s*"([a-z_]{1,20})"\s*,\s*"id"\s*:\s*("(?:[^"\\]|\\.){1,300}")')


def _peek(text: str) -> dict[str, Any]:
    """What a refusal needs of a frame (its type, id, channel); ``{}`` when it is not an object.

    A large frame is not parsed whole: its ``type`` and ``id`` are read from its start, where
    pyrt writes them (the refusal of another client's large frame then names no id)."""
    if len(text) > _PEEK_MAX:
        head: dict[str, Any] = {}
        match = _HEAD.match(text)
        if match is not None:
            head["type"] = match.group(1)
            with contextlib.suppress(ValueError):
                head["id"] = json.loads(match.group(2))
        return head
    try:
        frame = loads(text)
    except IngressError as exc:
        frame = exc.value
    return frame if isinstance(frame, dict) else {}


def _remembered(ack: str, message_id: str, ok: bool) -> tuple[str, str]:
    """``ack`` and what the dedup window keeps for re-sent copies: the ack itself when small,
    else the same answer without its data (``"duplicate": true`` says why)."""
    if len(ack) <= _REMEMBER_MAX:
        return ack, ack
    compact: dict[str, Any] = {"type": "ack", "id": message_id, "ok": ok, "duplicate": True}
    if not ok:
        compact["error"] = "refused (the error text was too long to keep)"
    return ack, _dumps(compact)
