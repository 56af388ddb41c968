"""Keyed token buckets and the per-IP cap as functions (the bucket itself is tested in
tests/unit/test_admission.py); the cap and the handshake timeout on a real server."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import httpx
import pytest
import websockets

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.limits import ConnectionCap, KeyedBuckets
from tests.server.wsclient import Client, run


def test_the_cap_counts_per_address() -> None:
    cap = ConnectionCap(2)
    assert cap.acquire("a")
    assert cap.acquire("a")
    assert not cap.acquire("a")
    assert cap.acquire("b")
    cap.release("a")
    assert cap.acquire("a")
    assert cap.count("a") == 2
    assert cap.count("c") == 0
    assert all(ConnectionCap(0).acquire("x") for _ in range(100))


def test_connections_over_the_per_ip_cap_are_refused_with_429(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    capped = pyrt_start_server("--max-connections-per-ip", "2", "--demo-tick", "0")

    async def scenario() -> None:
        first = await Client.connect(capped.ws_url)
        second = await Client.connect(capped.ws_url)
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(capped.ws_url + "/ws")
        assert refused.value.response.status_code == 429
        assert httpx.get(capped.url + "/sse", params={"channel": "x"}).status_code == 429
        await first.close()
        # the slot is given back once the server saw the close
        deadline = time.monotonic() + 5
        while True:
            try:
                third = await Client.connect(capped.ws_url)
                break
            except websockets.InvalidStatus:
                assert time.monotonic() < deadline
        await third.close()
        await second.close()

    run(scenario())


def test_a_socket_that_never_sends_a_request_is_dropped(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    strict = pyrt_start_server("--handshake-timeout", "0.3", "--demo-tick", "0")
    with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""  # closed by the server, not by our 5 s timeout
        assert time.monotonic() - started < 3
    assert httpx.get(strict.url + "/healthz").status_code == 200


def test_keyed_buckets_limit_each_key_on_its_own_and_say_how_long_to_wait() -> None:
    buckets = KeyedBuckets(rate=10, burst=2)
    assert [buckets.wait("a", 0.0) for _ in range(2)] == [0.0, 0.0]
    assert buckets.wait("a", 0.0) == pytest.approx(0.1)
    assert buckets.wait("b", 0.0) == 0.0
    assert buckets.wait("a", 0.1) == 0.0


def test_keyed_buckets_forget_refilled_keys_and_stay_bounded() -> None:
    buckets = KeyedBuckets(rate=10, burst=1, max_keys=100)
    for n in range(1000):
        buckets.wait(f"k{n}", n * 0.001)
    assert len(buckets) <= 100
    buckets.wait("late", 100.0)  # everyone else has refilled long ago
    assert len(buckets) == 1
    assert all(KeyedBuckets(rate=0, burst=1).wait("x", 0.0) == 0.0 for _ in range(10))
