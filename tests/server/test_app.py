"""create_app as a library: mounted inside another Starlette app, with the application's own handler."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from pyrt.server import HandlerError, IncomingMessage, Settings, create_app


def build() -> tuple[Starlette, list[IncomingMessage]]:
    received: list[IncomingMessage] = []

    async def handler(message: IncomingMessage) -> Any:
        received.append(message)
        if message.data == "refuse":
            raise HandlerError("not today")
        if message.data == "boom":
            raise RuntimeError("bug")
        return {"length": len(str(message.data))}

    pyrt_app = create_app(Settings(allowed_hosts=("testserver",)), handler=handler)
    outer = Starlette(
        routes=[Route("/", lambda request: PlainTextResponse("home")), Mount("/rt", app=pyrt_app)]
    )
    return outer, received


def test_the_mounted_app_serves_the_protocol_under_its_prefix() -> None:
    outer, received = build()
    with TestClient(outer) as client:
        assert client.get("/").text == "home"
        assert client.get("/rt/healthz").json() == {"status": "ok", "demo": False}
        with client.websocket_connect("/rt/ws?cid=me", subprotocols=["pyrt.v1"]) as ws:
            assert ws.receive_json()["type"] == "welcome"
            ws.send_json({"type": "message", "id": "a", "data": "hello"})
            assert ws.receive_json() == {"type": "ack", "id": "a", "ok": True, "data": {"length": 5}}
            ws.send_json({"type": "message", "id": "a", "data": "hello"})
            assert ws.receive_json()["data"] == {"length": 5}
            ws.send_json({"type": "message", "id": "b", "data": "refuse"})
            assert ws.receive_json() == {"type": "ack", "id": "b", "ok": False, "error": "not today"}
            ws.send_json({"type": "message", "id": "c", "data": "boom"})
            assert ws.receive_json() == {"type": "ack", "id": "c", "ok": False, "error": "internal error"}
            ws.send_json({"type": "message", "id": "c", "data": "boom"})  # not remembered: runs again
            assert ws.receive_json()["error"] == "internal error"
            ws.send_json({"type": "message", "data": "fire"})
            ws.send_json({"type": "ping", "t": 1})
            assert ws.receive_json() == {"type": "pong", "t": 1}  # a custom handler does not echo
    assert [(m.id, m.data) for m in received] == [
        ("a", "hello"),
        ("b", "refuse"),
        ("c", "boom"),
        ("c", "boom"),
        (None, "fire"),
    ]
    assert {m.cid for m in received} == {"me"}


def test_publish_and_subscribe_through_the_mounted_app() -> None:
    outer, _ = build()
    with TestClient(outer) as client, client.websocket_connect("/rt/ws", subprotocols=["pyrt.v1"]) as ws:
        ws.receive_json()
        ws.send_json({"type": "subscribe", "channel": "news", "since": "0"})
        assert ws.receive_json()["type"] == "subscribed"
        offset = client.post("/rt/publish", json={"channel": "news", "data": "extra"}).json()["offset"]
        publication = ws.receive_json()
        assert publication == {
            "type": "publication",
            "channel": "news",
            "offset": offset,
            "event": "message",
            "data": "extra",
        }
        assert client.post("/rt/demo/drop", json={"cid": "x"}).status_code in (404, 405)  # demo off


def test_echo_without_the_option_closes_at_once_saying_how_to_turn_it_on() -> None:
    outer, _ = build()
    with TestClient(outer) as client, client.websocket_connect("/rt/echo") as ws:
        closed = ws.receive()
    reason = "/echo is off: start serve.py with --echo"
    assert closed == {"type": "websocket.close", "code": 4404, "reason": reason}
