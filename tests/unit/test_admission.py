"""The server's admission rules: token bucket, holds after refusals, and who is closed for abuse."""

from __future__ import annotations

import pytest

from pyrt.session.admission import MIN_HOLD, PINGS_PER_HOLD, FlowGate, TokenBucket, Verdict


def gate(rate: float = 10, burst: int = 3, window: int = 5, abuse_limit: int = 2) -> FlowGate:
    return FlowGate(rate, burst, window, abuse_limit, now=0.0)


def frames(g: FlowGate, count: int, now: float, kind: str | None = "message") -> list[Verdict]:
    """What ``count`` frames arriving at ``now`` get (the server's two-step call)."""
    return [Verdict.ACCEPT if g.admit(now) else g.check(now, kind) for _ in range(count)]


# -- the bucket -------------------------------------------------------------------------------------


def test_the_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.05) is False  # half a token
    assert bucket.take(0.1) is True
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]  # never above burst


def test_the_bucket_says_how_long_until_a_token_and_when_it_is_full_again() -> None:
    bucket = TokenBucket(rate=10, burst=2, now=0.0)
    assert [bucket.wait(0.0), bucket.wait(0.0)] == [0.0, 0.0]
    assert bucket.wait(0.0) == pytest.approx(0.1)  # nothing spent
    assert not bucket.full(0.1)
    assert bucket.full(0.2)


def test_a_zero_rate_means_unlimited() -> None:
    bucket = TokenBucket(rate=0, burst=1, now=0.0)
    assert all(bucket.take(0.0) for _ in range(1000))
    assert all(v is Verdict.ACCEPT for v in frames(FlowGate(0, 1, 1, 1, 0.0), 1000, 0.0))


# -- refusals and holds -----------------------------------------------------------------------------


def test_the_first_frame_without_a_token_starts_a_hold_with_a_marked_ping() -> None:
    g = gate()
    assert frames(g, 4, 0.0) == [Verdict.ACCEPT] * 3 + [Verdict.HOLD]
    assert g.holding
    assert g.marker == "hold-1"
    assert g.retry_after(0.0) == pytest.approx(MIN_HOLD)


def test_in_a_hold_everything_is_refused_until_the_pong_and_retry_after_even_with_tokens() -> None:
    g = gate()
    frames(g, 4, 0.0)
    # Tokens come back with time, but the hold keeps refusing: frames still in flight must not be
    # handled before the refused one is sent again.
    assert frames(g, 2, 5.0) == [Verdict.REFUSE] * 2
    g.pong("hold-1", 5.0)
    assert frames(g, 1, 5.0) == [Verdict.ACCEPT]  # retry_after ran out long ago
    assert not g.holding


def test_after_the_pong_the_hold_ends_when_retry_after_has_passed() -> None:
    g = gate()
    frames(g, 4, 0.0)
    g.pong("hold-1", 0.01)
    assert g.retry_after(0.3) == pytest.approx(MIN_HOLD - 0.3)
    # The bucket refilled during the hold (to its burst of 3): the frame that ends it fits, and more.
    assert frames(g, 4, MIN_HOLD) == [Verdict.ACCEPT] * 3 + [Verdict.HOLD]


def test_a_pong_for_another_ping_ends_nothing() -> None:
    g = gate()
    frames(g, 4, 0.0)
    g.pong("hold-0", 1.0)
    g.pong(12345, 1.0)
    assert frames(g, 1, 1.0) == [Verdict.REFUSE]


def test_a_second_hold_gets_a_new_marker() -> None:
    g = gate(burst=1)
    frames(g, 2, 0.0)
    g.pong("hold-1", 0.0)
    assert frames(g, 2, MIN_HOLD) == [Verdict.ACCEPT, Verdict.HOLD]
    assert g.marker == "hold-2"
    assert g.holds == 2


def test_pongs_always_pass_and_a_few_pings_are_answered_in_a_hold() -> None:
    g = gate()
    frames(g, 4, 0.0)
    assert g.check(0.0, "pong") is Verdict.ACCEPT
    assert frames(g, PINGS_PER_HOLD, 0.0, "ping") == [Verdict.ACCEPT] * PINGS_PER_HOLD
    assert frames(g, 1, 0.0, "ping") == [Verdict.REFUSE]


def test_another_limit_can_start_a_hold_even_with_the_frame_rate_off() -> None:
    g = FlowGate(0, 1, 5, 2, now=0.0)  # no frame rate; a publication quota refuses a frame
    assert g.hold(0.0, wait=0.2) == "hold-1"
    assert g.hold(0.0, wait=0.2) is None  # already holding
    assert g.retry_after(0.0) == pytest.approx(MIN_HOLD)
    assert frames(g, 2, 0.1) == [Verdict.REFUSE] * 2  # what was in flight behind it
    g.pong("hold-1", 0.2)
    assert frames(g, 3, MIN_HOLD) == [Verdict.ACCEPT] * 3


# -- abuse --------------------------------------------------------------------------------------------


def test_frames_in_flight_are_refused_without_penalty_up_to_the_window() -> None:
    g = gate(window=5)
    verdicts = frames(g, 3 + 5, 0.0)  # the hold starts with the 4th; 4 more fill the window of 5
    assert verdicts == [Verdict.ACCEPT] * 3 + [Verdict.HOLD] + [Verdict.REFUSE] * 4
    assert frames(g, 1, 0.0) == [Verdict.CLOSE]  # a 6th refused before the client answered


def test_sending_after_reading_the_refusal_and_before_retry_after_is_abuse() -> None:
    g = gate(abuse_limit=2)
    frames(g, 4, 0.0)
    g.pong("hold-1", 0.01)
    assert frames(g, 3, 0.1) == [Verdict.REFUSE, Verdict.REFUSE, Verdict.CLOSE]


def test_the_abuse_allowance_refills_at_one_per_second() -> None:
    g = gate(abuse_limit=1)
    frames(g, 4, 0.0)
    g.pong("hold-1", 0.0)
    assert frames(g, 1, 0.1) == [Verdict.REFUSE]  # the allowance of 1 is spent
    assert frames(g, 4, 2.0) == [Verdict.ACCEPT] * 3 + [Verdict.HOLD]  # a new hold, later
    g.pong("hold-2", 2.0)
    assert frames(g, 1, 2.1) == [Verdict.REFUSE]  # refilled meanwhile
    assert frames(g, 1, 2.2) == [Verdict.CLOSE]


def test_a_client_that_waits_out_each_refusal_is_never_closed() -> None:
    g = gate(rate=10, burst=3, window=5, abuse_limit=1)
    now, closed, accepted = 0.0, False, 0
    for _ in range(50):  # sends 5 at once, answers the hold, waits retry_after, again
        verdicts = frames(g, 5, now)
        closed |= Verdict.CLOSE in verdicts
        accepted += verdicts.count(Verdict.ACCEPT)
        if g.holding:
            assert g.marker is not None
            g.pong(g.marker, now)
            now += g.retry_after(now)
    assert not closed
    assert accepted >= 50 * 3
