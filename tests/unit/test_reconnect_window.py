"""How a server says when to come back, and how a client spreads its reconnect over it."""

from __future__ import annotations

import pytest

from pyrt.wire.reconnect_window import (
    DEFAULT_RECONNECT_RATE,
    MAX_WINDOW,
    ComeBack,
    close_reason,
    drain_window,
    parse_reason,
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
