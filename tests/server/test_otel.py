"""serve.py --otel (pyrt.server.otel): spans for a publish frame, its broker round trip and its
fan-out, children of the client's traceparent; a message frame's span; nothing of OpenTelemetry
imported without the option."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.testclient import TestClient

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server import Settings, create_app
from pyrt.server.cli import parse_args, settings_from_args
from tests.server.wsclient import Client, run

ROOT = Path(__file__).resolve().parents[2]
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def traced_app() -> tuple[Any, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = Settings(allowed_hosts=("testserver",), otel=True, otel_tracer_provider=provider, demo_tick=0)
    return create_app(settings), exporter


def receive_until(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        frame = ws.receive_json()
        if frame["type"] == kind:
            return frame  # type: ignore[no-any-return]


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def test_a_published_frames_spans_are_children_of_the_clients_trace() -> None:
    app, exporter = traced_app()
    with (
        TestClient(app) as client,
        client.websocket_connect("/ws", subprotocols=["pyrt.v1"]) as reader,
        client.websocket_connect("/ws", subprotocols=["pyrt.v1"]) as writer,
    ):
        receive_until(reader, "welcome")
        receive_until(writer, "welcome")
        reader.send_json({"type": "subscribe", "channel": "chat", "since": None})
        receive_until(reader, "subscribed")
        writer.send_json(
            {"type": "publish", "id": "p-1", "channel": "chat", "data": "hi", "traceparent": TRACEPARENT}
        )
        ack = receive_until(writer, "ack")
        assert ack["ok"] is True
        offset = ack["data"]["offset"]
        assert receive_until(reader, "publication")["data"] == "hi"
        writer.send_json({"type": "publish", "id": "p-2", "channel": "chat", "data": "untraced"})
        receive_until(writer, "ack")
    spans = exporter.get_finished_spans()
    handled = by_name(spans, "pyrt publish")
    assert len(handled) == 2
    frame_span = next(
        span for span in handled if span.attributes and span.attributes["pyrt.frame.id"] == "p-1"
    )
    assert frame_span.kind is SpanKind.SERVER
    assert frame_span.context is not None
    assert f"{frame_span.context.trace_id:032x}" == TRACE_ID
    assert frame_span.parent is not None
    assert f"{frame_span.parent.span_id:016x}" == PARENT_ID
    assert frame_span.parent.is_remote
    assert frame_span.attributes is not None
    assert frame_span.attributes["messaging.destination.name"] == "chat"
    broker = [s for s in by_name(spans, "pyrt broker.publish") if s.parent == frame_span.context]
    assert len(broker) == 1
    assert broker[0].kind is SpanKind.CLIENT
    assert broker[0].attributes is not None
    assert broker[0].attributes["pyrt.offset"] == offset
    assert broker[0].attributes["pyrt.broker"] == "MemoryBroker"
    fan_out = [s for s in by_name(spans, "pyrt fan_out") if s.parent == broker[0].context]
    assert len(fan_out) == 1  # the memory broker fans out inside its publish
    assert fan_out[0].attributes is not None
    assert fan_out[0].attributes["pyrt.subscribers"] == 1
    assert fan_out[0].attributes["pyrt.delivered"] == 1
    assert fan_out[0].context is not None
    assert f"{fan_out[0].context.trace_id:032x}" == TRACE_ID
    # the publish without a traceparent is a trace of its own
    other = next(span for span in handled if span is not frame_span)
    assert other.context is not None
    assert f"{other.context.trace_id:032x}" != TRACE_ID


def test_a_message_frames_span_covers_the_handler_under_the_clients_trace() -> None:
    app, exporter = traced_app()
    with TestClient(app) as client, client.websocket_connect("/ws", subprotocols=["pyrt.v1"]) as ws:
        receive_until(ws, "welcome")
        ws.send_json({"type": "message", "id": "m-1", "data": "hello", "traceparent": TRACEPARENT})
        assert receive_until(ws, "ack")["ok"] is True
        ws.send_json({"type": "message", "id": "m-2", "data": 1, "traceparent": "00-bad"})
        refused = receive_until(ws, "error")
        assert refused["code"] == "bad_frame"
        assert refused["id"] == "m-2"
    spans = by_name(exporter.get_finished_spans(), "pyrt message")
    assert len(spans) == 1  # the refused frame was never handled
    assert spans[0].context is not None
    assert f"{spans[0].context.trace_id:032x}" == TRACE_ID
    assert spans[0].attributes is not None
    assert spans[0].attributes["pyrt.frame.id"] == "m-1"


def test_the_flag_turns_it_on_and_it_is_off_by_default() -> None:
    assert settings_from_args(parse_args(["--otel"])).otel is True
    assert settings_from_args(parse_args([])).otel is False


def test_without_otel_a_serving_app_imports_nothing_of_opentelemetry() -> None:
    code = textwrap.dedent(
        """
        import json, sys
        from starlette.testclient import TestClient
        from pyrt.server import Settings, create_app

        app = create_app(Settings(allowed_hosts=("testserver",), demo_tick=0))
        with TestClient(app) as client, client.websocket_connect("/ws", subprotocols=["pyrt.v1"]) as ws:
            ws.receive_json()
            ws.send_json({"type": "publish", "id": "p-1", "channel": "c", "data": 1,
                          "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
            while ws.receive_json()["type"] != "ack":
                pass
        import serve  # noqa: F401  (the command line too)
        print(json.dumps(sorted(m for m in sys.modules if m.startswith("opentelemetry"))))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_serve_py_with_otel_exports_where_the_otel_variables_say(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_SERVICE_NAME": "pyrt-t"}
    srv = pyrt_start_server("--demo-tick", "0", "--otel", env=env)

    async def scenario() -> None:
        client = await Client.connect(srv.ws_url)
        await client.send(
            {"type": "publish", "id": "p-1", "channel": "chat", "data": "hi", "traceparent": TRACEPARENT}
        )
        await client.expect("ack", id="p-1")
        await client.close()

    run(scenario())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = srv.log_text()
        if '"pyrt publish"' in text and '"pyrt fan_out"' in text:
            break
        time.sleep(0.05)
    assert '"name": "pyrt publish"' in text
    assert '"name": "pyrt broker.publish"' in text
    assert '"name": "pyrt fan_out"' in text
    assert f'"trace_id": "0x{TRACE_ID}"' in text
    assert '"service.name": "pyrt-t"' in text
