"""The Redis broker: one Redis Stream per channel, shared by every instance on the same Redis.

- Publish: one Lua script appends with ``XADD`` and stores, in each entry,
  the id of the entry before it (field ``p``); with a publish id it first checks (and then sets)
  a dedup key, so publish-with-id is atomic across instances. Publications waiting for Redis go
  in one pipeline per round trip, in the order they were made: a round trip per publication
  would cap a busy instance at one publication per turn of its event loop.
- Offsets are stream ids, so a client can resume on any instance.
- Retention: the newest ``retention`` entries per stream; entries older than ``history_ttl``
  are trimmed as the stream is published to, and a stream idle that long is deleted by
  :meth:`housekeeping` (Redis expires its keys a minute later in any case).
- Budget: every entry records its size (data + event + 64 bytes); ``<prefix>hb`` counts the
  bytes of every stream, ``<prefix>hs`` each stream's, ``<prefix>hl`` orders the streams by
  their last publication. Over ``history_bytes`` a publication trims the oldest entries of the
  least recently published streams first (in the same script, so it holds across instances),
  as the memory broker does: what pyrt keeps in Redis is bounded, whoever publishes.
- Dedup: publish and message ids are ``SET`` with a ttl and listed, by time, per identity
  (``<prefix>ids:<identity>``) and for everyone (``<prefix>ids:*``); beyond
  ``dedup_per_identity`` an identity's oldest ids are forgotten, beyond ``dedup_max``
  everyone's oldest, as the memory broker's window does.
- Replay: read backwards (``XREVRANGE``) in pages, newest first, until ``since`` or the replay
  limits: memory per replay stays bounded. History pages on demand read the same way, forwards
  (``XRANGE``) or backwards, within their own limits. The replay is ``recovered`` iff it reached ``since``
  and its first entry's ``p`` is ``since`` (nothing between was trimmed); else it holds the
  newest retained entries that fit.
- Live: every write to a stream (a publication, a presence diff) also ``PUBLISH``es a small
  notification, ``<entry id> <stream key>``, on the channel ``<prefix>news``. Each instance
  subscribes to it once and keeps, per watched stream, a cursor (the last entry it delivered):
  a notification beyond the cursor marks the stream as having news, and one ``XREAD`` (no
  ``BLOCK``) reads the streams that have news, at most :data:`_XREAD_KEYS` of them at a time,
  from their cursors. Notifications arriving meanwhile wait for the next ``XREAD``: wakes are
  batched, and what a wake costs grows with the streams that have news, never with the streams
  watched. When the subscription is (re)made (the first time, and after the connection to Redis
  was lost, when notifications may have been missed) every watched stream is read once from its
  cursor: nothing is lost, nothing delivered twice.
- A publication of this instance reaches its local subscribers as soon as Redis has stored it:
  the script returns the id of the entry before it, and when that is the stream's cursor (this
  instance has delivered everything before it) the publication is delivered at once and the
  cursor moves on, with no ``XREAD`` (its notification, which comes back, is then ignored);
  otherwise the ``XREAD`` delivers it after what came before it. Either way subscribers get a
  stream's entries once each, in order.
- ``message`` ids: ``SET NX`` claims an id (scoped by client identity) for the instance that
  runs the handler, with a lease it renews while the handler runs; the compact ack then replaces
  the claim for ``dedup_ttl`` seconds, and other instances answer re-sent copies from it. A dead
  instance's claim lapses within seconds, so its unfinished handler runs again elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
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

# Helpers of the scripts below. Every entry of a channel's stream records its size (field 's':
# data + event + _ENTRY_OVERHEAD); <prefix>hb counts the bytes of every stream, <prefix>hs each
# stream's, and <prefix>hl orders the streams by their last publication (ms).
_HISTORY_LUA = """
local function entry_size(fields)
  local size, data, event = nil, 0, 0
  for i = 1, #fields, 2 do
    local name = fields[i]
    if name == 's' then size = tonumber(fields[i + 1])
    elseif name == 'd' then data = string.len(fields[i + 1])
    elseif name == 'e' then event = string.len(fields[i + 1]) end
  end
  return size or (data + event + 64)
end
local function next_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return ms .. '-' .. (tonumber(seq) + 1)
end
-- Drop the oldest entries of a stream, up to `count` of them and up to `upto` (an id, or '+'),
-- with their bytes; returns the bytes freed and whether the stream is now empty.
local function drop(stream, upto, count, hb, hs)
  local entries = redis.call('XRANGE', stream, '-', upto, 'COUNT', count + 1)
  if #entries == 0 then return 0, redis.call('XLEN', stream) == 0 end
  local freed, last = 0, math.min(count, #entries)
  for i = 1, last do freed = freed + entry_size(entries[i][2]) end
  local minid = next_id(entries[last][1])
  if #entries > count then minid = entries[count + 1][1] end
  redis.call('XTRIM', stream, 'MINID', minid)
  redis.call('DECRBY', hb, freed)
  redis.call('HINCRBY', hs, stream, -freed)
  return freed, redis.call('XLEN', stream) == 0
end
-- Forget a stream in the accounting (it expired, or was emptied by the budget).
local function forget(stream, hb, hl, hs)
  local recorded = tonumber(redis.call('HGET', hs, stream) or '0')
  if recorded > 0 then redis.call('DECRBY', hb, recorded) end
  redis.call('HDEL', hs, stream)
  redis.call('ZREM', hl, stream)
end
"""

# A dedup key was set for an identity: remember it in the identity's and everyone's lists (by
# time) and forget the oldest beyond their bounds, as the memory broker's dedup window does.
_DEDUP_LUA = """
local function remember(key, mine, all, now, ttl, most_mine, most)
  redis.call('ZADD', mine, now, key)
  redis.call('ZADD', all, now, key)
  redis.call('ZREMRANGEBYSCORE', mine, '-inf', now - ttl)
  redis.call('ZREMRANGEBYSCORE', all, '-inf', now - ttl)
  local excess = redis.call('ZCARD', mine) - most_mine
  if most_mine > 0 and excess > 0 then
    local old = redis.call('ZPOPMIN', mine, excess)
    for i = 1, #old, 2 do redis.call('DEL', old[i]); redis.call('ZREM', all, old[i]) end
  end
  excess = redis.call('ZCARD', all) - most
  if most > 0 and excess > 0 then
    local old = redis.call('ZPOPMIN', all, excess)
    for i = 1, #old, 2 do redis.call('DEL', old[i]) end
  end
  redis.call('PEXPIRE', mine, ttl)
  redis.call('PEXPIRE', all, ttl)
end
"""

# KEYS: stream, dedup key ('' without a publish id), hb, hl, hs, the identity's dedup list, all
# dedup keys. ARGV: retention, event, data, dedup ttl ms, history ttl ms, news channel,
# history budget (bytes, 0: none), keep ms, dedup per identity, dedup max.
_PUBLISH = (
    _HISTORY_LUA
    + _DEDUP_LUA
    + """
if KEYS[2] ~= '' then
  local known = redis.call('GET', KEYS[2])
  if known then return {known, 1, ''} end
end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = '0'
if #last > 0 then prev = last[1][1] end
local size = string.len(ARGV[3]) + string.len(ARGV[2]) + 64
local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[2], 'd', ARGV[3], 'p', prev, 's', size)
local now = tonumber(string.match(id, '^(%d+)'))
local keep = tonumber(ARGV[8])
redis.call('INCRBY', KEYS[3], size)
redis.call('HINCRBY', KEYS[5], KEYS[1], size)
redis.call('ZADD', KEYS[4], now, KEYS[1])
local excess = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[1])
if excess > 0 then drop(KEYS[1], '+', math.min(excess, 1000), KEYS[3], KEYS[5]) end
local ttl = tonumber(ARGV[5])
if ttl > 0 then
  drop(KEYS[1], '(' .. string.format('%d', now - ttl), 100, KEYS[3], KEYS[5])
end
local budget = tonumber(ARGV[7])
local total = tonumber(redis.call('GET', KEYS[3]) or '0')
local rounds = 0
while budget > 0 and total > budget and rounds < 64 do
  rounds = rounds + 1
  local oldest = redis.call('ZRANGE', KEYS[4], 0, 0)[1]
  if not oldest then break end
  if oldest == KEYS[1] and redis.call('XLEN', KEYS[1]) <= 1 then break end
  local freed, empty = drop(oldest, '+', 32, KEYS[3], KEYS[5])
  if empty and oldest ~= KEYS[1] then forget(oldest, KEYS[3], KEYS[4], KEYS[5]) end
  total = tonumber(redis.call('GET', KEYS[3]) or '0')
end
for _, key in ipairs({KEYS[1], KEYS[3], KEYS[4], KEYS[5]}) do redis.call('PEXPIRE', key, keep) end
if KEYS[2] ~= '' then
  redis.call('SET', KEYS[2], id, 'PX', ARGV[4])
  remember(KEYS[2], KEYS[6], KEYS[7], now, tonumber(ARGV[4]), tonumber(ARGV[9]), tonumber(ARGV[10]))
end
redis.call('PUBLISH', ARGV[6], id .. ' ' .. KEYS[1])
return {id, 0, prev}
"""
)

# Streams idle for the history ttl are deleted with their bytes. KEYS: hb, hl, hs. ARGV: now ms,
# ttl ms, at most this many.
_EXPIRE = (
    _HISTORY_LUA
    + """
local idle = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]),
  'LIMIT', 0, tonumber(ARGV[3]))
for _, stream in ipairs(idle) do
  redis.call('DEL', stream)
  forget(stream, KEYS[1], KEYS[2], KEYS[3])
end
return #idle
"""
)

# Claim a message id (SET NX with a lease) and remember it. KEYS: key, the identity's dedup list,
# all dedup keys. ARGV: token, lease ms, now ms, dedup ttl ms, dedup per identity, dedup max.
_CLAIM = (
    _DEDUP_LUA
    + """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
remember(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]),
  tonumber(ARGV[6]))
return 1
"""
)

_FIRST_PAGE = 16  # entries in the first replay page; later pages are sized by the bytes left

_PENDING = "\x00pending"  # prefix of a claim: "\x00pending:<token of the claiming handler>"
_LEASE_MS = 3_000  # a claim lapses this long after its owner stops renewing it (a crash)
_RENEW_EVERY = _LEASE_MS / 3000  # seconds between renewals while the handler runs
_WAIT_FOR_OTHER = 10.0  # seconds a re-sent copy waits for another instance's handler
_POOL_SIZE = 64  # Redis connections per instance for commands (the live reader has its own)
_POOL_WAIT = 10.0  # seconds a command waits for a free connection before it fails
_PIPELINE_MAX = 512  # publications sent to Redis in one round trip, at most
_KEEP_MARGIN_MS = 60_000  # keys live this much longer than the history ttl: expired by housekeeping
_EXPIRE_BATCH = 1000  # idle streams deleted per housekeeping run, at most
_XREAD_KEYS = 256  # streams read by one XREAD, at most
_XREAD_COUNT = 1000  # entries read per stream by one XREAD (a stream with more is read again)
_HEALTH_CHECK = 15  # seconds of silence after which the notification connection is pinged

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

    def __init__(
        self,
        client: Any,
        prefix: str,
        ttl: float,
        *,
        lists: str = "",
        per_identity: int = 10_000,
        most: int = 100_000,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl_ms = int(ttl * 1000)
        #: Prefix of the lists of remembered ids (per identity, and ``<lists>*`` for everyone's).
        self._lists = lists or prefix + "ids:"
        self._per_identity = per_identity
        self._most = most
        self._claim = client.register_script(_CLAIM)

    async def run_once(self, scope: str, message_id: str, compute: Compute) -> tuple[str, bool]:
        key = self._prefix + scoped_key(scope, message_id)
        token = f"{_PENDING}:{secrets.token_hex(8)}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _WAIT_FOR_OTHER
        lists = [self._lists + scoped_key(scope), self._lists + "*"]
        while True:
            try:
                args = [token, _LEASE_MS, _now_ms(), self._ttl_ms, self._per_identity, self._most]
                claimed = await self._claim(keys=[key, *lists], args=args)
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
        history_bytes: int = 64 * 1024 * 1024,
        dedup_per_identity: int = 10_000,
        dedup_max: int = 100_000,
    ) -> None:
        self.url = url
        self.retention = retention
        self.history_bytes = history_bytes
        self._dedup_per_identity = dedup_per_identity
        self._dedup_max = dedup_max
        #: The history's accounting: total bytes, streams by last publication, bytes per stream.
        self._budget_keys = [prefix + "hb", prefix + "hl", prefix + "hs"]
        self._dedup_lists = prefix + "ids:"
        self._history_ttl_ms = int(history_ttl * 1000)
        self.prefix = prefix
        self._dedup_ttl_ms = int(dedup_ttl * 1000)
        self._stream_prefix = prefix + "ch:"
        #: The Redis pub/sub channel naming the streams that were written to.
        self.news_channel = prefix + "news"
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
        # The notifications' own connection (a subscribed connection takes no other command);
        # it waits up to block_ms for a notification, and is pinged when silent.
        self._reader_client: Any = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            encoding_errors="replace",
            socket_timeout=block_ms / 1000 + 5,
            health_check_interval=_HEALTH_CHECK,
        )
        self._publish = self._redis.register_script(_PUBLISH)
        self._expire = self._redis.register_script(_EXPIRE)
        self._message_dedup = RedisMessageDedup(
            self._redis,
            prefix + "msg:",
            dedup_ttl,
            lists=self._dedup_lists,
            per_identity=dedup_per_identity,
            most=dedup_max,
        )
        #: Watched stream key -> the id of the last entry delivered ("" while being set up).
        self._cursors: dict[str, str] = {}
        #: Watched streams with entries beyond their cursor: the newest id notified (``None``:
        #: unknown, read it anyway).
        self._news: dict[str, OffsetKey | None] = {}
        #: Streams notified while :meth:`watch_stream` was setting their cursor up.
        self._early: set[str] = set()
        #: Publications of this instance in flight to Redis, by stream: a notification that
        #: comes back before its publication's answer waits for it (in ``_parked``), so that the
        #: publication is delivered from the answer, with no ``XREAD``.
        self._writing: dict[str, int] = {}
        self._parked: dict[str, OffsetKey | None] = {}
        self._fetcher: asyncio.Task[None] | None = None
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
        for task in (reader, self._fetcher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 2.0)
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

    async def housekeeping(self) -> None:
        """Delete the channels idle for ``history_ttl``, with their bytes (their keys would
        expire by themselves a minute later, without telling the accounting)."""
        try:
            await self._expire(keys=self._budget_keys, args=[_now_ms(), self._history_ttl_ms, _EXPIRE_BATCH])
        except RedisError as exc:
            raise BrokerError(f"redis: {exc}") from exc

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
        lists = [self._dedup_lists + scoped_key(scope), self._dedup_lists + "*"]
        keys = [self._key(channel), dedup_key, *self._budget_keys, *lists]
        args = [
            retention or self.retention,
            event,
            data_json,
            self._dedup_ttl_ms,
            self._history_ttl_ms,
            self.news_channel,
            self.history_bytes,
            self._history_ttl_ms + _KEEP_MARGIN_MS,
            self._dedup_per_identity,
            self._dedup_max,
        ]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._outbox.append((keys, args, future))  # before any suspension: callers keep their order
        self._writing[keys[0]] = self._writing.get(keys[0], 0) + 1
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
                    self._writing.clear()
                    raise
                for (keys, args, future), result in zip(batch, results, strict=True):
                    if not isinstance(result, BaseException) and not int(result[1]):
                        self._published(keys[0], str(result[0]), str(result[2]), args[1], args[2])
                    self._written(keys[0])
                    if future.done():  # its caller gave up
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(BrokerError(f"redis: {result}"))
                    else:
                        future.set_result(result[:2])
        finally:
            self._flusher = None

    async def watch(self, channel: str) -> None:
        await self.watch_stream(self._key(channel))

    def unwatch(self, channel: str) -> None:
        self._cursors.pop(self._key(channel), None)

    async def watch_stream(self, key: str) -> None:
        """Have the reader follow the stream ``key`` from its current end (a channel's
        publications, or its presence diffs): one round trip, for its last id."""
        if key in self._cursors:
            return
        self._cursors[key] = ""  # notifications from now on are kept (in _early)
        try:
            last = await self._redis.xrevrange(key, count=1)
        except BaseException as exc:
            if self._cursors.get(key) == "":
                del self._cursors[key]
            self._early.discard(key)
            if isinstance(exc, RedisError):
                raise BrokerError(f"redis: {exc}") from exc
            raise
        if self._cursors.get(key) != "":
            return  # unwatched meanwhile
        self._cursors[key] = last[0][0] if last else "0-0"
        if key in self._early:  # written to since: read it from the cursor
            self._early.discard(key)
            self._notice(key, None)

    def unwatch_stream(self, key: str) -> None:
        self._cursors.pop(key, None)
        self._news.pop(key, None)
        self._parked.pop(key, None)
        self._early.discard(key)

    async def history(
        self,
        channel: str,
        since: OffsetKey | None,
        *,
        limit: int | None = None,
        max_bytes: int | None = None,
        page_bytes: int | None = None,
    ) -> History:
        key = self._key(channel)
        try:
            if since is None:
                last = await self._redis.xrevrange(key, count=1)
                return History([], last[0][0] if last else "0", True)
            low = "-" if since == ZERO else "(" + format_offset(since)
            entries, complete, more, newest = await self._read_back(key, low, limit, max_bytes, page_bytes)
            if newest is not None:
                latest = newest
            else:
                last = await self._redis.xrevrange(key, count=1)
                latest = last[0][0] if last else "0"
            if since == ZERO:
                return History(self._publications(channel, entries), latest, complete, more)
            if complete and entries and offset_key(entries[0][1].get("p", "0")) == since:
                return History(self._publications(channel, entries), latest, True, more)
            if complete and not entries and latest != "0" and offset_key(latest) == since:
                return History([], latest, True)
            if not entries:  # nothing after ``since``, which is not ours: from the oldest retained
                entries, _, more, _ = await self._read_back(key, "-", limit, max_bytes, page_bytes)
            return History(self._publications(channel, entries), latest, False, more)
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
        self, key: str, low: str, limit: int | None, max_bytes: int | None, hold: int | None
    ) -> tuple[list[Any], bool, bool, str | None]:
        """The newest entries above ``low`` (oldest first) within ``limit`` and ``max_bytes`` (at
        least one), found by reading backwards in pages; whether that is every entry above
        ``low``; whether more follow the entries returned; and the newest id (``None``: none).

        At most about ``hold`` bytes of entries are held at a time (``None``: no bound): when the
        entries are more, the pages only measure them, and what is returned is their oldest part
        (about ``hold`` bytes, read forwards from the oldest), with ``more``: a replay of
        megabytes is sent page by page at the client's pace, never held whole.
        """
        kept: list[Any] | None = []  # newest first, while they all fit in ``hold``
        held = count = total = 0
        oldest: str | None = None
        newest: str | None = None
        cursor = "+"
        page = _FIRST_PAGE
        while True:
            if limit is not None:
                page = min(page, limit - count + 1)
            batch = await self._redis.xrevrange(key, max=cursor, min=low, count=page)
            complete: bool | None = None
            for entry in batch:
                size = len(entry[1].get("d", ""))
                if (limit is not None and count >= limit) or (
                    max_bytes is not None and count and total + size > max_bytes
                ):
                    complete = False
                    break
                count += 1
                total += size
                oldest = entry[0]
                if newest is None:
                    newest = oldest
                if kept is not None:
                    if hold is not None and kept and held + size > hold:
                        kept = None  # too many to hold: measure only
                    else:
                        kept.append(entry)
                        held += size
            if complete is None and len(batch) < page:
                complete = True
            if complete is not None:
                break
            cursor = "(" + batch[-1][0]
            batch = []
            average = max(1, total // count)
            room = (max_bytes - total) // average if max_bytes is not None else 500
            fits = hold // average if hold is not None else 500
            page = max(1, min(500, room + 1, fits + 1))
        if kept is not None or oldest is None:
            return (kept or [])[::-1], complete, False, newest
        first, _ = await self._scan(key, False, oldest, "+", None, hold)
        return first, complete, True, newest

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

    # --- live: notifications, then XREAD of the streams that have news ---------------------------

    async def _read_loop(self) -> None:
        """Follow the notification channel; on every (re)subscription, read every watched stream
        once (notifications may have been missed while not subscribed)."""
        delay = 0.05
        pubsub = self._reader_client.pubsub()
        try:
            while not self._closing:
                try:
                    if not pubsub.subscribed:
                        await pubsub.subscribe(self.news_channel)
                    message = await pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0)
                    delay = 0.05
                except asyncio.CancelledError:
                    raise
                except (RedisError, OSError) as exc:
                    log.warning("redis notifications: %s; retrying in %.2fs", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                if message is None:
                    continue
                if message["type"] == "subscribe":  # (re)subscribed: catch up on every stream
                    for key in self._cursors:
                        self._notice(key, None)
                elif message["type"] == "message":
                    entry_id, _, key = str(message["data"]).partition(" ")
                    if key in self._cursors:
                        self._notice(key, entry_id)
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()

    def _notice(self, key: str, entry_id: str | None) -> None:
        """Stream ``key`` (watched) has an entry ``entry_id`` (``None``: maybe some): read it
        unless it was delivered already."""
        cursor = self._cursors.get(key)
        if cursor is None:
            return
        if cursor == "":  # its cursor is being set up: read it once it is
            self._early.add(key)
            return
        newest = None if entry_id is None else offset_key(entry_id)
        if newest is not None and newest <= offset_key(cursor):
            return  # delivered already (this instance's own publication)
        if self._writing.get(key):  # maybe this instance's: wait for its answer
            _merge(self._parked, key, newest)
            return
        _merge(self._news, key, newest)
        if self._fetcher is None and not self._closing:
            self._fetcher = asyncio.get_running_loop().create_task(self._fetch())

    def _written(self, key: str) -> None:
        """A publication of this instance to stream ``key`` was answered: once none is in flight,
        what was notified meanwhile and not delivered from the answers is read."""
        left = self._writing.get(key, 0) - 1
        if left > 0:
            self._writing[key] = left
            return
        self._writing.pop(key, None)
        if key in self._parked:
            newest = self._parked.pop(key)
            self._notice(key, None if newest is None else format_offset(newest))

    async def _fetch(self) -> None:
        """Read the streams that have news, :data:`_XREAD_KEYS` per ``XREAD``, until none has."""
        delay = 0.05
        try:
            while self._news and not self._closing:
                batch: dict[str, str] = {}
                for key in list(itertools.islice(self._news, _XREAD_KEYS)):
                    del self._news[key]
                    cursor = self._cursors.get(key)
                    if cursor:
                        batch[key] = cursor
                if not batch:
                    continue
                try:
                    result = await self._redis.xread(batch, count=_XREAD_COUNT)
                    delay = 0.05
                except (RedisError, OSError) as exc:
                    log.warning("redis reader: %s; retrying in %.2fs", exc, delay)
                    for key in batch:  # read them again
                        if key in self._cursors:
                            self._news[key] = None
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                for key, entries in result or ():
                    self._take(key, entries)
                    if len(entries) >= _XREAD_COUNT and key in self._cursors:
                        self._news.setdefault(key, None)  # maybe more: read it again
        finally:
            self._fetcher = None
            if self._news and not self._closing:  # noticed while finishing
                self._fetcher = asyncio.get_running_loop().create_task(self._fetch())

    def _take(self, key: str, entries: list[Any]) -> None:
        """Deliver the entries of stream ``key`` beyond its cursor, in order, and move it on."""
        cursor = self._cursors.get(key)
        if not cursor or not entries:
            return
        fresh = _after(entries, offset_key(cursor))
        if not fresh:
            return
        self._cursors[key] = fresh[-1][0]
        if key.startswith(self._stream_prefix):
            self._deliver(key[len(self._stream_prefix) :], fresh)
        else:
            self.presence.deliver(key, fresh)

    def _published(self, key: str, entry_id: str, previous: str, event: str, data_json: str) -> None:
        """This instance stored an entry in stream ``key`` right after ``previous``: when that is
        where the stream's cursor stands, deliver it now (no ``XREAD``), else leave it to the
        ``XREAD`` its notification brings (entries before it were not delivered yet)."""
        cursor = self._cursors.get(key)
        if not cursor or offset_key(previous) != offset_key(cursor):
            return
        self._cursors[key] = entry_id
        self._deliver(key[len(self._stream_prefix) :], [(entry_id, {"e": event, "d": data_json})])

    def _deliver(self, channel: str, entries: list[Any]) -> None:
        listener = self._listener
        if listener is None:
            return
        for entry_id, fields in entries:
            try:
                listener(Publication(channel, entry_id, fields["e"], fields["d"]))
            except Exception:
                log.exception("delivering %s %s failed", channel, entry_id)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _merge(news: dict[str, OffsetKey | None], key: str, newest: OffsetKey | None) -> None:
    """Note that stream ``key`` has entries up to ``newest`` (``None``: unknown, read it all)."""
    if key in news:
        known = news[key]
        news[key] = None if known is None or newest is None else max(known, newest)
    else:
        news[key] = newest


def _after(entries: list[Any], floor: OffsetKey) -> list[Any]:
    """The entries above ``floor``, in order (XREAD may repeat what a cursor already passed)."""
    fresh = []
    for entry in entries:
        key = offset_key(entry[0])
        if key > floor:
            fresh.append(entry)
            floor = key
    return fresh
