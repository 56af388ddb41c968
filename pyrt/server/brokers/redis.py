"""The Redis broker: one Redis Stream per channel, shared by every instance on the same Redis.

- Publish: one Lua script appends with ``XADD … MAXLEN ~ retention`` and stores, in each entry,
  the id of the entry before it (field ``p``); with a publish id it first checks (and then sets)
  a dedup key, so publish-with-id is atomic across instances. Publications waiting for Redis go
  in one pipeline per round trip, in the order they were made: a round trip per publication
  would cap a busy instance at one publication per turn of its event loop.
- Offsets are stream ids, so a client can resume on any instance.
- Retention: ``MAXLEN ~ retention`` per stream, entries older than ``history_ttl`` are trimmed
  (``XTRIM MINID``) and an idle stream expires after ``history_ttl`` (``PEXPIRE``): no channel
  outlives its last publication by more than that.
- Replay: read backwards (``XREVRANGE``) in pages, newest first, until ``since`` or the replay
  limits: memory per replay stays bounded. History pages on demand read the same way, forwards
  (``XRANGE``) or backwards, within their own limits. The replay is ``recovered`` iff it reached ``since``
  and its first entry's ``p`` is ``since`` (nothing between was trimmed); else it holds the
  newest retained entries that fit.
- Live: one reader task per instance runs ``XREAD BLOCK`` over the watched channels plus a
  private wake-up stream, which :meth:`watch` pokes so a new channel is read at once.
- ``message`` ids: ``SET NX`` claims an id (scoped by client identity) for the instance that
  runs the handler, with a lease it renews while the handler runs; the compact ack then replaces
  the claim for ``dedup_ttl`` seconds, and other instances answer re-sent copies from it. A dead
  instance's claim lapses within seconds, so its unfinished handler runs again elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from pyrt.server.brokers.base import Broker, BrokerError, History, Listener, Page, Publication
from pyrt.server.brokers.redis_presence import RedisPresence
from pyrt.server.dedup import Compute, MessageDedup, scoped_key
from pyrt.server.http_relay import RedisPostRelay
from pyrt.server.offsets import ZERO, OffsetKey, format_offset, offset_key
from pyrt.wire.ingress import check_text

__all__ = ["RedisBroker", "RedisMessageDedup"]

log = logging.getLogger("pyrt.server")

_PUBLISH = """
if KEYS[2] ~= '' then
  local known = redis.call('GET', KEYS[2])
  if known then return {known, 1} end
end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = '0'
if #last > 0 then prev = last[1][1] end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[2], 'd', ARGV[3], 'p', prev)
local ttl = tonumber(ARGV[5])
if ttl > 0 then
  local ms = tonumber(string.match(id, '^(%d+)'))
  redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d', ms - ttl))
  redis.call('PEXPIRE', KEYS[1], ttl)
end
if KEYS[2] ~= '' then redis.call('SET', KEYS[2], id, 'PX', ARGV[4]) end
return {id, 0}
"""

_FIRST_PAGE = 16  # entries in the first replay page; later pages are sized by the bytes left

_PENDING = "\x00pending"  # prefix of a claim: "\x00pending:<token of the claiming handler>"
_LEASE_MS = 3_000  # a claim lapses this long after its owner stops renewing it (a crash)
_RENEW_EVERY = _LEASE_MS / 3000  # seconds between renewals while the handler runs
_WAIT_FOR_OTHER = 10.0  # seconds a re-sent copy waits for another instance's handler
_POOL_SIZE = 64  # Redis connections per instance for commands (the live reader has its own)
_POOL_WAIT = 10.0  # seconds a command waits for a free connection before it fails
_PIPELINE_MAX = 512  # publications sent to Redis in one round trip, at most

# Renew or release a claim only while it is still ours.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisMessageDedup(MessageDedup):
    """:class:`MessageDedup` shared by every instance on one Redis.

    The instance that claims an id runs the handler and renews its claim (a short lease) while
    the handler runs; a re-sent copy on any instance waits for the ack. If the claiming instance
    dies mid-handler, its lease lapses within seconds and the next copy runs the handler again:
    a handler that never finished is retried (at least once), one that finished is never re-run.
    """

    def __init__(self, client: Any, prefix: str, ttl: float) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl_ms = int(ttl * 1000)

    async def run_once(self, scope: str, message_id: str, compute: Compute) -> tuple[str, bool]:
        key = self._prefix + scoped_key(scope, message_id)
        token = f"{_PENDING}:{secrets.token_hex(8)}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _WAIT_FOR_OTHER
        while True:
            try:
                claimed = await self._redis.set(key, token, nx=True, px=_LEASE_MS)
                if not claimed:
                    value = await self._redis.get(key)
            except RedisError as exc:
                raise BrokerError(f"redis: {exc}") from exc
            if claimed:
                return await self._run(key, token, compute), False
            if value is not None and not value.startswith(_PENDING):
                return str(value), True
            if loop.time() > deadline:
                raise BrokerError(f"message {message_id!r} is still being handled elsewhere")
            await asyncio.sleep(0.02)

    async def _renew(self, key: str, token: str) -> None:
        while True:
            await asyncio.sleep(_RENEW_EVERY)
            try:
                await self._redis.eval(_RENEW, 1, key, token, _LEASE_MS)
            except RedisError as exc:
                log.warning("could not renew the claim on %s: %s", key, exc)

    async def _release(self, key: str, token: str) -> None:
        with contextlib.suppress(RedisError):
            await asyncio.shield(self._redis.eval(_RELEASE, 1, key, token))

    async def _run(self, key: str, token: str, compute: Compute) -> str:
        renewer = asyncio.get_running_loop().create_task(self._renew(key, token))
        try:
            frame, remember = await compute()
        except BaseException:
            await self._release(key, token)
            raise
        finally:
            renewer.cancel()
        try:
            if remember is not None:
                await self._redis.set(key, remember, px=self._ttl_ms)
            else:
                await self._release(key, token)
        except RedisError as exc:
            log.warning("could not remember the ack for %s: %s", key, exc)
        return frame


class RedisBroker(Broker):
    """Channels in Redis Streams. ``url`` like ``redis://127.0.0.1:6379/0``."""

    kind = "redis"
    presence: RedisPresence

    def __init__(
        self,
        url: str,
        *,
        retention: int = 1000,
        dedup_ttl: float = 600.0,
        prefix: str = "pyrt:",
        block_ms: int = 5000,
        history_ttl: float = 600.0,
        presence_ttl: float = 30.0,
        presence_grace: float = 5.0,
    ) -> None:
        self.url = url
        self.retention = retention
        self._history_ttl_ms = int(history_ttl * 1000)
        self.prefix = prefix
        self._dedup_ttl_ms = int(dedup_ttl * 1000)
        self._block_ms = block_ms
        self._stream_prefix = prefix + "ch:"
        self._wake_key = f"{prefix}wake:{secrets.token_hex(8)}"
        self._wake_cursor = "0-0"
        # Typed as Any: redis-py's annotations do not follow decode_responses=True (str results).
        # A bounded pool: a burst of subscribers queues for a connection instead of opening
        # one each (which runs into Redis's and the process's connection limits).
        # Entries written by anything else than pyrt may hold bytes that are not UTF-8: they are
        # read with U+FFFD in their place, never as text that cannot be sent on.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            decode_responses=True,
            encoding_errors="replace",
            max_connections=_POOL_SIZE,
            timeout=_POOL_WAIT,
        )
        self._redis: Any = aioredis.Redis.from_pool(pool)  # owns the pool: aclose() closes it
        # The reader blocks in XREAD for up to block_ms: its socket must wait longer than that
        # (redis-py's default of 5 s would fail and reconnect every idle XREAD BLOCK 5000).
        self._reader_client: Any = aioredis.Redis.from_url(
            url, decode_responses=True, encoding_errors="replace", socket_timeout=block_ms / 1000 + 5
        )
        self._publish = self._redis.register_script(_PUBLISH)
        self._message_dedup = RedisMessageDedup(self._redis, prefix + "msg:", dedup_ttl)
        self._cursors: dict[str, str] = {}  # watched stream key -> last id delivered
        self.presence = RedisPresence(self, prefix + "prs:", presence_ttl, presence_grace)
        self._listener: Listener | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        #: Publications waiting for the next pipeline: (keys, args, their caller's future).
        self._outbox: list[tuple[list[str], list[Any], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    @property
    def message_dedup(self) -> MessageDedup:
        return self._message_dedup

    def post_relay(self, instance: str) -> RedisPostRelay:
        """HTTP-binding POSTs between the instances on this Redis, over its pub/sub (a client of
        its own: a subscribed connection is taken for good)."""
        client = aioredis.Redis.from_url(self.url, decode_responses=True, encoding_errors="replace")
        return RedisPostRelay(client, self.prefix, instance)

    @property
    def redis_client(self) -> Any:
        """The command client (a bounded pool), for what shares this broker's Redis."""
        return self._redis

    def _key(self, channel: str) -> str:
        return self._stream_prefix + channel

    async def start(self, listener: Listener) -> None:
        self._listener = listener
        self._closing = False
        try:
            await self._redis.ping()
        except RedisError as exc:
            log.warning("redis at %s is not answering yet (%s); retrying in the background", self.url, exc)
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        self._closing = True
        flusher = self._flusher
        if flusher is not None:
            with contextlib.suppress(TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(flusher), 2.0)
            flusher.cancel()
        if reader is not None:
            # Wake the reader so it returns by itself: cancelling a blocked XREAD can hang in
            # redis-py's connection cleanup.
            with contextlib.suppress(RedisError, OSError):
                await self._redis.xadd(self._wake_key, {"w": "1"}, maxlen=1, approximate=False)
            try:
                await asyncio.wait_for(asyncio.shield(reader), 2.0)
            except (TimeoutError, Exception):
                reader.cancel()
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(self._wake_key)
        self._listener = None
        await self.presence.close()
        for client in (self._reader_client, self._redis):
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    async def healthy(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def publish(
        self,
        channel: str,
        event: str,
        data_json: str,
        *,
        publish_id: str | None = None,
        scope: str = "",
        retention: int | None = None,
    ) -> tuple[str, bool]:
        check_text(data_json)
        dedup_key = ""
        if publish_id is not None:
            dedup_key = f"{self.prefix}pub:{scoped_key(scope, channel, publish_id)}"
        keys = [self._key(channel), dedup_key]
        args = [retention or self.retention, event, data_json, self._dedup_ttl_ms, self._history_ttl_ms]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._outbox.append((keys, args, future))  # before any suspension: callers keep their order
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush())
        offset, duplicate = await future
        return str(offset), bool(duplicate)

    async def _flush(self) -> None:
        """Send waiting publications to Redis, one pipeline per round trip, until none wait."""
        try:
            while self._outbox:
                batch = self._outbox[:_PIPELINE_MAX]
                del self._outbox[:_PIPELINE_MAX]
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for keys, args, _ in batch:  # queued on the pipeline, sent by execute()
                            await self._publish(keys=keys, args=args, client=pipe)
                        results = await pipe.execute(raise_on_error=False)
                except (RedisError, OSError) as exc:
                    results = [exc] * len(batch)
                except BaseException as exc:  # cancelled (closing): nothing waits in vain
                    for _, _, future in [*batch, *self._outbox]:
                        if not future.done():
                            future.set_exception(BrokerError(f"redis: {exc!r}"))
                    self._outbox.clear()
                    raise
                for (_, _, future), result in zip(batch, results, strict=True):
                    if future.done():  # its caller gave up
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(BrokerError(f"redis: {result}"))
                    else:
                        future.set_result(result)
        finally:
            self._flusher = None

    async def watch(self, channel: str) -> None:
        await self.watch_stream(self._key(channel))

    def unwatch(self, channel: str) -> None:
        self._cursors.pop(self._key(channel), None)

    async def watch_stream(self, key: str) -> None:
        """Have the reader follow the stream ``key`` from its current end (a channel's
        publications, or its presence diffs)."""
        if key in self._cursors:
            return
        try:
            last = await self._redis.xrevrange(key, count=1)
            self._cursors.setdefault(key, last[0][0] if last else "0-0")
            # wake the reader so its next XREAD includes this stream
            await self._redis.xadd(self._wake_key, {"w": "1"}, maxlen=1, approximate=False)
        except RedisError as exc:
            raise BrokerError(f"redis: {exc}") from exc

    def unwatch_stream(self, key: str) -> None:
        self._cursors.pop(key, None)

    async def history(
        self, channel: str, since: OffsetKey | None, *, limit: int | None = None, max_bytes: int | None = None
    ) -> History:
        key = self._key(channel)
        try:
            if since is None:
                last = await self._redis.xrevrange(key, count=1)
                return History([], last[0][0] if last else "0", True)
            low = "-" if since == ZERO else "(" + format_offset(since)
            entries, complete = await self._read_back(key, low, limit, max_bytes)
            if entries:
                latest = entries[-1][0]
            else:
                last = await self._redis.xrevrange(key, count=1)
                latest = last[0][0] if last else "0"
            if since == ZERO:
                return History(self._publications(channel, entries), latest, complete)
            if complete and entries and offset_key(entries[0][1].get("p", "0")) == since:
                return History(self._publications(channel, entries), latest, True)
            if complete and not entries and latest != "0" and offset_key(latest) == since:
                return History([], latest, True)
            if not entries:  # nothing after ``since``, which is not ours: from the oldest retained
                entries, _ = await self._read_back(key, "-", limit, max_bytes)
            return History(self._publications(channel, entries), latest, False)
        except RedisError as exc:
            raise BrokerError(f"redis: {exc}") from exc

    async def page(
        self, channel: str, since: OffsetKey | None, *, limit: int, reverse: bool = False, max_bytes: int
    ) -> Page:
        key = self._key(channel)
        try:
            last = await self._redis.xrevrange(key, count=1)
            latest = last[0][0] if last else "0"
            if reverse:
                if since == ZERO:
                    return Page([], latest, True, False)  # nothing comes before "0"
                high = "+" if since is None else "(" + format_offset(since)
                entries, complete = await self._scan(key, True, high, "-", limit, max_bytes)
                return Page(self._publications(channel, entries), latest, True, not complete)
            low = "-" if since is None or since == ZERO else "(" + format_offset(since)
            entries, complete = await self._scan(key, False, low, "+", limit, max_bytes)
            recovered = True
            if since is not None and since != ZERO:
                if entries:  # nothing trimmed between ``since`` and the first: it was retained
                    recovered = offset_key(entries[0][1].get("p", "0")) == since
                elif latest == "0" or offset_key(latest) != since:  # not ours: from the oldest
                    entries, complete = await self._scan(key, False, "-", "+", limit, max_bytes)
                    recovered = False
            if entries and offset_key(entries[-1][0]) > offset_key(latest):
                latest = entries[-1][0]  # published while the page was read
            return Page(self._publications(channel, entries), latest, recovered, not complete)
        except RedisError as exc:
            raise BrokerError(f"redis: {exc}") from exc

    async def _read_back(
        self, key: str, low: str, limit: int | None, max_bytes: int | None
    ) -> tuple[list[Any], bool]:
        """The newest entries above ``low`` (oldest first) within ``limit`` and ``max_bytes``, read
        in pages; and whether that is every entry above ``low``."""
        newest_first, complete = await self._scan(key, True, "+", low, limit, max_bytes)
        return newest_first[::-1], complete

    async def _scan(
        self, key: str, reverse: bool, start: str, stop: str, limit: int | None, max_bytes: int | None
    ) -> tuple[list[Any], bool]:
        """Entries from ``start`` towards ``stop`` (``XRANGE`` bounds; ``XREVRANGE`` when
        ``reverse``), in that order, within ``limit`` and about ``max_bytes`` of data (at least
        one), read in pages sized by the bytes left; and whether that is every entry in range."""
        taken: list[Any] = []
        total = 0
        cursor = start
        page = _FIRST_PAGE
        while True:
            if limit is not None:
                page = min(page, limit - len(taken) + 1)
            if reverse:
                batch = await self._redis.xrevrange(key, max=cursor, min=stop, count=page)
            else:
                batch = await self._redis.xrange(key, min=cursor, max=stop, count=page)
            for entry in batch:
                size = len(entry[1].get("d", ""))
                if limit is not None and len(taken) >= limit:
                    return taken, False
                if max_bytes is not None and taken and total + size > max_bytes:
                    return taken, False
                taken.append(entry)
                total += size
            if len(batch) < page:
                return taken, True
            cursor = "(" + batch[-1][0]
            average = max(1, total // len(taken))
            room = (max_bytes - total) // average if max_bytes is not None else 500
            page = max(1, min(500, room + 1))

    @staticmethod
    def _publications(channel: str, entries: list[Any]) -> list[Publication]:
        return [Publication(channel, entry_id, fields["e"], fields["d"]) for entry_id, fields in entries]

    async def _read_loop(self) -> None:
        delay = 0.05
        prefix_length = len(self._stream_prefix)
        while not self._closing:
            try:
                streams = dict(self._cursors)
                streams[self._wake_key] = self._wake_cursor
                result = await self._reader_client.xread(streams, count=1000, block=self._block_ms)
                delay = 0.05
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("redis reader: %s; retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            for key, entries in result or ():
                if key == self._wake_key:
                    self._wake_cursor = entries[-1][0]
                    continue
                cursor = self._cursors.get(key)
                if cursor is None or not entries:
                    continue
                fresh = _after(entries, offset_key(cursor))
                if not fresh:
                    continue
                if key.startswith(self._stream_prefix):
                    self._deliver(key[prefix_length:], fresh)
                else:
                    self.presence.deliver(key, fresh)
                if key in self._cursors:
                    self._cursors[key] = fresh[-1][0]

    def _deliver(self, channel: str, entries: list[Any]) -> None:
        listener = self._listener
        if listener is None:
            return
        for entry_id, fields in entries:
            try:
                listener(Publication(channel, entry_id, fields["e"], fields["d"]))
            except Exception:
                log.exception("delivering %s %s failed", channel, entry_id)


def _after(entries: list[Any], floor: OffsetKey) -> list[Any]:
    """The entries above ``floor``, in order (XREAD may repeat what a cursor already passed)."""
    fresh = []
    for entry in entries:
        key = offset_key(entry[0])
        if key > floor:
            fresh.append(entry)
            floor = key
    return fresh
