"""RedisPostRelay against a real Redis: POSTs of the HTTP binding handed to the instance that
holds their connection, answered with its status; nobody holding the key is 404, no answer 504."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from pyrt.pytest_plugin.redis_process import RedisServer
from pyrt.server import http_relay
from pyrt.server.http_relay import RedisPostRelay
from tests.server.cpython_support import run, until


def relay(redis: RedisServer, prefix: str, instance: str) -> RedisPostRelay:
    return RedisPostRelay(aioredis.Redis.from_url(redis.url, decode_responses=True), prefix, instance)


def test_a_post_reaches_the_instance_holding_its_key_and_carries_its_status_back(
    pyrt_redis: RedisServer,
) -> None:
    prefix = f"relay{uuid.uuid4().hex[:6]}:"

    async def scenario() -> None:
        applied: list[tuple[str, int, str, int | None, str | None]] = []

        async def holder_applies(
            key: str, seq: int, text: str, close: int | None, subject: str | None
        ) -> int:
            applied.append((key, seq, text, close, subject))
            return 409 if seq == 7 else 204

        async def never(*_: object) -> int:
            raise AssertionError("the forwarding instance holds nothing")

        holder, other = relay(pyrt_redis, prefix, "holder"), relay(pyrt_redis, prefix, "other")
        await holder.start(holder_applies)
        await other.start(never)
        try:
            assert await other.forward("k1", 1, "frame", None, None) == 404  # nobody holds it yet
            await holder.hold("k1")
            text = '{"type":"message","data":"é ✓"}\n{"type":"ping"}'
            assert await other.forward("k1", 1, text, None, "alice") == 204
            assert await other.forward("k1", 7, "", 1000, None) == 409
            assert applied == [("k1", 1, text, None, "alice"), ("k1", 7, "", 1000, None)]
            await holder.release("k1")
            assert await other.forward("k1", 2, "frame", None, None) == 404
        finally:
            await other.stop()
            await holder.stop()

    run(scenario)


def test_a_holder_that_does_not_answer_is_504_and_too_many_waiting_is_503(
    pyrt_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"relay{uuid.uuid4().hex[:6]}:"
    monkeypatch.setattr(http_relay, "FORWARD_TIMEOUT", 0.3)
    monkeypatch.setattr(http_relay, "MAX_FORWARDS", 2)

    async def scenario() -> None:
        stuck = asyncio.Event()

        async def hangs(*_: object) -> int:
            await stuck.wait()
            return 204

        holder, other = relay(pyrt_redis, prefix, "holder"), relay(pyrt_redis, prefix, "other")
        await holder.start(hangs)
        await other.start(hangs)
        try:
            await holder.hold("k")
            waiting = [asyncio.ensure_future(other.forward("k", n, "", None, None)) for n in (1, 2)]
            await until(lambda: len(other._waiting) == 2)  # both wait for an answer now
            assert await other.forward("k", 3, "", None, None) == 503
            assert await asyncio.gather(*waiting) == [504, 504]
        finally:
            stuck.set()
            await other.stop()
            await holder.stop()

    run(scenario)
