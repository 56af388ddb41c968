"""The shipped fakes behave like the real things they stand for, so users can trust tests built on them."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from pyrt.engine.states import State
from pyrt.testing import EngineHarness, FakeClock, FakePyrtServer
from pyrt.wire.limits import ServerLimits
from pyrt.wire.ndarray import NDArray


def replies(server: FakePyrtServer, *frames: Mapping[str, object]) -> list[dict[str, object]]:
    conn = server.accept()
    conn.outgoing.clear()  # the welcome
    for frame in frames:
        conn.handle(json.dumps(frame))
    return [json.loads(f) for f in conn.outgoing]


def test_the_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(10.0)
    assert clock() == 10.0
    assert clock.advance(2.5) == 12.5
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


def test_the_fake_server_welcomes_each_connection_with_a_session() -> None:
    server = FakePyrtServer()
    first, second = server.accept(), server.accept()
    assert json.loads(first.outgoing[0])["session"] == "s1"
    assert json.loads(second.outgoing[0])["session"] == "s2"


def test_the_fake_server_handles_a_message_id_once_and_acks_every_copy() -> None:
    server = FakePyrtServer(app=lambda data: f"handled {data}")
    frame = {"type": "message", "id": "a-1", "data": "x"}
    answers = replies(server, frame, frame)
    assert server.handled == ["x"]
    assert answers == [{"type": "ack", "id": "a-1", "ok": True, "data": "handled x"}] * 2


def test_the_fake_server_answers_pings_and_echoes_plain_messages() -> None:
    server = FakePyrtServer()
    answers = replies(server, {"type": "ping", "t": 7}, {"type": "message", "data": "hi"})
    assert answers == [{"type": "pong", "t": 7}, {"type": "message", "data": "hi"}]


def test_the_fake_server_replays_after_an_offset_and_says_when_it_cannot() -> None:
    server = FakePyrtServer(retention=2)
    for n in range(4):
        server.publish("c", n)
    answers = replies(server, {"type": "subscribe", "channel": "c", "since": "1-1"})
    assert answers[0] == {"type": "subscribed", "channel": "c", "offset": "1-4", "recovered": False}
    assert [a["data"] for a in answers[1:]] == [2, 3]
    full = replies(server, {"type": "subscribe", "channel": "c", "since": "1-3"})
    assert full[0]["recovered"] is True
    assert [a["data"] for a in full[1:]] == [3]


def test_the_fake_server_refuses_what_the_real_one_refuses() -> None:
    server = FakePyrtServer()
    conn = server.accept()
    conn.outgoing.clear()
    conn.handle(b"\x00")
    conn.handle("{")
    conn.handle('{"type":"teleport"}')
    codes = [json.loads(f)["code"] for f in conn.outgoing]
    assert codes == ["binary_not_supported", "bad_json", "unknown_type"]


def test_the_fake_server_advertises_and_enforces_its_limits_like_serve_py() -> None:
    clock = FakeClock()
    limits = ServerLimits(rate=10.0, burst=2, window=3)
    server = FakePyrtServer(limits=limits, clock=clock)
    conn = server.accept()
    assert json.loads(conn.outgoing.popleft())["limits"] == {"rate": 10.0, "burst": 2, "window": 3}
    for n in range(3):
        conn.handle(json.dumps({"type": "message", "id": f"m-{n}", "data": n}))
    answers = [json.loads(f) for f in conn.outgoing]
    assert [a["type"] for a in answers] == ["ack", "ack", "error", "ping"]
    assert answers[2] == {"type": "error", "code": "rate_limited", "message": "too many frames: slow down",
                          "retry_after": 0.5, "id": "m-2"}  # fmt: skip
    assert server.refusals == [answers[2]]
    for n in range(3, 6):  # a client that neither reads nor waits, past the window
        conn.handle(json.dumps({"type": "message", "data": n}))
    assert (conn.close_code, server.abuse_closes) == (1008, 1)
    assert server.handled == [0, 1]


def test_the_fake_server_can_enforce_less_than_it_advertises() -> None:
    strict = ServerLimits(rate=1.0, burst=1)
    server = FakePyrtServer(limits=ServerLimits(rate=200.0, burst=400), enforce=strict)
    conn = server.accept()
    conn.outgoing.clear()
    conn.handle('{"type":"message","data":1}')
    conn.handle('{"type":"message","data":2}')
    assert [json.loads(f)["type"] for f in conn.outgoing] == ["message", "error", "ping"]


def test_the_harness_records_what_a_user_would_see() -> None:
    server = FakePyrtServer()
    h = EngineHarness(server=server, heartbeat=None)
    h.connect()
    h.send("hello")
    assert h.messages == ["hello"]
    assert h.states == [State.IDLE, State.CONNECTING, State.OPEN]


def test_the_harness_fails_sockets_while_the_server_is_down() -> None:
    server = FakePyrtServer()
    server.accepting = False
    h = EngineHarness(server=server, heartbeat=None)
    h.connect()
    assert h.state is State.RECONNECTING
    assert h.sockets[0].close_code == 1006
    server.accepting = True
    h.advance(1.0)
    assert h.state is State.OPEN


def test_the_harness_refuses_to_drop_a_socket_that_does_not_exist() -> None:
    h = EngineHarness(heartbeat=None)
    with pytest.raises(RuntimeError, match="no current socket"):
        h.drop()


def test_the_fake_server_batches_what_queued_up_for_a_client_that_offered_batches() -> None:
    server = FakePyrtServer()
    batched = server.accept(("pyrt.v1.batch", "pyrt.v1"))
    single = server.accept(("pyrt.v1",))
    assert json.loads(batched.take())["type"] == "welcome"  # alone: nothing else was queued
    for conn in (batched, single):
        conn.handle('{"type":"subscribe","channel":"c"}')
    server.publish("c", 1)
    batch = batched.take()
    assert [json.loads(line)["type"] for line in str(batch).split("\n")] == ["subscribed", "publication"]
    assert [json.loads(single.take())["type"] for _ in range(3)] == ["welcome", "subscribed", "publication"]
    assert not FakePyrtServer(batch=False).accept(("pyrt.v1.batch",)).batch


def test_the_fake_server_speaks_the_binary_binding_with_a_client_that_offers_it() -> None:
    server = FakePyrtServer(binary=True)
    h = EngineHarness(server=server, heartbeat=None)
    h.connect()
    seen = h.subscribe("plots")
    h.publish("plots", {"raw": b"\x00\x01", "array": NDArray("<i2", (2,), b"\x01\x00\x02\x00")})
    server.publish("plots", b"from the server")
    h.send(b"echo")
    assert server.connections[0].binary
    assert [p.data for p in seen][-1] == b"from the server"
    assert seen[0].data["raw"] == b"\x00\x01"
    assert seen[0].data["array"].tolist() == [1, 2]
    assert h.messages == [b"echo"]
