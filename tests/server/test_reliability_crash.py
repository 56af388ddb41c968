"""Reliability of acked messages when an instance dies while its application handles one
(docs/reliability.md, scenario 4): what a SIGKILL leaves in Redis, and what the re-sent copy gets.

Killing a real process exactly inside a handler cannot be timed; the state it leaves can be made:
the Redis broker claims a message id (``SET NX`` of a pending marker with a 3 s lease, renewed while
the handler runs) and replaces the claim with the ack afterwards. A SIGKILL in between leaves a
claim that nobody renews.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import redis
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from pyrt.pytest_plugin.redis_process import RedisServer
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.brokers.redis import _LEASE_MS, _PENDING
from tests.faults.scenario import emit


def test_a_message_whose_handler_was_killed_midway_is_acked_after_the_restart(
    pyrt_start_server: Callable[..., ServerProcess], pyrt_redis: RedisServer
) -> None:
    prefix = f"crash{uuid.uuid4().hex[:6]}:"
    server = pyrt_start_server(
        "--redis", pyrt_redis.url, "--redis-prefix", prefix, "--demo", "--demo-tick", "0"
    )
    crashed, after = f"k{uuid.uuid4().hex[:7]}-1", f"k{uuid.uuid4().hex[:7]}-2"
    # What a SIGKILL between the claim and the ack leaves behind.
    dead_claim = f"{_PENDING}:killed-instance"
    redis.Redis.from_url(pyrt_redis.url).set(f"{prefix}msg:{crashed}", dead_claim, px=_LEASE_MS)
    acks: dict[str, tuple[float, bool]] = {}
    with connect(f"{server.ws_url}/ws", subprotocols=[Subprotocol("pyrt.v1")]) as ws:
        ws.recv(5)  # welcome
        started = time.monotonic()
        for message_id in (crashed, after):
            ws.send(json.dumps({"type": "message", "id": message_id, "data": {"id": message_id}}))
        deadline = started + 6
        while len(acks) < 2 and time.monotonic() < deadline:
            try:
                frame = json.loads(ws.recv(max(0.01, deadline - time.monotonic())))
            except TimeoutError:
                break
            if frame["type"] == "ack":
                acks[frame["id"]] = (time.monotonic() - started, frame["ok"])
        server.kill()  # its session may still wait on the claim: no graceful close
    emit(
        "4-killed-mid-handler",
        acks_within_6s={k: {"after_s": at, "ok": ok} for k, (at, ok) in acks.items()},
        resent_copy=crashed,
    )
    assert crashed in acks, "no ack for the re-sent copy within 6 s"
    assert after in acks, "the next message stalled behind it"
    assert acks[crashed][1], "the re-sent copy was refused"
