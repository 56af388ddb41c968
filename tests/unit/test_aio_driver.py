"""The SSE clients' shared event API on CPython: handlers, ``async for``, close and cancel."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from pyrt.aio.driver import _SSEClient
from pyrt.backoff import Backoff
from pyrt.errors import SSEHTTPError
from pyrt.sse import ServerSentEvent
from pyrt.sse_policy import AbortRequest, FetchSSEEngine, SSEAction, StartRequest

pytestmark = pytest.mark.unit


def in_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test in a fresh event loop (time is the loop's; no real sleeps beyond ms)."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), 5))

    return wrapper


class ScriptedClient(_SSEClient):
    """A client whose transport is the test: it records actions and feeds the engine by hand."""

    def __init__(self) -> None:
        super().__init__("/sse")
        self._engine: FetchSSEEngine = FetchSSEEngine(
            backoff=Backoff(initial=0.01, maximum=0.01, jitter="none"), rng=lambda: 0.5
        )
        self.carried: list[SSEAction] = []

    def _carry_out(self, action: SSEAction) -> None:
        self.carried.append(action)

    def open(self) -> None:
        self._engine.response(self._engine.request, 200, "text/event-stream", self._now())
        self._pump()

    def chunk(self, data: bytes) -> None:
        for event in self._engine.received(self._engine.request, data, self._now()):
            self._dispatch(event)

    def status(self, code: int) -> None:
        self._engine.response(self._engine.request, code, None, self._now())
        self._pump()


@in_loop
async def test_handlers_receive_their_types_and_on_works_as_a_decorator() -> None:
    client = ScriptedClient().connect()
    messages: list[str] = []
    ticks: list[str] = []
    opens: list[int] = []
    client.on_message = lambda e: messages.append(e.data)
    client.on_open = lambda: opens.append(1)

    @client.on("tick")
    def on_tick(event: ServerSentEvent) -> None:
        ticks.append(event.data)

    client.open()
    client.chunk(b"data: m\n\nevent: tick\ndata: t1\n\n")
    client.off("tick", on_tick)
    client.chunk(b"event: tick\ndata: t2\n\n")
    assert (messages, ticks, opens) == (["m"], ["t1"], [1])
    assert isinstance(client.carried[0], StartRequest)
    client.close()


@in_loop
async def test_a_failing_handler_is_logged_and_does_not_stop_delivery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = ScriptedClient().connect()
    got: list[str] = []

    def broken(_event: ServerSentEvent) -> None:
        raise RuntimeError("handler bug")

    client.on("message", broken)
    client.on("message", lambda e: got.append(e.data))
    client.open()
    client.chunk(b"data: a\n\ndata: b\n\n")
    assert got == ["a", "b"]
    assert "handler bug" in caplog.text
    client.close()


@in_loop
async def test_coroutine_handlers_run_as_tasks() -> None:
    client = ScriptedClient().connect()
    done = asyncio.Event()

    async def handler(_event: ServerSentEvent) -> None:
        done.set()

    client.on("message", handler)
    client.open()
    client.chunk(b"data: x\n\n")
    await asyncio.wait_for(done.wait(), 1)
    client.close()


@in_loop
async def test_async_for_yields_events_and_ends_quietly_on_close() -> None:
    client = ScriptedClient()
    got: list[str] = []

    async def consume() -> None:
        async for event in client:
            got.append(event.data)
            if event.data == "2":
                client.close()

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    client.open()
    client.chunk(b"data: 1\n\ndata: 2\n\ndata: 3\n\n")  # "3" is buffered before close
    await asyncio.wait_for(task, 1)
    assert got == ["1", "2"]
    assert client.ready_state == client.CLOSED
    assert isinstance(client.carried[-1], AbortRequest)


@in_loop
async def test_async_for_raises_the_error_the_client_stopped_with() -> None:
    client = ScriptedClient()
    errors: list[Any] = []
    client.on_error = errors.append

    async def consume() -> None:
        async for _ in client:
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    client.status(401)
    with pytest.raises(SSEHTTPError) as info:
        await asyncio.wait_for(task, 1)
    assert info.value.status == 401
    assert errors == [info.value]
    assert client.error is info.value


@in_loop
async def test_cancelling_the_iterating_task_closes_the_client_and_aborts() -> None:
    client = ScriptedClient()

    async def consume() -> None:
        async for _ in client:
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    client.open()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client.ready_state == client.CLOSED
    assert client.carried[-1] == AbortRequest(1, "closed by the application")


async def _wait_request(client: ScriptedClient, n: int) -> None:
    while client._engine.request < n:
        await asyncio.sleep(0.005)


@in_loop
async def test_the_timer_drives_reconnects() -> None:
    client = ScriptedClient().connect()
    client.status(503)
    await asyncio.wait_for(_wait_request(client, 2), 1)
    starts = [a for a in client.carried if isinstance(a, StartRequest)]
    assert [s.request for s in starts] == [1, 2]
    client.close()
