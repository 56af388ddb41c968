"""FetchEventSource on CPython over the in-memory FakeFetchTransport: handlers, ``async for``,
statuses, reconnects, pausing, close and cancel."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pyrt import FetchEventSource
from pyrt.engine.backoff import Backoff
from pyrt.engine.sse import Closed
from pyrt.engine.states import State
from pyrt.errors import ClientClosedError, SSEHTTPError, SSEStreamEndedError
from pyrt.testing import FakeFetchTransport
from pyrt.wire.sse import ServerSentEvent
from tests.unit.loop_support import run, until

pytestmark = pytest.mark.unit

FAST = Backoff(initial=0.01, maximum=0.01, jitter="none")


def make(**kwargs: Any) -> tuple[FetchEventSource, FakeFetchTransport]:
    transport = FakeFetchTransport()
    kwargs.setdefault("backoff", FAST)
    return FetchEventSource("/sse", transport=transport, **kwargs), transport


def test_handlers_receive_their_types_and_on_works_as_a_decorator() -> None:
    async def scenario() -> None:
        client, transport = make()
        client.connect()
        messages: list[str] = []
        ticks: list[str] = []
        opens: list[int] = []
        client.on_message = lambda e: messages.append(e.data)
        client.on_open = lambda: opens.append(1)

        @client.on("tick")
        def on_tick(event: ServerSentEvent) -> None:
            ticks.append(event.data)

        transport.respond(200)
        transport.send(b"data: m\n\nevent: tick\ndata: t1\n\n")
        client.off("tick", on_tick)
        transport.send(b"event: tick\ndata: t2\n\n")
        assert (messages, ticks, opens) == (["m"], ["t1"], [1])
        assert transport.requests[0].headers == {"Accept": "text/event-stream"}
        client.close()

    run(scenario)


def test_the_request_carries_method_body_credentials_and_headers() -> None:
    async def scenario() -> None:
        client, transport = make(
            method="POST", body=b"q", credentials="include", headers={"Authorization": "Bearer t"}
        )
        client.connect()
        (request,) = transport.requests
        assert (request.url, request.method, request.body) == ("/sse", "POST", b"q")
        assert request.request.credentials == "include"
        assert request.headers == {"Authorization": "Bearer t", "Accept": "text/event-stream"}
        client.close()
        assert request.aborted
        assert transport.disposed

    run(scenario)


def test_the_token_and_headers_callables_are_called_for_every_attempt() -> None:
    async def scenario() -> None:
        issued: list[str] = []

        async def token() -> str:
            await asyncio.sleep(0)
            issued.append(f"tok{len(issued)}")
            return issued[-1]

        def headers() -> dict[str, str]:
            return {"X-Attempt": str(len(issued)), "Last-Event-ID": "stale", "Authorization": "old"}

        client, transport = make(token=token, headers=headers)
        client.connect()
        await until(lambda: transport.request is not None)
        transport.respond(200)
        transport.send(b"id: 5-1\ndata: x\n\n")
        transport.end()  # the stream ends (a token expired): the next attempt asks again
        await until(lambda: len(transport.requests) == 2)
        first, second = (r.headers for r in transport.requests)
        assert first == {"X-Attempt": "0", "Authorization": "Bearer tok0", "Accept": "text/event-stream"}
        assert second["Authorization"] == "Bearer tok1"
        assert second["X-Attempt"] == "1"
        assert second["Last-Event-ID"] == "5-1"  # the resume point is the client's, always
        assert all("tok" not in r.url for r in transport.requests)
        client.close()

    run(scenario)


def test_a_failing_token_callable_fails_the_attempt_and_the_client_retries() -> None:
    async def scenario() -> None:
        calls: list[int] = []

        def token() -> str:
            calls.append(1)
            if len(calls) == 1:
                raise PermissionError("auth service down")
            return "fresh"

        errors: list[Exception] = []
        client, transport = make(token=token)
        client.on_error(errors.append)
        client.connect()
        await until(lambda: transport.request is not None)
        assert "auth service down" in str(errors[0])
        assert transport.requests[0].headers["Authorization"] == "Bearer fresh"
        assert len(transport.requests) == 1  # the failed attempt never reached the network
        client.close()

    run(scenario)


def test_closing_while_the_token_is_fetched_starts_no_request() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()

        async def token() -> str:
            await gate.wait()
            return "late"

        client, transport = make(token=token)
        client.connect()
        await asyncio.sleep(0)
        client.close()
        gate.set()
        await until(lambda: client.state is State.CLOSED)
        await asyncio.sleep(0)
        assert transport.requests == []

    run(scenario)


def test_a_failing_handler_is_logged_reported_and_does_not_stop_delivery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        client, transport = make()
        client.connect()
        got: list[str] = []
        errors: list[Exception] = []

        def broken(_event: ServerSentEvent) -> None:
            raise RuntimeError("handler bug")

        client.on("message", broken)
        client.on("message", lambda e: got.append(e.data))
        client.on_error(errors.append)
        transport.respond(200)
        transport.send(b"data: a\n\ndata: b\n\n")
        assert got == ["a", "b"]
        assert "handler bug" in caplog.text
        assert [str(e) for e in errors] == ["handler bug", "handler bug"]
        client.close()

    run(scenario)


def test_coroutine_handlers_run_as_tasks() -> None:
    async def scenario() -> None:
        client, transport = make()
        client.connect()
        done = asyncio.Event()

        async def handler(_event: ServerSentEvent) -> None:
            done.set()

        client.on("message", handler)
        transport.respond(200)
        transport.send(b"data: x\n\n")
        await asyncio.wait_for(done.wait(), 1)
        client.close()

    run(scenario)


def test_async_for_yields_events_and_ends_quietly_on_close() -> None:
    async def scenario() -> None:
        client, transport = make()
        got: list[str] = []

        async def consume() -> None:
            async for event in client:
                got.append(event.data)
                if event.data == "2":
                    client.close()

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        transport.respond(200)
        transport.send(b"data: 1\n\ndata: 2\n\ndata: 3\n\n")  # "3" is buffered before close
        await asyncio.wait_for(task, 1)
        assert got == ["1", "2"]
        assert client.ready_state == client.CLOSED
        assert transport.requests[0].aborted

    run(scenario)


def test_async_for_raises_the_error_the_client_stopped_with() -> None:
    async def scenario() -> None:
        client, transport = make()
        errors: list[Any] = []
        closes: list[Closed] = []
        client.on_error = errors.append
        client.on_close(closes.append)

        async def consume() -> None:
            async for _ in client:
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        transport.respond(401)
        with pytest.raises(SSEHTTPError) as info:
            await asyncio.wait_for(task, 1)
        assert info.value.status == 401
        assert errors == [info.value]
        assert client.error is info.value
        assert closes == [Closed(info.value, str(info.value), by_client=False)]

    run(scenario)


def test_a_204_ends_async_for_quietly_after_what_was_received() -> None:
    async def scenario() -> None:
        client, transport = make()
        transport_events: list[str] = []

        async def consume() -> None:
            async for event in client:
                transport_events.append(event.data)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        transport.respond(200)
        transport.send("id: 1\ndata: last\n\n")
        transport.end()
        await until(lambda: len(transport.requests) == 2)
        assert transport.requests[1].headers["Last-Event-ID"] == "1"
        transport.respond(204)
        await asyncio.wait_for(task, 1)
        assert transport_events == ["last"]
        assert client.error is None

    run(scenario)


def test_cancelling_the_iterating_task_closes_the_client_and_aborts() -> None:
    async def scenario() -> None:
        client, transport = make()

        async def consume() -> None:
            async for _ in client:
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        transport.respond(200)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert client.ready_state == client.CLOSED
        assert transport.requests[-1].aborted

    run(scenario)


def test_the_timer_drives_reconnects_and_every_loss_is_reported() -> None:
    async def scenario() -> None:
        client, transport = make()
        errors: list[Exception] = []
        reconnecting: list[tuple[int, float | None, str]] = []
        client.on_error(errors.append)
        client.on_reconnecting(lambda attempt, delay, reason: reconnecting.append((attempt, delay, reason)))
        client.connect()
        transport.respond(503)
        assert client.state is State.RECONNECTING
        await until(lambda: len(transport.requests) == 2)
        transport.respond(200)
        transport.end()
        assert [type(e).__name__ for e in errors] == ["SSEHTTPError", "SSEStreamEndedError"]
        assert isinstance(errors[1], SSEStreamEndedError)
        assert [(a, d) for a, d, _ in reconnecting] == [(1, 0.01), (2, 0.01)]
        assert reconnecting[0][2] == "HTTP 503 from the event stream URL (retrying)"
        client.close()

    run(scenario)


def test_a_handler_that_closes_the_client_stops_the_read_at_once() -> None:
    async def scenario() -> None:
        client, transport = make()
        got: list[str] = []

        def first_only(event: ServerSentEvent) -> None:
            got.append(event.data)
            client.close()

        client.on_message = first_only
        client.connect()
        transport.respond(200)
        assert transport.send(b"data: a\n\ndata: b\n\n") is False  # the transport stops reading
        assert got == ["a"]

    run(scenario)


def test_when_hidden_pause_closes_in_a_background_tab_and_resumes_when_visible() -> None:
    async def scenario() -> None:
        client, transport = make(when_hidden="pause")
        states: list[State] = []
        client.on_state(states.append)
        client.connect()
        transport.respond(200)
        transport.send("id: 7\ndata: x\n\n")
        assert transport.page is not None
        transport.page.page_backgrounded()
        assert client.state is State.PAUSED
        assert transport.requests[0].aborted
        transport.page.page_visible()
        assert transport.requests[1].headers["Last-Event-ID"] == "7"
        assert states == [State.CONNECTING, State.OPEN, State.PAUSED, State.CONNECTING]
        client.close()

    run(scenario)


def test_the_online_event_cuts_a_long_backoff_short() -> None:
    async def scenario() -> None:
        client, transport = make(backoff=Backoff(initial=60, maximum=60, jitter="none"))
        client.connect()
        transport.fail("refused")
        assert client.state is State.RECONNECTING
        assert transport.page is not None
        transport.page.page_online()
        assert len(transport.requests) == 2
        client.close()

    run(scenario)


def test_async_with_waits_for_the_stream_to_open_and_closes_on_exit() -> None:
    async def scenario() -> None:
        client, transport = make()

        async def open_soon() -> None:
            await until(lambda: transport.requests)
            transport.respond(200)

        opener = asyncio.create_task(open_soon())
        async with client:
            assert client.state is State.OPEN
        await opener
        assert client.state is State.CLOSED
        closed = await client.wait_closed()
        assert closed.by_client

    run(scenario)


def test_wait_open_raises_why_the_stream_stopped_and_closed_before_open_says_so() -> None:
    async def scenario() -> None:
        refused, transport = make()
        refused.connect()
        transport.respond(403)
        with pytest.raises(SSEHTTPError, match="403"):
            await refused.wait_open()
        quiet, _ = make()
        quiet.connect()
        quiet.close()
        with pytest.raises(ClientClosedError, match="closed before opening: closed by the application"):
            await quiet.wait_open()

    run(scenario)
