"""How a server says when to come back, and how a client spreads its reconnect over it."""

from __future__ import annotations

import random

import pytest

from pyrt.engine.backoff import Backoff
from pyrt.wire.reconnect_window import (
    DEFAULT_RECONNECT_RATE,
    MAX_WINDOW,
    ComeBack,
    close_reason,
    drain_window,
    parse_reason,
    reconnect_delay,
)


@pytest.mark.parametrize(
    ("reason", "hint"),
    [
        ("server shutting down; reconnect_window=5", ComeBack(0.0, 5.0)),
        ("reconnect_window=2.5", ComeBack(0.0, 2.5)),
        ("InvalidStatus: HTTP 503 retry_after=3", ComeBack(3.0, 0.0)),
        ("bye; reconnect_window=10; retry_after=1.5", ComeBack(1.5, 10.0)),
        ("a,retry_after=0", ComeBack(0.0, 0.0)),
    ],
)
def test_hints_are_read_from_anywhere_in_the_reason(reason: str, hint: ComeBack) -> None:
    assert parse_reason(reason) == hint


@pytest.mark.parametrize(
    "reason",
    ["", "server shutting down", "reconnect_window=abc", "reconnect_window=-1", "xreconnect_window=5",
     "reconnect_window=5s", "retry_after=1e9", "reconnect_window="],
)  # fmt: skip
def test_anything_else_is_no_hint(reason: str) -> None:
    assert parse_reason(reason) is None


def test_the_server_writes_what_the_client_reads_within_123_bytes() -> None:
    assert close_reason("server shutting down", window=3.5) == "server shutting down; reconnect_window=3.5"
    assert close_reason("x", window=2, after=1) == "x; reconnect_window=2; retry_after=1"
    assert close_reason("nothing to add") == "nothing to add"
    long = close_reason("é" * 200, window=12.345678)
    assert len(long.encode()) <= 123
    assert parse_reason(long) == ComeBack(0.0, 12.346)
    assert long.endswith("reconnect_window=12.346")


def test_a_drain_brings_clients_back_at_the_reconnect_rate() -> None:
    assert drain_window(500, DEFAULT_RECONNECT_RATE) == 6.25
    assert drain_window(1, 100) == 0.01
    assert drain_window(10**6, 100) == MAX_WINDOW
    assert drain_window(0, 100) == 0.0
    assert drain_window(500, 0) == 0.0  # spreading turned off


def test_without_a_hint_the_delay_is_the_backoff() -> None:
    backoff = Backoff(initial=0.5)
    for attempt in (1, 2, 5):
        assert reconnect_delay(backoff, attempt, lambda: 0.4) == backoff.delay(attempt, lambda: 0.4)


def test_a_window_spreads_even_the_first_attempt_uniformly_over_it() -> None:
    rng = random.Random(3)
    delays = [reconnect_delay(Backoff(), 1, rng.random, window=5.0) for _ in range(5000)]
    assert max(delays) <= 5.0
    counts = [sum(1 for d in delays if k <= d < k + 1) for k in range(5)]
    assert all(800 <= c <= 1200 for c in counts), counts  # about 1000 per second
    # ...also with jitter="none": the window asks for spreading.
    assert reconnect_delay(Backoff(jitter="none"), 1, lambda: 0.25, window=8.0) == 2.0


def test_later_attempts_spread_over_the_larger_of_the_window_and_the_backoff() -> None:
    backoff = Backoff(initial=0.5, maximum=30)
    assert reconnect_delay(backoff, 6, lambda: 0.5, window=5.0) == 8.0  # base 16 > 5
    assert reconnect_delay(backoff, 2, lambda: 0.5, window=5.0) == 2.5


def test_retry_after_is_a_floor_and_the_server_part_is_capped() -> None:
    assert reconnect_delay(Backoff(), 1, lambda: 0.1, after=3.0) == 3.0
    assert reconnect_delay(Backoff(), 1, lambda: 0.1, after=10_000.0, cap=300.0) == 300.0
    assert reconnect_delay(Backoff(), 1, lambda: 1.0, window=10_000.0, cap=60.0) == 60.0
