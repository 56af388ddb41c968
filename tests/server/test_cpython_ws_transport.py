"""WebSocketClient on CPython (the ``websockets`` transport) against the real serve.py.

The same scenarios as the browser tier (tests/browser/test_ws_transport.py), through the CPython
adapter: raw echo, acks, forced disconnects with queued messages, exactly-once acks, channel
recovery, heartbeat on a stalled server, manual close, persistence across a killed process.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyrt import Backoff, ClientClosedError, Heartbeat, State, WebSocketClient
from pyrt.cpython import RelativeURLError
from pyrt.cpython.storage import FileStore
from pyrt.cpython.ws_transport import CPythonTransport
from pyrt.persist.records import Snapshot
from pyrt.pytest_plugin.proxy import ChaosProxy, ResetSchedule
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.auth import make_token
from pyrt.wire.frames import Publication
from tests import REPO
from tests.faults.scenario import emit
from tests.server.cpython_support import Controls, new_cid, run, until


def test_the_default_transport_outside_pyodide_is_the_websockets_one(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        client = WebSocketClient(f"{pyrt_server.ws_url}/echo", protocol="raw", heartbeat=None)
        await client.connect().wait_open(10)
        assert isinstance(client._transport, CPythonTransport)
        client.close()
        await client.wait_closed(5)

    run(scenario)


def test_text_and_binary_echo_in_raw_mode(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        client = WebSocketClient(f"{pyrt_server.ws_url}/echo", protocol="raw", heartbeat=None)
        got: list[Any] = []
        client.on_message(got.append)
        await client.connect().wait_open(10)
        # 1 MiB, the server's limit, of bytes that compress about twice: one 256-byte pattern
        # repeated would inflate a thousand times, over the server's inflate ratio (close 1009)
        payload = bytes(random.Random(7).choices(range(16), k=1024 * 1024))
        client.send("héllo ✓")
        client.send(payload)
        client.send(bytearray(b"ab"))
        client.send({"json": [1, 2]})
        await until(lambda: len(got) == 4)
        client.close()
        closed = await client.wait_closed(5)
        assert got[0] == "héllo ✓"
        assert type(got[1]) is bytes
        assert got[1] == payload
        assert got[2] == b"ab"
        assert got[3] == '{"json":[1,2]}'
        assert (closed.code, closed.by_client, client.state) == (1000, True, State.CLOSED)

    run(scenario)


def test_http_urls_are_accepted_as_in_the_browser(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        client = WebSocketClient(f"{pyrt_server.url}/echo", protocol="raw", heartbeat=None)
        got: list[Any] = []
        client.on_message(got.append)
        await client.connect().wait_open(10)
        client.send("over http://")
        await until(lambda: got)
        client.close()
        assert got == ["over http://"]

    run(scenario)


def test_echo_on_a_server_without_it_ends_the_client_with_the_reason_and_no_retry(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    server = pyrt_start_server()  # the default settings: /echo is opt-in

    async def scenario() -> None:
        client = WebSocketClient(f"{server.ws_url}/echo", protocol="raw", heartbeat=None)
        retries: list[str] = []
        client.on_reconnecting(lambda attempt, delay, reason: retries.append(reason))
        client.connect()
        with pytest.raises(ClientClosedError, match=re.escape("/echo is off: start serve.py with --echo")):
            async for _ in client:
                pass
        closed = await client.wait_closed(5)
        assert (closed.code, closed.by_client, retries) == (4404, False, [])

    run(scenario)


def test_a_relative_url_is_a_clear_error_naming_the_fix() -> None:
    async def scenario() -> None:
        client = WebSocketClient("/ws")
        with pytest.raises(RelativeURLError, match=re.escape("ws://127.0.0.1:8000/ws")):
            client.connect()
        assert client.state is State.IDLE

    run(scenario)


def test_messages_and_acks_over_the_pyrt_protocol(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        client = WebSocketClient(f"{pyrt_server.ws_url}/ws", heartbeat=None)
        got: list[Any] = []
        client.on_message(got.append)
        async with client:
            client.send({"hi": 1})
            reply = await client.send_with_ack({"n": 2}, timeout=10)
            await until(lambda: got)
            assert client.session
        assert got == [{"hi": 1}]
        assert reply == {"n": 2}
        assert client.state is State.CLOSED

    run(scenario)


def test_async_for_yields_messages_until_close(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        client = WebSocketClient(f"{pyrt_server.ws_url}/echo", protocol="raw", heartbeat=None)
        client.on_open(lambda: client.send("start"))
        got: list[Any] = []
        async for message in client:
            got.append(message)
            if message == "start":
                client.send("next")
            else:
                client.close()
        assert got == ["start", "next"]

    run(scenario)


def test_a_forced_disconnect_reconnects_and_delivers_queued_messages_in_order(
    pyrt_server: ServerProcess,
) -> None:
    async def scenario() -> None:
        cid = new_cid()
        client = WebSocketClient(
            f"{pyrt_server.ws_url}/ws?cid={cid}", heartbeat=None, backoff=Backoff(initial=0.5, jitter="none")
        )
        got: list[Any] = []
        reasons: list[str] = []
        client.on_message(got.append)
        client.on_reconnecting(lambda attempt, delay, reason: reasons.append(reason))
        await client.connect().wait_open(10)
        first_session = client.session
        async with Controls(pyrt_server) as ctl:
            assert await ctl.drop(cid) == 1
        await until(lambda: client.state is State.RECONNECTING)
        for n in range(20):
            client.send(n)
        assert client.stats.queue_length == 20
        await until(lambda: len(got) == 20, timeout=15)
        client.close()
        assert got == list(range(20))
        assert reasons == ["closed with code 1006"]
        assert client.session != first_session
        assert client.stats.reconnects == 1

    run(scenario)


def test_send_with_ack_across_a_forced_disconnect_resolves_exactly_once(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        cid = new_cid()
        client = WebSocketClient(
            f"{pyrt_server.ws_url}/ws?cid={cid}", heartbeat=None, backoff=Backoff(initial=0.2, jitter="none")
        )
        await client.connect().wait_open(10)
        outcomes: dict[int, list[str]] = {}

        def send(n: int) -> None:
            def done(future: Any) -> None:
                error = future.exception()
                outcomes.setdefault(n, []).append(repr(error) if error else "ok")

            client.send_with_ack({"n": n}).add_done_callback(done)

        async with Controls(pyrt_server) as ctl:
            assert await ctl.stall(cid, 5) == 1  # until the drop below
            for n in range(50):
                send(n)
            assert (len(outcomes), client.stats.pending_acks) == (0, 50)  # all in flight
            assert await ctl.drop(cid) == 1
            for n in range(50, 100):
                send(n)
            await until(lambda: len(outcomes) == 100, timeout=30)
            client.close()
            assert all(value == ["ok"] for value in outcomes.values()), outcomes
            received = await ctl.received(cid)
        assert [data["n"] for data in received] == list(range(100))

    run(scenario)


def test_a_subscription_survives_a_server_side_disconnect_without_gaps(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        cid = new_cid()
        channel = f"room-{cid}"
        client = WebSocketClient(
            f"{pyrt_server.ws_url}/ws?cid={cid}", heartbeat=None, backoff=Backoff(initial=1.0, jitter="none")
        )
        seen: list[Publication] = []
        client.subscribe(channel, seen.append)
        await client.connect().wait_open(10)
        async with Controls(pyrt_server) as ctl:
            await until(lambda: client.stats.received >= 2)  # welcome + subscribed
            for n in range(5):
                await ctl.publish(channel, n)
            await until(lambda: len(seen) == 5)
            await ctl.drop(cid)
            await until(lambda: client.state is not State.OPEN)
            for n in range(5, 10):
                await ctl.publish(channel, n)  # published while the client is away
            assert (client.state, len(seen)) == (State.RECONNECTING, 5)
            await until(lambda: client.state is State.OPEN, timeout=10)
            for n in range(10, 15):
                await ctl.publish(channel, n)
            await until(lambda: len(seen) >= 15)
        client.close()
        assert [p.data for p in seen] == list(range(15))
        assert all(p.recovered for p in seen)
        assert len({p.offset for p in seen}) == 15

    run(scenario)


def test_publish_resolves_with_the_offset_the_subscriber_sees(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        channel = f"pub-{new_cid()}"
        seen: list[Publication] = []
        async with WebSocketClient(f"{pyrt_server.ws_url}/ws", heartbeat=None) as client:
            client.subscribe(channel, seen.append)
            offset = await client.publish(channel, {"x": 1})
            await until(lambda: seen)
        assert seen[0].offset == offset
        assert seen[0].data == {"x": 1}

    run(scenario)


def test_the_heartbeat_detects_a_connection_the_server_stops_answering(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        cid = new_cid()
        client = WebSocketClient(
            f"{pyrt_server.ws_url}/ws?cid={cid}",
            heartbeat=Heartbeat(interval=0.3, timeout=0.3),
            backoff=Backoff(initial=0.1, jitter="none"),
        )
        reasons: list[str] = []
        client.on_reconnecting(lambda attempt, delay, reason: reasons.append(reason))
        await client.connect().wait_open(10)
        first_session = client.session
        loop = client._ensure_loop()
        async with Controls(pyrt_server) as ctl:
            assert await ctl.stall(cid, 3) == 1  # long enough; a longer stall delays server shutdown
        stalled_at = loop.time()
        await until(lambda: reasons, timeout=5)
        detected_after = loop.time() - stalled_at
        await until(lambda: client.state is State.OPEN and client.session != first_session, timeout=5)
        client.close()
        assert "heartbeat timeout" in reasons[0]
        assert detected_after < 0.3 + 0.3 + 0.3 + 0.5  # idle interval + timeout (+ slack)

    run(scenario)


def test_a_manual_close_stops_reconnecting_and_later_sends_raise(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        client = WebSocketClient(f"{pyrt_server.ws_url}/ws", heartbeat=None, backoff=Backoff(initial=0.05))
        await client.connect().wait_open(10)
        transport = client._transport
        assert isinstance(transport, CPythonTransport)
        pending = client.send_with_ack("never acked?")
        client.close()
        closed = await client.wait_closed(5)
        with pytest.raises(ClientClosedError):
            await pending
        with pytest.raises(ClientClosedError, match="cannot send on a closed client; create a new one"):
            client.send("late")
        assert (client.state, closed.by_client, client.stats.reconnects) == (State.CLOSED, True, 0)
        # Nothing is left that could reconnect: no socket, no timer, no deadline.
        assert transport._socket is None
        assert client._timer is None
        assert client._engine.next_deadline() is None
        await until(lambda: not transport._background)  # the closing handshake finished

    run(scenario)


def test_a_server_that_is_down_is_retried_until_it_comes_back(pyrt_start_server: Any) -> None:
    first = pyrt_start_server("--demo")
    port = first.port
    first.stop()

    async def scenario() -> None:
        client = WebSocketClient(
            f"ws://127.0.0.1:{port}/ws", heartbeat=None, backoff=Backoff(initial=0.1, maximum=0.2)
        )
        reasons: list[str] = []
        client.on_reconnecting(lambda attempt, delay, reason: reasons.append(reason))
        client.connect()
        await until(lambda: len(reasons) >= 2)
        # As in a browser (code 1006), plus what failed, which browsers hide.
        # (and, with the HTTP binding to fall back to, where the next attempt goes)
        assert "closed with code 1006 (ConnectionRefusedError" in reasons[0]
        assert reasons[0].endswith("trying HTTP")
        second = pyrt_start_server("--demo", "--port", str(port))  # the same port again
        try:
            await client.wait_open(20)
        finally:
            client.close()
        assert second.port == port

    run(scenario)


PERSIST_CHILD = """
import asyncio, json, sys
from pathlib import Path
from pyrt import WebSocketClient

url, path = sys.argv[1], Path(sys.argv[2])

async def main():
    client = WebSocketClient(url, heartbeat=None, persist=str(path))
    await client.connect().wait_open(10)
    print("open", flush=True)
    assert sys.stdin.readline().strip() == "send"
    futures = [client.send_with_ack({"n": n}) for n in range(3)]
    await client.persisted()  # the three are in the file now
    print("saved", flush=True)
    await asyncio.Event().wait()  # until killed

asyncio.run(main())
"""


def saved_frames(path: Path) -> tuple[Any, ...]:
    """The unacknowledged messages the journal file at ``path`` holds (read as a client would)."""
    got: list[Snapshot] = []

    def failed(error: Exception) -> None:
        raise error

    FileStore().load(str(path), got.append, failed)
    assert len(got) == 1  # the file store answers at once
    return got[0].frames


def test_persist_to_a_file_survives_a_killed_process(pyrt_server: ServerProcess, tmp_path: Path) -> None:
    cid = new_cid()
    url = f"{pyrt_server.ws_url}/ws?cid={cid}"
    state = tmp_path / "chat.json"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(PERSIST_CHILD), url, str(state)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout is not None
        assert child.stdin is not None
        assert child.stdout.readline().strip() == "open"

        async def stall() -> None:
            async with Controls(pyrt_server) as ctl:
                # Acks do not come back to the first process before it is killed (a long stall would
                # only delay the server's shutdown: a stalled connection outlives its socket).
                assert await ctl.stall(cid, 5) == 1

        run(stall)
        child.stdin.write("send\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "saved"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert len(saved_frames(state)) == 3

    async def second_run() -> None:
        client = WebSocketClient(url, heartbeat=None, persist=str(state))
        await client.connect().wait_open(10)
        await until(lambda: client.stats.acked == 3 and client.stats.pending_acks == 0, timeout=15)
        client.close()
        await client.wait_closed(5)
        async with Controls(pyrt_server) as ctl:
            received = await ctl.received(cid)
        assert [data["n"] for data in received] == [0, 1, 2]
        assert saved_frames(state) == ()

    run(second_run)


def test_hundreds_of_clients_in_one_process(pyrt_server: ServerProcess) -> None:
    """What the reconnect-storm test needs: many real clients in one loop, cheaply."""
    count = 300

    async def scenario() -> None:
        started = time.perf_counter()
        url = f"{pyrt_server.ws_url}/echo"
        clients = [WebSocketClient(url, protocol="raw", heartbeat=None) for _ in range(count)]
        created = time.perf_counter() - started
        got: list[int] = [0]

        def on_message(_: Any) -> None:
            got[0] += 1

        for client in clients:
            client.on_message(on_message)
            client.connect()
        for client in clients:
            await client.wait_open(60)
        opened = time.perf_counter() - started
        for n, client in enumerate(clients):
            client.send(str(n))
        await until(lambda: got[0] == count, timeout=60)
        for client in clients:
            client.close()
        for client in clients:
            await client.wait_closed(30)
        print(
            f"\n{count} clients: created in {created * 1000:.1f} ms, all open after {opened:.2f} s, "
            f"closed after {time.perf_counter() - started:.2f} s"
        )
        assert all(client.state is State.CLOSED and client.stats.received == 1 for client in clients)

    run(scenario, timeout=180)


# -- flow control with serve.py's default limits (docs/reliability.md, scenario 12) --------------


def test_a_burst_of_thousands_of_acked_calls_through_random_resets_is_acknowledged_once_in_order(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    """Default limits (200 frames/s, bursts of 400): 1,500 send_with_ack and 500 publish fired at
    once, while a proxy resets the connection every 0.3-1.5 s. The client paces itself by what
    welcome advertises; every call resolves, the application handles each message once and in
    order, the client's own subscription gets each publication once, in order, and the server
    never closes it with 1008."""
    srv = pyrt_start_server("--demo", "--demo-tick", "0")
    messages, publishes = 1500, 500
    channel = f"burst-{new_cid()}"
    cid = new_cid()
    outcome: dict[str, Any] = {}

    async def scenario() -> None:
        client = WebSocketClient(
            f"ws://127.0.0.1:{proxy.port}/ws?cid={cid}",
            queue_limit=10_000,
            backoff=Backoff(initial=0.05, maximum=0.5),
            heartbeat=Heartbeat(interval=0.5, timeout=0.5),
        )
        seen: list[Any] = []
        client.subscribe(channel, lambda publication: seen.append(publication.data), since="0")
        await client.connect().wait_open(10)
        started = time.monotonic()
        with ResetSchedule(proxy, 0.3, 1.5, seed=12) as schedule:
            acked = [client.send_with_ack({"seq": n}, timeout=5) for n in range(messages)]
            published = [client.publish(channel, n, timeout=5) for n in range(publishes)]
            results = await asyncio.wait_for(asyncio.gather(*acked, *published, return_exceptions=True), 120)
        await until(lambda: len(seen) >= publishes, timeout=30)
        outcome.update(
            seconds=time.monotonic() - started,
            failed=[repr(r) for r in results if isinstance(r, BaseException)][:5],
            state=client.state,
            stats=client.stats,
            resets=schedule.resets,
            seen=list(seen),
        )
        async with Controls(srv) as ctl:
            outcome["received"] = await ctl.received(cid)
        client.close()

    with ChaosProxy(srv.port) as proxy:
        run(scenario, timeout=180)
    stats = outcome["stats"]
    emit(
        "12-flow-control-cpython-burst",
        messages=messages,
        publishes=publishes,
        seconds=outcome["seconds"],
        ideal_seconds=(messages + publishes - 200) / 180,
        proxy_resets=outcome["resets"],
        reconnects=stats.reconnects,
        refused=stats.refused,
        server_refusals=srv.metric("pyrt_errors_total", code="rate_limited"),
        closes_1008=srv.metric("pyrt_drops_total", reason="rate_limit"),
        resent=stats.retried,
    )
    assert outcome["failed"] == []
    assert outcome["state"] is State.OPEN  # never closed with 1008 (or anything else)
    assert srv.metric("pyrt_drops_total", reason="rate_limit") == 0
    assert [m["seq"] for m in outcome["received"]] == list(range(messages))  # once each, in order
    assert outcome["seen"] == list(range(publishes))
    assert outcome["resets"] >= 2  # the faults happened during the burst


def test_a_refused_handshake_retry_after_is_honoured(pyrt_start_server: Callable[..., ServerProcess]) -> None:
    capped = pyrt_start_server("--max-connections-per-ip", "1", "--demo-tick", "0")

    async def scenario() -> None:
        holder = WebSocketClient(f"{capped.ws_url}/ws", heartbeat=None)
        await holder.connect().wait_open(10)
        client = WebSocketClient(f"{capped.ws_url}/ws", heartbeat=None, backoff=Backoff(initial=0.05))
        waits: list[tuple[float, str]] = []
        client.on_reconnecting(lambda attempt, delay, reason: waits.append((delay, reason)))
        client.connect()
        await until(lambda: waits)
        client.close()
        holder.close()
        delay, reason = waits[0]
        assert "HTTP 429" in reason
        assert "retry_after=5" in reason
        assert delay == 5.0  # not the 0.05 s backoff: the server asked for 5 s

    run(scenario)


def test_handshake_headers_can_be_chosen_for_every_attempt(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    secret = "headers-secret"
    secured = pyrt_start_server(env={"PYRT_TOKEN_SECRET": secret})
    calls: list[str] = []

    async def headers() -> dict[str, str]:
        calls.append("called")
        if len(calls) == 1:
            raise RuntimeError("auth service down")  # this attempt fails; the next one is tried
        return {"Authorization": f"Bearer {make_token(secret, f'user{len(calls)}')}"}

    async def scenario() -> None:
        reasons: list[str] = []
        transport = CPythonTransport(headers=headers)
        client = WebSocketClient(secured.ws_url + "/ws", transport=transport, backoff=Backoff(0.05, 0.2))
        client.on_reconnecting(lambda attempt, delay, reason: reasons.append(reason))
        await client.connect().wait_open(10)
        assert "RuntimeError: auth service down" in reasons[0]
        opened = len(calls)
        secured.restart()  # the connection ends: the next attempt asks for headers again
        await until(lambda: client.state is State.OPEN and len(calls) > opened, timeout=20)
        assert await asyncio.wait_for(client.send_with_ack("with fresh headers"), 10) is not None
        client.close()
        await client.wait_closed()

    run(scenario)
    assert len(calls) >= 3
