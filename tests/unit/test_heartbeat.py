"""Heartbeat: pings when idle, any frame proves life, silence after a ping is death, late checks forgive."""

from __future__ import annotations

import pytest

from pyrt.engine.heartbeat import Heartbeat, HeartbeatMonitor, Verdict


def monitor(interval: float = 25.0, timeout: float = 10.0) -> HeartbeatMonitor:
    hb = HeartbeatMonitor(Heartbeat(interval=interval, timeout=timeout))
    hb.start(0.0)
    return hb


def test_nothing_happens_before_the_interval() -> None:
    hb = monitor()
    assert hb.check(24.9) is Verdict.WAIT
    assert hb.next_deadline() == 25.0


def test_an_idle_connection_is_pinged_after_the_interval() -> None:
    hb = monitor()
    assert hb.check(25.0) is Verdict.PING
    assert hb.next_deadline() == 35.0


def test_traffic_postpones_the_ping() -> None:
    hb = monitor()
    hb.last_seen = 20.0
    assert hb.check(25.0) is Verdict.WAIT
    assert hb.next_deadline() == 45.0


def test_silence_for_the_timeout_after_a_ping_is_death() -> None:
    hb = monitor()
    hb.check(25.0)
    assert hb.check(34.9) is Verdict.WAIT
    assert hb.check(35.0) is Verdict.DEAD


def test_any_frame_after_the_ping_proves_life() -> None:
    hb = monitor()
    hb.check(25.0)
    hb.last_seen = 30.0  # a publication, not a pong
    assert hb.check(35.0) is Verdict.WAIT
    assert hb.next_deadline() == 55.0


def test_a_pong_measures_the_round_trip_and_smooths_it() -> None:
    hb = monitor()
    hb.check(25.0)
    hb.pong(25.2, seq=1)
    assert hb.rtt == pytest.approx(0.2)
    assert hb.srtt == pytest.approx(0.2)
    hb.last_seen = 25.2
    hb.check(50.2)
    hb.pong(51.0, seq=2)
    assert hb.rtt == pytest.approx(0.8)
    assert hb.srtt == pytest.approx(0.2 + 0.125 * 0.6)


def test_a_pong_for_an_older_ping_does_not_count_as_a_round_trip() -> None:
    hb = monitor()
    hb.check(25.0)
    hb.pong(25.5, seq=99)
    assert hb.rtt is None
    assert hb.ping_sent_at == 25.0


def test_a_check_that_runs_late_repings_instead_of_declaring_death() -> None:
    # The tab was in the background: the timer meant for t=35 fires at t=95.
    hb = monitor()
    hb.check(25.0)
    assert hb.check(95.0) is Verdict.PING
    assert hb.next_deadline() == 105.0
    hb.last_seen = 95.01  # the pong was waiting in the event queue
    assert hb.check(105.0) is Verdict.WAIT


def test_a_second_silent_window_after_a_late_check_is_death() -> None:
    hb = monitor()
    hb.check(25.0)
    assert hb.check(95.0) is Verdict.PING
    assert hb.check(200.0) is Verdict.DEAD


def test_slightly_late_checks_still_convict() -> None:
    hb = monitor(timeout=10.0)
    hb.check(25.0)
    assert hb.check(39.9) is Verdict.DEAD  # 4.9 s late: within timeout / 2


def test_check_now_pings_at_once_with_a_fresh_timeout() -> None:
    hb = monitor()
    assert hb.check_now(3.0) is Verdict.PING
    assert hb.next_deadline() == 13.0
    assert hb.check(13.0) is Verdict.DEAD


def test_start_forgets_the_previous_connection() -> None:
    hb = monitor()
    hb.check(25.0)
    hb.start(100.0)
    assert hb.ping_sent_at is None
    assert hb.next_deadline() == 125.0


def test_ping_and_pong_frames_are_configurable() -> None:
    counter = iter(range(10))
    config = Heartbeat(ping=lambda: f"ping {next(counter)}", pong=lambda f: f == "pong 0")
    assert config.ping_frame() == "ping 0"
    matcher = config.pong_matcher()
    assert matcher is not None
    assert matcher("pong 0")
    assert not matcher("hello")
    plain = Heartbeat(ping="PING", pong="PONG")
    assert plain.ping_frame() == "PING"
    plain_matcher = plain.pong_matcher()
    assert plain_matcher is not None
    assert plain_matcher("PONG")
    assert not plain_matcher("pong")


def test_the_protocol_chooses_when_nothing_is_configured() -> None:
    assert Heartbeat().ping_frame() is None
    assert Heartbeat().pong_matcher() is None


@pytest.mark.parametrize("kwargs", [{"interval": 0}, {"timeout": -1}])
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        Heartbeat(**kwargs)
