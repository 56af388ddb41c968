"""The I/O around one connection's :class:`~pyrt.session.server.ServerSession`, whatever carries it.

:class:`SessionDriver` feeds the session the frames of one client, one at a time, in order, and
carries out what it asks: frames through the connection's send queue, publications and reads
through the broker, messages through the application. Every decision is the session's (the same
class answers for :class:`pyrt.testing.FakePyrtServer`). Two bindings drive it: a WebSocket
(:mod:`pyrt.server.protocol_handler`) and the HTTP binding (:mod:`pyrt.server.http_binding`),
whose frames arrive in POSTs and leave as the events of a stream.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from pyrt.server.application import HandlerError, IncomingMessage
from pyrt.server.auth import Claims
from pyrt.server.brokers.base import BrokerError, Page
from pyrt.server.connection import Connection
from pyrt.server.history import history_page
from pyrt.server.hub import Subscriber, TooManyChannels
from pyrt.server.limits import Meter
from pyrt.server.offsets import offset_key
from pyrt.server.runtime import Runtime
from pyrt.session import actions as act
from pyrt.session import messages
from pyrt.session.config import Peer
from pyrt.session.server import ServerSession
from pyrt.wire import binary as wire_binary
from pyrt.wire import codec
from pyrt.wire.ingress import IngressError
from pyrt.wire.types import Frame

__all__ = ["FrameSource", "SessionDriver"]

log = logging.getLogger("pyrt.server")

_LARGE_ANSWER = 64 * 1024  # answers this large count against the client's identity budget

#: Where a driver reads its client's frames: the next one, or ``None`` when the client is gone.
FrameSource = Callable[[], Awaitable[Frame | None]]


class SessionDriver:
    """One connection after its handshake: the I/O around its :class:`ServerSession`."""

    def __init__(
        self,
        runtime: Runtime,
        conn: Connection,
        claims: Claims | None,
        key: str | None = None,
        *,
        binary: bool = False,
    ) -> None:
        self.rt = runtime
        self.conn = conn
        #: Over the HTTP binding: the connection's secret (in its welcome), and what ends its
        #: stream of posted frames when the connection closes.
        self.key = key
        self.ended: Callable[[], None] | None = None
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
            publish_bytes_quota=runtime.publish_bytes_quota,
            query_quota=runtime.query_quota,
            presence_quota=runtime.presence_quota,
            stats=runtime.stats,
            binary=binary,
        )
        self.subscribers: dict[str, Subscriber] = {}
        #: Bytes received (inflated) from this connection: over ``receive_rate``, reading waits.
        rate = runtime.settings.receive_rate
        self._received = Meter(rate, max(rate, runtime.settings.max_message_bytes), now)
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

    async def run(self, next_frame: FrameSource, consumed: Callable[[], None] | None = None) -> None:
        """Serve frames until the client is gone (``next_frame`` returns ``None``); ``consumed``
        is called once each frame was handled (the HTTP binding answers its POST then)."""
        protocol = self.protocol
        conn = self.conn
        protocol.start(self._loop.time(), self.key)
        tracer = self.rt.tracer
        frames_in = self.rt.histograms.frames_in
        if tracer.active:
            tracer.connected(conn, self.subject)
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
            frame = None  # an idle client must not keep its last (maybe 1 MiB) frame here
            frame = await next_frame()
            if frame is None:
                return
            if conn.closed or protocol.closing:
                if consumed is not None:
                    consumed()
                continue
            await conn.unstalled()
            now = self._loop.time()
            size = len(frame)
            frames_in.observe(size)
            if tracer.active:
                tracer.frame_in(conn, self.subject, frame)
            protocol.received(frame, now)
            frame = None
            self.perform()
            # Over the received bytes' rate (this connection's or its identity's): read nothing
            # meanwhile (over the HTTP binding, the POST is answered after the wait). Nothing is
            # refused: the size of an inflated message is known only now.
            wait = max(
                self._received.charge(size, now), self.rt.receive_quota.charge(self.identity, size, now)
            )
            if wait > 0 and not conn.closed:
                self.rt.stats.throttled["receive"] += 1
                await asyncio.sleep(wait)
            if consumed is not None:
                consumed()

    def cleanup(self) -> None:
        """The connection is gone: release its presence, end its subscriptions and tasks."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self._backlog.clear()
        protocol = self.protocol
        protocol.closed(1000 if protocol.clean_exit else 1006, self._loop.time())
        self.perform()
        if self.rt.tracer.active:
            self.rt.tracer.disconnected(self.conn, self.subject, protocol.clean_exit)
        for subscriber in self.subscribers.values():
            self.rt.hub.unsubscribe(subscriber)
        self.subscribers.clear()
        self.conn.detach()

    def tick(self, now: float) -> None:
        """Liveness and token expiry (the runtime's sweep calls it every ``heartbeat / 2``). A
        client whose input the server holds unread is being made to wait, not silent."""
        if self.conn.unread():
            self.protocol.heard(now)
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
                self.close(action.code, action.reason)
            elif kind is act.Abort:
                log.info("session %s silent for too long: dropping it", self.conn.session)
                self.conn.abort()
                if self.ended is not None:
                    self.ended()
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
        conn = self.conn
        self.rt.histograms.frames_out.observe(len(text))
        if self.rt.tracer.active:
            self.rt.tracer.frame_out(conn, self.subject, text)
        if conn.kind == "ws":
            conn.push(text)
        else:
            assert isinstance(text, str)  # the HTTP binding is JSON only
            conn.push(codec.http_event(text))

    def close(self, code: int, reason: str) -> None:
        """End the connection with ``code`` and ``reason``, after what is queued: a close frame on
        a WebSocket, the ``close`` event then the end of the stream on the HTTP binding."""
        conn = self.conn
        if self.rt.tracer.active:
            self.rt.tracer.closing(conn, self.subject, code, reason)
        if conn.kind == "http" and not conn.closed:
            conn.push(codec.http_close_event(code, reason))
        conn.close(code, reason)
        if self.ended is not None:
            self.ended()

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
        otel = self.rt.otel
        if otel is None:
            await self._carry_out_action(action)
            return
        with otel.handling(action, self.conn.session):  # a span for a publish or a message
            await self._carry_out_action(action)

    async def _carry_out_action(self, action: act.Action) -> None:
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
            self.close(1011, "internal error")
        self.perform()

    async def _publish(self, action: act.Publish) -> None:
        protocol = self.protocol
        started = time.monotonic()
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
            if not duplicate:
                self.rt.histograms.latency.published(action.channel, offset, started)
            protocol.published(action.ticket, offset, duplicate, self._loop.time())

    async def _handle_message(self, action: act.HandleMessage) -> tuple[str | None, bool]:
        conn = self.conn
        protocol = self.protocol

        def reply(data: Any) -> bool:
            sent = protocol.reply(data)
            self.perform()
            return sent

        message = IncomingMessage(
            data=wire_binary.untag(action.data) if self.protocol.binary else action.data,
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
        started = time.monotonic()
        try:
            history = await hub.subscribe(subscriber, since)
            snapshot = await hub.subscribe_presence(subscriber) if action.presence else None
        except TooManyChannels as exc:
            self.rt.stats.drop(f"channels_{exc.scope}")
            whose = "you subscribe to" if exc.scope == "identity" else "this server follows"
            why = f"{whose} as many channels as it may ({exc.most})"
            protocol.subscribe_forbidden(action.ticket, why, loop.time())
            return
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
        self.rt.stats.replayed += await hub.replay(subscriber, history)
        if since is not None:
            self.rt.histograms.recover.observe(time.monotonic() - started)

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
