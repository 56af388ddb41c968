"""Scenario 6 of docs/reliability.md: a reconnect storm. 500 clients lose their connections at the
same instant; how are their reconnect attempts spread over time?

Each client is a real :class:`~pyrt.engine.websocket.WebSocketEngine` on a fake clock with its own
seeded random source; a tiny event loop plays the server (down for a while, then accepting) and
records every attempt. The histogram counts attempts per 100 ms bin.

Two ways to lose the connections: the network (or a killed server) drops them all (1006, nothing
said), or the server shuts down gracefully (SIGTERM: 1001 with the reconnect window it computes
from its connection count, :func:`pyrt.wire.reconnect_window.drain_window`). Everything at its
default: ``Backoff()``, ``serve.py``'s ``--reconnect-rate``.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from dataclasses import dataclass

import pytest

from pyrt.engine.backoff import Backoff
from pyrt.engine.websocket import OpenSocket, Reconnecting, WebSocketEngine
from pyrt.wire import codec
from pyrt.wire.frames import Welcome
from pyrt.wire.reconnect_window import DEFAULT_RECONNECT_RATE, close_reason, drain_window
from tests.faults.scenario import emit

CLIENTS = 500
BIN = 0.1

WELCOME = codec.encode(Welcome(session="s1"))


def up(engine: WebSocketEngine, now: float) -> None:
    """The socket opens and the server's welcome arrives: the connection is up."""
    engine.opened(now)
    engine.received(WELCOME, now)


@dataclass
class Storm:
    attempts: list[float]  # when each reconnect attempt started, seconds after the drop
    client_of: list[int]  # which client made each attempt
    reconnected: list[float]  # when each client was open again
    first_attempt_bins: Counter[int]  # clients making their first attempt, per bin

    @property
    def histogram(self) -> Counter[int]:
        return Counter(int(at // BIN) for at in self.attempts)

    def busiest_share(self) -> float:
        """The busiest bin's attempts as a share of the clients."""
        return max(self.histogram.values()) / CLIENTS

    def figures(self) -> dict[str, object]:
        histogram = self.histogram
        ordered = sorted(self.reconnected)
        return {
            "clients": CLIENTS,
            "attempts": len(self.attempts),
            "attempts_per_client_max": max(Counter(self.client_of).values()),
            "busiest_bin_attempts": max(histogram.values()),
            "busiest_bin_share": self.busiest_share(),
            "busiest_first_attempt_share": max(self.first_attempt_bins.values()) / CLIENTS,
            "bins_used": len(histogram),
            "all_back_after_s": ordered[-1],
            "half_back_after_s": ordered[len(ordered) // 2],
            "first_1s_per_100ms": [histogram.get(b, 0) for b in range(10)],
        }


def storm(
    backoff: Backoff,
    *,
    server_down_for: float = 0.0,
    seed: int = 6,
    close: tuple[int, str] = (1006, ""),
) -> Storm:
    """Open ``CLIENTS`` engines, close them all at t=0 with ``close`` (code, reason), run until
    every one is open again.

    While the server is down (``server_down_for`` seconds after the drop) each attempt fails at
    once (the socket closes with 1006, as a refused connection does in a browser).
    """
    seeds = random.Random(seed)
    engines = [
        WebSocketEngine(heartbeat=None, backoff=backoff, rng=random.Random(seeds.random()).random)
        for _ in range(CLIENTS)
    ]
    start = -10.0
    for engine in engines:
        engine.connect(start)
        up(engine, start + 0.01)
        engine.actions()
    timers: list[tuple[float, int]] = []
    attempts: list[float] = []
    client_of: list[int] = []
    reconnected: list[float] = [0.0] * CLIENTS
    first: Counter[int] = Counter()

    def handle(index: int, now: float) -> None:
        engine = engines[index]
        for action in engine.actions():
            if type(action) is OpenSocket:
                attempts.append(now)
                client_of.append(index)
                if action.attempt == 2:
                    first[int(now // BIN)] += 1
                if now < server_down_for:
                    engine.closed(1006, "", now)  # refused: the server is still down
                else:
                    up(engine, now)
                    reconnected[index] = now
                handle(index, now)
            elif type(action) is Reconnecting:
                deadline = engine.next_deadline()
                assert deadline is not None
                heapq.heappush(timers, (deadline, index))

    for index, engine in enumerate(engines):
        engine.closed(close[0], close[1], 0.0)  # everyone dropped at the same instant
        handle(index, 0.0)
    while timers:
        now, index = heapq.heappop(timers)
        engines[index].tick(now)
        handle(index, now)
    return Storm(attempts, client_of, reconnected, first)


def test_with_full_jitter_the_busiest_100ms_bin_follows_the_first_retry_window() -> None:
    # Full jitter spreads the first retries uniformly over [0, initial]: the busiest bin holds
    # about 0.1 / initial of the clients. The <= 5 % target needs a first window of several
    # seconds (3 s still gave 6 % with this seed: 30 bins of binomial noise).
    default = storm(Backoff())
    wide = storm(Backoff(initial=5.0, maximum=30.0))
    no_jitter = storm(Backoff(jitter="none"))
    for name, result, backoff in (
        ("default-full-jitter", default, Backoff()),
        ("initial-5s-full-jitter", wide, Backoff(initial=5.0, maximum=30.0)),
        ("default-no-jitter", no_jitter, Backoff(jitter="none")),
    ):
        emit(
            f"6-reconnect-storm-{name}",
            backoff_initial_s=backoff.initial,
            jitter=backoff.jitter,
            **result.figures(),
        )
    assert no_jitter.busiest_share() == 1.0  # the histogram does see a stampede
    assert 0.15 <= default.busiest_share() <= 0.3  # ~20 %: 500 clients over 0.5 s
    assert wide.busiest_share() <= 0.05
    for result in (default, wide):
        assert len(result.attempts) == CLIENTS  # the server was up: one attempt each
        assert max(result.reconnected) <= result.attempts[-1] + 1e-9


@pytest.mark.parametrize("initial", [0.5, 5.0])
def test_a_restarting_server_sees_attempts_thin_out_and_every_client_returns(initial: float) -> None:
    down_for = 2.0
    backoff = Backoff(initial=initial, maximum=30.0)
    result = storm(backoff, server_down_for=down_for)
    figures = result.figures()
    emit(
        f"6-reconnect-storm-server-down-{down_for:g}s-initial-{initial:g}s",
        backoff_initial_s=initial,
        jitter="full",
        server_down_s=down_for,
        **figures,
    )
    histogram = result.histogram
    window = int(initial / BIN)
    # Attempts thin out as the backoff doubles: the next window holds fewer than the first.
    first = sum(histogram.get(b, 0) for b in range(window))
    later = sum(histogram.get(b, 0) for b in range(window, 2 * window))
    assert later < first
    assert all(at >= down_for for at in result.reconnected)  # nobody got in while it was down
    # Once the server is up, each client is back within its current backoff window.
    worst = backoff.base_delay(max(Counter(result.client_of).values()))
    assert max(result.reconnected) <= down_for + worst
    if initial >= 5.0:
        assert result.busiest_share() <= 0.05


SIGTERM = (1001, close_reason("server shutting down", window=drain_window(CLIENTS, DEFAULT_RECONNECT_RATE)))


@pytest.mark.parametrize("down_for", [0.0, 0.5, 1.0, 2.0])
def test_a_graceful_restart_with_default_settings_spreads_clients_over_its_window(down_for: float) -> None:
    # serve.py closes its 500 clients with reconnect_window=6.25 (500 / 80 per second); each
    # draws its moment in that window, and keeps drawing over it while the new process is not up.
    result = storm(Backoff(), server_down_for=down_for, close=SIGTERM)
    figures = result.figures()
    emit(
        f"6-reconnect-storm-sigterm-defaults-down-{down_for:g}s",
        backoff_initial_s=Backoff().initial,
        reconnect_window_s=drain_window(CLIENTS, DEFAULT_RECONNECT_RATE),
        server_down_s=down_for,
        **figures,
    )
    assert result.busiest_share() <= 0.05
    assert all(at >= down_for for at in result.reconnected)
    window = drain_window(CLIENTS, DEFAULT_RECONNECT_RATE)
    assert max(result.reconnected) <= down_for + 2 * window  # within about a window of the restart


def test_a_single_user_on_a_flaky_link_still_reconnects_within_the_default_first_backoff() -> None:
    engine = WebSocketEngine(heartbeat=None, rng=random.Random(1).random)
    engine.connect(0.0)
    up(engine, 0.0)
    delays = []
    for n in range(20):  # twenty drops, each after a long enough connection to reset the backoff
        now = 10.0 * (n + 1)
        engine.closed(1006, "", now)
        reconnecting = [a for a in engine.actions() if type(a) is Reconnecting]
        delays.append(reconnecting[0].delay)
        deadline = engine.next_deadline()
        assert deadline is not None
        engine.tick(deadline)
        up(engine, deadline)
        engine.actions()
    assert max(delays) <= Backoff().initial
