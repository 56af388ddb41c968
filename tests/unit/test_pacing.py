"""The client's pacer: margins on the advertised limits, a window of unanswered frames, holds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrt.engine.pacing import Pacer, Pacing
from pyrt.session.admission import TokenBucket
from pyrt.wire.limits import ServerLimits

SERVE_PY = ServerLimits(rate=200.0, burst=400, window=1000, max_bytes=1 << 20, subscriptions=256)


def drain(pacer: Pacer, now: float, most: int = 10_000) -> int:
    """Send paced frames at ``now`` while the pacer allows; how many went."""
    sent = 0
    while sent < most and pacer.allows(now):
        pacer.spend(now)
        sent += 1
    return sent


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"rate": 0}, "rate"), ({"burst": 0}, "burst"), ({"share": 1.5}, "share"),
     ({"burst_share": 0}, "burst_share"), ({"window_share": -1}, "window_share")],
)  # fmt: skip
def test_bad_settings_name_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=f"Pacing.{field} "):
        Pacing(**kwargs)  # type: ignore[arg-type]


def test_before_welcome_it_sends_the_conservative_burst_then_the_rate() -> None:
    pacer = Pacer(Pacing(rate=50, burst=50))
    pacer.start(0.0)
    assert drain(pacer, 0.0) == 50
    assert pacer.ready_at(0.0) == pytest.approx(0.02)
    assert drain(pacer, 1.0) == 50


def test_the_advertised_limits_are_used_with_a_margin() -> None:
    pacer = Pacer()
    pacer.start(0.0)
    pacer.advertise(SERVE_PY, 0.0)
    assert (pacer.rate, pacer.burst, pacer.window) == (180.0, 200.0, 500)
    assert drain(pacer, 0.0) == 200
    assert drain(pacer, 1.0) == 180


def test_a_lower_publication_rate_paces_the_whole_connection() -> None:
    pacer = Pacer()
    pacer.start(0.0)
    pacer.advertise(ServerLimits(rate=200.0, burst=400, publish_rate=20.0, publish_burst=10), 0.0)
    assert (pacer.rate, pacer.burst) == (18.0, 5.0)  # one connection stays under both limits


def test_frames_sent_before_welcome_count_against_the_new_burst() -> None:
    pacer = Pacer()
    pacer.start(0.0)
    assert drain(pacer, 0.0) == 50
    pacer.advertise(SERVE_PY, 0.001)
    assert drain(pacer, 0.001) == 150  # 200 - the 50 already sent on this connection


def test_follow_server_false_keeps_the_defaults_whatever_the_server_advertises() -> None:
    pacer = Pacer(Pacing(follow_server=False))
    pacer.start(0.0)
    pacer.advertise(SERVE_PY, 0.0)
    assert (pacer.rate, pacer.burst, pacer.window) == (50.0, 50.0, None)


def test_a_server_that_advertises_nothing_is_not_paced_until_it_refuses() -> None:
    pacer = Pacer()
    pacer.start(0.0)
    pacer.advertise(None, 0.0)
    assert pacer.rate is None
    assert drain(pacer, 0.0, most=5000) == 5000  # a request/response loop is never held back
    pacer.hold(1.0, now=0.0)  # a refusal: the server has a limit after all
    pacer.confirm(pacer.seq)
    assert (pacer.rate, pacer.burst) == (50.0, 50.0)  # the conservative pace, no cut on top
    assert not pacer.allows(0.5)  # and the hold is kept
    assert drain(pacer, 1.0) == 0  # the bucket starts empty at the end of the hold
    assert drain(pacer, 2.0) == 50
    pacer.start(3.0)  # a new connection starts from the advertisement again
    pacer.advertise(None, 3.0)
    assert pacer.rate is None


def test_an_unlimited_rate_still_keeps_the_window() -> None:
    pacer = Pacer()
    pacer.start(0.0)
    pacer.advertise(ServerLimits(window=100), 0.0)
    assert pacer.rate is None
    assert drain(pacer, 0.0) == 50  # window_share of 100
    assert pacer.waiting_for_answer
    assert pacer.ready_at(0.0) is None


def test_an_answer_frees_the_window_and_says_so() -> None:
    pacer = Pacer()
    pacer.start(0.0)
    pacer.advertise(ServerLimits(rate=10_000, burst=10_000, window=20), 0.0)
    assert drain(pacer, 0.0) == 10
    assert pacer.confirm(4) is True  # the server read frames 1..4
    assert pacer.confirm(3) is False  # old news
    assert drain(pacer, 0.0) == 4


def test_a_probe_is_due_at_half_the_window_and_its_pong_confirms_what_went_before() -> None:
    pacer = Pacer()
    pacer.start(0.0)
    pacer.advertise(ServerLimits(rate=10_000, burst=10_000, window=40), 0.0)
    drain(pacer, 0.0, most=9)
    assert not pacer.probe_due(0.0)
    pacer.spend(0.0)
    assert pacer.probe_due(0.0)  # 10 of a window of 20 unanswered
    pacer.ping_sent(-1)
    assert not pacer.probe_due(0.0)  # one ping on its way is enough
    drain(pacer, 0.0)
    assert pacer.pong(-1) is True
    assert pacer.confirmed == 10
    assert pacer.pong(-1) is False


def test_pings_and_pongs_never_wait_but_spend_tokens() -> None:
    pacer = Pacer(Pacing(rate=10, burst=2))
    pacer.start(0.0)
    drain(pacer, 0.0)
    pacer.force(0.0)
    pacer.force(0.0)
    assert pacer.ready_at(0.0) == pytest.approx(0.3)  # three tokens short: two forced, one wanted
    assert pacer.seq == 2  # forced frames are not paced frames


def test_a_hold_waits_for_retry_after_and_for_everything_in_flight_to_be_answered() -> None:
    pacer = Pacer()
    pacer.start(0.0)
    pacer.advertise(SERVE_PY, 0.0)
    drain(pacer, 0.0, most=30)
    pacer.hold(0.5, now=0.1)
    assert pacer.waiting_for_answer
    assert pacer.ready_at(0.1) == 0.5
    assert not pacer.probe_due(0.4)  # the refusals of what is in flight may still come
    assert pacer.probe_due(0.5)  # past retry_after: a pong will say how far the server has read
    assert pacer.ready_at(0.5) is None
    assert not pacer.allows(1.0)
    assert pacer.confirm(30) is True
    assert not pacer.allows(0.4)
    assert pacer.ready_at(0.4) == 0.5
    assert pacer.ready_at(0.5) == pytest.approx(0.5 + 1 / 90)  # empty at 0.5, at half the rate
    assert pacer.allows(0.52)


def test_a_refusal_halves_rate_and_burst_which_climb_back_linearly() -> None:
    pacer = Pacer()
    pacer.start(0.0)
    pacer.advertise(SERVE_PY, 0.0)
    pacer.hold(1.0, now=0.0)
    pacer.confirm(pacer.seq)
    assert (pacer.rate, pacer.burst) == (90.0, 100.0)
    pacer.allows(3.5)  # 2.5 s after the hold: +10 % of the ceiling per second
    assert pacer.rate == pytest.approx(90 + 18 * 2.5)
    assert pacer.burst == 150  # the burst follows the rate
    pacer.allows(6.0)
    assert (pacer.rate, pacer.burst) == (180.0, 200.0)  # back at the ceiling, never above
    for _ in range(3):  # three refusals of one hold (the frames that were in flight): one cut
        pacer.hold(21.0, now=20.0)
    assert pacer.rate == pytest.approx(90.0)
    for n in range(12):  # twelve holds in a row
        pacer.confirm(pacer.seq)
        pacer.hold(22.0 + n, now=21.0 + n)
    assert pacer.rate == pytest.approx(180 * 0.05)  # never below 5 % of the advertised pace
    assert pacer.burst == 1


def test_a_new_connection_starts_from_the_defaults_again() -> None:
    pacer = Pacer()
    pacer.start(0.0)
    pacer.advertise(SERVE_PY, 0.0)
    pacer.hold(1.0, 0.0)
    pacer.start(5.0)
    assert (pacer.rate, pacer.burst, pacer.window, pacer.seq) == (50.0, 50.0, None, 0)
    assert pacer.allows(5.0)


schedules = st.lists(
    st.tuples(st.floats(min_value=0, max_value=0.3), st.integers(0, 400), st.integers(0, 3)),
    min_size=1,
    max_size=40,
)


def run_schedule(steps: list[tuple[float, int, int]], rate: float, burst: int, welcome_at: float) -> int:
    """Play ``steps`` (wait, frames wanted, forced pings) against a server bucket with the
    advertised limits, started when the socket opened; asserts no paced frame is refused."""
    pacer = Pacer()
    pacer.start(0.0)
    server = TokenBucket(rate, burst, 0.0)
    now, sent, welcomed = 0.0, 0, False
    for wait, wanted, pings in steps:
        now += wait
        if not welcomed and now >= welcome_at:
            pacer.advertise(ServerLimits(rate=rate, burst=burst), now)
            welcomed = True
        arrival = now + 1e-6  # a frame reaches the server after it was sent (never at the same float)
        for _ in range(pings):
            pacer.force(now)
            server.take(arrival)  # a ping is never held back; the server answers it anyway
        for _ in range(wanted):
            if not pacer.allows(now):
                break
            pacer.spend(now)
            sent += 1
            assert server.take(arrival), (now, pacer.rate, pacer.burst)
    return sent


@settings(max_examples=150, deadline=None)
@given(schedules, st.floats(min_value=1, max_value=1000), st.integers(1, 1000))
def test_after_welcome_frames_never_exceed_the_advertised_bucket(
    steps: list[tuple[float, int, int]], rate: float, burst: int
) -> None:
    run_schedule(steps, rate, burst, welcome_at=0.0)


@settings(max_examples=150, deadline=None)
@given(
    schedules,
    st.floats(min_value=50, max_value=1000),
    st.integers(50, 1000),
    st.floats(min_value=0, max_value=0.5),
)
def test_before_welcome_the_defaults_fit_any_server_at_least_as_generous(
    steps: list[tuple[float, int, int]], rate: float, burst: int, welcome_at: float
) -> None:
    run_schedule(steps, rate, burst, welcome_at)


def test_the_schedule_player_does_send() -> None:
    assert run_schedule([(0.0, 1000, 0), (1.0, 1000, 0)], 200, 400, 0.0) == 200 + 180
