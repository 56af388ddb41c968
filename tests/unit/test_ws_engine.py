"""The WebSocket engine, scripted with a fake clock, fake sockets and a fake pyrt server."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrt.backoff import Backoff
from pyrt.close_policy import CloseInfo
from pyrt.errors import (
    AckError,
    AckTimeout,
    ChannelRefused,
    ClientClosedError,
    EncodeError,
    FrameError,
    InvalidCloseCode,
    InvalidStateError,
    MessageTooLarge,
    QueueFull,
    ServerError,
    TokenError,
    UnsupportedByProtocol,
)
from pyrt.heartbeat import Heartbeat
from pyrt.pacing import WELCOME_GRACE, Pacing
from pyrt.persist import MemoryRecordStore, SavedFrame, Snapshot
from pyrt.presence import Member
from pyrt.server_limits import ServerLimits
from pyrt.states import TRANSITIONS, State
from pyrt.testing import AckWaiter, EngineHarness, FakePyrtServer
from pyrt.ws_engine import (
    ABANDON_CODE,
    NO_MESSAGE,
    CloseSocket,
    OpenSocket,
    SendFrame,
    WebSocketEngine,
)

NO_HB: dict[str, Any] = {"heartbeat": None}
HELLO = '{"type":"welcome","session":"s1"}'  # a welcome that advertises no limits


def online(server: FakePyrtServer | None = None, **kwargs: Any) -> EngineHarness:
    """A harness connected to a fake server (heartbeat off unless asked for)."""
    kwargs.setdefault("heartbeat", None)
    h = EngineHarness(server=server or FakePyrtServer(), **kwargs)
    h.connect()
    assert h.state is State.OPEN
    return h


def frames_of(h: EngineHarness, kind: str) -> list[dict[str, Any]]:
    out = []
    for frame in h.sent:
        if isinstance(frame, str) and frame.startswith("{"):
            obj = json.loads(frame)
            if obj.get("type") == kind:
                out.append(obj)
    return out


# ------------------------------------------------------------------------------ connecting


def test_connect_opens_a_socket_and_reports_each_state() -> None:
    h = EngineHarness(**NO_HB)
    h.connect()
    assert h.state is State.CONNECTING
    assert len(h.sockets) == 1
    h.open()
    assert h.states == [State.IDLE, State.CONNECTING, State.OPEN]


def test_connect_twice_is_a_clear_error() -> None:
    h = EngineHarness(**NO_HB)
    h.connect()
    with pytest.raises(InvalidStateError, match=r"connect\(\) was already called \(state CONNECTING\)"):
        h.connect()


def test_a_closed_client_cannot_connect_again() -> None:
    h = EngineHarness(**NO_HB)
    h.close()
    with pytest.raises(ClientClosedError, match="create a new one"):
        h.connect()


def test_a_socket_not_open_within_the_connect_timeout_is_abandoned_and_retried() -> None:
    h = EngineHarness(connect_timeout=5.0, **NO_HB)
    h.connect()
    h.advance(5.0)
    first = h.sockets[0]
    assert first.detached
    assert first.close_code == ABANDON_CODE
    assert h.state is State.RECONNECTING
    assert "connect timeout" in h.reconnects[0].reason
    h.advance(1.0)
    assert len(h.sockets) == 2
    assert h.state is State.CONNECTING


# ------------------------------------------------------------------------------ reconnecting


def test_delays_follow_the_backoff_with_jitter_from_the_injected_rng() -> None:
    source = random.Random(42)
    draws: list[float] = []

    def rng() -> float:
        draws.append(source.random())
        return draws[-1]

    h = EngineHarness(backoff=Backoff(initial=1.0, maximum=8.0), rng=rng, **NO_HB)
    h.connect()
    for _ in range(6):
        h.drop()
        h.advance(h.reconnects[-1].delay)
    expected = [min(8.0, 2.0**n) * draw for n, draw in enumerate(draws[-6:])]
    assert [r.delay for r in h.reconnects] == pytest.approx(expected)
    assert [r.attempt for r in h.reconnects] == [1, 2, 3, 4, 5, 6]
    assert all(0 <= r.delay <= 8.0 for r in h.reconnects)


def test_the_reconnect_happens_exactly_when_the_delay_is_over() -> None:
    h = EngineHarness(backoff=Backoff(initial=2.0, jitter="none"), **NO_HB)
    h.connect()
    h.open()
    h.drop()
    h.advance(1.999)
    assert h.state is State.RECONNECTING
    h.advance(0.001)
    assert h.state is State.CONNECTING
    assert len(h.sockets) == 2


def test_a_flapping_server_does_not_reset_the_backoff() -> None:
    h = EngineHarness(backoff=Backoff(initial=1.0, jitter="none", min_uptime=5.0), **NO_HB)
    h.connect()
    for _ in range(3):
        h.open()
        h.advance(1.0)  # up for one second only
        h.drop()
        h.advance(h.reconnects[-1].delay)
    assert [r.attempt for r in h.reconnects] == [1, 2, 3]


def test_the_backoff_resets_after_the_minimum_uptime() -> None:
    h = EngineHarness(backoff=Backoff(initial=1.0, jitter="none", min_uptime=5.0), **NO_HB)
    h.connect()
    h.drop()
    h.advance(1.0)
    h.drop()
    h.advance(2.0)
    h.open()
    h.advance(5.0)
    h.drop()
    assert [r.attempt for r in h.reconnects] == [1, 2, 1]


def test_max_attempts_exhausted_closes_with_a_reason_that_says_so() -> None:
    h = EngineHarness(backoff=Backoff(max_attempts=2), **NO_HB)
    h.connect()
    for _ in range(3):
        h.drop()
        h.advance(10.0)
    assert h.state is State.CLOSED
    assert len(h.sockets) == 3
    assert h.closes[0].detail.startswith("gave up after 2 reconnect attempts (max_attempts=2)")


@pytest.mark.parametrize("code", [1008, 1009, 4401, 4403])
def test_the_client_stops_on_do_not_retry_codes(code: int) -> None:
    h = online()
    h.drop(code, "no")
    assert h.state is State.CLOSED
    assert h.closes[-1].code == code
    assert "not reconnecting" in h.closes[-1].detail
    assert not h.closes[-1].by_client


@pytest.mark.parametrize("code", [1001, 1006, 1011, 1012, 1013])
def test_the_client_reconnects_after_recoverable_codes(code: int) -> None:
    h = online()
    h.drop(code)
    assert h.state is State.RECONNECTING
    h.advance(1.0)
    assert h.state is State.OPEN


def test_a_custom_policy_decides_with_the_close_info() -> None:
    seen: list[CloseInfo] = []

    def policy(info: CloseInfo) -> bool:
        seen.append(info)
        return info.code != 4000

    h = online(should_reconnect=policy)
    h.advance(2.0)
    h.drop(4000, "bye", was_clean=True)
    assert h.state is State.CLOSED
    assert seen == [CloseInfo(4000, "bye", True, 2.0)]


def test_stopping_rejects_pending_acks_and_reports_unsent_messages() -> None:
    server = FakePyrtServer()
    h = online(server)
    h.blackhole()
    waiter = h.send_with_ack("x")
    h.drop(4401, "token expired")
    assert isinstance(waiter.error, ClientClosedError)
    assert "4401 (token expired); not reconnecting" in str(waiter.error)


def test_the_network_coming_back_reconnects_at_once() -> None:
    h = EngineHarness(backoff=Backoff(initial=30.0, jitter="none"), **NO_HB)
    h.connect()
    h.drop()
    h.engine.network_online(h.now)
    h.pump()
    assert h.state is State.CONNECTING
    assert len(h.sockets) == 2


# ------------------------------------------------------------------------------ heartbeat


def test_an_idle_connection_is_pinged_and_a_pong_measures_the_round_trip() -> None:
    h = online(heartbeat=Heartbeat(interval=25.0, timeout=10.0))
    h.advance(25.0)
    assert frames_of(h, "ping") == [{"type": "ping", "t": 1}]
    stats = h.engine.stats_snapshot()
    assert stats.rtt == 0.0
    assert stats.srtt == 0.0


def test_a_silent_connection_is_declared_dead_and_replaced() -> None:
    h = online(heartbeat=Heartbeat(interval=25.0, timeout=10.0))
    h.blackhole()
    h.advance(34.9)
    assert h.state is State.OPEN
    h.advance(0.1)
    assert h.sockets[0].detached
    assert h.state in (State.RECONNECTING, State.OPEN)
    assert "heartbeat timeout" in h.reconnects[0].reason
    h.advance(1.0)
    assert h.state is State.OPEN
    assert len(h.sockets) == 2


def test_throttled_timers_do_not_cause_a_false_dead_verdict() -> None:
    h = EngineHarness(heartbeat=Heartbeat(interval=25.0, timeout=10.0))
    h.connect()
    h.open()
    h.clock.advance(25.0)
    h.tick()  # ping sent
    h.clock.advance(60.0)  # background tab: the next timer fires a minute late
    h.tick()
    assert h.state is State.OPEN
    assert len(frames_of(h, "ping")) == 2
    h.receive('{"type":"pong","t":2}')
    h.advance(10.0)
    assert h.state is State.OPEN


def test_after_a_long_sleep_the_socket_is_replaced_at_once_and_the_queue_goes_on_the_new_one() -> None:
    h = online(heartbeat=Heartbeat(interval=25.0, timeout=10.0))
    h.advance(3.0)
    h.blackhole()  # the server and the NAT dropped the connection while the laptop slept
    h.send("written while asleep")  # stuck on the dead socket
    h.engine.woke(h.now, 600.0)
    h.pump()
    assert h.sockets[0].detached
    assert "the machine slept for 600 s" in h.reconnects[0].reason
    assert len(h.sockets) == 2  # at once: no backoff delay, no heartbeat timeout
    h.pump()
    assert h.state is State.OPEN
    assert h.engine.stats.reconnects == 1


def test_a_sleep_shorter_than_the_heartbeat_only_probes_the_connection() -> None:
    h = online(heartbeat=Heartbeat(interval=25.0, timeout=10.0))
    h.advance(3.0)
    h.engine.woke(h.now, 20.0)  # under interval + timeout: the connection may well be alive
    h.pump()
    assert len(frames_of(h, "ping")) == 1
    assert len(h.sockets) == 1
    h.receive('{"type":"pong","t":1}')
    h.advance(10.0)
    assert h.state is State.OPEN
    assert len(h.sockets) == 1


def test_without_a_heartbeat_a_sleep_of_a_minute_replaces_the_socket() -> None:
    h = online()
    h.engine.woke(h.now, 59.0)
    h.pump()
    assert len(h.sockets) == 1
    h.engine.woke(h.now, 61.0)
    h.pump()
    assert len(h.sockets) == 2


def test_waking_while_reconnecting_reconnects_now_and_idle_or_closed_clients_ignore_it() -> None:
    h = online(backoff=Backoff(initial=30.0, maximum=30.0, jitter="none"))
    h.drop()
    assert h.state is State.RECONNECTING
    h.engine.woke(h.now, 5.0)
    h.pump()
    assert len(h.sockets) == 2
    idle = EngineHarness(**NO_HB)
    idle.engine.woke(idle.now, 600.0)
    assert idle.sockets == []
    assert idle.state is State.IDLE
    h.close()
    h.pump()
    h.engine.woke(h.now, 600.0)
    h.pump()
    assert h.state is State.CLOSED
    assert len(h.sockets) == 2


def test_becoming_visible_checks_liveness_at_once() -> None:
    h = online(heartbeat=Heartbeat(interval=25.0, timeout=10.0))
    h.advance(3.0)
    h.blackhole()
    h.engine.page_visible(h.now)
    h.pump()
    assert len(frames_of(h, "ping")) == 1
    h.advance(10.0)
    assert h.sockets[0].detached


def test_the_server_ping_is_answered_with_its_token() -> None:
    h = EngineHarness(**NO_HB)
    h.connect()
    h.open()
    h.receive('{"type":"ping","t":"abc"}')
    assert h.sent == ['{"type":"pong","t":"abc"}']
    assert h.messages == []


def test_raw_mode_pings_with_text_and_hides_the_pong() -> None:
    h = EngineHarness(protocol="raw", heartbeat=Heartbeat(interval=1.0, timeout=1.0))
    h.connect()
    h.open()
    h.advance(1.0)
    assert h.sent == ["ping"]
    h.receive("pong")
    h.receive("hello")
    assert h.messages == ["hello"]


def test_custom_ping_texts_work_against_an_echo_server() -> None:
    h = EngineHarness(protocol="raw", heartbeat=Heartbeat(interval=1.0, timeout=1.0, ping="hb", pong="hb"))
    h.connect()
    h.open()
    h.advance(1.0)
    h.receive("hb")
    h.advance(1.5)
    assert h.state is State.OPEN
    assert h.messages == []


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


# ------------------------------------------------------------------------------ channels


def test_publications_reach_the_handler_in_order() -> None:
    server = FakePyrtServer()
    h = online(server)
    got = h.subscribe("news")
    for n in range(3):
        server.publish("news", n)
    h.pump()
    assert [p.data for p in got] == [0, 1, 2]
    assert [p.offset for p in got] == ["1-1", "1-2", "1-3"]


def test_a_subscription_survives_a_disconnect_without_gaps_or_duplicates() -> None:
    server = FakePyrtServer()
    h = online(server)
    got = h.subscribe("news")
    server.publish("news", "before")
    h.pump()
    h.drop()
    server.publish("news", "missed 1")
    server.publish("news", "missed 2")
    h.advance(1.0)
    server.publish("news", "after")
    h.pump()
    assert [p.data for p in got] == ["before", "missed 1", "missed 2", "after"]
    assert all(p.recovered for p in got)
    assert frames_of(h, "subscribe")[-1]["since"] == "1-1"


def test_an_overlapping_replay_is_deduplicated() -> None:
    h = EngineHarness(**NO_HB)
    h.connect()
    h.open()
    got = h.subscribe("c")
    h.receive('{"type":"subscribed","channel":"c","offset":"0","recovered":true}')
    for n in (1, 2, 1, 2, 3):
        h.receive(json.dumps({"type": "publication", "channel": "c", "offset": f"5-{n}", "data": n}))
    assert [p.data for p in got] == [1, 2, 3]


def test_a_recovery_the_server_could_not_make_is_flagged_on_the_next_publication() -> None:
    server = FakePyrtServer(retention=2)
    h = online(server)
    got = h.subscribe("c")
    server.publish("c", 1)
    h.pump()
    h.drop()
    for n in range(2, 7):
        server.publish("c", n)
    h.advance(1.0)
    assert [p.data for p in got] == [1, 5, 6]
    assert [p.recovered for p in got] == [True, False, True]
    assert h.confirmed[-1].recovered is False


def test_subscribing_before_open_sends_the_subscription_on_open() -> None:
    server = FakePyrtServer()
    server.publish("c", "old")
    h = EngineHarness(server=server, **NO_HB)
    got = h.subscribe("c", since="0")
    h.connect()
    assert [p.data for p in got] == ["old"]


def test_unsubscribed_channels_are_not_restored() -> None:
    server = FakePyrtServer()
    h = online(server)
    h.subscribe("c")
    h.unsubscribe("c")
    h.drop()
    h.advance(1.0)
    assert len(frames_of(h, "subscribe")) == 1
    assert h.engine.unsubscribe("c", h.now) is False


def test_publish_resolves_with_the_offset_and_is_not_repeated_on_resend() -> None:
    server = FakePyrtServer()
    h = online(server)
    h.blackhole()
    waiter = h.publish("c", {"x": 1})
    h.drop()
    h.advance(1.0)
    assert waiter.value == "1-1"
    h.sockets[-1].conn.handle(h.sockets[-1].sent[-1])  # type: ignore[union-attr]  # a third copy
    assert len(server.log["c"]) == 1


def test_channels_need_the_pyrt_protocol() -> None:
    h = EngineHarness(protocol="raw", **NO_HB)
    with pytest.raises(UnsupportedByProtocol, match="no channels"):
        h.subscribe("c")


# ------------------------------------------------------------------------------ closing


def test_a_manual_close_never_reconnects() -> None:
    h = online()
    h.close()
    assert h.state is State.CLOSED
    h.advance(3600.0)
    assert len(h.sockets) == 1
    assert h.closes[-1].by_client
    assert h.closes[-1].code == 1000


def test_a_close_waits_for_the_socket_then_gives_up_after_the_close_timeout() -> None:
    h = EngineHarness(close_timeout=2.0, **NO_HB)
    h.connect()
    h.open()
    h.blackhole()  # the close handshake never completes
    h.close(4000, "done")
    assert h.state is State.CLOSING
    h.advance(2.0)
    assert h.state is State.CLOSED
    assert "did not finish closing" in h.closes[-1].detail


def test_closing_while_reconnecting_closes_at_once() -> None:
    h = online()
    h.drop()
    h.close()
    assert h.state is State.CLOSED
    assert h.states[-2:] == [State.RECONNECTING, State.CLOSED]


def test_close_twice_does_nothing_more() -> None:
    h = online()
    h.close()
    h.close()
    assert len(h.closes) == 1


@pytest.mark.parametrize("code", [1001, 1006, 2000, 5000])
def test_invalid_close_codes_are_refused(code: int) -> None:
    h = online()
    with pytest.raises(InvalidCloseCode):
        h.close(code)
    assert h.state is State.OPEN


def test_an_overlong_close_reason_is_refused() -> None:
    h = online()
    with pytest.raises(InvalidCloseCode, match="123 bytes"):
        h.close(1000, "é" * 62)


def test_closing_drops_queued_messages_and_reports_each() -> None:
    h = EngineHarness(**NO_HB)
    h.connect()
    h.send("never sent")
    h.close()
    assert len(h.errors) == 1
    assert "never sent" in str(h.errors[0])
    assert h.engine.stats.dropped == 1


# ------------------------------------------------------------------------------ page lifecycle


def test_pagehide_closes_cleanly_and_pageshow_reconnects() -> None:
    h = online()
    h.engine.page_hidden(h.now)
    h.pump()
    assert h.sockets[0].close_code == 1000
    assert h.sockets[0].close_reason == "page hidden"
    assert h.state is State.PAUSED  # waiting for pageshow, no timer
    h.advance(3600.0)
    assert len(h.sockets) == 1
    h.engine.page_shown(h.now)
    h.pump()
    assert h.state is State.OPEN
    assert len(h.sockets) == 2


def test_pagehide_while_waiting_to_reconnect_cancels_the_timer_until_pageshow() -> None:
    h = online()
    h.server.accepting = False  # type: ignore[union-attr]
    h.drop()
    assert h.state is State.RECONNECTING
    h.engine.page_hidden(h.now)
    h.pump()
    assert (h.state, h.engine.next_deadline()) == (State.PAUSED, None)
    h.server.accepting = True  # type: ignore[union-attr]
    h.engine.page_shown(h.now)
    h.pump()
    assert h.state is State.OPEN


# ------------------------------------------------------------------------------ pause / resume


def test_pause_goes_offline_keeping_acks_and_queueing_sends_until_resume() -> None:
    server = FakePyrtServer()
    h = online(server)
    h.engine.pause(h.now)
    h.pump()
    assert (h.state, h.engine.paused, h.sockets[0].close_reason) == (State.PAUSED, True, "paused")
    reply = h.send_with_ack("later")
    h.send("fire and forget")
    h.advance(3600.0)
    assert (len(h.sockets), h.engine.next_deadline(), reply.done) == (1, None, False)
    h.engine.resume(h.now)
    h.pump()
    assert (h.state, h.engine.paused, reply.value) == (State.OPEN, False, "later")
    assert server.handled == ["later", "fire and forget"]


def test_only_resume_ends_a_pause() -> None:
    h = online()
    h.engine.pause(h.now)
    h.engine.page_shown(h.now)
    h.engine.network_online(h.now)
    h.engine.page_visible(h.now)
    h.pump()
    assert (h.state, len(h.sockets)) == (State.PAUSED, 1)
    h.engine.page_hidden(h.now)  # the page goes and comes back: still paused
    h.engine.page_shown(h.now)
    h.pump()
    assert h.state is State.PAUSED
    h.engine.resume(h.now)
    h.pump()
    assert (h.state, len(h.sockets)) == (State.OPEN, 2)


def test_pause_from_reconnecting_cancels_the_pending_attempt() -> None:
    h = online()
    h.drop()
    assert h.state is State.RECONNECTING
    h.engine.pause(h.now)
    h.pump()
    h.advance(3600.0)
    assert (h.state, len(h.sockets)) == (State.PAUSED, 1)


def test_pause_needs_a_live_client_and_resume_without_pause_does_nothing() -> None:
    h = EngineHarness(heartbeat=None)
    with pytest.raises(InvalidStateError, match="cannot pause a client that is IDLE"):
        h.engine.pause(h.now)
    h.engine.resume(h.now)
    assert h.state is State.IDLE
    assert not h.engine.has_actions
    h.close()
    with pytest.raises(InvalidStateError, match="cannot pause a client that is CLOSED"):
        h.engine.pause(h.now)


def test_closing_a_paused_client_ends_it_at_once() -> None:
    h = online()
    h.engine.pause(h.now)
    h.pump()
    h.close()
    assert h.states[-2:] == [State.PAUSED, State.CLOSED]
    assert h.closes[0].by_client
    assert h.closes[0].error is None


# ------------------------------------------------------------------------------ persistence


def page_that_left(server: FakePyrtServer, *data: Any, **kwargs: Any) -> EngineHarness:
    """A first page whose acked messages went into a blackhole before it went away (pagehide)."""
    first = online(server, persist=True, **kwargs)
    first.blackhole()
    for item in data:
        first.send_with_ack(item)
    first.engine.page_hidden(first.now)
    first.pump()
    return first


def reloaded(first: EngineHarness, server: FakePyrtServer, **kwargs: Any) -> EngineHarness:
    """A new page's harness on the same store (restore it, then connect)."""
    kwargs.setdefault("heartbeat", None)
    return EngineHarness(server=server, persist=True, store=first.store, **kwargs)


def test_unacked_messages_and_offsets_survive_a_page_reload() -> None:
    server = FakePyrtServer()
    first = online(server, persist=True)
    got = first.subscribe("c")
    server.publish("c", "seen")
    first.pump()
    first.blackhole()
    lost = first.send_with_ack("sent into the void")
    server.accepting = False
    first.drop()
    first.send("queued while offline")
    first.engine.page_hidden(first.now)
    first.pump()
    assert not lost.done
    assert [p.data for p in got] == ["seen"]

    server.publish("c", "published during the reload")
    server.accepting = True
    second = reloaded(first, server)
    second.restore()
    again = second.subscribe("c")
    second.connect()
    assert server.handled == ["sent into the void", "queued while offline"]
    assert [p.data for p in again] == ["published during the reload"]
    assert second.engine.stats.restored == 2


def test_saved_offsets_resume_subscriptions_made_before_restore() -> None:
    # WebSocketClient restores in connect(), after the page's subscribe() calls.
    server = FakePyrtServer()
    first = online(server, persist=True)
    first.subscribe("c")
    server.publish("c", "seen")
    first.pump()
    first.engine.page_hidden(first.now)
    first.pump()
    server.publish("c", "published during the reload")
    second = reloaded(first, server)
    again = second.subscribe("c")
    pinned = second.subscribe("d", since="0")
    second.restore()
    second.connect()
    assert [p.data for p in again] == ["published during the reload"]
    assert frames_of(second, "subscribe")[-1]["since"] == "0"  # an explicit since is kept
    assert pinned == []


def test_a_restored_message_the_server_already_handled_is_not_handled_again() -> None:
    server = FakePyrtServer()
    first = online(server, persist=True)
    first.blackhole()
    waiter = first.send_with_ack("handled, but the ack was lost")
    server.accept().handle(first.sent[-1])  # the server got it; its ack never came back
    first.engine.page_hidden(first.now)
    first.pump()
    assert not waiter.done

    second = reloaded(first, server)
    second.restore()
    second.connect()
    assert server.handled == ["handled, but the ack was lost"]
    assert len(frames_of(second, "message")) == 1
    assert second.errors == []
    assert second.engine.pending_acks == 0


def test_each_restored_message_reports_its_ack_or_its_failure() -> None:
    server = FakePyrtServer()
    first = online(server, persist=True)
    first.blackhole()
    first.send_with_ack({"n": 1})
    first.publish("news", {"headline": "x"})
    first.engine.page_hidden(first.now)
    first.pump()
    ids = [f["id"] for f in frames_of(first, "message") + frames_of(first, "publish")]

    second = reloaded(first, server, ack_retries=0, ack_timeout=1.0)
    second.restore()
    second.connect()
    outcomes = {m.id: m for m in second.restored}
    assert sorted(outcomes) == sorted(ids)
    message = outcomes[ids[0]]
    assert (message.kind, message.ok, message.data, message.reply) == ("message", True, {"n": 1}, {"n": 1})
    publication = outcomes[ids[1]]
    assert (publication.kind, publication.channel, publication.data) == ("publish", "news", {"headline": "x"})
    assert publication.ok
    assert publication.reply == server.log["news"][-1][0]

    third = page_that_left(FakePyrtServer(), "never acked")
    fourth = EngineHarness(persist=True, store=third.store, heartbeat=None, ack_retries=0, ack_timeout=1.0)
    fourth.restore()
    fourth.connect()
    fourth.open()  # a server that never answers: not even its welcome
    fourth.advance(WELCOME_GRACE + 1.0)  # sent after the welcome grace, then timed out
    failed = fourth.restored[0]
    assert not failed.ok
    assert isinstance(failed.error, AckTimeout)
    assert fourth.errors == [failed.error]  # also reported to on_error


def test_saved_messages_go_before_those_sent_while_the_state_loaded() -> None:
    server = FakePyrtServer()
    first = page_that_left(server, "from the first page")
    second = reloaded(first, server, rng=lambda: 0.25)  # another page: other ids
    second.send_with_ack("sent before the saved state was loaded")
    assert second.saved == []  # held: the saved records' numbers are not known yet
    second.restore()
    second.connect()
    assert server.handled == ["from the first page", "sent before the saved state was loaded"]
    second.advance(0)
    assert second.stored().frames == ()


def test_a_write_holds_only_what_changed_however_long_the_queue() -> None:
    h = online(persist=True, queue_limit=20_000, queue_bytes=1 << 24)
    h.blackhole()
    server_down = h.server
    assert server_down is not None
    server_down.accepting = False
    h.drop()
    for n in range(10_000):
        h.send(n)  # the harness fires the zero-delay save timer after each, as a loop would
    assert len(h.stored().frames) == 10_000
    assert max(len(saved.puts) for saved in h.saved) == 1  # never the whole queue
    h.send("one more")
    h.advance(0)
    last = h.saved[-1]
    assert (len(last.puts), len(last.deletes), last.offsets) == (1, 0, None)
    assert len(h.stored().frames) == 10_001


def test_a_message_acknowledged_before_the_next_write_is_never_written() -> None:
    h = online(persist=True, persist_interval=0.25)
    for n in range(10):
        h.send_with_ack(n)  # the fake server acks at once
    h.advance(0.25)
    assert h.saved == []
    assert h.store.writes == 0


def test_an_acknowledged_message_leaves_storage_with_one_delete() -> None:
    h = online(persist=True)
    h.blackhole()
    h.send_with_ack("x")
    h.advance(0)
    assert len(h.stored().frames) == 1
    h.receive(json.dumps({"type": "ack", "id": frames_of(h, "message")[0]["id"], "ok": True}))
    h.advance(0)
    assert h.saved[-1].deletes == {1}
    assert not h.saved[-1].puts
    assert h.stored().frames == ()


def test_delivered_publications_move_the_saved_offset() -> None:
    server = FakePyrtServer()
    h = online(server, persist=True)
    h.subscribe("c")
    for n in range(3):
        server.publish("c", n)
    h.pump()
    h.advance(0)
    assert h.stored().offsets == {"c": server.log["c"][-1][0]}


def test_saves_are_batched_by_the_persist_interval() -> None:
    h = online(persist=True, persist_interval=0.25)
    h.blackhole()
    for n in range(10):
        h.send_with_ack(n)
    assert h.saved == []
    h.advance(0.25)
    assert len(h.saved) == 1
    assert len(h.stored().frames) == 10


def test_by_default_a_change_is_written_at_the_next_tick() -> None:
    h = online(persist=True)
    h.blackhole()
    h.engine.send_with_ack("x", h.now, AckWaiter(), None, 0)
    assert h.engine.next_deadline() == h.now  # a zero-delay timer, not a write in the call
    assert h.saved == []
    h.pump()  # the harness fires a timer that is due, as a real event loop would
    assert len(h.stored().frames) == 1


def test_save_now_writes_at_once_and_needs_persistence() -> None:
    h = online(persist=True, persist_interval=60)
    h.blackhole()
    h.send_with_ack("x")
    assert h.engine.save_now(h.now)
    h.pump()
    assert len(h.stored().frames) == 1
    assert not online().engine.save_now(0.0)


def test_closing_the_client_removes_what_it_saved() -> None:
    h = online(persist=True)
    h.blackhole()
    h.send_with_ack("x")
    h.advance(0)
    h.close()
    h.advance(5)
    assert h.stored().frames == ()


def test_records_from_an_older_format_are_written_again_with_numbers() -> None:
    old = page_that_left(FakePyrtServer(), "old").stored()
    unnumbered = Snapshot(tuple(SavedFrame(s.frame, s.ack_id, s.kind) for s in old.frames), old.offsets)
    store = MemoryRecordStore(durable=True)
    second = EngineHarness(server=FakePyrtServer(), persist=True, store=store, heartbeat=None)
    second.engine.restore(unnumbered)
    second.engine.save_now(second.now)
    second.pump()
    assert [s.seq for s in store.records["test"].values()] == [1]


def test_restore_after_connect_is_refused() -> None:
    h = online()
    with pytest.raises(InvalidStateError, match="before connect"):
        h.engine.restore(Snapshot())


# ------------------------------------------------------------------------------ misc


def test_unreadable_frames_are_reported_not_delivered() -> None:
    h = EngineHarness(**NO_HB)
    h.connect()
    h.open()
    h.receive("not json")
    assert h.messages == []
    assert isinstance(h.errors[0], FrameError)


def test_the_welcome_names_the_session() -> None:
    h = online()
    assert h.engine.session == "s1"


def test_received_returns_no_message_for_control_frames() -> None:
    engine = WebSocketEngine(heartbeat=None)
    engine.connect(0.0)
    engine.opened(0.0)
    assert engine.received('{"type":"pong","t":1}', 0.0) is NO_MESSAGE
    assert engine.received('{"type":"message","data":5}', 0.0) == 5


def test_stats_count_what_a_user_would_ask_about() -> None:
    server = FakePyrtServer()
    h = online(server)
    h.send("a")
    h.send_with_ack("b")
    h.drop()
    h.send("c")
    h.advance(1.0)
    stats = h.engine.stats_snapshot().as_dict()
    assert stats["queued"] == 1
    assert stats["acked"] == 1
    assert stats["reconnects"] == 1
    assert stats["sent"] >= 3
    assert stats["received"] >= 4
    assert stats["queue_length"] == 0
    assert stats["pending_acks"] == 0


def test_actions_are_drained_once() -> None:
    engine = WebSocketEngine(heartbeat=None)
    engine.connect(0.0)
    first = engine.actions()
    assert any(isinstance(a, OpenSocket) for a in first)
    assert engine.actions() == ()


def test_the_socket_of_a_manual_close_is_closed_with_the_given_code() -> None:
    engine = WebSocketEngine(heartbeat=None)
    engine.connect(0.0)
    engine.opened(0.0)
    engine.actions()
    engine.close(0.0, 4001, "bye")
    assert CloseSocket(4001, "bye", False) in engine.actions()


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


# ------------------------------------------------------------------------------ properties

OPS = st.one_of(
    st.tuples(st.just("send")),
    st.tuples(st.just("publish")),
    st.tuples(st.just("drop"), st.sampled_from([1000, 1001, 1006, 1011, 1012, 1013])),
    st.tuples(st.just("blackhole")),
    st.tuples(st.just("server"), st.booleans()),
    st.tuples(st.just("wait"), st.floats(min_value=0.0, max_value=20.0)),
    st.tuples(st.just("visible")),
    st.tuples(st.just("online")),
    st.tuples(st.just("pagehide")),
)

CHAOS: dict[str, Any] = {
    "heartbeat": Heartbeat(interval=5.0, timeout=2.0),
    "ack_timeout": 3.0,
    "ack_retries": 10_000,
    "connect_timeout": 3.0,
    "backoff": Backoff(initial=0.1, maximum=5.0),
}


def play(h: EngineHarness, server: FakePyrtServer, ops: list[tuple[Any, ...]]) -> tuple[list[Any], int]:
    """Apply random faults and traffic; returns the ack waiters and the number of publications."""
    waiters: list[Any] = []
    published = 0
    for op in ops:
        kind = op[0]
        sock = h.socket
        if kind == "send":
            waiters.append(h.send_with_ack(len(waiters)))
        elif kind == "publish":
            server.publish("feed", published)
            published += 1
            h.pump()
        elif kind == "drop" and sock is not None and sock.state == "open":
            h.drop(op[1])
        elif kind == "blackhole" and sock is not None and sock.state == "open":
            h.blackhole()
        elif kind == "server":
            server.accepting = op[1]
        elif kind == "wait":
            h.advance(op[1])
        elif kind == "visible":
            h.engine.page_visible(h.now)
            h.pump()
        elif kind == "online":
            h.engine.network_online(h.now)
            h.pump()
        elif kind == "pagehide":
            h.engine.page_hidden(h.now)
            h.pump()
            h.advance(0.5)
            h.engine.page_shown(h.now)
            h.pump()
    server.accepting = True
    h.advance(120.0)
    return waiters, published


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(OPS, max_size=40), seed=st.integers(0, 2**32))
def test_with_acks_and_dedup_no_message_is_lost_or_duplicated(ops: list[tuple[Any, ...]], seed: int) -> None:
    server = FakePyrtServer()
    h = EngineHarness(server=server, rng=random.Random(seed).random, **CHAOS)
    h.connect()
    waiters, _ = play(h, server, ops)
    assert h.state is State.OPEN
    assert server.handled == list(range(len(waiters)))
    assert [(w.outcomes, w.error, w.value) for w in waiters] == [(1, None, n) for n in range(len(waiters))]


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(OPS, max_size=40), seed=st.integers(0, 2**32))
def test_a_subscription_delivers_every_publication_once_in_order(
    ops: list[tuple[Any, ...]], seed: int
) -> None:
    server = FakePyrtServer(overlap=2)  # replays also repeat two publications already delivered
    h = EngineHarness(server=server, rng=random.Random(seed).random, **CHAOS)
    got = h.subscribe("feed")
    h.connect()
    _, published = play(h, server, ops)
    assert [p.data for p in got] == list(range(published))
    assert all(p.recovered for p in got)


LIFE_OPS = st.one_of(
    OPS,
    st.tuples(st.just("close")),
    st.tuples(st.just("stop"), st.sampled_from([1008, 4401])),
    st.tuples(st.just("fire")),
)


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(LIFE_OPS, max_size=50), seed=st.integers(0, 2**32))
def test_the_state_machine_never_takes_an_illegal_step(ops: list[tuple[Any, ...]], seed: int) -> None:
    server = FakePyrtServer()
    h = EngineHarness(server=server, rng=random.Random(seed).random, **CHAOS)
    h.connect()
    sockets_when_closed: int | None = None
    for op in ops:
        sock = h.socket
        if h.state in (State.CLOSING, State.CLOSED):
            if h.state is State.CLOSED:
                sockets_when_closed = sockets_when_closed or len(h.sockets)
            with pytest.raises(ClientClosedError):
                h.send("after close()")
            if op[0] == "wait":
                h.advance(op[1])
            continue
        if op[0] == "close":
            h.close()
        elif op[0] == "stop" and sock is not None and sock.state == "open":
            h.drop(op[1])
        elif op[0] == "fire":
            h.send("x")
        else:
            play_one(h, server, op)
    for old, new in zip(h.states, h.states[1:], strict=False):
        assert new in TRANSITIONS[old], f"{old} -> {new}"
    if sockets_when_closed is not None:
        assert len(h.sockets) == sockets_when_closed
        assert len(h.closes) == 1


def play_one(h: EngineHarness, server: FakePyrtServer, op: tuple[Any, ...]) -> None:
    kind = op[0]
    sock = h.socket
    if kind == "send":
        h.send_with_ack("x")
    elif kind == "publish":
        server.publish("feed", 1)
        h.pump()
    elif kind == "drop" and sock is not None and sock.state == "open":
        h.drop(op[1])
    elif kind == "blackhole" and sock is not None and sock.state == "open":
        h.blackhole()
    elif kind == "server":
        server.accepting = op[1]
    elif kind == "wait":
        h.advance(op[1])
    elif kind == "visible":
        h.engine.page_visible(h.now)
        h.pump()
    elif kind == "online":
        h.engine.network_online(h.now)
        h.pump()
    elif kind == "pagehide":
        h.engine.page_hidden(h.now)
        h.pump()


# ------------------------------------------------------------------ tokens refreshed in place


class Tokens:
    """A token callable that hands out ``t1``, ``t2``... and can be told to fail."""

    def __init__(self) -> None:
        self.issued: list[str] = []
        self.failing = False

    def __call__(self) -> str:
        if self.failing:
            raise ConnectionError("auth service down")
        self.issued.append(f"t{len(self.issued) + 1}")
        return self.issued[-1]


def token_server(ttl: float = 40.0, refused: tuple[str, ...] = ()) -> FakePyrtServer:
    return FakePyrtServer(token_ttl=lambda token: None if token in refused else ttl)


def test_a_token_is_refreshed_in_place_before_it_expires() -> None:
    tokens, server = Tokens(), token_server(ttl=40.0)
    h = online(server, token=tokens)
    assert h.socket is not None
    assert h.socket.protocols == ("bearer.t1",)
    h.advance(29.9)
    assert frames_of(h, "refresh") == []
    h.advance(0.2)  # 3/4 of 40 s
    assert [f["token"] for f in frames_of(h, "refresh")] == ["t2"]
    assert server.refreshed == ["t2"]
    h.advance(30.0)  # the answer said 40 s again: the next refresh comes 30 s after it
    assert server.refreshed == ["t2", "t3"]
    assert len(h.sockets) == 1
    assert h.state is State.OPEN
    assert h.engine.stats_snapshot().token_refreshes == 2
    assert h.errors == []


def test_without_a_ttl_in_welcome_nothing_is_refreshed() -> None:
    tokens = Tokens()
    h = online(FakePyrtServer(), token=tokens)  # a server without tokens announces no ttl
    h.advance(3600)
    assert frames_of(h, "refresh") == []
    assert tokens.issued == ["t1"]


def test_a_failing_token_callable_is_reported_and_tried_again() -> None:
    tokens, server = Tokens(), token_server(ttl=40.0)
    h = online(server, token=tokens)
    tokens.failing = True
    h.advance(30.0)
    assert len(h.errors) == 1
    assert isinstance(h.errors[0], TokenError)
    assert "auth service down" in str(h.errors[0])
    tokens.failing = False
    h.advance(2.4)  # a quarter of the 10 s left: not yet
    assert server.refreshed == []
    h.advance(0.2)
    assert server.refreshed == ["t2"]
    assert h.state is State.OPEN
    assert len(h.sockets) == 1


def test_a_refused_refresh_is_reported_and_tried_again_with_a_new_token() -> None:
    tokens, server = Tokens(), token_server(ttl=40.0, refused=("t2",))
    h = online(server, token=tokens)
    h.advance(30.0)
    assert server.refreshed == []
    assert len(h.errors) == 1
    assert isinstance(h.errors[0], TokenError)
    assert "refused" in str(h.errors[0])
    h.advance(2.5)
    assert server.refreshed == ["t3"]


def test_an_unanswered_refresh_times_out_and_a_new_token_is_fetched() -> None:
    tokens, server = Tokens(), token_server(ttl=400.0)
    h = online(server, token=tokens, ack_timeout=5.0)
    h.advance(299.0)
    sock = h.socket
    assert sock is not None
    sock.blackholed = True  # the refresh and its answer vanish
    h.advance(1.0)
    assert [f["token"] for f in frames_of(h, "refresh")] == ["t2"]
    sock.blackholed = False
    h.advance(5.0)  # its answer never came: a new token is fetched, not the old frame re-sent
    assert isinstance(h.errors[-1], TokenError)
    assert "in time" in str(h.errors[-1])
    h.advance(25.0)  # a quarter of the 95 s left
    assert server.refreshed == ["t3"]


def test_a_refresh_in_flight_is_forgotten_when_its_connection_goes() -> None:
    tokens, server = Tokens(), token_server(ttl=40.0)
    h = online(server, token=tokens)
    sock = h.socket
    assert sock is not None
    sock.blackholed = True
    h.advance(30.0)
    h.drop()
    h.advance(5.0)  # reconnected with a fresh handshake token
    assert h.state is State.OPEN
    assert len(h.sockets) == 2
    assert h.sockets[1].protocols == ("bearer.t3",)
    assert [f["token"] for f in frames_of(h, "refresh")] == ["t2"]  # never re-sent
    assert h.engine.pending_acks == 0


def test_an_expired_token_reconnects_with_a_fresh_one() -> None:
    tokens, server = Tokens(), token_server(ttl=40.0)
    h = online(server, token=tokens)
    h.drop(4001, "token expired: reconnect with a fresh token", was_clean=True)
    h.advance(5.0)
    assert h.state is State.OPEN
    assert [s.protocols for s in h.sockets] == [("bearer.t1",), ("bearer.t2",)]


def test_refresh_frames_and_reads_are_never_persisted() -> None:
    tokens, server = Tokens(), token_server(ttl=40.0)
    h = online(server, token=tokens, persist=True)
    sock = h.socket
    assert sock is not None
    sock.blackholed = True
    h.send_with_ack("keep me")
    h.advance(30.0)  # a refresh is in flight, unanswered
    assert h.engine.pending_acks == 2
    saved = h.stored()
    assert [frame.kind for frame in saved.frames] == ["message"]
    assert h.saved
    assert not any("t2" in repr(changes) for changes in h.saved)  # no write held the token


def test_a_refused_subscription_is_reported_and_forgotten() -> None:
    h = online(FakePyrtServer(forbidden=["secret"]))
    h.subscribe("secret")
    h.subscribe("news")
    assert len(h.errors) == 1
    error = h.errors[0]
    assert isinstance(error, ChannelRefused)
    assert error.channel == "secret"
    assert error.code == "forbidden"
    h.drop()
    h.advance(5.0)
    assert [f["channel"] for f in frames_of(h, "subscribe")] == ["secret", "news", "news"]
    assert h.engine.snapshot().offsets.keys() <= {"news"}


# ------------------------------------------------------------------------------------- presence


def names(events: list[tuple[str, Member]]) -> list[tuple[str, Any]]:
    return [(kind, member.info) for kind, member in events]


def two_clients(server: FakePyrtServer) -> tuple[EngineHarness, EngineHarness]:
    """Two clients of one server, with their own random keys (each a member of its own)."""
    a = online(server, rng=random.Random(1).random)
    b = online(server, rng=random.Random(2).random)
    return a, b


def test_a_subscription_with_presence_sees_who_is_there_and_who_comes_and_goes() -> None:
    server = FakePyrtServer()
    alice, bob = two_clients(server)
    joined = alice.join("room", {"name": "alice"})
    assert isinstance(joined.value, str)
    assert joined.error is None
    bob.subscribe("room", presence=True)
    assert names(bob.presence_events["room"]) == [("join", {"name": "alice"})]
    carol = online(server, rng=random.Random(3).random)
    carol.join("room", {"name": "carol"})
    alice.join("room", {"name": "alice", "status": "away"})  # an update
    carol.leave("room")
    bob.pump()  # bob reads what the server sent meanwhile
    assert names(bob.presence_events["room"])[1:] == [
        ("join", {"name": "carol"}),
        ("join", {"name": "alice", "status": "away"}),
        ("leave", {"name": "carol"}),
    ]
    assert [m.info for m in bob.engine.members("room")] == [{"name": "alice", "status": "away"}]
    assert bob.engine.members("nowhere") == []


def test_a_client_that_reconnects_stays_one_member_and_nobody_sees_it_flap() -> None:
    server = FakePyrtServer()
    alice, bob = two_clients(server)
    alice.join("room", {"name": "alice"})
    bob.subscribe("room", presence=True)
    alice.drop()  # lost without a close frame: the server keeps the member for its grace
    alice.advance(5.0)  # reconnected and joined again under the same key
    assert alice.state is State.OPEN
    assert len(frames_of(alice, "presence_join")) == 2
    server.expire_lost()
    bob.pump()
    assert names(bob.presence_events["room"]) == [("join", {"name": "alice"})]
    assert len(bob.engine.members("room")) == 1


def test_after_a_reconnect_the_changes_missed_meanwhile_are_reported_once() -> None:
    server = FakePyrtServer()
    alice, bob = two_clients(server)
    alice.join("room", {"name": "alice"})
    bob.subscribe("room", presence=True)
    bob.drop()
    carol = online(server, rng=random.Random(3).random)
    carol.join("room", {"name": "carol"})
    alice.leave("room")
    bob.advance(5.0)  # back: the new snapshot is compared with what bob knew
    assert names(bob.presence_events["room"]) == [
        ("join", {"name": "alice"}),
        ("leave", {"name": "alice"}),
        ("join", {"name": "carol"}),
    ]


def test_a_clean_close_leaves_at_once_and_a_lost_connection_after_the_grace() -> None:
    server = FakePyrtServer()
    alice, bob = two_clients(server)
    carol = online(server, rng=random.Random(3).random)
    bob.subscribe("room", presence=True)
    alice.join("room", "alice")
    carol.join("room", "carol")
    alice.close()
    bob.pump()
    assert names(bob.presence_events["room"])[-1] == ("leave", "alice")
    carol.drop()
    carol.close()  # it never comes back
    bob.pump()
    assert [m.info for m in bob.engine.members("room")] == ["carol"]  # still there, for the grace
    server.expire_lost()
    bob.pump()
    assert names(bob.presence_events["room"])[-1] == ("leave", "carol")


def test_a_join_made_offline_is_sent_when_connected_and_resolves_once() -> None:
    server = FakePyrtServer()
    h = EngineHarness(server=server, heartbeat=None)
    waiter = h.join("room", {"name": "early"})
    assert not waiter.done
    h.connect()
    assert waiter.outcomes == 1
    assert isinstance(waiter.value, str)
    assert [m.info for m in h.presence("room").value] == [{"name": "early"}]


def test_a_join_in_flight_when_the_connection_drops_resolves_on_the_next_one() -> None:
    server = FakePyrtServer()
    h = online(server)
    sock = h.socket
    assert sock is not None
    sock.blackholed = True
    waiter = h.join("room", "me")
    h.drop()
    assert not waiter.done
    h.advance(5.0)
    assert waiter.outcomes == 1
    assert waiter.error is None
    assert len(frames_of(h, "presence_join")) == 2


def test_a_refused_join_fails_and_is_not_asked_again() -> None:
    server = FakePyrtServer(forbidden=["vip"])
    h = online(server)
    waiter = h.join("vip", "me")
    assert isinstance(waiter.error, ChannelRefused)
    assert waiter.error.channel == "vip"
    h.drop()
    h.advance(5.0)
    assert len(frames_of(h, "presence_join")) == 1


def test_info_that_cannot_be_sent_fails_before_anything_is_sent() -> None:
    h = online(FakePyrtServer())
    with pytest.raises(EncodeError):
        h.join("room", {1, 2})
    with pytest.raises(ValueError, match="channel"):
        h.join("no spaces", None)
    assert frames_of(h, "presence_join") == []


def test_leaving_before_the_join_was_confirmed_fails_the_join() -> None:
    h = EngineHarness(server=FakePyrtServer(), heartbeat=None)
    join = h.join("room", "me")
    leave = h.leave("room")
    assert isinstance(join.error, ClientClosedError)
    h.connect()
    assert leave.error is None
    assert leave.outcomes == 1
    assert frames_of(h, "presence_join") == []


def test_closing_fails_joins_still_waiting() -> None:
    h = EngineHarness(server=FakePyrtServer(), heartbeat=None)
    join = h.join("room", "me")
    h.close()
    assert isinstance(join.error, ClientClosedError)


# ------------------------------------------------------------------------------ flow control

SERVE_PY = ServerLimits(rate=200.0, burst=400, window=1000, max_bytes=1 << 20, subscriptions=256)
WELCOME = json.dumps({"type": "welcome", "session": "s1", "limits": SERVE_PY.to_wire()})


def paced(**kwargs: Any) -> EngineHarness:
    """Connected to a fake server that advertises and enforces serve.py's default limits."""
    server = kwargs.pop("server", None) or FakePyrtServer(limits=SERVE_PY)
    kwargs.setdefault("queue_limit", 100_000)
    return online(server, **kwargs)


def played(**kwargs: Any) -> EngineHarness:
    """Open, welcomed with serve.py's limits; the test plays the server."""
    kwargs.setdefault("heartbeat", None)
    kwargs.setdefault("queue_limit", 100_000)
    h = EngineHarness(**kwargs)
    h.connect()
    h.open()
    h.receive(WELCOME)
    return h


def ids_of(h: EngineHarness, frames: list[str | bytes] | None = None) -> list[Any]:
    return [json.loads(f).get("id") for f in (frames if frames is not None else h.sent)]


def refuse(h: EngineHarness, ack_id: Any, retry_after: float = 0.5) -> None:
    h.receive(json.dumps({"type": "error", "code": "rate_limited", "message": "slow down",
                          "id": ack_id, "retry_after": retry_after}))  # fmt: skip


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


def test_frames_wait_for_the_welcome_then_without_limits_the_conservative_default_applies() -> None:
    h = EngineHarness(**NO_HB)
    h.connect()
    h.open()
    for n in range(100):
        h.send({"n": n})
    assert h.sent == []  # the limits come with the welcome
    h.receive(HELLO)
    assert len(h.sent) == 50
    h.advance(1.0)
    assert len(h.sent) == 100


def test_a_server_that_never_welcomes_gets_the_default_pace_after_a_grace() -> None:
    h = EngineHarness(**NO_HB)
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
    h.open()
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
    engine = WebSocketEngine(heartbeat=None)
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


# ------------------------------------------------------------------------------ batched frames


def test_a_batched_message_delivers_every_frame_in_order() -> None:
    h = EngineHarness(**NO_HB)
    seen: list[Any] = []
    h.engine.subscribe("news", seen.append, None, h.now)
    h.connect()
    h.open()
    h.receive(HELLO)
    waiter = h.send_with_ack({"q": 1})
    ack_id = frames_of(h, "message")[0]["id"]
    received_before = h.engine.stats.received
    h.receive(
        "\n".join(
            [
                '{"type":"message","data":"first"}',
                '{"type":"publication","channel":"news","offset":"1-1","event":"message","data":7}',
                json.dumps({"type": "ack", "id": ack_id, "ok": True, "data": "done"}),
                '{"type":"message","data":"second"}',
            ]
        )
    )
    assert h.messages == ["first", "second"]
    assert [p.data for p in seen] == [7]
    assert (waiter.value, waiter.outcomes) == ("done", 1)
    wanted = ("DeliverMessage", "DeliverPublication")
    kinds = [type(a).__name__ for a in h.actions_seen if type(a).__name__ in wanted]
    assert kinds[-3:] == ["DeliverMessage", "DeliverPublication", "DeliverMessage"]  # the frames' order
    assert h.engine.stats.received - received_before == 4
