"""EventSourceClient on CPython over the in-memory FakeEventSourceTransport: listened types,
native reconnects, re-creation with the resume parameter, close."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pyrt import EventSourceClient
from pyrt.engine.backoff import Backoff
from pyrt.engine.states import State
from pyrt.errors import SSERetriesExhaustedError
from pyrt.testing import FakeEventSourceTransport
from pyrt.wire.sse import ServerSentEvent
from tests.unit.loop_support import run, until

pytestmark = pytest.mark.unit

FAST = Backoff(initial=0.01, maximum=0.01, jitter="none")


def make(**kwargs: Any) -> tuple[EventSourceClient, FakeEventSourceTransport]:
    transport = FakeEventSourceTransport()
    kwargs.setdefault("backoff", FAST)
    return EventSourceClient("/sse?channel=news", transport=transport, **kwargs), transport


def test_the_native_object_reports_only_message_and_the_types_someone_listens_to() -> None:
    async def scenario() -> None:
        client, transport = make(event_types=["tick"], with_credentials=True)
        alerts: list[ServerSentEvent] = []
        client.on("alert", alerts.append)
        client.connect()
        assert transport.types == {"tick", "alert"}
        assert transport.sources[0].with_credentials
        transport.open()
        assert transport.send("a", type="alert", id="1")
        assert not transport.send("x", type="unheard")
        client.off("alert")
        assert transport.types == {"tick"}  # event_types stay listened for async for
        assert not transport.send("b", type="alert")
        assert [(e.type, e.data, e.id) for e in alerts] == [("alert", "a", "1")]
        assert client.listened_types() == {"tick"}
        client.close()

    run(scenario)


def test_a_handler_added_after_connect_is_listened_to_on_the_live_object() -> None:
    async def scenario() -> None:
        client, transport = make()
        client.connect()
        transport.open()
        got: list[str] = []
        client.on("tick", lambda e: got.append(e.data))
        assert transport.send("t", type="tick")
        assert got == ["t"]
        client.close()

    run(scenario)


def test_the_browser_reconnects_a_dropped_object_itself_and_a_failed_one_is_recreated() -> None:
    async def scenario() -> None:
        client, transport = make()
        states: list[State] = []
        errors: list[Exception] = []
        reconnecting: list[tuple[int, float | None]] = []
        client.on_state(states.append)
        client.on_error(errors.append)
        client.on_reconnecting(lambda attempt, delay, reason: reconnecting.append((attempt, delay)))
        client.connect()
        transport.open()
        transport.send("one", id="12-3")
        transport.drop()  # the native object reconnects by itself
        transport.open()
        transport.fail()  # it gives up: pyrt makes a new one with the last id in the URL
        await until(lambda: len(transport.sources) == 2)
        assert transport.sources[0].destroyed
        assert transport.sources[1].url == "/sse?channel=news&lastEventId=12-3"
        assert states == [
            State.CONNECTING,
            State.OPEN,
            State.CONNECTING,
            State.OPEN,
            State.RECONNECTING,
            State.CONNECTING,
        ]
        assert [type(e).__name__ for e in errors] == ["SSEStreamEndedError", "SSENetworkError"]
        assert reconnecting == [(0, None), (1, 0.01)]
        client.close()
        assert transport.disposed

    run(scenario)


def test_attempts_exhausted_end_async_for_with_the_error() -> None:
    async def scenario() -> None:
        client, transport = make(backoff=Backoff(initial=0.01, jitter="none", max_attempts=1))

        async def consume() -> None:
            async for _ in client:
                pass

        task = asyncio.create_task(consume())
        await until(lambda: transport.sources)
        transport.fail()
        await until(lambda: len(transport.sources) == 2)
        transport.fail()
        with pytest.raises(SSERetriesExhaustedError):
            await task
        assert client.ready_state == client.CLOSED

    run(scenario)


def test_events_after_close_are_not_delivered() -> None:
    async def scenario() -> None:
        client, transport = make()
        got: list[str] = []
        client.on_message = lambda e: got.append(e.data)
        client.connect()
        transport.open()
        live = transport.current
        assert live is not None
        client.close()
        live.events.source_event(live.source, "message", "late", "")  # a late native callback
        assert got == []
        assert live.destroyed

    run(scenario)
