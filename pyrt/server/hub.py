"""Local fan-out: which connections of this process subscribe to which channel.

The broker hands every live publication to :meth:`Hub.dispatch` once; the hub builds each wire
encoding once per fan-out and pushes that shared object into every subscriber's send queue.
One subscriber can never stop the fan-out to the others: a failure delivering to one is logged
and counted, and the loop goes on.

Subscribing without gap or duplicate (:meth:`Hub.subscribe`): the subscriber is registered first
and buffers live publications; then history after ``since`` is read and replayed; then the buffer
is flushed, skipping what the replay already covered (offsets are totally ordered per channel).

A replay holds no more than the client can take (:meth:`Hub.replay`): it is sent at the client's
pace (while its send queue is at most half full), read from the broker a page at a time when the
broker keeps it elsewhere (Redis), and the live publications buffered meanwhile take at most the
connection's send-queue limit: past it they are dropped, and read from the broker once the replay
got there. A client that replays more slowly than the channel's retention trims finds its next
page gone: it is cut off as a slow consumer (1013) and resubscribes from its last offset, when it
learns what it lost (``recovered: false``).

Presence the same way (:meth:`Hub.subscribe_presence`): a subscriber that wants join/leave
diffs buffers them while the channel's members are read; diffs at or below the version of that
snapshot are dropped, the newer ones follow it in order.

A channel's presence changes go out as they come while they are few (a burst of
:data:`PRESENCE_BURST`, refilled one per ``presence_tick``); beyond that they are gathered for
``presence_tick`` seconds and sent as one diff: each member changed meanwhile appears once, with
its last change (a join, which replaces its info, or a leave), and the diff carries the last
version. Applying it to a snapshot taken at any version of the tick gives the state at its end
(joins and leaves are idempotent), so a channel whose members churn costs each subscriber at
most two frames per tick, not one per change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from pyrt.server.brokers.base import Broker, BrokerError, History, Publication
from pyrt.server.connection import Connection
from pyrt.server.limits import TokenBucket
from pyrt.server.metrics import Stats
from pyrt.server.offsets import ZERO, OffsetKey, offset_key
from pyrt.server.presence import Snapshot
from pyrt.wire import binary, codec
from pyrt.wire.frames import PresenceDiff, RawJSON

if TYPE_CHECKING:
    from pyrt.server.metrics import DeliveryLatency
    from pyrt.server.trace import Tracer

__all__ = ["Hub", "Subscriber", "TooManyChannels", "encoded", "page_bytes"]

log = logging.getLogger("pyrt.server")

#: Presence diffs buffered while a subscriber's snapshot is being read, before it counts as slow.
_PENDING_LIMIT = 10_000
#: Publications read from the broker at once while replaying, at most ...
_PAGE_LIMIT = 500
#: ... and about this many bytes of them (or half the connection's send queue, when smaller).
_PAGE_BYTES = 256 * 1024
#: Presence diffs of one channel sent at once, one at a time, before changes are gathered by tick.
PRESENCE_BURST = 10


class TooManyChannels(Exception):
    """A subscription to a channel more than the limits allow: the identity's connections
    (``scope="identity"``) or this process (``scope="process"``) follow as many as they may."""

    def __init__(self, scope: str, most: int) -> None:
        super().__init__(f"{scope}: at most {most} channels")
        self.scope = scope
        self.most = most


class Subscriber:
    """One connection's subscription to one channel (with its presence diffs, when ``presence``)."""

    __slots__ = (
        "behind",
        "channel",
        "conn",
        "floor",
        "pending",
        "pending_bytes",
        "presence",
        "presence_floor",
        "presence_pending",
    )

    def __init__(self, conn: Connection, channel: str, presence: bool = False) -> None:
        self.conn = conn
        self.channel = channel
        #: Publications at or below this offset were sent already (or predate the subscription).
        self.floor: OffsetKey = ZERO
        #: Live publications that arrived while the replay was being read; ``None`` once live.
        self.pending: list[Publication] | None = []
        #: Bytes of data in ``pending``; at most the connection's send-queue limit.
        self.pending_bytes = 0
        #: Live publications were dropped from ``pending`` (it was full): the replay reads them
        #: from the broker before going live.
        self.behind = False
        #: The subscriber wants the channel's presence: its snapshot and join/leave diffs.
        self.presence = presence
        #: Diffs at or below this version are in the snapshot sent (or older).
        self.presence_floor: OffsetKey = ZERO
        #: Diffs that arrived while the snapshot was being read; ``None`` once it was sent.
        self.presence_pending: list[tuple[OffsetKey, str]] | None = [] if presence else None

    def deliver(self, publication: Publication, frames: dict[str, str | bytes] | None = None) -> bool:
        """Queue a live publication; ``False`` if it was not sent (buffered, old, or dropped).

        ``frames`` caches the encodings of ``publication`` by connection kind (shared by a fan-out).
        """
        pending = self.pending
        if pending is not None:
            if not self.behind:
                pending.append(publication)
                self.pending_bytes += len(publication.data_json)
                if self.pending_bytes > self.conn.limit_bytes:  # the broker keeps them: read later
                    pending.clear()
                    self.pending_bytes = 0
                    self.behind = True
            return False
        if publication.key <= self.floor:
            return False
        self.floor = publication.key
        conn = self.conn
        return conn.push(encoded(publication, conn, frames))

    def deliver_presence(
        self, version: OffsetKey, frame: str, frames: dict[str, str | bytes] | None = None
    ) -> bool:
        """Queue a presence diff (``frame``, shared by the fan-out) unless the snapshot had it;
        ``frames`` caches its binary form (shared by the fan-out too)."""
        pending = self.presence_pending
        if pending is not None:
            pending.append((version, frame))
            if len(pending) > _PENDING_LIMIT:
                self.presence_pending = None
                self.conn.close(1013, "slow consumer: resubscribe")
            return False
        if version <= self.presence_floor:
            return False
        self.presence_floor = version
        conn = self.conn
        if conn.kind == "http":
            return conn.push(codec.http_event(frame))
        if not conn.binary:
            return conn.push(frame)
        converted = frames.get("msgpack") if frames is not None else None
        if converted is None:
            converted = binary.transcode(frame)
            if frames is not None:
                frames["msgpack"] = converted
        return conn.push(converted)

    def presence_live(self, version: OffsetKey) -> None:
        """The snapshot at ``version`` was sent: send the newer diffs buffered meanwhile."""
        self.presence_floor = max(self.presence_floor, version)
        pending, self.presence_pending = self.presence_pending or [], None
        for diff_version, frame in pending:
            self.deliver_presence(diff_version, frame)

    def go_live(self, floor: OffsetKey) -> int:
        """End the replay: publications up to ``floor`` were sent; flush the newer buffered ones."""
        self.floor = max(self.floor, floor)
        pending, self.pending = self.pending or [], None
        self.pending_bytes = 0
        sent = 0
        for publication in pending:
            try:
                sent += self.deliver(publication)
            except Exception:
                log.exception("delivering %r %s failed", publication.channel, publication.offset)
        return sent


_MEMBER_PREFIX = '{"client":"'


def _member_key(member: str) -> str:
    """Which member a member's JSON names (its ``client`` id, which pyrt writes first)."""
    if member.startswith(_MEMBER_PREFIX):
        end = member.find('"', len(_MEMBER_PREFIX))
        if end > 0:
            return member[len(_MEMBER_PREFIX) : end]
    return member


def encoded(
    publication: Publication, conn: Connection, frames: dict[str, str | bytes] | None = None
) -> str | bytes:
    """``publication`` as ``conn`` takes it: a ``/ws`` frame (JSON text, or MessagePack on the
    binary binding), an event of the HTTP binding's stream or an ``/sse`` event, built once per
    ``frames`` (a fan-out converts the stored data once per kind of subscriber, not once each)."""
    kind = "msgpack" if conn.binary else conn.kind
    if frames is not None:
        cached = frames.get(kind)
        if cached is not None:
            return cached
    frame: str | bytes
    if kind == "msgpack":
        frame = binary.encode_publication(
            publication.channel, publication.offset, publication.event, publication.data_json
        )
    elif kind == "ws":
        frame = publication.ws_frame
    elif kind == "http":
        frame = codec.http_event(publication.ws_frame)
    else:
        frame = publication.sse_event
    if frames is not None:
        frames[kind] = frame
    return frame


def page_bytes(conn: Connection) -> int:
    """Bytes of publications a replay to ``conn`` reads from the broker at once, about."""
    return max(1, min(_PAGE_BYTES, conn.limit_bytes // 2))


class Hub:
    """Subscribers of this process by channel, fed by one broker.

    ``replay_limit`` and ``replay_bytes`` bound what one subscribe reads from history.
    """

    def __init__(
        self,
        broker: Broker,
        stats: Stats,
        *,
        replay_limit: int | None = None,
        replay_bytes: int | None = None,
        presence_tick: float = 0.1,
        max_channels: int = 0,
        max_channels_per_identity: int = 0,
    ) -> None:
        self._broker = broker
        self._stats = stats
        self._replay_limit = replay_limit
        self._replay_bytes = replay_bytes
        self._channels: dict[str, dict[Subscriber, None]] = {}
        self._watching: dict[str, asyncio.Future[None]] = {}
        #: Presence subscribers here, by channel.
        self._presence: dict[str, set[Subscriber]] = {}
        self._presence_tick = presence_tick
        #: Diffs each channel with presence subscribers may still send at once.
        self._presence_sends: dict[str, TokenBucket] = {}
        #: Presence changes gathered for the next diff, by channel: the last version, and each
        #: changed member's last change (``True``: joined, with its JSON; ``False``: left).
        self._presence_changes: dict[str, tuple[str, dict[str, tuple[bool, str]]]] = {}
        self._presence_flush: asyncio.TimerHandle | None = None
        self._max_channels = max_channels
        self._max_per_identity = max_channels_per_identity
        #: Channels each identity subscribes to here, with its number of subscriptions to each.
        self._identities: dict[str, dict[str, int]] = {}
        #: The live trace (pyrt.server.trace), set by the runtime.
        self.tracer: Tracer | None = None
        #: Publish-to-fan-out times (pyrt.server.metrics), set by the runtime.
        self.latency: DeliveryLatency | None = None

    def dispatch(self, publication: Publication) -> None:
        """The broker's listener: hand ``publication`` to every local subscriber of its channel."""
        subscribers = self._channels.get(publication.channel)
        if self.tracer is not None and self.tracer.active:
            self.tracer.publication(publication, len(subscribers) if subscribers else 0)
        if not subscribers:
            return
        if self.latency is not None:
            self.latency.dispatched(publication.channel, publication.offset, time.monotonic())
        sent = failed = 0
        frames: dict[str, str | bytes] = {}
        for subscriber in tuple(subscribers):
            try:
                if subscriber.deliver(publication, frames):
                    sent += 1
            except Exception:
                failed += 1
                if failed == 1:
                    log.exception("delivering %r %s failed", publication.channel, publication.offset)
        self._stats.deliveries += sent
        if failed:
            self._stats.errors["undeliverable"] += failed

    def presence_changed(self, channel: str, version: str, joins: list[str], leaves: list[str]) -> None:
        """The presence store's listener: send a diff to every presence subscriber of ``channel``
        now, or gather the change into the channel's next diff when it changes too often."""
        if self.tracer is not None and self.tracer.active:
            self.tracer.presence(channel, version, joins, leaves)
        if not self._presence.get(channel):
            return
        pending = self._presence_changes.get(channel)
        tick = self._presence_tick
        if pending is None and tick > 0:
            loop = asyncio.get_running_loop()
            sends = self._presence_sends.get(channel)
            if sends is None:
                sends = self._presence_sends[channel] = TokenBucket(1 / tick, PRESENCE_BURST, loop.time())
            if sends.take(loop.time()):
                self._send_diff(channel, version, joins, leaves)
                return
        elif tick <= 0:
            self._send_diff(channel, version, joins, leaves)
            return
        members = pending[1] if pending is not None else {}
        if pending is not None and offset_key(version) < offset_key(pending[0]):
            version = pending[0]  # never go back (changes arrive in version order per channel)
        self._presence_changes[channel] = (version, members)
        for member in leaves:
            members[_member_key(member)] = (False, member)
        for member in joins:
            members[_member_key(member)] = (True, member)
        if self._presence_flush is None:
            loop = asyncio.get_running_loop()
            self._presence_flush = loop.call_later(self._presence_tick, self._send_presence)

    def _send_presence(self) -> None:
        """Send each channel's gathered changes as one diff to its presence subscribers."""
        self._presence_flush = None
        changes, self._presence_changes = self._presence_changes, {}
        for channel, (version, members) in changes.items():
            joins = [json for joined, json in members.values() if joined]
            leaves = [json for joined, json in members.values() if not joined]
            self._send_diff(channel, version, joins, leaves)

    def _send_diff(self, channel: str, version: str, joins: list[str], leaves: list[str]) -> None:
        subscribers = self._presence.get(channel)
        if not subscribers:
            return
        frame = codec.encode(
            PresenceDiff(channel, version, [RawJSON(m) for m in joins], [RawJSON(m) for m in leaves])
        )
        key = offset_key(version)
        failed = 0
        frames: dict[str, str | bytes] = {}
        for subscriber in tuple(subscribers):
            try:
                subscriber.deliver_presence(key, frame, frames)
            except Exception:
                failed += 1
        if failed:
            self._stats.errors["undeliverable"] += failed

    def presence_channels(self) -> list[str]:
        """Channels with presence subscribers here (their expired members must be swept)."""
        return list(self._presence)

    async def subscribe_presence(self, subscriber: Subscriber) -> Snapshot:
        """Follow the presence of a subscriber registered by :meth:`subscribe` (with
        ``presence=True``) and read the members: the caller sends them, then calls
        ``subscriber.presence_live(version)``. Diffs are buffered until then."""
        channel = subscriber.channel
        store = self._broker.presence
        subscribers = self._presence.get(channel)
        if subscribers is None:
            subscribers = self._presence[channel] = set()
        subscribers.add(subscriber)
        try:
            if len(subscribers) == 1:
                await store.watch(channel)
            return await store.members(channel)
        except BaseException:
            self._drop_presence(subscriber)
            raise

    def _drop_presence(self, subscriber: Subscriber) -> None:
        subscriber.presence_pending = None
        channel = subscriber.channel
        subscribers = self._presence.get(channel)
        if subscribers is None or subscriber not in subscribers:
            return
        subscribers.discard(subscriber)
        if not subscribers:
            del self._presence[channel]
            self._presence_sends.pop(channel, None)
            self._presence_changes.pop(channel, None)
            self._broker.presence.unwatch(channel)

    def channels(self) -> list[str]:
        return list(self._channels)

    def subscriber_count(self, channel: str) -> int:
        """How many local subscribers ``channel`` has (the OpenTelemetry fan-out span says it)."""
        return len(self._channels.get(channel, ()))

    async def subscribe(self, subscriber: Subscriber, since: OffsetKey | None) -> History:
        """Register ``subscriber`` and read what it must replay (its first page, when the broker
        keeps it elsewhere).

        The caller answers the subscription (with ``History.latest`` and ``recovered``), then
        calls :meth:`replay`, which sends the publications and takes the subscriber live. Live
        publications are buffered until then. Call :meth:`unsubscribe` when done, also on error.
        """
        channel = subscriber.channel
        identity = subscriber.conn.identity
        held = self._identities.get(identity)
        if held is None or channel not in held:
            most = self._max_per_identity
            if most and held is not None and len(held) >= most:
                raise TooManyChannels("identity", most)
            if (
                self._max_channels
                and channel not in self._channels
                and len(self._channels) >= self._max_channels
            ):
                raise TooManyChannels("process", self._max_channels)
            if held is None:
                held = self._identities[identity] = {}
        held[channel] = held.get(channel, 0) + 1
        subscribers = self._channels.get(channel)
        if subscribers is None:
            subscribers = self._channels[channel] = {}
        subscribers[subscriber] = None
        watching = self._watching.get(channel)
        if watching is None:
            watching = self._watching[channel] = asyncio.ensure_future(self._broker.watch(channel))
        try:
            await asyncio.shield(watching)
        except BaseException:
            if self._watching.get(channel) is watching and watching.done():
                del self._watching[channel]
            self.unsubscribe(subscriber)
            raise
        try:
            return await self._broker.history(
                channel,
                since,
                limit=self._replay_limit,
                max_bytes=self._replay_bytes,
                page_bytes=page_bytes(subscriber.conn),
            )
        except BaseException:
            self.unsubscribe(subscriber)
            raise

    async def replay(self, subscriber: Subscriber, history: History) -> int:
        """Send ``history`` (from :meth:`subscribe`) to the subscriber's connection at the
        client's pace, then take the subscriber live; return how many publications were sent.

        Holds at most a page of history and the connection's limit of live publications at once
        (see the module docstring): the rest of a ``history`` with ``more``, and the live
        publications dropped meanwhile, are read from the broker page by page as the client
        takes them. Stops when the connection closes or the subscriber is unsubscribed. When a
        page is no longer retained, cuts the connection off as a slow consumer; when the broker
        fails, drops it (the client resubscribes from its last offset either way). A publication
        that cannot be encoded is skipped (and logged), never the end of the stream.
        """
        conn = subscriber.conn
        room = conn.limit_bytes // 2
        floor = offset_key(history.latest)
        last: OffsetKey | None = None  # the last publication sent
        publications, more = history.publications, history.more
        sent = 0
        while True:
            for publication in publications:
                if conn.closed:
                    return sent
                try:
                    conn.push(encoded(publication, conn))
                except Exception:
                    log.exception("replaying %r %s failed", publication.channel, publication.offset)
                sent += 1
                last = publication.key
                if conn.queued_bytes > room:
                    await conn.wait_room()
            publications = []  # the page sent is not kept while the next is read
            if conn.closed or subscriber.pending is None:  # gone, or unsubscribed meanwhile
                return sent
            if last is not None:
                floor = max(floor, last)
            if more and last is not None:
                since = last
            elif subscriber.behind:  # from now on ``pending`` keeps them; the broker has the rest
                subscriber.behind = False
                since = floor
            else:
                break
            try:
                page = await self._broker.page(
                    subscriber.channel, since, limit=_PAGE_LIMIT, max_bytes=page_bytes(conn)
                )
            except BrokerError as exc:
                log.warning("replaying %r failed: %s", subscriber.channel, exc)
                conn.abort()
                return sent
            if conn.closed or subscriber.pending is None:
                return sent
            if not page.recovered:  # trimmed before the client took it
                conn.cut_off()
                return sent
            publications, more = page.publications, page.more
        subscriber.go_live(floor)
        return sent

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget ``subscriber`` (idempotent); the broker stops watching an empty channel."""
        subscriber.pending = None
        if subscriber.presence:
            self._drop_presence(subscriber)
        channel = subscriber.channel
        subscribers = self._channels.get(channel)
        if subscribers is None or subscriber not in subscribers:
            return
        del subscribers[subscriber]
        identity = subscriber.conn.identity
        held = self._identities.get(identity)
        if held is not None:
            left = held.get(channel, 0) - 1
            if left > 0:
                held[channel] = left
            else:
                held.pop(channel, None)
                if not held:
                    del self._identities[identity]
        if not subscribers:
            del self._channels[channel]
            watching = self._watching.pop(channel, None)
            if watching is not None and not watching.done():
                watching.cancel()
            self._broker.unwatch(channel)
