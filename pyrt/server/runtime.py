"""What the endpoints share: settings, broker, hub, counters, the open connections, and shutdown.

One :class:`Runtime` per app. ``await start()`` before serving (the app's lifespan does it);
``await drain()`` closes every client with 1001 / ends every SSE stream and waits for them, so a
SIGTERM loses nothing; ``await stop()`` closes the broker.

A drain asks clients to spread their reconnects over ``connections / reconnect_rate`` seconds
(:mod:`pyrt.wire.reconnect_window`): WebSockets get ``reconnect_window=W`` in their close reason, each
SSE stream a ``retry:`` drawn within the window, and requests that arrive meanwhile a 503 with a
``Retry-After`` drawn within it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyrt.server.application import Handler
from pyrt.server.auth import Claims, verify_token
from pyrt.server.brokers.base import Broker
from pyrt.server.connection import Connection, Flusher
from pyrt.server.http_relay import Apply
from pyrt.server.hub import Hub
from pyrt.server.limits import ConnectionCap, KeyedBuckets, KeyedMeters
from pyrt.server.metrics import Histograms, Stats
from pyrt.server.permissions import caps_allow
from pyrt.server.settings import Settings
from pyrt.server.trace import Tracer
from pyrt.session.config import Grant, SessionConfig
from pyrt.wire.reconnect_window import close_reason, drain_window
from pyrt.wire.sse_encode import encode_comment

if TYPE_CHECKING:
    from pyrt.server.otel import ServerTelemetry

__all__ = ["ChannelPolicy", "PresenceInfo", "Runtime", "default_channel_policy", "default_presence_info"]

log = logging.getLogger("pyrt.server")

#: ``policy(channel, subject, action)`` -> allowed? ``action`` is ``"subscribe"``, ``"publish"``
#: or ``"join"`` (:mod:`pyrt.server.permissions`); ``subject`` is the token's subject (``None``
#: without authentication).
ChannelPolicy = Callable[[str, str | None, str], bool]

#: ``presence_info(channel, subject, info)`` -> what others see of a member (sync or async);
#: raise :class:`~pyrt.server.application.HandlerError` to refuse the join (``forbidden``).
PresenceInfo = Callable[[str, str | None, Any], Any]

_SSE_HEARTBEAT = encode_comment("hb").encode()
MAX_BLOCKS = 1000  # WebSocket blocks held at once (demo mode)
_HOUSEKEEPING_EVERY = 5.0  # seconds between broker housekeeping runs (expiry of idle channels)


def default_channel_policy(channel: str, subject: str | None, action: str) -> bool:
    """Anyone may subscribe to any channel; channels starting with ``_`` are the server's own:
    no client publishes or joins presence there."""
    return action == "subscribe" or not channel.startswith("_")


def default_presence_info(channel: str, subject: str | None, info: Any) -> Any:
    """What a client joins with is what others see (its size is bounded); ``user``, next to it,
    is always the token's subject."""
    return info


class Runtime:
    """The state of one server app."""

    def __init__(
        self,
        settings: Settings,
        broker: Broker,
        handler: Handler,
        channel_policy: ChannelPolicy = default_channel_policy,
        presence_info: PresenceInfo = default_presence_info,
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.handler = handler
        self.channel_policy = channel_policy
        self.presence_info = presence_info
        #: This process among the instances on one broker (presence entries name their owner).
        self.instance = secrets.token_hex(8)
        self.name = settings.server_name or f"pyrt-{os.getpid()}"
        self.stats = Stats()
        self.hub = Hub(
            broker,
            self.stats,
            replay_limit=settings.replay_limit,
            replay_bytes=settings.max_replay_bytes,
            presence_tick=settings.presence_tick,
            max_channels=settings.max_subscribed_channels,
            max_channels_per_identity=settings.max_channels_per_identity,
        )
        self.cap = ConnectionCap(settings.max_connections_per_ip)
        #: Publications per client identity (``publish`` frames and ``POST /publish``).
        self.publish_quota = KeyedBuckets(settings.publish_rate, settings.publish_burst)
        #: Bytes of publication data per client identity (what it may hold in history).
        self.publish_bytes_quota = KeyedBuckets(settings.publish_bytes_rate, settings.publish_bytes_burst)
        #: History and presence reads per client identity (frames and ``GET /history``).
        self.query_quota = KeyedBuckets(settings.query_rate, settings.query_burst)
        #: Presence changes (joins, updates, leaves) per client identity.
        self.presence_quota = KeyedBuckets(settings.presence_rate, settings.presence_burst)
        #: Bytes of received WebSocket messages (inflated) per client identity.
        rate = settings.identity_receive_rate
        self.receive_quota = KeyedMeters(rate, max(rate, settings.max_message_bytes))
        #: Every open connection, with the object that serves it (``WsSession`` or ``None``).
        self.connections: dict[Connection, Any] = {}
        #: When each connection registered (unix seconds), for /admin/connections.
        self.since: dict[Connection, float] = {}
        #: The live trace (pyrt.server.trace): costs an attribute check while nobody reads it.
        self.tracer = Tracer(settings.trace_payloads)
        self.hub.tracer = self.tracer
        #: The histograms of /metrics (pyrt.server.metrics).
        self.histograms = Histograms()
        self.hub.latency = self.histograms.latency
        #: OpenTelemetry spans (pyrt.server.otel), ``None`` unless ``settings.otel``: then only
        #: is OpenTelemetry imported.
        self.otel: ServerTelemetry | None = None
        if settings.otel:
            try:
                from pyrt.server.otel import ServerTelemetry
            except ModuleNotFoundError as exc:
                raise RuntimeError(f"--otel needs {exc.name}: pip install 'pyrt[otel]'") from exc
            self.otel = ServerTelemetry(settings.otel_tracer_provider)
            self.otel.instrument(broker)
        #: Writes the WebSocket connections a turn of the event loop pushed to, at its end.
        self.flusher = Flusher()
        #: Open connections by client identity (for per-identity budgets).
        self.identities: dict[str, set[Connection]] = {}
        self.draining = False
        #: HTTP-binding POSTs between the instances on this broker (``None``: one process).
        self.post_relay = broker.post_relay(self.instance)
        #: Applies a POST for a connection held here (the HTTP binding sets it).
        self.apply_held_post: Apply | None = None
        #: WebSocket upgrades refused for now, by (address, cid): ``POST /demo/block``.
        self.blocked_upgrades: dict[tuple[str, str], float] = {}
        #: The ``limits`` object of every ``welcome`` (docs/protocol.md).
        self.limits: dict[str, Any] = settings.advertised_limits().to_wire()
        #: What every connection's session knows of this server (pyrt.session.server).
        self.session_config = session_config(settings, self.name)
        #: Tokens and rights, as the sessions ask them.
        self.authority = ServerAuthority(self)
        #: Seconds over which the clients of a drain come back (set by :meth:`drain`).
        self.reconnect_window = 0.0
        #: The close reason of a drain: tells clients how to come back.
        self.drain_reason = "server shutting down"
        self._rng = random.Random()
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the broker and the heartbeat loops (idempotent)."""
        if self._started:
            return
        self._started = True
        await self.broker.start(
            self.hub.dispatch if self.otel is None else self.otel.fan_out(self.hub, self.stats)
        )
        if self.post_relay is not None:
            try:
                await self.post_relay.start(self.apply_post)
            except Exception as exc:  # POSTs that reach this instance still work; others 404
                log.warning("HTTP binding relay not started: %s", exc)
                self.post_relay = None
        self.broker.presence.start(self.hub.presence_changed)
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._presence_upkeep()))
        self._tasks.append(loop.create_task(self._sse_heartbeats()))
        self._tasks.append(loop.create_task(self._ws_heartbeats()))
        self._tasks.append(loop.create_task(self._housekeeping()))
        if not self.settings.token_secret:
            log.warning("no token secret configured: authentication is OFF (anyone may connect)")

    async def apply_post(self, key: str, seq: int, text: str, close: int | None, subject: str | None) -> int:
        """A POST forwarded from another instance: applied by the HTTP binding (``404``: none)."""
        apply = self.apply_held_post
        return await apply(key, seq, text, close, subject) if apply is not None else 404

    def add_task(self, task: asyncio.Task[None]) -> None:
        """Own a background task: it is cancelled by :meth:`stop`."""
        self._tasks.append(task)

    async def drain(self, grace: float | None = None) -> None:
        """Refuse new connections, close every open one (1001 / end of stream) after what is
        queued for it, and wait up to ``grace`` seconds for them to go."""
        self.draining = True
        window = drain_window(len(self.connections), self.settings.reconnect_rate)
        self.reconnect_window = window
        try:  # members of this instance leave after the grace (or the window, when longer),
            await self.broker.presence.hand_over(window)  # unless their clients come back
        except Exception as exc:
            log.warning("presence hand-over failed: %s", exc)
        self.drain_reason = close_reason("server shutting down", window=window)
        for conn, session in list(self.connections.items()):
            if conn.kind == "sse" and window > 0 and not conn.closed:
                # EventSource has no jitter of its own: each stream gets its own moment.
                conn.push(f"retry: {math.ceil(self._rng.random() * window * 1000)}\n\n".encode())
            if session is not None:
                session.drain(self.drain_reason)  # after the frame it is handling (its ack first)
            else:
                conn.close(1001, self.drain_reason)
        grace = self.settings.shutdown_grace if grace is None else grace
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            conn.abort()

    async def stop(self) -> None:
        """Stop background tasks and close the broker."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.post_relay is not None:
            await self.post_relay.stop()
        await self.broker.close()
        if self.otel is not None:
            self.otel.shutdown()
        self._started = False

    # --- permissions --------------------------------------------------------------------------

    def allowed(self, channel: str, claims: Claims | None, action: str) -> bool:
        """Whether a client with ``claims`` (``None``: authentication off) may ``action`` in
        ``channel``: its token's capabilities, if any, and the channel policy must both allow it
        (:mod:`pyrt.server.permissions`)."""
        if claims is not None and not caps_allow(claims.caps, channel, action):
            return False
        return self.channel_policy(channel, claims.subject if claims else None, action)

    def publish_wait(self, identity: str, size: int, now: float) -> float:
        """Spend one publication of ``size`` bytes of data from ``identity`` (0.0), or return the
        seconds until its quotas (publications and bytes per second) allow it."""
        retry_after = self.publish_bytes_quota.wait(identity, now, size)
        if retry_after:
            return retry_after
        return self.publish_quota.wait(identity, now)

    def retry_after_header(self) -> bytes:
        """``Retry-After`` for a request refused while draining: whole seconds drawn within the
        reconnect window (at least 1), so refused clients do not come back together."""
        return str(max(1, math.ceil(self._rng.random() * self.reconnect_window))).encode()

    # --- connections --------------------------------------------------------------------------

    @staticmethod
    def now() -> float:
        """The clock of every rate limit (the event loop's, monotonic seconds)."""
        return asyncio.get_running_loop().time()

    def new_session(self) -> str:
        return secrets.token_urlsafe(12)

    @staticmethod
    def identity(subject: str | None, address: str) -> str:
        """Who a client is, for dedup scopes and per-identity quotas: the token's subject, else
        (authentication off) its address."""
        return f"sub:{subject}" if subject is not None else f"ip:{address}"

    def register(self, conn: Connection, session: Any = None) -> None:
        self.connections[conn] = session
        self.since[conn] = time.time()
        self.identities.setdefault(conn.identity, set()).add(conn)
        self.stats.connections_open[conn.kind] += 1
        self.stats.connections_total[conn.kind] += 1

    def unregister(self, conn: Connection) -> None:
        if self.connections.pop(conn, False) is not False:
            self.stats.connections_open[conn.kind] -= 1
        self.since.pop(conn, None)
        same = self.identities.get(conn.identity)
        if same is not None:
            same.discard(conn)
            if not same:
                del self.identities[conn.identity]

    def room_for(self, conn: Connection, size: int) -> bool:
        """Whether ``conn`` may queue ``size`` more bytes made for its client alone: its identity's
        connections together hold at most ``identity_queue_bytes`` (0: no limit)."""
        budget = self.settings.identity_queue_bytes
        if budget <= 0:
            return True
        held = sum(other.buffered_bytes for other in self.identities.get(conn.identity, (conn,)))
        return held + size <= budget

    def block_upgrades(self, address: str, cid: str, seconds: float) -> None:
        """Refuse the WebSocket upgrades of client ``cid`` from ``address`` for ``seconds`` (0:
        lift the block). At most :data:`MAX_BLOCKS` at a time: expired ones go first, then the
        oldest."""
        now = asyncio.get_running_loop().time()
        blocks = self.blocked_upgrades
        for key in [key for key, until in blocks.items() if until <= now]:
            del blocks[key]
        blocks.pop((address, cid), None)
        if seconds > 0:
            while len(blocks) >= MAX_BLOCKS:
                del blocks[next(iter(blocks))]
            blocks[(address, cid)] = now + seconds

    def upgrade_blocked(self, address: str, cid: str | None) -> bool:
        """Whether a WebSocket upgrade of ``cid`` from ``address`` is refused for now."""
        if cid is None or not self.blocked_upgrades:
            return False
        until = self.blocked_upgrades.get((address, cid))
        return until is not None and asyncio.get_running_loop().time() < until

    def select(self, session: str | None = None, cid: str | None = None) -> list[Connection]:
        """Open connections with this ``session`` (WebSocket) or ``cid`` (any transport)."""
        return [
            conn
            for conn in self.connections
            if (session is not None and conn.session == session) or (cid is not None and conn.cid == cid)
        ]

    # --- heartbeats ---------------------------------------------------------------------------

    async def _sse_heartbeats(self) -> None:
        interval = self.settings.sse_heartbeat
        while True:
            await asyncio.sleep(interval)
            for conn in list(self.connections):
                if conn.kind != "ws" and not conn.queued_bytes:  # /sse and the HTTP binding's streams
                    conn.push(_SSE_HEARTBEAT)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(_HOUSEKEEPING_EVERY)
            try:
                await self.broker.housekeeping()
            except Exception:
                log.exception("broker housekeeping failed")

    async def _presence_upkeep(self) -> None:
        """Keep this instance's presence entries alive and expire those of instances that died."""
        store = self.broker.presence
        while True:
            await asyncio.sleep(store.ttl / 3)
            try:
                await store.maintain(self.hub.presence_channels())
            except Exception as exc:
                log.warning("presence upkeep failed: %s", exc)

    async def _ws_heartbeats(self) -> None:
        interval = self.settings.heartbeat
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval / 2)
            now = loop.time()
            for session in list(self.connections.values()):
                if session is not None:
                    session.tick(now)


def session_config(settings: Settings, name: str) -> SessionConfig:
    """The limits of one connection's session, from the server's settings."""
    return SessionConfig(
        server=name,
        heartbeat=settings.heartbeat,
        limits=settings.advertised_limits(),
        max_message_chars=settings.max_message_bytes,
        rate=settings.rate_limit,
        burst=settings.rate_burst,
        window=settings.rate_window,
        abuse_limit=settings.abuse_limit,
        refresh_rate=settings.refresh_rate,
        refresh_burst=settings.refresh_burst,
        max_subscriptions=settings.max_subscriptions,
        max_presence_joins=settings.max_presence_joins,
        max_presence=settings.max_presence,
        max_presence_per_identity=settings.max_presence_per_identity,
        max_presence_info_bytes=settings.max_presence_info_bytes,
        history_page_limit=settings.history_page_limit,
        history_page_bytes=settings.history_page_bytes,
    )


class ServerAuthority:
    """The sessions' :class:`~pyrt.session.config.Authority`: HMAC tokens (``token_secret``) and
    the runtime's rights (token capabilities and the channel policy)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @property
    def tokens(self) -> bool:
        return bool(self.runtime.settings.token_secret)

    def verify(self, token: str, wall: float) -> Claims | None:
        return verify_token(self.runtime.settings.token_secret, token, now=wall)

    def allowed(self, grant: Grant | None, channel: str, action: str) -> bool:
        claims = grant if isinstance(grant, Claims) else None
        return self.runtime.allowed(channel, claims, action)
