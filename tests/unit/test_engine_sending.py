"""Sending (pyrt/engine/sending.py): the queue, the lane ahead of it, overflow, pacing below the
server's limits and refusals."""

from __future__ import annotations

import json

import pytest

from pyrt.engine.backoff import Backoff
from pyrt.engine.heartbeat import Heartbeat
from pyrt.engine.pacing import WELCOME_GRACE, Pacing
from pyrt.engine.states import State
from pyrt.engine.websocket import (
    NO_MESSAGE,
    SendFrame,
    WebSocketEngine,
)
from pyrt.errors import (
    AckError,
    ClientClosedError,
    EncodeError,
    MessageTooLarge,
    QueueFull,
    ServerError,
)
from pyrt.testing import EngineHarness, FakePyrtServer
from pyrt.wire.limits import ServerLimits
from pyrt.wire.protocols import PyrtProtocol
from tests.unit.engine_support import (
    HELLO,
    NO_HB,
    SERVE_PY,
    WELCOME,
    frames_of,
    ids_of,
    online,
    paced,
    played,
    refuse,
)

# ------------------------------------------------------------------------------ sending and the queue


def test_messages_sent_before_open_are_flushed_in_order_before_new_ones() -> None:
    h = EngineHarness(**NO_HB)
    h.connect()
    h.send("a")
    h.send("b")
    assert h.engine.queue_length == 2
    h.open()
    h.receive(HELLO)  # what every pyrt server says first: frames wait for it
    h.send("c")
    assert [json.loads(f)["data"] for f in h.sent] == ["a", "b", "c"]


def test_messages_sent_while_reconnecting_wait_for_the_next_socket() -> None:
    h = online()
    h.drop()
    h.send("during outage")
    assert h.sockets[0].sent == []
    h.advance(1.0)
    assert [json.loads(f)["data"] for f in h.sockets[1].sent] == ["during outage"]


def test_the_engine_never_sends_on_a_socket_that_is_not_open() -> None:
    h = EngineHarness(**NO_HB)
    h.connect()
    assert h.engine.send("x", h.now) is None


def test_an_open_client_hands_the_frame_back_for_immediate_sending() -> None:
    engine = WebSocketEngine(protocol="raw", heartbeat=None)
    engine.connect(0.0)
    engine.opened(0.0)
    engine.actions()
    assert engine.send("fast", 0.0) == "fast"
    assert not engine.has_actions


def test_overflow_drop_oldest_reports_each_dropped_message() -> None:
    h = EngineHarness(queue_limit=2, **NO_HB)
    for text in ("a", "b", "c"):
        h.send(text)
    assert [json.loads(item.frame)["data"] for item in h.engine._outbox] == ["b", "c"]
    assert len(h.errors) == 1
    assert isinstance(h.errors[0], QueueFull)
    assert "drop_oldest" in str(h.errors[0])
    assert h.engine.stats.dropped == 1


def test_overflow_drop_newest_keeps_the_queue_and_reports_the_new_message() -> None:
    h = EngineHarness(queue_limit=2, overflow="drop_newest", **NO_HB)
    for text in ("a", "b", "c"):
        h.send(text)
    assert [json.loads(item.frame)["data"] for item in h.engine._outbox] == ["a", "b"]
    assert isinstance(h.errors[0], QueueFull)


def test_overflow_raise_refuses_the_send() -> None:
    h = EngineHarness(queue_limit=1, overflow="raise", **NO_HB)
    h.send("a")
    with pytest.raises(QueueFull):
        h.send("b")
    with pytest.raises(QueueFull):
        h.send_with_ack("c")
    assert h.engine.queue_length == 1
    assert h.engine.pending_acks == 0


def test_the_queue_is_bounded_by_bytes() -> None:
    h = EngineHarness(protocol="raw", queue_bytes=10, **NO_HB)
    h.send("12345")
    h.send("67890")
    h.send("x")
    assert [item.frame for item in h.engine._outbox] == ["67890", "x"]


def test_a_dropped_acked_message_rejects_its_ack() -> None:
    h = EngineHarness(queue_limit=1, **NO_HB)
    first = h.send_with_ack("a")
    h.send("b")
    assert isinstance(first.error, QueueFull)
    assert h.errors == []


def test_a_full_browser_buffer_makes_new_sends_queue_until_it_drains() -> None:
    h = EngineHarness(protocol="raw", high_water=100, **NO_HB)
    h.connect()
    h.open()
    sock = h.sockets[0]
    sock.buffered_amount = 500
    h.send("a")
    h.send("b")
    assert sock.sent == []
    h.advance(0.05)
    assert sock.sent == []
    sock.buffered_amount = 0
    h.advance(0.05)
    assert sock.sent == ["a", "b"]


def test_sending_after_close_is_a_clear_error() -> None:
    h = online()
    h.close()
    with pytest.raises(ClientClosedError, match="cannot send on a closed client; create a new one"):
        h.send("late")


def test_sending_while_closing_is_a_clear_error() -> None:
    h = EngineHarness(**NO_HB)
    h.connect()
    h.open()
    h.engine.close(h.now)
    with pytest.raises(ClientClosedError, match="closing"):
        h.engine.send("late", h.now)


def test_data_that_cannot_be_encoded_is_refused_before_queueing() -> None:
    h = EngineHarness(**NO_HB)
    with pytest.raises(EncodeError, match="set"):
        h.send({1, 2})
    assert h.engine.queue_length == 0


def test_binary_frames_go_out_as_bytes_in_raw_mode() -> None:
    h = EngineHarness(protocol="raw", **NO_HB)
    h.connect()
    h.open()
    h.send(bytearray(b"\x00\x01"))
    h.receive(b"\xff")
    assert h.sent == [b"\x00\x01"]
    assert h.messages == [b"\xff"]


# ------------------------------------------------------------------------------ misc


def test_frames_queued_before_open_come_out_as_send_actions_after_subscriptions() -> None:
    engine = WebSocketEngine(heartbeat=None)
    engine.subscribe("c", print, 0.0)
    engine.send("x", 0.0)
    engine.connect(0.0)
    engine.actions()
    engine.opened(0.0)
    assert not [a for a in engine.actions() if isinstance(a, SendFrame)]  # waits for the welcome
    engine.received(HELLO, 0.0)
    engine.tick(0.0)
    frames = [a.frame for a in engine.actions() if isinstance(a, SendFrame)]
    assert [json.loads(f)["type"] for f in frames] == ["subscribe", "message"]


# ------------------------------------------------------------------------------ flow control


def test_a_burst_goes_out_at_the_advertised_pace_and_is_never_refused() -> None:
    server = FakePyrtServer(limits=SERVE_PY)
    h = paced(server=server)
    waiters = [h.send_with_ack({"n": n}) for n in range(1000)]
    assert len(h.sent) == 200  # half the advertised burst at once
    assert h.engine.stats_snapshot().queue_length == 800  # the rest waits in the queue
    h.advance((1000 - 200) / 180 + 0.01)  # then 90 % of the advertised rate
    assert all(w.value == {"n": n} for n, w in enumerate(waiters))
    assert server.handled == [{"n": n} for n in range(1000)]
    assert server.refusals == []
    assert h.engine.stats_snapshot().queued == 800


def test_frames_wait_for_the_welcome_then_without_advertised_limits_go_unpaced() -> None:
    h = EngineHarness(**NO_HB)
    h.connect()
    h.open(welcome=False)
    for n in range(100):
        h.send({"n": n})
    assert h.sent == []  # the limits come with the welcome
    h.receive(HELLO)
    assert len(h.sent) == 100  # it advertised none: nothing is held back until a refusal


def test_a_socket_that_opens_but_never_welcomes_is_not_open_and_is_given_up_at_the_connect_timeout() -> None:
    h = EngineHarness(**NO_HB, connect_timeout=2.0)
    h.connect()
    h.open(welcome=False)  # "101 then silence": a proxy holding the frames
    for n in range(60):
        h.send({"n": n})
    h.advance(1.9)
    assert h.state is State.CONNECTING
    assert h.sent == []
    h.advance(0.1)
    assert h.state is State.RECONNECTING
    assert "the socket opened but no welcome came within 2 s" in h.reconnects[-1].reason


def test_a_paced_protocol_without_a_welcome_gets_the_default_pace_after_a_grace() -> None:
    h = EngineHarness(**NO_HB, protocol=Unwelcoming())
    h.connect()
    h.open()
    for n in range(60):
        h.send({"n": n})
    h.advance(WELCOME_GRACE)
    assert len(h.sent) == 50


def test_an_unlimited_server_is_not_paced() -> None:
    h = online(FakePyrtServer(limits=ServerLimits(max_bytes=1 << 20)))
    for n in range(2000):
        h.send({"n": n})
    assert len(h.sent) == 2000


@pytest.mark.parametrize("protocol", ["raw", "json-ack"])
def test_raw_protocols_are_not_paced_unless_asked(protocol: str) -> None:
    h = EngineHarness(protocol=protocol, **NO_HB)
    h.connect()
    h.open()
    for n in range(500):
        h.send(f"m{n}")
    assert len(h.sent) == 500
    custom = EngineHarness(protocol=protocol, pacing=Pacing(rate=10, burst=5), **NO_HB)
    custom.connect()
    custom.open()
    for n in range(20):
        custom.send(f"m{n}")
    assert len(custom.sent) == 5


def test_pacing_none_turns_it_off_and_a_bad_value_is_refused() -> None:
    h = EngineHarness(pacing=None, **NO_HB)
    h.connect()
    h.open()
    for n in range(500):
        h.send({"n": n})
    assert len(h.sent) == 500
    with pytest.raises(TypeError, match="pacing must be a Pacing"):
        WebSocketEngine(pacing="fast")  # type: ignore[arg-type]


def test_a_heartbeat_ping_is_never_starved_by_a_backlog() -> None:
    h = played(heartbeat=Heartbeat(interval=1.0, timeout=0.5))
    for n in range(5000):
        h.send({"n": n})
    h.advance(1.0)  # nothing came back: the ping is due, whatever is queued
    assert frames_of(h, "ping")
    assert h.engine.queue_length > 4000


def test_a_server_ping_is_answered_at_once_despite_a_backlog() -> None:
    h = played()
    for n in range(5000):
        h.send({"n": n})
    before = len(h.sent)
    h.receive('{"type":"ping","t":"hold-1"}')
    assert json.loads(h.sent[-1]) == {"type": "pong", "t": "hold-1"}
    assert len(h.sent) == before + 1


def test_after_a_reconnect_subscriptions_and_resends_go_first_at_the_pace() -> None:
    server = FakePyrtServer(limits=SERVE_PY)
    h = paced(server=server)
    h.subscribe("news")
    h.blackhole()
    lost = [h.send_with_ack({"n": n}) for n in range(300)]  # 200 vanish on the wire, 100 wait
    h.drop()
    queued = [h.send_with_ack({"n": n}) for n in range(300, 600)]
    h.advance(1.0)
    second = h.sockets[-1].sent
    assert json.loads(second[0])["type"] == "subscribe"
    resent = [json.loads(f)["data"]["n"] for f in second[1:] if '"message"' in f]
    assert resent == list(range(len(second) - 1))
    h.advance(5.0)
    assert all(w.done and w.error is None for w in lost + queued)
    assert server.handled == [{"n": n} for n in range(600)]
    assert server.refusals == []


def test_a_rate_limited_message_is_held_then_sent_again_in_order_without_failing() -> None:
    h = played()
    waiters = [h.send_with_ack({"n": n}) for n in range(5)]
    ids = ids_of(h)
    refuse(h, ids[1], retry_after=0.5)  # the server refused #1: everything after it comes back too
    for later in ids[2:]:
        refuse(h, later, retry_after=0.5)
    h.receive(json.dumps({"type": "ack", "id": ids[0], "ok": True, "data": 0}))
    more = h.send_with_ack({"n": 5})
    h.advance(0.5)
    assert len(h.sent) == 5  # held: nothing more before retry_after
    h.advance(5 / 90)  # then from an empty bucket, at half the pace (a refusal halves it)
    assert ids_of(h, h.sent[5:]) == [*ids[1:], ids_of(h)[-1]]  # the refused ones first, in order
    assert all(not w.done for w in waiters[1:])  # the caller saw nothing
    assert h.engine.stats_snapshot().refused == 4
    assert waiters[0].value == 0
    assert not more.done


def test_the_hold_lasts_until_everything_in_flight_is_answered() -> None:
    h = played()
    for n in range(4):
        h.send_with_ack({"n": n})
    h.send("fire and forget")
    ids = ids_of(h)
    refuse(h, ids[0], retry_after=0.1)
    h.advance(1.0)
    assert len(frames_of(h, "message")) == 5  # #1..#3 and the fire-and-forget are still out
    probe = frames_of(h, "ping")
    assert len(probe) == 1  # so it asks how far the server has read
    h.receive(json.dumps({"type": "pong", "t": probe[0]["t"]}))
    h.advance(0.1)
    assert ids_of(h)[-1] == ids[0]  # the pong confirmed everything: #0 goes again


def test_a_refused_fire_and_forget_message_is_reported_and_counted() -> None:
    h = played()
    h.send({"x": 1})
    h.receive('{"type":"error","code":"rate_limited","message":"slow down","retry_after":0.5}')
    assert isinstance(h.errors[-1], ServerError)
    assert h.errors[-1].code == "rate_limited"
    stats = h.engine.stats_snapshot()
    assert (stats.refused, stats.dropped) == (1, 1)


def test_a_refused_subscription_is_sent_again() -> None:
    h = played(**{})
    h.subscribe("news")
    h.receive('{"type":"error","code":"rate_limited","message":"slow","channel":"news","retry_after":0.2}')
    h.advance(0.2)
    h.receive(json.dumps({"type": "pong", "t": frames_of(h, "ping")[-1]["t"]}))
    h.advance(0.1)
    assert [f["channel"] for f in frames_of(h, "subscribe")] == ["news", "news"]
    assert h.errors == []


def test_unavailable_is_retried_after_retry_after_then_fails_naming_the_code() -> None:
    h = played(ack_retries=2)
    waiter = h.send_with_ack("x")
    ack_id = ids_of(h)[0]
    unavailable = json.dumps(
        {"type": "ack", "id": ack_id, "ok": False, "error": "temporarily unavailable, retry",
         "code": "unavailable", "retry_after": 1.0}
    )  # fmt: skip
    h.receive(unavailable)
    h.advance(0.9)
    assert len(frames_of(h, "message")) == 1
    h.advance(0.1)
    assert len(frames_of(h, "message")) == 2  # sent again, not failed
    assert not waiter.done
    h.receive(unavailable)
    h.advance(1.0)
    h.receive(unavailable)  # the third refusal of ack_retries=2: the caller hears of it now
    assert isinstance(waiter.error, AckError)
    assert waiter.error.code == "unavailable"
    assert len(frames_of(h, "message")) == 3


def test_a_message_larger_than_the_server_accepts_is_refused_before_it_is_sent() -> None:
    h = played()
    with pytest.raises(MessageTooLarge, match="the server accepts at most 1048576 bytes"):
        h.send("x" * (1 << 20))
    with pytest.raises(MessageTooLarge):
        h.send_with_ack("é" * (1 << 19))  # two bytes each in UTF-8
    assert h.sent == []
    assert h.engine.pending_acks == 0


def test_a_message_queued_before_the_limit_was_known_fails_instead_of_closing_the_socket() -> None:
    h = EngineHarness(**NO_HB)
    h.connect()
    big = h.send_with_ack("y" * 2048)
    small = h.send_with_ack("ok")
    h.open(welcome=False)
    h.receive(json.dumps({"type": "welcome", "limits": {"max_bytes": 1024}}))
    h.advance(0.0)
    assert isinstance(big.error, MessageTooLarge)
    assert [json.loads(f)["data"] for f in frames_of_raw(h)] == ["ok"]
    assert not small.done


def frames_of_raw(h: EngineHarness) -> list[str]:
    return [f for f in h.sent if isinstance(f, str) and '"message"' in f]


def test_a_reconnect_window_from_the_server_spreads_the_reconnect_and_the_failures_after_it() -> None:
    h = EngineHarness(rng=lambda: 0.8, backoff=Backoff(initial=0.5), **NO_HB)
    h.connect()
    h.open()
    h.drop(1001, "server shutting down; reconnect_window=5")
    assert h.reconnects[-1].delay == pytest.approx(4.0)  # 0.8 of the window, not of 0.5 s
    h.advance(4.0)
    h.drop(1006)  # the server is still restarting
    assert h.reconnects[-1].delay == pytest.approx(4.0)  # still spread over the window
    h.advance(4.0)
    h.open()
    h.drop(1006)  # a later, ordinary drop: back to the quick backoff
    assert h.reconnects[-1].delay == pytest.approx(1.6)


def test_retry_after_in_a_failed_attempt_is_a_floor() -> None:
    h = EngineHarness(rng=lambda: 0.1, **NO_HB)
    h.connect()
    h.drop(1006, "InvalidStatus: server rejected WebSocket connection: HTTP 503 retry_after=3")
    assert h.reconnects[-1].delay == 3.0


def test_a_welcome_that_frees_the_queue_tells_a_hot_path_adapter_to_rearm_its_timer() -> None:
    engine = WebSocketEngine(heartbeat=None, protocol=Unwelcoming())
    engine.connect(0.0)
    engine.send({"n": 1}, 0.0)
    engine.opened(0.0)
    engine.actions()
    assert engine.next_deadline() == WELCOME_GRACE  # waiting for the welcome
    assert engine.received(WELCOME, 0.01) is NO_MESSAGE
    # No action to perform, but the timer must move: has_actions says so, actions() clears it.
    assert engine.has_actions
    assert engine.actions() == ()
    assert not engine.has_actions
    assert engine.next_deadline() == 0.01


def test_resends_after_reconnects_do_not_use_up_the_refusal_budget() -> None:
    h = played(ack_retries=1)
    waiter = h.send_with_ack("x")
    ack_id = ids_of(h)[0]
    for _ in range(3):  # three reconnects: sent again each time
        h.drop()
        h.advance(5.0)
        h.open()
        h.receive(WELCOME)
        h.advance(0.01)
    assert len(frames_of(h, "message")) == 4
    refuse(h, ack_id, retry_after=0.5)  # one refusal is within ack_retries=1
    assert not waiter.done
    h.advance(1.0)
    refuse(h, ack_id, retry_after=0.5)  # the second is not
    assert isinstance(waiter.error, AckError)
    assert waiter.error.code == "rate_limited"


def test_without_pacing_a_rate_limited_message_still_waits_retry_after() -> None:
    h = played(pacing=None)
    waiter = h.send_with_ack("x")
    refuse(h, ids_of(h)[0], retry_after=0.3)
    h.advance(0.29)
    assert len(frames_of(h, "message")) == 1
    h.advance(0.01)
    assert len(frames_of(h, "message")) == 2
    assert not waiter.done


class Unwelcoming(PyrtProtocol):
    """A paced protocol whose connection is up when the socket opens (the welcome, if any, may
    come later): paced frames wait for it a grace, then go at the default pace."""

    welcomes = False
