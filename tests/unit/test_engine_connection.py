"""The engine's connection core (pyrt/engine/connection.py): connecting, reconnecting, the heartbeat,
closing, the page lifecycle, pause and resume, inbound frames; scripted with a fake clock,
fake sockets and a fake pyrt server."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from pyrt.engine.backoff import Backoff
from pyrt.engine.close_policy import CloseInfo
from pyrt.engine.heartbeat import Heartbeat
from pyrt.engine.states import State
from pyrt.engine.websocket import (
    ABANDON_CODE,
    NO_MESSAGE,
    CloseSocket,
    OpenSocket,
    WebSocketEngine,
)
from pyrt.errors import (
    ClientClosedError,
    FrameError,
    InvalidCloseCode,
    InvalidStateError,
)
from pyrt.testing import EngineHarness, FakePyrtServer
from tests.unit.engine_support import (
    HELLO,
    NO_HB,
    frames_of,
    online,
)

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


# ------------------------------------------------------------------------------ forwarding


def test_a_forwarded_frame_goes_as_the_pacer_allows_and_is_never_queued() -> None:
    """The hub of a shared connection forwards frames its links' engines encoded: the
    connection's pacer decides when each goes; the engine keeps none of them."""
    h = EngineHarness(**NO_HB)
    assert h.engine.forward('{"type":"message","data":0}', h.now) is False  # not open
    assert h.engine.forward_at(h.now) is None
    h.connect()
    h.open()
    h.receive('{"type":"welcome","session":"s1","limits":{"rate":10,"burst":8,"window":1000}}')
    taken = [n for n in range(10) if h.engine.forward(f'{{"type":"message","data":{n}}}', h.now)]
    assert taken == [0, 1, 2, 3]  # half the advertised burst
    assert h.engine.forward_at(h.now) == pytest.approx(h.now + 1 / 9)  # 90 % of the rate
    h.advance(1 / 9)
    assert h.engine.forward("x", h.now) is True
    stats = h.engine.stats_snapshot()
    assert (stats.queued, stats.queue_length, stats.sent) == (0, 0, 5)
    assert h.sent == []  # the caller sends what was taken, as it is
    over_high_water = 2 << 20
    assert h.engine.forward_at(h.now, over_high_water) == pytest.approx(h.now + 0.05)
    assert h.engine.forward("y", h.now, over_high_water) is False


def test_a_forwarder_waiting_on_the_window_has_a_ping_sent_whose_pong_frees_it() -> None:
    h = EngineHarness(**NO_HB)
    h.connect()
    h.open()
    h.receive('{"type":"welcome","session":"s1","limits":{"rate":1000,"burst":1000,"window":4}}')
    assert [h.engine.forward("x", h.now) for _ in range(3)] == [True, True, False]  # 2 in flight
    assert h.engine.forward_at(h.now) is None  # only an answer can tell
    h.pump()
    (probe,) = frames_of(h, "ping")
    h.receive(json.dumps({"type": "pong", "t": probe["t"]}))
    assert h.engine.forward("x", h.now) is True
