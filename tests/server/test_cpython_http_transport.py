"""The HTTP binding from a CPython client, behind networks that do not pass WebSockets
(README, "Every network"): the default client comes up over HTTP within its connect timeout,
keeps every promise there (acks exactly once, queued sends in order, subscriptions without gaps),
moves back to WebSockets once they pass again, and remembers the choice for the origin.

Each scenario runs against the session's reference server (default settings, plus the demo
controls that read what the application received) through a chaos proxy in one hostile mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyrt import Backoff, Publication, State, TransportPolicy, TransportUnavailable, WebSocketClient
from pyrt.cpython import CPythonServices
from pyrt.pytest_plugin.proxy import ChaosProxy, ResetSchedule
from pyrt.pytest_plugin.redis_process import RedisServer
from pyrt.pytest_plugin.server_process import ServerProcess
from tests.server.cpython_support import Controls, new_cid, run, until

HOSTILE = {
    "refused upgrade (403)": {"refuse_upgrade": 403},
    "upgrade headers stripped": {"strip_upgrade": True},
    "upgraded then silent": {"swallow_upgraded": True},
    "refused upgrade, chunked responses buffered": {"refuse_upgrade": 403, "buffer_streams": True},
}


def blocked(
    start_proxy: Callable[[ServerProcess], ChaosProxy], server: ServerProcess, **mode: Any
) -> ChaosProxy:
    proxy = start_proxy(server)
    proxy.set(**mode)
    return proxy


@pytest.mark.parametrize("mode", list(HOSTILE.values()), ids=list(HOSTILE))
def test_the_default_client_comes_up_over_http_within_its_connect_timeout(
    pyrt_server: ServerProcess,
    pyrt_start_proxy: Callable[[ServerProcess], ChaosProxy],
    tmp_path: Path,
    mode: dict[str, Any],
) -> None:
    proxy = blocked(pyrt_start_proxy, pyrt_server, **mode)

    async def scenario() -> None:
        errors: list[BaseException] = []
        client = WebSocketClient(
            f"{proxy.ws_url}/ws",
            heartbeat=None,
            connect_timeout=2,
            services=CPythonServices(storage_dir=tmp_path),
        )
        client.on_error(errors.append)
        started = time.monotonic()
        await client.connect().wait_open(10)
        took = time.monotonic() - started
        try:
            assert client.transport == "http"
            assert took < 2 + 1, f"open over HTTP after {took:.2f} s"
            assert await client.send_with_ack({"n": 1}, timeout=5) is not None
            assert client.stats.fallbacks == 1
            skipped = [e for e in errors if isinstance(e, TransportUnavailable)]
            assert len(skipped) == 1, errors
            assert "websocket" in str(skipped[0]).lower()
        finally:
            client.close()
            await client.wait_closed(5)

    run(scenario)


def test_acked_sends_over_http_through_random_resets_resolve_exactly_once_in_order(
    pyrt_server: ServerProcess, pyrt_start_proxy: Callable[[ServerProcess], ChaosProxy], tmp_path: Path
) -> None:
    proxy = blocked(pyrt_start_proxy, pyrt_server, refuse_upgrade=403)

    async def scenario() -> None:
        cid = new_cid()
        client = WebSocketClient(
            f"{proxy.ws_url}/ws?cid={cid}",
            heartbeat=None,
            connect_timeout=2,
            backoff=Backoff(initial=0.1, maximum=0.5, jitter="none"),
            services=CPythonServices(storage_dir=tmp_path),
        )
        await client.connect().wait_open(10)
        assert client.transport == "http"
        outcomes: dict[int, list[str]] = {}

        def send(n: int) -> None:
            def done(future: Any) -> None:
                error = future.exception()
                outcomes.setdefault(n, []).append(repr(error) if error else "ok")

            client.send_with_ack({"n": n}, timeout=30).add_done_callback(done)

        sent = 0
        with ResetSchedule(proxy, low=0.2, high=0.6, seed=11) as resets:
            # batches of 5, each sent while the one before may still be in flight, until
            # three resets cut the connections (and at least 60 sends)
            while sent < 60 or (resets.connections_cut < 3 and sent < 2000):
                for n in range(sent, sent + 5):
                    send(n)
                sent += 5
                await until(lambda at_least=sent - 10: len(outcomes) >= at_least, timeout=30)
            await until(lambda: len(outcomes) == sent, timeout=60)
        client.close()
        assert resets.connections_cut >= 3, "the resets cut nothing: the test measured nothing"
        assert client.stats.reconnects > 0
        assert client.transport == "http"
        assert all(value == ["ok"] for value in outcomes.values()), outcomes
        async with Controls(pyrt_server) as ctl:
            received = await ctl.received(cid)
        assert [data["n"] for data in received] == list(range(sent))

    run(scenario, timeout=120)


def test_over_two_workers_on_redis_acked_sends_through_resets_resolve_exactly_once(
    pyrt_redis: RedisServer, pyrt_start_proxy: Callable[[ServerProcess], ChaosProxy], tmp_path: Path
) -> None:
    """The streams and the POSTs land on either worker (each reset opens new connections): a POST
    reaches its stream's worker through Redis, and every message is handled once."""
    prefix = f"httpx{new_cid()}:"
    server = ServerProcess("--workers", "2", "--redis", pyrt_redis.url, "--redis-prefix", prefix, "--demo")
    try:
        proxy = blocked(pyrt_start_proxy, server, refuse_upgrade=403)

        async def scenario() -> None:
            cid = new_cid()
            client = WebSocketClient(
                f"{proxy.ws_url}/ws?cid={cid}",
                heartbeat=None,
                connect_timeout=2,
                backoff=Backoff(initial=0.1, maximum=0.5, jitter="none"),
                services=CPythonServices(storage_dir=tmp_path),
            )
            await client.connect().wait_open(10)
            replies = []
            with ResetSchedule(proxy, low=0.2, high=0.5, seed=3) as resets:
                n = 0
                while n < 40 or (resets.connections_cut < 4 and n < 1000):
                    replies.append(await client.send_with_ack({"n": n}, timeout=30))
                    n += 1
            reconnects = client.stats.reconnects
            client.close()
            assert resets.connections_cut >= 4
            assert client.transport == "http"
            assert [r["n"] for r in replies] == list(range(n))
            async with Controls(server) as ctl:
                received = await ctl.received(cid)
            assert [data["n"] for data in received] == list(range(n))
            assert reconnects >= 1

        run(scenario, timeout=120)
    finally:
        assert server.stop() == 0


def test_sends_queued_while_offline_go_out_over_http_in_order(
    pyrt_server: ServerProcess, pyrt_start_proxy: Callable[[ServerProcess], ChaosProxy], tmp_path: Path
) -> None:
    proxy = blocked(pyrt_start_proxy, pyrt_server, refuse_upgrade=403)

    async def scenario() -> None:
        cid = new_cid()
        got: list[Any] = []
        client = WebSocketClient(
            f"{proxy.ws_url}/ws?cid={cid}",
            heartbeat=None,
            connect_timeout=2,
            backoff=Backoff(initial=0.5, jitter="none"),
            services=CPythonServices(storage_dir=tmp_path),
        )
        client.on_message(got.append)
        await client.connect().wait_open(10)
        assert client.transport == "http"
        async with Controls(pyrt_server) as ctl:
            assert await ctl.drop(cid) == 1
            await until(lambda: client.state is State.RECONNECTING)
            for n in range(20):
                client.send(n)
            assert client.stats.queue_length == 20
            await until(lambda: len(got) == 20, timeout=15)  # the demo echoes what it receives
            received = await ctl.received(cid)
        client.close()
        assert client.transport == "http"
        assert got == list(range(20))
        assert received == list(range(20))

    run(scenario)


def test_a_subscription_over_http_recovers_what_was_published_while_away(
    pyrt_server: ServerProcess, pyrt_start_proxy: Callable[[ServerProcess], ChaosProxy], tmp_path: Path
) -> None:
    proxy = blocked(pyrt_start_proxy, pyrt_server, strip_upgrade=True)

    async def scenario() -> None:
        cid = new_cid()
        channel = f"room-{cid}"
        seen: list[Publication] = []
        client = WebSocketClient(
            f"{proxy.ws_url}/ws?cid={cid}",
            heartbeat=None,
            connect_timeout=2,
            backoff=Backoff(initial=1.0, jitter="none"),
            services=CPythonServices(storage_dir=tmp_path),
        )
        client.subscribe(channel, seen.append)
        await client.connect().wait_open(10)
        assert client.transport == "http"
        async with Controls(pyrt_server) as ctl:
            await until(lambda: client.stats.received >= 2)  # welcome + subscribed
            for n in range(5):
                await ctl.publish(channel, n)
            await until(lambda: len(seen) == 5)
            assert await ctl.drop(cid) == 1
            await until(lambda: client.state is not State.OPEN)
            for n in range(5, 10):
                await ctl.publish(channel, n)  # published while the client is away
            await until(lambda: client.state is State.OPEN, timeout=10)
            for n in range(10, 15):
                await ctl.publish(channel, n)
            await until(lambda: len(seen) >= 15)
        client.close()
        assert client.transport == "http"
        assert [p.data for p in seen] == list(range(15))
        assert all(p.recovered for p in seen)

    run(scenario)


def test_the_client_moves_back_to_websockets_once_they_pass_and_forgets_the_fallback(
    pyrt_server: ServerProcess, pyrt_start_proxy: Callable[[ServerProcess], ChaosProxy], tmp_path: Path
) -> None:
    proxy = blocked(pyrt_start_proxy, pyrt_server, refuse_upgrade=403)

    async def scenario() -> None:
        got: list[Any] = []
        client = WebSocketClient(
            f"{proxy.ws_url}/ws",
            heartbeat=None,
            connect_timeout=2,
            transport_policy=TransportPolicy(probe_first=0.5, probe_max=1.0),
            services=CPythonServices(storage_dir=tmp_path),
        )
        client.on_message(got.append)
        await client.connect().wait_open(10)
        assert client.transport == "http"
        proxy.set(refuse_upgrade=None)
        await until(lambda: client.transport == "websocket" and client.state is State.OPEN, timeout=15)
        assert client.stats.upgrades == 1
        client.send("after the move")
        await until(lambda: got == ["after the move"])
        client.close()
        await client.wait_closed(5)

    run(scenario)


def test_a_confirmed_fallback_is_remembered_for_the_origin(
    pyrt_server: ServerProcess, pyrt_start_proxy: Callable[[ServerProcess], ChaosProxy], tmp_path: Path
) -> None:
    proxy = blocked(pyrt_start_proxy, pyrt_server, refuse_upgrade=403)
    policy = TransportPolicy(probe_first=0.3, probe_max=0.3)

    def refused() -> int:
        return sum("refused an upgrade" in event for event in proxy.stats.events)

    async def scenario() -> None:
        first = WebSocketClient(
            f"{proxy.ws_url}/ws",
            heartbeat=None,
            connect_timeout=2,
            transport_policy=policy,
            services=CPythonServices(storage_dir=tmp_path),
        )
        await first.connect().wait_open(10)
        assert first.transport == "http"
        await until(lambda: refused() >= 2)  # the first try, then a probe that confirmed it
        await until(lambda: (tmp_path / "preferences.json").exists())
        first.close()
        await first.wait_closed(5)

        before = refused()
        second = WebSocketClient(
            f"{proxy.ws_url}/ws",
            heartbeat=None,
            connect_timeout=2,
            services=CPythonServices(storage_dir=tmp_path),
        )
        started = time.monotonic()
        await second.connect().wait_open(10)
        took = time.monotonic() - started
        try:
            assert second.transport == "http"
            assert refused() == before, "the second client tried WebSockets first"
            assert took < 1.0, f"a remembered fallback still took {took:.2f} s"
        finally:
            second.close()
            await second.wait_closed(5)

    run(scenario)
