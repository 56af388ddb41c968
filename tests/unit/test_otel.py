"""pyrt.otel: a client made with ``traceparent=`` sends the current span's traceparent on its
messages and publishes, over the in-memory FakePyrtServer; one made without it sends none."""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from pyrt.aio.websocket import WebSocketClient
from pyrt.engine.backoff import Backoff
from pyrt.otel import current_traceparent
from pyrt.testing import FakePyrtServer, FakeTransport
from pyrt.wire import binary, codec
from pyrt.wire.frames import ClientFrame, Message, Publish
from pyrt.wire.names import is_traceparent
from pyrt.wire.types import Frame
from tests.unit.loop_support import run

tracer = TracerProvider().get_tracer("tests")  # not the global provider: nothing else is touched


def make(**kwargs: Any) -> tuple[WebSocketClient, FakeTransport]:
    transport = FakeTransport(FakePyrtServer(app=lambda data: data), asyncio.get_running_loop().call_soon)
    client = WebSocketClient(
        "ws://test/ws", transport=transport, heartbeat=None, backoff=Backoff(initial=0.01), **kwargs
    )
    return client, transport


def read(frame: Frame) -> ClientFrame:
    return codec.decode_client_frame(frame) if isinstance(frame, str) else binary.decode_client_frame(frame)


def sent(transport: FakeTransport) -> list[ClientFrame]:
    return [read(frame) for sock in transport.sockets for frame in sock.sent]


def test_current_traceparent_is_the_current_spans_and_none_outside_a_span() -> None:
    assert current_traceparent() is None
    with tracer.start_as_current_span("work") as span:
        value = current_traceparent()
    assert is_traceparent(value)
    context = span.get_span_context()
    assert value == f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def test_a_tracing_client_sends_the_senders_span_on_messages_and_publishes() -> None:
    async def scenario() -> None:
        client, transport = make(traceparent=current_traceparent)
        await client.connect().wait_open()
        with tracer.start_as_current_span("send") as span:
            await client.send_with_ack({"n": 1})
            client.send("fire and forget")
            await client.publish("chat", "hi")
        await client.send_with_ack("outside a span")
        client.close()
        trace_id = f"{span.get_span_context().trace_id:032x}"
        frames = [f for f in sent(transport) if isinstance(f, Message | Publish)]
        assert [type(f).__name__ for f in frames] == ["Message", "Message", "Publish", "Message"]
        assert all(f.traceparent is not None and f.traceparent[3:35] == trace_id for f in frames[:3])
        assert frames[3].traceparent is None

    run(scenario)


def test_a_client_made_without_the_option_sends_exactly_todays_frames() -> None:
    async def scenario() -> None:
        client, transport = make()
        await client.connect().wait_open()
        with tracer.start_as_current_span("send"):
            await client.send_with_ack({"n": 1})
            await client.publish("chat", "hi")
        client.close()
        texts = [frame for sock in transport.sockets for frame in sock.sent]
        assert texts
        assert not any("traceparent" in str(frame) for frame in texts)
        assert all(getattr(f, "traceparent", None) is None for f in sent(transport))

    run(scenario)
