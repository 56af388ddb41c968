"""Requests and their answers (pyrt/engine/requests.py): acks, timeouts, retries, dedup, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pyrt.errors import (
    AckError,
    AckTimeout,
    ClientClosedError,
    ServerError,
    UnsupportedByProtocol,
)
from pyrt.testing import EngineHarness, FakePyrtServer
from tests.unit.engine_support import (
    HELLO,
    NO_HB,
    frames_of,
    online,
)

# ------------------------------------------------------------------------------ acks


def test_an_ack_resolves_with_the_server_reply_exactly_once() -> None:
    h = online(FakePyrtServer(app=lambda data: {"got": data}))
    waiter = h.send_with_ack("hello")
    assert waiter.value == {"got": "hello"}
    assert waiter.outcomes == 1
    assert h.engine.stats.acked == 1


def test_an_unanswered_message_is_sent_again_after_the_timeout() -> None:
    h = EngineHarness(ack_timeout=2.0, ack_retries=3, **NO_HB)
    h.connect()
    h.open()
    h.receive(HELLO)  # what every pyrt server says first: frames wait for it
    h.send_with_ack("x")
    h.advance(2.0)
    assert len(h.sent) == 2
    assert h.sent[0] == h.sent[1]
    assert h.engine.stats.retried == 1


def test_after_all_retries_the_ack_fails_with_a_timeout() -> None:
    h = EngineHarness(ack_timeout=2.0, ack_retries=2, **NO_HB)
    h.connect()
    h.open()
    h.receive(HELLO)  # what every pyrt server says first: frames wait for it
    waiter = h.send_with_ack("x")
    h.advance(6.0)
    assert isinstance(waiter.error, AckTimeout)
    assert waiter.error.attempts == 3
    assert len(h.sent) == 3
    assert h.engine.stats.ack_timeouts == 1
    assert h.engine.pending_acks == 0


def test_the_per_call_timeout_overrides_the_default() -> None:
    h = EngineHarness(ack_timeout=10.0, ack_retries=0, **NO_HB)
    h.connect()
    h.open()
    h.receive(HELLO)  # what every pyrt server says first: frames wait for it
    waiter = h.send_with_ack("x", timeout=0.5)
    h.advance(0.5)
    assert isinstance(waiter.error, AckTimeout)


def test_ack_clocks_stop_while_disconnected() -> None:
    h = EngineHarness(ack_timeout=2.0, ack_retries=0, **NO_HB)
    h.connect()
    waiter = h.send_with_ack("queued while connecting")
    h.advance(1.0)
    h.drop()
    h.advance(60.0)
    assert not waiter.done


def test_a_failed_ack_carries_the_server_error() -> None:
    def app(data: Any) -> Any:
        raise RuntimeError("quota exceeded")

    h = online(FakePyrtServer(app=app))
    waiter = h.send_with_ack("x")
    assert isinstance(waiter.error, AckError)
    assert "quota exceeded" in str(waiter.error)


def test_an_error_frame_naming_a_message_rejects_it() -> None:
    h = EngineHarness(**NO_HB)
    h.connect()
    h.open()
    h.receive(HELLO)  # what every pyrt server says first: frames wait for it
    waiter = h.send_with_ack("x")
    ack_id = json.loads(h.sent[0])["id"]
    h.receive(json.dumps({"type": "error", "code": "too_large", "message": "1 MiB max", "id": ack_id}))
    assert isinstance(waiter.error, AckError)
    assert waiter.error.code == "too_large"


def test_an_error_frame_without_id_is_reported() -> None:
    h = EngineHarness(**NO_HB)
    h.connect()
    h.open()
    h.receive('{"type":"error","code":"rate_limited","message":"slow down"}')
    assert isinstance(h.errors[0], ServerError)
    assert h.errors[0].code == "rate_limited"


def test_a_message_acked_during_a_disconnect_is_resent_and_delivered_once() -> None:
    server = FakePyrtServer()
    h = online(server)
    h.blackhole()
    waiter = h.send_with_ack({"n": 1})
    h.drop()
    h.advance(1.0)
    assert waiter.value == {"n": 1}
    assert waiter.outcomes == 1
    assert server.handled == [{"n": 1}]
    assert len(frames_of(h, "message")) == 2  # the first copy vanished in the blackhole


def test_a_resent_message_the_server_already_handled_is_not_handled_twice() -> None:
    server = FakePyrtServer()
    h = online(server)
    sock = h.sockets[0]
    waiter = h.send_with_ack("once")
    assert waiter.done
    # Pretend the ack was lost: re-deliver the same frame on a new connection.
    frame = sock.sent[-1]
    conn = server.accept()
    conn.handle(frame)
    assert server.handled == ["once"]
    assert json.loads(conn.outgoing[-1])["ok"] is True


def test_a_duplicate_ack_is_ignored() -> None:
    h = EngineHarness(**NO_HB)
    h.connect()
    h.open()
    h.receive(HELLO)  # what every pyrt server says first: frames wait for it
    waiter = h.send_with_ack("x")
    ack_id = json.loads(h.sent[0])["id"]
    ack = json.dumps({"type": "ack", "id": ack_id, "ok": True, "data": 1})
    h.receive(ack)
    h.receive(ack)
    assert waiter.outcomes == 1
    assert h.engine.stats_snapshot().duplicates == 1


def test_ids_are_unique_across_reconnects() -> None:
    h = online(FakePyrtServer())
    for _ in range(5):
        h.send_with_ack("x")
        h.drop()
        h.advance(30.0)
    ids = [frame["id"] for frame in frames_of(h, "message")]
    assert len(set(ids)) == 5


def test_a_manual_close_rejects_pending_acks_with_a_clear_error() -> None:
    h = online()
    h.blackhole()
    waiter = h.send_with_ack("x")
    h.close()
    assert isinstance(waiter.error, ClientClosedError)
    assert "close() was called before message" in str(waiter.error)


def test_acks_need_a_protocol_that_has_them() -> None:
    h = EngineHarness(protocol="raw", **NO_HB)
    with pytest.raises(UnsupportedByProtocol, match="no acknowledgements"):
        h.send_with_ack("x")


def test_the_common_ack_shape_works_end_to_end() -> None:
    h = EngineHarness(protocol="json-ack", **NO_HB)
    h.connect()
    h.open()
    waiter = h.send_with_ack({"q": 1})
    sent = json.loads(h.sent[0])
    assert set(sent) == {"id", "data"}
    assert isinstance(sent["id"], int)
    h.receive(json.dumps({"type": "ack", "messageId": sent["id"], "success": True}))
    h.receive("an ordinary message")
    assert waiter.done
    assert waiter.error is None
    assert h.messages == ["an ordinary message"]
