"""``GET /ws``: the pyrt protocol over WebSocket (docs/protocol.md).

:class:`WebSocketEndpoint` is a raw ASGI app: it checks Origin, the per-IP cap and the token,
accepts with subprotocol ``pyrt.v1`` (or ``pyrt.v1.batch``), then a :class:`WsSession` drives the
connection's :class:`~pyrt.session.server.ServerSession`: it feeds it the frames one at a time,
in order, and carries out what it asks — frames through the connection's send queue, publications
and reads through the broker, messages through the application. Every decision is the session's
(the same class answers for :class:`pyrt.testing.FakePyrtServer`); this module only does I/O.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

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
from pyrt.server.brokers.base import BrokerError, Page
from pyrt.server.connection import Connection
from pyrt.server.history import history_page
from pyrt.server.hub import Subscriber, replay
from pyrt.server.offsets import offset_key
from pyrt.server.runtime import Runtime
from pyrt.session import actions as act
from pyrt.session import messages
from pyrt.session.config import Peer
from pyrt.session.server import ServerSession
from pyrt.wire.ingress import IngressError

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
    """One ``/ws`` connection after the handshake: the I/O around its :class:`ServerSession`."""

    def __init__(self, runtime: Runtime, conn: Connection, claims: Claims | None) -> None:
        self.rt = runtime
        self.conn = conn
        self.claims = claims
        self.subject = claims.subject if claims else None
        #: Who this client is for dedup scopes and per-identity quotas.
        self.identity = runtime.identity(self.subject, conn.client_ip)
        loop = asyncio.get_running_loop()
        self._loop = loop
        now = loop.time()
        self.protocol = ServerSession(
            runtime.session_config,
            Peer(conn.session, self.identity, f"{runtime.instance}:{conn.session}"),
            runtime.authority,
            now,
            grant=claims,
            wall_offset=time.time() - now,
            publish_quota=runtime.publish_quota,
            query_quota=runtime.query_quota,
            stats=runtime.stats,
        )
        self.subscribers: dict[str, Subscriber] = {}
        #: Broker and application actions the reader carries out, in order, before reading on.
        self._backlog: deque[act.Action] = deque()
        self._readable = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._expiry: asyncio.TimerHandle | None = None
        self._expiry_at: float | None = None

    @property
    def busy(self) -> bool:
        """Whether a frame is being handled or publications are in flight: a graceful shutdown
        closes this connection after their answers."""
        return self.protocol.busy

    async def run(self, receive: Any) -> None:
        """Serve frames until the client disconnects."""
        protocol = self.protocol
        conn = self.conn
        protocol.start(self._loop.time())
        self.perform()
        backlog = self._backlog
        while True:
            while True:
                while backlog:  # what a frame asked of the broker or the application, in order
                    await self._carry_out(backlog.popleft())
                if protocol.reading or protocol.closing:
                    break
                self._readable.clear()
                await self._readable.wait()
            message = None  # an idle client must not keep its last (maybe 1 MiB) frame here
            message = await receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                protocol.clean_exit = message.get("code", 1006) in (1000, 1001) and not conn.closed
                return
            if kind != "websocket.receive" or conn.closed or protocol.closing:
                continue
            await conn.unstalled()
            text = message.get("text")
            frame = text if text is not None else (message.get("bytes") or b"")
            message = text = None
            protocol.received(frame, self._loop.time())
            frame = None
            self.perform()

    def cleanup(self) -> None:
        """The connection is gone: release its presence, end its subscriptions and tasks."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self._backlog.clear()
        protocol = self.protocol
        protocol.closed(1000 if protocol.clean_exit else 1006, self._loop.time())
        self.perform()
        for subscriber in self.subscribers.values():
            self.rt.hub.unsubscribe(subscriber)
        self.subscribers.clear()
        self.conn.detach()

    def tick(self, now: float) -> None:
        """Liveness and token expiry (the runtime's sweep calls it every ``heartbeat / 2``)."""
        self.protocol.tick(now)
        self.perform()

    def drain(self, reason: str) -> None:
        """The server shuts down: close with 1001 once the frame being handled is answered."""
        self.protocol.drain(reason, self._loop.time())
        self.perform()

    # ------------------------------------------------------------------------ carrying out

    def perform(self) -> None:
        """Carry out what the session asks, in order."""
        protocol = self.protocol
        for action in protocol.actions():
            kind = type(action)
            if kind is act.Send:
                assert isinstance(action, act.Send)
                self._send(action)
            elif kind is act.Close:
                assert isinstance(action, act.Close)
                self.conn.close(action.code, action.reason)
            elif kind is act.Abort:
                log.info("session %s silent for too long: dropping it", self.conn.session)
                self.conn.abort()
            elif kind is act.Unsubscribe:
                assert isinstance(action, act.Unsubscribe)
                subscriber = self.subscribers.pop(action.channel, None)
                if subscriber is not None:
                    self.rt.hub.unsubscribe(subscriber)
            elif kind is act.Release:
                assert isinstance(action, act.Release)
                self.rt.broker.presence.release(
                    action.channel, action.member, action.owner, clean=action.clean
                )
            elif kind is act.Publish:  # in flight together: each in a task, started in frame order
                self._spawn(self._carry_out(action))
            else:
                self._backlog.append(action)
        if self._backlog or protocol.reading or protocol.closing:
            self._readable.set()
        self._arm_expiry()

    def _send(self, action: act.Send) -> None:
        """Queue an answer. A large one made for this client alone is refused, and the connection
        cut off as a slow consumer (1013), when this client's connections already hold
        ``identity_queue_bytes`` between them: compressed requests must not make the server hold
        their inflated answers for a thousand connections."""
        text = action.text
        if action.own and len(text) > _LARGE_ANSWER and not self.rt.room_for(self.conn, len(text)):
            self.rt.stats.drop("identity_budget")
            self.conn.cut_off()
            return
        self.conn.push(text)

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _arm_expiry(self) -> None:
        deadline = self.protocol.next_deadline()
        if deadline == self._expiry_at:
            return
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry_at = deadline
        self._expiry = None if deadline is None else self._loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        self.tick(self._loop.time())

    async def _carry_out(self, action: act.Action) -> None:
        """A broker or application action: the reader awaits each in turn (the session reads no
        frame meanwhile); a publication runs in a task of its own, started before the next frame
        is read, so the broker receives them in order."""
        protocol = self.protocol
        loop = self._loop
        try:
            if isinstance(action, act.Publish):
                await self._publish(action)
            elif isinstance(action, act.HandleMessage):
                ack, duplicate = await self._handle_message(action)
                protocol.handled(action.ticket, ack, duplicate, loop.time())
            elif isinstance(action, act.Subscribe):
                await self._subscribe(action)
            elif isinstance(action, act.ReadHistory):
                await self._read_history(action)
            elif isinstance(action, act.ReadPresence):
                try:
                    snapshot = await self.rt.broker.presence.members(action.channel)
                except BrokerError as exc:
                    log.warning("presence of %r failed: %s", action.channel, exc)
                    protocol.read_failed(action.ticket, loop.time())
                else:
                    protocol.presence_read(action.ticket, snapshot.members, snapshot.version, loop.time())
            elif isinstance(action, act.ShowInfo):
                await self._show_info(action)
            elif isinstance(action, act.Join):
                await self._join(action)
            elif isinstance(action, act.Leave):
                try:
                    await self.rt.broker.presence.leave(action.channel, action.member)
                except BrokerError as exc:
                    log.warning("presence leave of %r failed: %s", action.channel, exc)
                    protocol.left(action.ticket, False, loop.time())
                else:
                    protocol.left(action.ticket, True, loop.time())
        except Exception:
            log.exception(
                "a %s could not be carried out: closing the connection with 1011", type(action).__name__
            )
            self.rt.stats.error("internal")
            self.conn.close(1011, "internal error")
        self.perform()

    async def _publish(self, action: act.Publish) -> None:
        protocol = self.protocol
        try:
            offset, duplicate = await self.rt.broker.publish(
                action.channel, action.event, action.data_json, publish_id=action.id, scope=action.scope
            )
        except IngressError as exc:
            protocol.publish_failed(action.ticket, exc.code, str(exc), self._loop.time())
        except BrokerError as exc:
            log.warning("publish to %r failed: %s", action.channel, exc)
            protocol.publish_failed(action.ticket, "unavailable", str(exc), self._loop.time())
        except Exception:
            log.exception("publish to %r failed", action.channel)
            protocol.publish_failed(action.ticket, "internal", "internal error", self._loop.time())
        else:
            protocol.published(action.ticket, offset, duplicate, self._loop.time())

    async def _handle_message(self, action: act.HandleMessage) -> tuple[str | None, bool]:
        conn = self.conn
        protocol = self.protocol

        def reply(data: Any) -> bool:
            sent = protocol.reply(data)
            self.perform()
            return sent

        message = IncomingMessage(
            data=action.data,
            id=action.id,
            session=conn.session,
            cid=conn.cid,
            subject=self.subject,
            reply=reply,
            address=conn.client_ip,
        )
        message_id = action.id
        if message_id is None:
            try:
                await self.rt.handler(message)
            except Exception:
                log.exception("message handler failed (fire-and-forget message)")
            return None, False

        async def compute() -> tuple[str, str | None]:
            try:
                result = await self.rt.handler(message)
            except HandlerError as exc:
                return messages.ack_refused(message_id, str(exc))
            except Exception:
                log.exception("message handler failed")
                return messages.ack_internal(message_id), None
            return messages.ack_result(message_id, result)

        try:
            return await self.rt.broker.message_dedup.run_once(self.identity, message_id, compute)
        except BrokerError as exc:
            log.warning("message %r not handled: %s", message_id, exc)
            return messages.ack_unavailable(message_id), False
        except RuntimeError as exc:  # the first copy of this id failed while we waited for it
            return messages.ack_refused(message_id, str(exc))[0], False

    async def _subscribe(self, action: act.Subscribe) -> None:
        protocol = self.protocol
        loop = self._loop
        subscriber = Subscriber(self.conn, action.channel, action.presence)
        self.subscribers[action.channel] = subscriber
        hub = self.rt.hub
        since = action.since
        try:
            history = await hub.subscribe(subscriber, since)
            snapshot = await hub.subscribe_presence(subscriber) if action.presence else None
        except BrokerError as exc:
            protocol.subscribe_failed(action.ticket, str(exc), loop.time())
            return
        members = snapshot.members if snapshot is not None else None
        version = snapshot.version if snapshot is not None else None
        if not protocol.subscribed(
            action.ticket, history.latest, history.recovered, members, version, loop.time()
        ):
            return
        self.perform()  # the answer goes before the replay
        if self.conn.closed or self.subscribers.get(action.channel) is not subscriber:
            return
        if snapshot is not None:
            subscriber.presence_live(offset_key(snapshot.version))
        floor = await replay(self.conn, history)
        self.rt.stats.replayed += len(history.publications)
        if self.subscribers.get(action.channel) is subscriber:
            subscriber.go_live(floor)

    async def _read_history(self, action: act.ReadHistory) -> None:
        try:
            page: Page = await self.rt.broker.page(
                action.channel,
                action.since,
                limit=action.limit,
                reverse=action.reverse,
                max_bytes=action.max_bytes,
            )
        except BrokerError as exc:
            log.warning("history of %r failed: %s", action.channel, exc)
            self.protocol.read_failed(action.ticket, self._loop.time())
            return
        self.protocol.history_read(action.ticket, history_page(page), self._loop.time())

    async def _show_info(self, action: act.ShowInfo) -> None:
        try:
            shown = self.rt.presence_info(action.channel, action.subject, action.info)
            if inspect.isawaitable(shown):
                shown = await shown
        except HandlerError as exc:
            self.protocol.info_refused(action.ticket, str(exc), self._loop.time())
        except Exception:
            log.exception("the presence_info hook failed")
            self.protocol.info_refused(action.ticket, None, self._loop.time())
        else:
            self.protocol.info_shown(action.ticket, shown, self._loop.time())

    async def _join(self, action: act.Join) -> None:
        try:
            result = await self.rt.broker.presence.join(
                action.channel,
                action.member,
                action.member_json,
                action.identity,
                action.owner,
                max_members=action.max_members,
                max_per_identity=action.max_per_identity,
            )
        except BrokerError as exc:
            log.warning("presence join of %r failed: %s", action.channel, exc)
            self.protocol.joined(action.ticket, "unavailable", self._loop.time())
            return
        self.protocol.joined(action.ticket, result.status, self._loop.time())
