"""One event API on the three clients (the driver), each over its in-memory fake: the same code
works on WebSocketClient, EventSourceClient and FetchEventSource, and the JavaScript habits
either work like the DOM or fail at once naming the fix."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from pyrt import Backoff, EventSourceClient, FetchEventSource, State, WebSocketClient
from pyrt.aio import driver
from pyrt.aio.driver import Driver, running_loop
from pyrt.engine.states import ReadyState
from pyrt.errors import ClientClosedError
from pyrt.testing import (
    FakeEventSourceTransport,
    FakeFetchTransport,
    FakePyrtServer,
    FakeTransport,
)
from tests.unit.loop_support import run, settle, until

pytestmark = pytest.mark.unit

FAST = Backoff(initial=0.01, maximum=0.01, jitter="none")


@dataclass
class Rig:
    """A client and the fake that plays its server: the same verbs for all three."""

    client: Driver
    open: Callable[[], None]  # the connection opens
    message: Callable[[str], None]  # a message arrives (SSE: an event of type "message")
    drop: Callable[[], None]  # the connection is lost

    def payload(self, received: Any) -> Any:
        return received if isinstance(self.client, WebSocketClient) else received.data


def websocket_rig() -> Rig:
    transport = FakeTransport()  # no server: the test plays it
    client = WebSocketClient("ws://t/ws", transport=transport, heartbeat=None, backoff=FAST, protocol="raw")
    return Rig(client, transport.accept, transport.deliver, transport.drop)


def fetch_rig() -> Rig:
    transport = FakeFetchTransport()
    client = FetchEventSource("/sse", transport=transport, backoff=FAST)

    def opened() -> None:
        transport.respond(200)

    return Rig(client, opened, lambda text: transport.send(f"data: {text}\n\n"), transport.end)


def eventsource_rig() -> Rig:
    transport = FakeEventSourceTransport()
    client = EventSourceClient("/sse", transport=transport, backoff=FAST)
    return Rig(client, transport.open, lambda text: transport.send(text), transport.drop)


RIGS = pytest.mark.parametrize("make", [websocket_rig, fetch_rig, eventsource_rig], ids=["ws", "fetch", "es"])


# ------------------------------------------------------------------------------ the same code


@RIGS
def test_the_same_handler_code_runs_on_every_client(make: Callable[[], Rig]) -> None:
    async def scenario() -> None:
        rig = make()
        client = rig.client
        log: list[Any] = []

        @client.on_open
        def opened() -> None:
            log.append("open")

        @client.on_message
        def got(message: Any) -> None:
            log.append(rig.payload(message))

        client.on_state(lambda state: log.append(state))
        client.on("close", lambda event: log.append(("close", event.by_client)))
        client.connect()
        rig.open()
        rig.message("hi")
        client.close()
        await client.wait_closed(2)
        assert log[:4] == [State.CONNECTING, State.OPEN, "open", "hi"]
        assert log[-2:] == [State.CLOSED, ("close", True)]

    run(scenario)


@RIGS
def test_the_javascript_property_habits_set_one_handler_like_the_dom(make: Callable[[], Rig]) -> None:
    async def scenario() -> None:
        rig = make()
        client = rig.client
        seen: list[str] = []
        client.onmessage = lambda m: seen.append("js " + rig.payload(m))
        client.on_message = lambda m: seen.append("py " + rig.payload(m))  # the same slot: replaces
        client.on_message(lambda m: seen.append("added " + rig.payload(m)))
        assert client.onmessage is not None
        client.connect()
        rig.open()
        rig.message("a")
        client.onmessage = None  # removes the property handler only
        rig.message("b")
        assert seen == ["py a", "added a", "added b"]
        client.close()

    run(scenario)


@RIGS
def test_a_non_callable_handler_fails_at_once_naming_the_fix(make: Callable[[], Rig]) -> None:
    client = make().client
    with pytest.raises(TypeError, match="on_message must be set to a callable or None, got str"):
        client.on_message = "print"  # type: ignore[assignment]  # the misuse under test
    with pytest.raises(TypeError, match="onerror must be set to a callable or None, got int"):
        client.onerror = 1  # type: ignore[assignment]  # the misuse under test
    with pytest.raises(TypeError, match="on_open needs a callable, got NoneType"):
        client.on_open(None)  # type: ignore[type-var]  # the misuse under test


@RIGS
def test_on_and_off_by_name_and_on_as_a_decorator(make: Callable[[], Rig]) -> None:
    async def scenario() -> None:
        rig = make()
        client = rig.client
        seen: list[str] = []

        @client.on("message")
        def first(message: Any) -> None:
            seen.append("first")

        client.on("message", lambda m: seen.append("second"))
        client.connect()
        rig.open()
        rig.message("x")
        client.off("message", first)
        rig.message("y")
        client.off("message")
        rig.message("z")
        assert seen == ["first", "second", "second"]
        client.close()

    run(scenario)


@RIGS
def test_ready_state_and_state_are_the_same_types_everywhere(make: Callable[[], Rig]) -> None:
    async def scenario() -> None:
        rig = make()
        client = rig.client
        assert (client.state, client.ready_state) == (State.IDLE, ReadyState.CLOSED)
        client.connect()
        assert client.ready_state is ReadyState.CONNECTING == client.CONNECTING
        rig.open()
        assert client.ready_state is ReadyState.OPEN == client.OPEN == 1
        rig.drop()
        assert client.ready_state is ReadyState.CONNECTING
        assert client.state in (State.RECONNECTING, State.CONNECTING)
        client.close()
        await client.wait_closed(2)
        assert client.ready_state is ReadyState.CLOSED == client.CLOSED == 3

    run(scenario)


@RIGS
def test_async_with_waits_for_open_and_wait_closed_returns_the_close_event(make: Callable[[], Rig]) -> None:
    async def scenario() -> None:
        rig = make()
        client = rig.client

        async def open_soon() -> None:
            await until(lambda: client.state is State.CONNECTING)
            await settle()
            rig.open()

        opener = asyncio.create_task(open_soon())
        async with client:
            assert client.state is State.OPEN
        await opener
        closed = await client.wait_closed(1)
        assert closed is client.close_event
        assert (closed.by_client, closed.error) == (True, None)

    run(scenario)


@RIGS
def test_async_for_yields_messages_and_ends_at_once_after_close(make: Callable[[], Rig]) -> None:
    async def scenario() -> None:
        rig = make()
        client = rig.client
        got: list[Any] = []

        async def consume() -> None:
            async for message in client:
                got.append(rig.payload(message))
                if len(got) == 2:
                    client.close()

        task = asyncio.create_task(consume())
        await until(lambda: client.state is State.CONNECTING)
        rig.open()
        for text in ("1", "2", "3"):
            rig.message(text)
        await asyncio.wait_for(task, 1)
        assert got == ["1", "2"]  # "3" was received before close() and is dropped

    run(scenario)


@RIGS
def test_wait_open_on_a_client_closed_first_says_so(make: Callable[[], Rig]) -> None:
    async def scenario() -> None:
        client = make().client
        client.connect()
        client.close()
        with pytest.raises(ClientClosedError, match="closed before opening"):
            await client.wait_open(1)

    run(scenario)


@RIGS
def test_cancelling_one_waiter_leaves_the_others_waiting(make: Callable[[], Rig]) -> None:
    async def scenario() -> None:
        rig = make()
        client = rig.client
        client.connect()
        first = asyncio.create_task(client.wait_open())
        second = asyncio.create_task(client.wait_open())
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.sleep(0)
        rig.open()
        await asyncio.wait_for(second, 1)
        assert first.cancelled()
        client.close()

    run(scenario)


@RIGS
def test_ordered_async_handlers_see_messages_one_at_a_time(make: Callable[[], Rig]) -> None:
    async def scenario() -> None:
        rig = make()
        client = rig.client
        client._handlers.ordered = True  # what async_handlers="ordered" sets
        seen: list[str] = []

        @client.on_message
        async def slow(message: Any) -> None:
            seen.append("start " + rig.payload(message))
            await settle(3)
            seen.append("end " + rig.payload(message))

        client.connect()
        rig.open()
        rig.message("a")
        rig.message("b")
        await until(lambda: len(seen) == 4)
        assert seen == ["start a", "end a", "start b", "end b"]
        client.close()

    run(scenario)


def test_every_client_takes_async_handlers_ordered() -> None:
    async def scenario() -> None:
        clients: list[Driver] = [
            WebSocketClient("ws://x", transport=FakeTransport(FakePyrtServer()), async_handlers="ordered"),
            FetchEventSource("/s", transport=FakeFetchTransport(), async_handlers="ordered"),
            EventSourceClient("/s", transport=FakeEventSourceTransport(), async_handlers="ordered"),
        ]
        assert all(c._handlers.ordered for c in clients)
        with pytest.raises(ValueError, match="async_handlers must be one of"):
            WebSocketClient("ws://x", async_handlers="fifo")  # type: ignore[arg-type]  # misuse under test

    run(scenario)


# ------------------------------------------------------------------------------ the driver


def test_the_timer_is_armed_once_and_an_early_deadline_replaces_a_later_one() -> None:
    async def scenario() -> None:
        transport = FakeFetchTransport()
        client = FetchEventSource("/s", transport=transport, stall_timeout=1.0, backoff=FAST)
        client.connect()
        first = client._timer
        assert first is not None
        assert client._timer_at == pytest.approx(asyncio.get_running_loop().time() + 1.0, abs=0.5)
        transport.respond(503)  # reconnect due in 0.01 s: earlier, so the timer moves
        assert client._timer is not first
        assert client._timer_at is not None
        await until(lambda: len(transport.requests) == 2)
        client.close()
        assert client._timer is None

    run(scenario)


class WallClock:
    """The wall clock the driver reads (:func:`pyrt.aio.driver.wall_time`), jumped on demand:
    a laptop that slept stops the loop's monotonic clock, not this one."""

    def __init__(self) -> None:
        self.ahead = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return time.time() + self.ahead


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> WallClock:
    clock = WallClock()
    monkeypatch.setattr(driver, "wall_time", clock)
    monkeypatch.setattr(driver, "CHECK_EVERY", 0.02)  # scaled down from seconds
    return clock


@RIGS
def test_a_live_client_compares_the_clocks_on_its_own_and_replaces_its_connection_after_a_sleep(
    make: Callable[[], Rig], wall: WallClock
) -> None:
    async def scenario() -> None:
        rig = make()
        client = rig.client
        reasons: list[str] = []
        client.on_reconnecting(lambda attempt, delay, reason: reasons.append(reason))
        client.connect()
        rig.open()
        reads = wall.reads
        await until(lambda: wall.reads >= reads + 5)  # no deadline is near, yet the clocks are read
        assert reasons == []  # awake all along: nothing happens
        wall.ahead = 3600.0  # the machine slept for an hour
        await until(lambda: reasons)
        assert "slept for 36" in reasons[0]
        client.close()

    run(scenario)


@pytest.mark.parametrize("make", [websocket_rig, fetch_rig], ids=["ws", "fetch"])
def test_the_page_coming_back_compares_the_clocks_at_once(make: Callable[[], Rig], wall: WallClock) -> None:
    async def scenario() -> None:
        rig = make()
        client = rig.client
        assert isinstance(client, (WebSocketClient, FetchEventSource))
        reasons: list[str] = []
        client.on_reconnecting(lambda attempt, delay, reason: reasons.append(reason))
        client.connect()
        rig.open()
        await until(lambda: wall.reads >= 1)
        wall.ahead = 3600.0
        client.page_visible()
        assert reasons
        assert "slept for 36" in reasons[0]
        client.close()

    run(scenario)


def test_a_closed_client_stops_reading_the_clocks(wall: WallClock) -> None:
    async def scenario() -> None:
        rig = websocket_rig()
        rig.client.connect()
        rig.open()
        await until(lambda: wall.reads >= 2)
        rig.client.close()
        await rig.client.wait_closed(2)
        reads = wall.reads
        assert rig.client._timer is None  # no timer left to read the clocks...
        await settle()
        assert wall.reads == reads  # ...and nothing else reads them

    run(scenario)


def test_connect_without_a_loop_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="event loop"):
        running_loop()
    with pytest.raises(RuntimeError, match="event loop"):
        FetchEventSource("/s", transport=FakeFetchTransport()).connect()
