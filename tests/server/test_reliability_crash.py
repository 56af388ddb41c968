"""Reliability of acked messages when an instance dies while its application handles one
(docs/reliability.md, scenario 4): what a SIGKILL leaves in Redis, and what the re-sent copy gets.

Killing a real process exactly inside a handler cannot be timed; the state it leaves can be made:
the Redis broker claims a message id (``SET NX`` of a pending marker, 30 s) before it runs the
handler and replaces the claim with the ack afterwards. A SIGKILL in between leaves the claim.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import pytest
import redis
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from tests.faults.scenario import emit
from tests.server.conftest import RedisServer
from tests.serverproc import ServerProcess

PENDING = "\x00pending"  # pyrt.server.brokers.redis._PENDING


@pytest.mark.xfail(
    strict=True,
    reason=(
        "RedisMessageDedup keeps a dead instance's claim for _CLAIM_MS (30 s): a re-sent copy "
        "polls it for _WAIT_FOR_OTHER (10 s), then gets ok:false 'temporarily unavailable, "
        "retry', which the client reports as AckError; frames behind it on that connection wait "
        "too, and each client ack-timeout resend of the same id costs another 10 s. Needs a "
        "claim lease renewed while the handler runs (a dead owner's claim expires in seconds) "
        "and a decision on re-running a handler whose instance died (at-least-once)."
    ),
)
def test_a_message_whose_handler_was_killed_midway_is_acked_after_the_restart(
    start_server: Callable[..., ServerProcess], redis_server: RedisServer
) -> None:
    prefix = f"crash{uuid.uuid4().hex[:6]}:"
    server = start_server("--redis", redis_server.url, "--redis-prefix", prefix, "--demo", "--demo-tick", "0")
    crashed, after = f"k{uuid.uuid4().hex[:7]}-1", f"k{uuid.uuid4().hex[:7]}-2"
    # What a SIGKILL between the claim and the ack leaves behind.
    redis.Redis.from_url(redis_server.url).set(f"{prefix}msg:{crashed}", PENDING, px=30_000)
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
