"""WebSocketClient, the asyncio facade, on CPython over the in-memory FakeTransport and FakePyrtServer."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from pyrt.aio.websocket import WebSocketClient
from pyrt.engine.backoff import Backoff
from pyrt.engine.heartbeat import Heartbeat
from pyrt.engine.pacing import Pacing
from pyrt.engine.states import State
from pyrt.engine.websocket import Closed
from pyrt.errors import (
    AckError,
    AckTimeout,
    ClientClosedError,
    InvalidStateError,
    QueueFull,
)
from pyrt.testing import FakePyrtServer, FakeTransport
from pyrt.wire.frames import Publication
from pyrt.wire.limits import ServerLimits
from tests.unit.loop_support import run, until

FAST = Backoff(initial=0.01, maximum=0.02)


def make(server: FakePyrtServer | None = None, **kwargs: Any) -> tuple[WebSocketClient, FakeTransport]:
    transport = FakeTransport(
        server if server is not None else FakePyrtServer(), asyncio.get_running_loop().call_soon
    )
    kwargs.setdefault("heartbeat", None)
    kwargs.setdefault("backoff", FAST)
    return WebSocketClient("ws://test/ws", transport=transport, **kwargs), transport


def test_messages_reach_on_message_handlers() -> None:
    async def scenario() -> None:
        client, _ = make()
        got: list[Any] = []
        client.on_message(got.append)
        client.connect()
        client.send({"hello": "world"})  # queued until open, then echoed by the fake server
        await until(lambda: got)
        assert got == [{"hello": "world"}]
        assert client.ready_state == client.OPEN == 1

    run(scenario)


def test_send_with_ack_resolves_with_the_server_reply() -> None:
    async def scenario() -> None:
        client, _ = make(FakePyrtServer(app=lambda data: data * 2))
        client.connect()
        assert await client.send_with_ack(21) == 42

    run(scenario)


def test_an_ack_survives_a_dropped_connection_and_resolves_once() -> None:
    async def scenario() -> None:
        server = FakePyrtServer()
        client, transport = make(server)
        await client.connect().wait_open()
        transport.blackhole()
        reply = client.send_with_ack("important")
        transport.drop()
        assert await reply == "important"
        assert server.handled == ["important"]

    run(scenario)


def test_an_ack_that_never_comes_fails_with_a_timeout() -> None:
    async def scenario() -> None:
        client, transport = make(ack_timeout=0.01, ack_retries=1)
        await client.connect().wait_open()
        transport.blackhole()
        with pytest.raises(AckTimeout, match="sent 2 time"):
            await client.send_with_ack("lost")

    run(scenario)


def test_async_for_yields_messages_and_ends_after_close() -> None:
    async def scenario() -> None:
        client, _ = make()
        client.connect()
        for n in range(3):
            client.send(n)
        seen = []
        async for message in client:
            seen.append(message)
            if len(seen) == 3:
                client.close()
        assert seen == [0, 1, 2]

    run(scenario)


def test_async_for_raises_when_the_server_ends_the_client() -> None:
    async def scenario() -> None:
        client, transport = make()
        await client.connect().wait_open()

        async def drain() -> None:
            async for _ in client:
                pass

        task = asyncio.ensure_future(drain())
        await asyncio.sleep(0)
        transport.drop(4401, "token expired")
        with pytest.raises(ClientClosedError, match="4401"):
            await task

    run(scenario)


def test_async_with_waits_for_open_and_frees_everything_on_exit() -> None:
    async def scenario() -> None:
        client, transport = make()
        async with client:
            assert client.state is State.OPEN
        assert client.state is State.CLOSED
        assert transport.disposed

    run(scenario)


def test_wait_open_fails_clearly_when_the_client_stops_first() -> None:
    async def scenario() -> None:
        server = FakePyrtServer()
        server.accepting = False
        client, _ = make(server, backoff=Backoff(initial=0.001, max_attempts=2))
        client.connect()
        with pytest.raises(ClientClosedError, match="gave up after 2 reconnect attempts"):
            await client.wait_open()

    run(scenario)


def test_reconnecting_and_close_events_reach_their_handlers() -> None:
    async def scenario() -> None:
        client, transport = make()
        reconnects: list[tuple[int, float, str]] = []
        closes: list[Closed] = []
        states: list[State] = []
        client.on_reconnecting(lambda attempt, delay, reason: reconnects.append((attempt, delay, reason)))
        client.on_close(closes.append)
        client.on_state(states.append)
        await client.connect().wait_open()
        transport.drop()
        await until(lambda: client.state is State.OPEN and len(transport.sockets) == 2)
        client.close(4000, "bye")
        await client.wait_closed()
        assert [(a, r) for a, _, r in reconnects] == [(1, "closed with code 1006")]
        assert len(closes) == 1
        assert (closes[0].code, closes[0].by_client) == (4000, True)
        assert states == [
            State.CONNECTING,
            State.OPEN,
            State.RECONNECTING,
            State.CONNECTING,
            State.OPEN,
            State.CLOSING,
            State.CLOSED,
        ]

    run(scenario)


def test_a_failing_handler_is_reported_and_the_others_still_run() -> None:
    async def scenario() -> None:
        client, _ = make()
        errors: list[Exception] = []
        got: list[Any] = []

        @client.on_message
        def broken(message: Any) -> None:
            raise ValueError("bug in user code")

        client.on_message(got.append)
        client.on_error(errors.append)
        client.connect()
        client.send("x")
        await until(lambda: got)
        assert [str(e) for e in errors] == ["bug in user code"]

    run(scenario)


def test_coroutine_handlers_run_as_tasks() -> None:
    async def scenario() -> None:
        client, _ = make()
        got: list[Any] = []

        @client.on_message
        async def handle(message: Any) -> None:
            await asyncio.sleep(0)
            got.append(message)

        client.connect()
        client.send("async")
        await until(lambda: got)
        assert got == ["async"]

    run(scenario)


def test_history_pages_are_awaited_through_the_client() -> None:
    async def scenario() -> None:
        server = FakePyrtServer()
        for n in range(4):
            server.publish("chat", {"n": n}, event="chat")
        client, _ = make(server)
        client.connect()
        page = await client.history("chat", limit=2, reverse=True)  # sent once open
        assert [p.data["n"] for p in page] == [3, 2]
        older = await client.history("chat", reverse=True, since=page.next_since)
        assert [(p.offset, p.event, p.data["n"]) for p in older] == [("1-2", "chat", 1), ("1-1", "chat", 0)]
        assert not older.more
        assert client.stats.acked == 0  # reads are not messages: the counters tell of messages
        assert await client.publish("chat", {"n": 4}) == "1-5"
        assert client.stats.acked == 1
        with pytest.raises(ValueError, match="channel"):
            client.history("no spaces")

    run(scenario)


def test_presence_through_the_client_join_events_members_and_leave() -> None:
    async def scenario() -> None:
        server = FakePyrtServer()
        alice, _ = make(server, rng=lambda: 0.1)
        bob, _ = make(server, rng=lambda: 0.9)
        events: list[tuple[str, Any]] = []
        bob.subscribe(
            "room",
            lambda p: None,
            on_join=lambda m: events.append(("join", m.info)),
            on_leave=lambda m: events.append(("leave", m.info)),
        )
        await bob.connect().wait_open()
        member = await alice.connect().join("room", {"name": "alice"})
        await until(lambda: events)
        assert events == [("join", {"name": "alice"})]
        assert [m.client for m in bob.members("room")] == [member]
        assert [m.info for m in await bob.presence("room")] == [{"name": "alice"}]
        assert await alice.leave("room") is None
        await until(lambda: len(events) == 2)
        assert events[-1] == ("leave", {"name": "alice"})
        assert bob.members("room") == []
        with pytest.raises(TypeError, match="on_join must be callable"):
            bob.subscribe("other", print, on_join="no")  # type: ignore[arg-type]

    run(scenario)


def test_subscriptions_and_publish_work_through_the_client() -> None:
    async def scenario() -> None:
        server = FakePyrtServer()
        client, transport = make(server)
        got: list[Publication] = []
        client.subscribe("news", got.append)
        await client.connect().wait_open()
        offset = await client.publish("news", {"headline": 1})
        transport.drop()
        server.publish("news", {"headline": 2})
        await until(lambda: len(got) == 2)
        assert offset == "1-1"
        assert [p.data for p in got] == [{"headline": 1}, {"headline": 2}]

    run(scenario)


@pytest.mark.parametrize("pacing", ["auto", Pacing(rate=50, burst=10)])
def test_a_paced_burst_of_acked_calls_is_never_refused(pacing: Any) -> None:
    """ "auto" follows the limits the server advertises; a Pacing stays under its own."""

    async def scenario() -> None:
        server = FakePyrtServer(limits=ServerLimits(rate=200, burst=10), clock=time.monotonic)
        client, _ = make(server, pacing=pacing)
        await client.connect().wait_open()
        replies = await asyncio.wait_for(asyncio.gather(*(client.send_with_ack(n) for n in range(60))), 30)
        assert replies == list(range(60))
        assert server.handled == list(range(60))  # once each, in order
        assert server.refusals == []

    run(scenario)


def test_without_pacing_refused_calls_are_retried_then_fail_naming_the_refusal() -> None:
    async def scenario() -> None:
        server = FakePyrtServer(limits=ServerLimits(rate=200, burst=10), clock=time.monotonic)
        client, _ = make(server, pacing=None)
        await client.connect().wait_open()
        calls = [client.send_with_ack(n) for n in range(60)]
        outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 30)
        assert server.refusals != []
        resolved = [o for o in outcomes if not isinstance(o, BaseException)]
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        assert all(isinstance(e, AckError) and e.code == "rate_limited" for e in failed)
        assert server.handled == resolved  # what resolved was handled once, in order; nothing else
        assert len(resolved) >= 10
        assert server.abuse_closes == 0  # refused, never closed for it

    run(scenario)


def test_overflow_raise_surfaces_queue_full_to_the_caller() -> None:
    async def scenario() -> None:
        client, _ = make(queue_limit=1, overflow="raise")
        client.send("fits")
        with pytest.raises(QueueFull):
            client.send("does not fit")

    run(scenario)


def test_the_heartbeat_timer_replaces_a_silent_connection() -> None:
    async def scenario() -> None:
        client, transport = make(heartbeat=Heartbeat(interval=0.02, timeout=0.02))
        await client.connect().wait_open()
        transport.blackhole()
        await until(lambda: len(transport.sockets) == 2 and client.state is State.OPEN)
        assert transport.sockets[0].detached
        assert client.stats.reconnects == 1

    run(scenario)


def test_connect_without_a_loop_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="event loop"):
        WebSocketClient("ws://x").connect()


def test_without_a_transport_cpython_uses_the_websockets_one() -> None:
    async def scenario() -> None:
        client = WebSocketClient("ws://127.0.0.1:9/ws", heartbeat=None)
        client.connect()
        assert type(client._transport).__name__ == "CPythonTransport"
        client.close()
        await client.wait_closed(5)

    run(scenario)


def test_handlers_must_be_callable_and_events_known() -> None:
    client = WebSocketClient("ws://x")
    with pytest.raises(TypeError, match="on_message needs a callable"):
        client.on_message("print")  # type: ignore[arg-type]  # the misuse under test
    with pytest.raises(ValueError, match="unknown event 'mesage'"):
        client.off("mesage", print)


def test_pause_queues_sends_until_resume_then_flushes_them_in_order() -> None:
    async def scenario() -> None:
        client, _ = make(FakePyrtServer())
        got: list[Any] = []
        client.on_message(got.append)
        await client.connect().wait_open()
        client.pause()
        assert client.paused
        assert client.state is State.PAUSED
        client.send("one")
        client.send("two")
        client.page_shown()  # the page coming back does not end a deliberate pause
        assert client.state is State.PAUSED
        assert got == []
        client.resume()
        await until(lambda: got == ["one", "two"])
        assert not client.paused
        assert client.state is State.OPEN

    run(scenario)


def test_pause_needs_a_connected_or_connecting_client() -> None:
    async def scenario() -> None:
        client, _ = make()
        with pytest.raises(InvalidStateError, match="cannot pause a client that is IDLE"):
            client.pause()
        client.resume()  # not paused: nothing to do
        assert client.state is State.IDLE

    run(scenario)


def test_an_ack_frame_resumes_the_waiters_of_its_future_at_once() -> None:
    async def scenario() -> None:
        client, _ = make(FakePyrtServer(app=lambda data: data))
        await client.connect().wait_open()
        inside: list[bool] = []
        delivering = [False]
        deliver = client.socket_message

        def socket_message(data: Any) -> None:
            delivering[0] = True
            try:
                deliver(data)
            finally:
                delivering[0] = False

        client.socket_message = socket_message  # type: ignore[method-assign]
        future = client.send_with_ack("hi")
        assert asyncio.isfuture(future)
        future.add_done_callback(lambda f: inside.append(delivering[0]))
        assert await asyncio.wait_for(future, 5) == "hi"
        assert inside == [True]  # called while the ack frame was being handled, not a loop turn later

    run(scenario)


def test_inside_a_task_an_ack_future_schedules_its_callbacks_as_any_future() -> None:
    async def scenario() -> None:
        client, transport = make()
        await client.connect().wait_open()
        transport.blackhole()
        future = client.send_with_ack("never acked")
        called: list[str] = []
        future.add_done_callback(lambda f: called.append(type(f.exception()).__name__))
        client.close()  # inside this task: the rejection is scheduled, not run here
        assert called == []
        await asyncio.sleep(0)
        assert called == ["ClientClosedError"]

    run(scenario)


def test_a_raising_done_callback_goes_to_the_loop_exception_handler() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        reported: list[Any] = []
        loop.set_exception_handler(lambda loop, context: reported.append(context["exception"]))
        client, _ = make(FakePyrtServer(app=lambda data: data))
        await client.connect().wait_open()
        future = client.send_with_ack(1)

        def boom(f: Any) -> None:
            raise RuntimeError("boom")

        future.add_done_callback(boom)
        assert await future == 1
        assert await client.send_with_ack(2) == 2  # the client goes on
        assert [str(e) for e in reported] == ["boom"]

    run(scenario)


def test_the_messages_of_a_batched_message_reach_handlers_and_async_for_in_order() -> None:
    async def scenario() -> None:
        server = FakePyrtServer()
        client, transport = make(server)
        got: list[Any] = []
        client.on_message(got.append)
        for n in range(5):
            client.send(n)  # queued until open: the echoes queue up on the server side together
        await client.connect().wait_open()
        await until(lambda: len(got) == 5)
        assert got == [0, 1, 2, 3, 4]
        conn = transport.sockets[0].conn
        assert conn is not None
        assert conn.batch  # the client offered pyrt.v1.batch
        iterator = client.__aiter__()
        batch = "\n".join(json.dumps({"type": "message", "data": n}) for n in (5, 6))
        transport.sockets[0].events.socket_message(batch)  # type: ignore[union-attr]
        assert got == [0, 1, 2, 3, 4, 5, 6]
        assert [await asyncio.wait_for(iterator.__anext__(), 5) for _ in range(2)] == [5, 6]
        client.close()

    run(scenario)
