"""Presence in Redis, shared by every instance on it (the rules are :mod:`pyrt.server.presence`'s).

Per channel (``<prefix>`` is ``pyrt:prs:``):

- ``<prefix>m:<channel>`` hash member -> member JSON; ``<prefix>o:<channel>`` hash member ->
  ``[owner, identity]``; ``<prefix>e:<channel>`` sorted set member -> expiry (ms);
  ``<prefix>i:<channel>`` hash identity -> members (the per-identity bound);
- ``<prefix>s:<channel>``: a stream of diffs (fields ``j``, ``l``: JSON arrays of members),
  trimmed to about :data:`_DIFFS` entries; a diff's stream id is the presence version.

Every change is one Lua script, so the bounds hold across instances and exactly one instance
removes (and announces) an expired member. Every write gives the channel's keys a lifetime of
``3 · ttl`` (they vanish when every instance is gone). Diffs reach the other instances through
the broker's reader (each diff is notified on the broker's news channel), for the channels they
watch.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from pyrt.server.brokers.base import BrokerError
from pyrt.server.presence import JoinResult, PresenceStore, Snapshot

if TYPE_CHECKING:
    from pyrt.server.brokers.redis import RedisBroker

__all__ = ["RedisPresence"]

_DIFFS = 128  # diffs kept per channel: enough for a reader that fell a little behind

# KEYS: m, o, e, i, s. Removes the expired members (announcing them) and defines helpers.
_PRELUDE = """
local function remove(member)
  local owned = redis.call('HGET', KEYS[2], member)
  local json = redis.call('HGET', KEYS[1], member)
  if owned then
    local identity = cjson.decode(owned)[2]
    if redis.call('HINCRBY', KEYS[4], identity, -1) <= 0 then redis.call('HDEL', KEYS[4], identity) end
  end
  redis.call('HDEL', KEYS[1], member)
  redis.call('HDEL', KEYS[2], member)
  redis.call('ZREM', KEYS[3], member)
  return json
end
local function expired(now)
  local leaves = {}
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)) do
    local json = remove(member)
    if json then table.insert(leaves, json) end
  end
  return leaves
end
local function announce(joins, leaves, diffs, news)
  if #joins == 0 and #leaves == 0 then
    local last = redis.call('XREVRANGE', KEYS[5], '+', '-', 'COUNT', 1)
    if #last > 0 then return last[1][1] end
    return '0'
  end
  local id = redis.call('XADD', KEYS[5], 'MAXLEN', '~', diffs, '*',
    'j', '[' .. table.concat(joins, ',') .. ']', 'l', '[' .. table.concat(leaves, ',') .. ']')
  redis.call('PUBLISH', news, id .. ' ' .. KEYS[5])
  return id
end
local function keep(ms)
  for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], ms) end
end
"""

# ARGV: member, json, owner, identity, now, expires, max_members, max_identity, keep_ms, diffs, news
_JOIN = (
    _PRELUDE
    + """
local leaves = expired(tonumber(ARGV[5]))
local known = redis.call('HGET', KEYS[1], ARGV[1])
if not known then
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[7]) then
    return {'full', announce({}, leaves, ARGV[10], ARGV[11])}
  end
  if tonumber(redis.call('HGET', KEYS[4], ARGV[4]) or '0') >= tonumber(ARGV[8]) then
    return {'identity', announce({}, leaves, ARGV[10], ARGV[11])}
  end
  redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode({ARGV[3], ARGV[4]}))
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1])
local joins = {}
if known ~= ARGV[2] then joins = {ARGV[2]} end
local version = announce(joins, leaves, ARGV[10], ARGV[11])
keep(ARGV[9])
return {'ok', version}
"""
)

# ARGV: member, owner ('' = whoever), now, diffs, news
_REMOVE = (
    _PRELUDE
    + """
local leaves = expired(tonumber(ARGV[3]))
local owned = redis.call('HGET', KEYS[2], ARGV[1])
if owned and (ARGV[2] == '' or cjson.decode(owned)[1] == ARGV[2]) then
  local json = remove(ARGV[1])
  if json then table.insert(leaves, json) end
end
return announce({}, leaves, ARGV[4], ARGV[5])
"""
)

# ARGV: now, diffs, news. Returns the version, then the members.
_MEMBERS = (
    _PRELUDE
    + """
local version = announce({}, expired(tonumber(ARGV[1])), ARGV[2], ARGV[3])
local out = {version}
for _, json in ipairs(redis.call('HVALS', KEYS[1])) do table.insert(out, json) end
return out
"""
)

# ARGV: expires, keep_ms, then member, owner pairs: only entries still owned are extended.
_TOUCH = (
    _PRELUDE
    + """
for n = 3, #ARGV, 2 do
  local owned = redis.call('HGET', KEYS[2], ARGV[n])
  if owned and cjson.decode(owned)[1] == ARGV[n + 1] then
    redis.call('ZADD', KEYS[3], 'XX', ARGV[1], ARGV[n])
  end
end
keep(ARGV[2])
return 1
"""
)


class RedisPresence(PresenceStore):
    """Presence of a :class:`~pyrt.server.brokers.redis.RedisBroker` (which owns the client)."""

    def __init__(self, broker: RedisBroker, prefix: str, ttl: float, grace: float) -> None:
        super().__init__(ttl, grace)
        self._broker = broker
        self._prefix = prefix
        client = broker.redis_client
        self._join_script = client.register_script(_JOIN)
        self._remove_script = client.register_script(_REMOVE)
        self._members_script = client.register_script(_MEMBERS)
        self._touch_script = client.register_script(_TOUCH)
        self._keep_ms = int(3 * ttl * 1000)
        self._news = broker.news_channel

    def _keys(self, channel: str) -> list[str]:
        return [f"{self._prefix}{kind}:{channel}" for kind in "moeis"]

    def stream_key(self, channel: str) -> str:
        return f"{self._prefix}s:{channel}"

    async def members(self, channel: str) -> Snapshot:
        reply = await self._call(self._members_script, channel, [_now_ms(), _DIFFS, self._news])
        return Snapshot([str(member) for member in reply[1:]], str(reply[0]))

    async def watch(self, channel: str) -> None:
        await self._broker.watch_stream(self.stream_key(channel))

    def unwatch(self, channel: str) -> None:
        self._broker.unwatch_stream(self.stream_key(channel))

    def deliver(self, key: str, entries: list[Any]) -> None:
        """Diffs the broker's reader found in the stream ``key`` (new ones, in order)."""
        channel = key[len(self._prefix) + 2 :]
        for entry_id, fields in entries:
            try:
                joins, leaves = json.loads(fields["j"]), json.loads(fields["l"])
                self._announce(channel, entry_id, [_text(m) for m in joins], [_text(m) for m in leaves])
            except (KeyError, ValueError, TypeError):
                continue  # not a diff pyrt wrote

    async def _join(
        self,
        channel: str,
        member: str,
        member_json: str,
        identity: str,
        owner: str,
        max_members: int,
        max_per_identity: int,
    ) -> JoinResult:
        now = _now_ms()
        args = [member, member_json, owner, identity, now, now + int(self.ttl * 1000)]
        status, version = await self._call(
            self._join_script,
            channel,
            [*args, max_members, max_per_identity, self._keep_ms, _DIFFS, self._news],
        )
        return JoinResult(status, str(version))

    async def _remove(self, channel: str, member: str, owner: str | None) -> None:
        await self._call(self._remove_script, channel, [member, owner or "", _now_ms(), _DIFFS, self._news])

    async def _touch(self, entries: dict[tuple[str, str], str], seconds: float) -> None:
        by_channel: dict[str, list[str]] = {}
        for (channel, member), owner in entries.items():
            by_channel.setdefault(channel, []).extend((member, owner))
        if not by_channel:
            return
        expires = _now_ms() + int(seconds * 1000)
        try:
            async with self._broker.redis_client.pipeline(transaction=False) as pipe:
                for channel, pairs in by_channel.items():
                    await self._touch_script(
                        keys=self._keys(channel), args=[expires, self._keep_ms, *pairs], client=pipe
                    )
                await pipe.execute()
        except RedisError as exc:
            raise BrokerError(f"redis: {exc}") from exc

    async def _sweep(self, channels: list[str]) -> None:
        if not channels:
            return
        now = _now_ms()
        try:
            async with self._broker.redis_client.pipeline(transaction=False) as pipe:
                for channel in channels:
                    await self._remove_script(
                        keys=self._keys(channel), args=["", "", now, _DIFFS, self._news], client=pipe
                    )
                await pipe.execute()
        except RedisError as exc:
            raise BrokerError(f"redis: {exc}") from exc

    async def _call(self, script: Any, channel: str, args: list[Any]) -> Any:
        try:
            return await script(keys=self._keys(channel), args=args)
        except RedisError as exc:
            raise BrokerError(f"redis: {exc}") from exc


def _text(member: Any) -> str:
    """A member as JSON text (diffs carry them as JSON values inside a JSON array)."""
    return json.dumps(member, separators=(",", ":"), ensure_ascii=False)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
