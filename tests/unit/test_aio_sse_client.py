"""What the SSE clients add to the event API: stream event types as events, the client's own
event names reserved, every lost connection reported."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pyrt import FetchEventSource
from pyrt.engine.backoff import Backoff
from pyrt.testing import FakeFetchTransport
from tests.unit.loop_support import run

pytestmark = pytest.mark.unit


def test_a_stream_event_named_like_a_client_event_reaches_async_for_only() -> None:
    async def scenario() -> None:
        transport = FakeFetchTransport()
        client = FetchEventSource("/s", transport=transport)
        lifecycle: list[Any] = []
        client.on_open(lambda: lifecycle.append("open"))
        client.on("error", lambda error: lifecycle.append(error))
        iterated: list[str] = []

        async def consume() -> None:
            async for event in client:
                iterated.append(event.type)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        transport.respond(200)
        transport.send("event: open\ndata: x\n\nevent: error\ndata: y\n\nevent: tick\ndata: z\n\n")
        await asyncio.sleep(0)
        client.close()
        await task
        assert lifecycle == ["open"]  # the client opened once; the stream's "open"/"error" are data
        assert iterated == ["open", "error", "tick"]

    run(scenario)


def test_named_types_and_message_reach_their_own_handlers() -> None:
    async def scenario() -> None:
        transport = FakeFetchTransport()
        client = FetchEventSource("/s", transport=transport)
        got: list[tuple[str, str]] = []
        client.on_message(lambda e: got.append(("message", e.data)))
        client.on("tick", lambda e: got.append(("tick", e.data)))
        client.connect()
        transport.respond(200)
        transport.send("data: m\n\nevent: tick\ndata: t\n\nevent: other\ndata: o\n\n")
        assert got == [("message", "m"), ("tick", "t")]
        client.close()

    run(scenario)


def test_a_lost_connection_reports_error_then_reconnecting_and_a_fatal_one_error_then_close() -> None:
    async def scenario() -> None:
        transport = FakeFetchTransport()
        client = FetchEventSource("/s", transport=transport, backoff=Backoff(initial=5, jitter="none"))
        order: list[str] = []
        client.on_error(lambda e: order.append(f"error {type(e).__name__}"))
        client.on_reconnecting(lambda attempt, delay, _: order.append(f"reconnecting {attempt} {delay:g}"))
        client.on_close(lambda event: order.append(f"close {type(event.error).__name__}"))
        client.connect()
        transport.respond(500)
        assert transport.page is not None
        transport.page.page_online()  # retry now
        transport.respond(404)
        assert order == [
            "error SSEHTTPError",
            "reconnecting 1 5",
            "error SSEHTTPError",
            "close SSEHTTPError",
        ]
        assert client.error is not None
        assert client.stats.disconnects == 1

    run(scenario)


def test_last_event_id_and_stats_follow_the_stream() -> None:
    async def scenario() -> None:
        transport = FakeFetchTransport()
        client = FetchEventSource("/s", transport=transport, last_event_id="3")
        client.connect()
        assert transport.requests[0].headers["Last-Event-ID"] == "3"
        transport.respond(200)
        transport.send("id: 4\ndata: x\n\n")
        assert client.last_event_id == "4"
        assert (client.stats.opens, client.stats.events) == (1, 1)
        client.close()

    run(scenario)
