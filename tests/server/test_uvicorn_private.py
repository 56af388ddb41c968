"""uvicorn's internals, fenced (pyrt/server/uvicorn_private.py).

The canaries check every piece :data:`RELIED_ON` lists on the installed uvicorn — methods on its
classes, attributes on the live objects of a real uvicorn server (127.0.0.1, port 0) — and that
the list names everything the fenced protocols touch: an upgrade that moves one fails here,
naming it. Then what the fence does: SSE chunks written around ASGI, denied WebSocket handshakes
logged once at INFO.
"""

from __future__ import annotations

import ast
import asyncio
import gzip
import inspect
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import httpx
import uvicorn
import websockets
from websockets.exceptions import InvalidStatus

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server import uvicorn_private
from pyrt.server.ledger import HttpLimits, Ledger
from pyrt.server.sse_gzip import GzipStream
from pyrt.server.uvicorn_private import (
    METHOD,
    OWNERS,
    RELIED_ON,
    ChunkWriter,
    LimitedHttpProtocol,
    LimitedWebSocketProtocol,
    chunk_writer,
    missing,
    protocols,
    text_writer_of,
    transport_of,
)
from tests.server.wsclient import publish_http, run

# ------------------------------------------------------------------------------------ the canaries


@asynccontextmanager
async def uvicorn_server(app: Any, **options: Any) -> AsyncIterator[tuple[int, uvicorn.Config]]:
    """A real uvicorn server on 127.0.0.1, port 0, serving ``app``; yields its port and config."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", log_level="warning", **options)
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not serving.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        yield sock.getsockname()[1], config
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)


def probe_uvicorns_live_objects(**options: Any) -> dict[str, list[str]]:
    """Serve one HTTP request and one WebSocket with uvicorn's own protocols (``options`` choose
    them) and check, while each is live, what :data:`RELIED_ON` says of it."""
    found: dict[str, list[str]] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        owner = "RequestResponseCycle" if scope["type"] == "http" else "WebSocketsSansIOProtocol"
        bound = getattr(send, "__self__", None)
        if not isinstance(bound, OWNERS[owner]):
            found[owner] = [f"uvicorn's ASGI send is no longer a method of its {owner}"]
        else:
            found[owner] = missing(owner, bound)
        transport = transport_of(send)
        if transport is None:
            found[owner].append(f"uvicorn's {owner}.transport is gone")
        else:
            found["asyncio transport"] = missing("asyncio transport", transport)
        if scope["type"] == "http":
            if transport is not None:
                found["HttpToolsProtocol"] = missing("HttpToolsProtocol", transport.get_protocol())
            found["FlowControl"] = missing("FlowControl", getattr(bound, "flow", None))
            await receive()
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        else:
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1000})

    async def scenario() -> None:
        async with uvicorn_server(app, **options) as (port, config):
            found["Config"] = missing("Config", config)
            async with httpx.AsyncClient() as client:
                assert (await client.get(f"http://127.0.0.1:{port}/")).status_code == 204
            async with websockets.connect(f"ws://127.0.0.1:{port}/") as ws:
                await ws.wait_closed()

    run(asyncio.wait_for(scenario(), 20))
    return found


def test_canary_every_method_the_fence_overrides_or_calls_is_still_on_uvicorns_classes() -> None:
    problems = [problem for owner, cls in OWNERS.items() for problem in missing(owner, cls)]
    assert problems == [], "uvicorn moved what pyrt/server/uvicorn_private.py relies on:\n" + "\n".join(
        problems
    )


def test_canary_every_attribute_is_still_on_uvicorns_live_objects() -> None:
    found = probe_uvicorns_live_objects(http="httptools", ws="websockets-sansio", ws_per_message_deflate=True)
    owners = {owner for owner, _, _ in RELIED_ON}
    assert set(found) == owners, f"not probed: {owners - set(found)}"
    problems = [problem for found_ in found.values() for problem in found_]
    assert problems == [], "uvicorn moved what pyrt/server/uvicorn_private.py relies on:\n" + "\n".join(
        problems
    )


def test_canary_the_fenced_protocols_serve_the_same_probe() -> None:
    """uvicorn still takes the fenced classes as ``http=``/``ws=``, and builds them as before."""
    http, ws = protocols(Ledger(100, 10), HttpLimits())
    found = probe_uvicorns_live_objects(http=http, ws=ws, ws_per_message_deflate=True)
    problems = [problem for found_ in found.values() for problem in found_]
    assert problems == []


def test_a_missing_piece_is_named_with_its_owner_and_kind() -> None:
    class Moved:
        def __init__(self) -> None:
            self.pipeline = [1]  # a list where a deque is relied on

    assert "uvicorn's HttpToolsProtocol._start_asgi_task (method) is gone" in missing(
        "HttpToolsProtocol", Moved
    )
    assert "uvicorn's HttpToolsProtocol.pipeline is a list, not a deque" in missing(
        "HttpToolsProtocol", Moved()
    )
    assert missing("HttpToolsProtocol", Moved) == [
        f"uvicorn's HttpToolsProtocol.{name} (method) is gone"
        for owner, name, kind in RELIED_ON
        if owner == "HttpToolsProtocol" and kind == METHOD
    ]


#: Called by httptools itself when the protocol has it (its documented callbacks), not uvicorn.
PARSER_CALLBACKS = {"on_chunk_complete"}


def _touched() -> dict[str, set[str]]:
    """What the fence's classes read, call, set or override of uvicorn's objects, by owner:
    ``self.X`` and ``super().X`` in a protocol (its uvicorn base), ``cycle.X`` (a request's
    cycle), ``flow.X`` (its flow control), ``config.X``. The fence's own names are left out."""
    bases = {
        "LimitedHttpProtocol": "HttpToolsProtocol",
        "LimitedWebSocketProtocol": "WebSocketsSansIOProtocol",
    }
    tree = ast.parse(inspect.getsource(uvicorn_private))
    touched: dict[str, set[str]] = {owner: set() for owner in OWNERS}

    def owner_of(node: ast.expr, here: str | None) -> str | None:
        if isinstance(node, ast.Name):
            if node.id == "self":
                return bases.get(here or "")
            return {"cycle": "RequestResponseCycle", "config": "Config"}.get(node.id)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super":
            return bases.get(here or "")
        if isinstance(node, ast.Attribute):
            if node.attr in ("cycle", "_cycle"):
                return "RequestResponseCycle"
            if node.attr == "flow" and owner_of(node.value, here) in (
                "HttpToolsProtocol",
                "RequestResponseCycle",
            ):
                return "FlowControl"
        return None

    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef):
            continue
        own = {
            target.id
            for node in cls.body
            for target in ([node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", []))
            if isinstance(target, ast.Name)
        }
        for node in cls.body:
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and cls.name in bases
                and not node.name.startswith(("_pyrt", "pyrt_"))
                and node.name not in PARSER_CALLBACKS
            ):
                touched[bases[cls.name]].add(node.name)  # an override: it must still exist
        for node in ast.walk(cls):
            if isinstance(node, ast.Attribute):
                owner = owner_of(node.value, cls.name)
                name = node.attr
                if owner is None or name.startswith(("_pyrt", "pyrt_")) or name in own:
                    continue
                touched[owner].add(name)
    return touched


def test_the_list_names_everything_the_fenced_classes_touch() -> None:
    """A piece used but not listed would not be checked by the canaries; one listed but no
    longer used would make them fail for nothing."""
    listed: dict[str, set[str]] = {owner: set() for owner in OWNERS}
    for owner, name, _ in RELIED_ON:
        if owner in listed:
            listed[owner].add(name)
    touched = _touched()
    unlisted = {
        owner: sorted(names - listed[owner]) for owner, names in touched.items() if names - listed[owner]
    }
    assert unlisted == {}, "add these to RELIED_ON"
    # send (the bound ASGI send), transport (behind it) are read through getattr; the rest is
    # read or overridden in the classes
    through_send = {("RequestResponseCycle", "send"), ("RequestResponseCycle", "transport")}
    unused = sorted(
        (owner, name)
        for owner, names in listed.items()
        for name in names - touched[owner]
        if (owner, name) not in through_send
    )
    assert unused == []


def test_the_protocol_classes_are_built_bound_to_their_ledger() -> None:
    ledger, limits = Ledger(10, 2), HttpLimits(head_timeout=3.0)
    http, ws = protocols(ledger, limits, deflate_context=True)
    assert issubclass(http, LimitedHttpProtocol)
    assert issubclass(ws, LimitedWebSocketProtocol)
    assert (http._pyrt_ledger, ws._pyrt_ledger) == (ledger, ledger)
    assert (http._pyrt_limits, ws._pyrt_limits, ws._pyrt_deflate_context) == (limits, limits, True)
    other, _ = protocols(Ledger(10, 2), limits)
    assert other._pyrt_ledger is not ledger  # two servers, two ledgers


def test_a_connection_made_to_wait_outlives_uvicorns_keepalive_and_a_silent_one_does_not() -> None:
    """While its bytes wait unread (CPU share, no room), an unanswered keepalive ping waits
    another timeout; once read and still silent, uvicorn's timeout closes it with 1011."""
    timers: list[tuple[float, Callable[[], None]]] = []
    failed: list[tuple[int, str]] = []
    closed: list[bool] = []
    ws = LimitedWebSocketProtocol.__new__(LimitedWebSocketProtocol)
    ws.loop = SimpleNamespace(call_later=lambda delay, then: timers.append((delay, then)) or "timer")  # type: ignore[assignment]
    ws.transport = SimpleNamespace(  # type: ignore[assignment]
        is_closing=lambda: bool(closed), write=lambda data: None, close=lambda: closed.append(True)
    )
    ws.conn = SimpleNamespace(
        fail=lambda code, reason: failed.append((code, reason)), data_to_send=lambda: []
    )  # type: ignore[assignment]
    ws.ping_timeout = 20.0
    ws.close_sent = False
    ws.read_paused = False
    ws.queue = SimpleNamespace(empty=lambda: True)  # type: ignore[assignment]
    ws.logger = SimpleNamespace(level=100)  # type: ignore[assignment]
    ws.client = None  # type: ignore[assignment]
    ws._pyrt_held = b'{"type":"pong"}'  # read in its turn: the pong may be in there
    ws.keepalive_timeout()
    assert [delay for delay, _ in timers] == [20.0]
    assert (failed, closed) == ([], [])
    ws._pyrt_held = b""
    ws.read_paused = True  # no room for its messages: not read either
    timers[-1][1]()
    assert len(timers) == 2
    assert failed == []
    ws._pyrt_blocked = True  # paused because the client does not read: that is no excuse
    timers[-1][1]()
    assert failed == [(1011, "keepalive ping timeout")]
    assert closed == [True]


def test_asyncio_transports_still_hold_the_socket_a_refusal_closes() -> None:
    async def scenario() -> list[str]:
        ours, theirs = socket.socketpair()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        try:
            return missing("asyncio transport", transport)
        finally:
            transport.close()
            theirs.close()

    assert run(scenario()) == []


def test_other_servers_sends_give_no_transport_and_no_writer() -> None:
    async def send(message: dict[str, Any]) -> None:
        return None

    for value in (None, send, print):
        assert transport_of(value) is None
        assert text_writer_of(value) is None
        assert chunk_writer(value) is None


# ------------------------------------------------------------------------------------ denied handshakes


def test_a_denied_websocket_handshake_logs_one_info_line_and_no_error(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    srv = pyrt_start_server("--demo", "--demo-tick", "0")
    cid = uuid.uuid4().hex[:8]

    async def scenario() -> list[int]:
        statuses = []
        try:  # a foreign Origin: refused before the handshake is accepted (websocket.close)
            async with websockets.connect(f"{srv.ws_url}/ws?cid={cid}", origin="https://evil.example"):
                pass
        except InvalidStatus as exc:
            statuses.append(exc.response.status_code)
        async with httpx.AsyncClient() as client:
            blocked = await client.post(f"{srv.url}/demo/block", json={"cid": cid, "seconds": 30})
            assert blocked.status_code == 200
        try:  # blocked: refused with an HTTP response (websocket.http.response, as 429 and 503)
            async with websockets.connect(f"{srv.ws_url}/ws?cid={cid}"):
                pass
        except InvalidStatus as exc:
            statuses.append(exc.response.status_code)
        return statuses

    assert run(scenario()) == [403, 403]
    srv.stop()  # every line it wrote is in the log now
    log = srv.log_text().splitlines()
    assert [line for line in log if "ERROR" in line] == []
    about = [line for line in log if f"cid={cid}" in line and "WebSocket" in line]
    assert len(about) == 2, about
    assert all(line.startswith("INFO") and line.endswith(" 403") for line in about), about
    assert [line for line in log if "connection rejected" in line or "HTTP response sent" in line] == []


# ------------------------------------------------------------------------------------ SSE chunks around ASGI


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closing


def cycle(**state: Any) -> SimpleNamespace:
    values: dict[str, Any] = {
        "response_started": True,
        "chunked_encoding": True,
        "response_complete": False,
        "disconnected": False,
        "flow": SimpleNamespace(write_paused=False),
        "transport": FakeTransport(),
    }
    values.update(state)
    return SimpleNamespace(**values)


def dechunk(data: bytes) -> bytes:
    out, pos = b"", 0
    while pos < len(data):
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end], 16)
        out += data[end + 2 : end + 2 + size]
        assert data[end + 2 + size : end + 4 + size] == b"\r\n"
        pos = end + 4 + size
    return out


def test_chunks_are_written_in_the_chunked_encoding() -> None:
    state = cycle()
    writer = ChunkWriter(state, None)
    assert writer.pyrt_ready()
    writer.pyrt_send_body(b"data: 1\n\n")
    writer.pyrt_send_body(b"")  # nothing to write: no empty chunk (that would end the body)
    writer.pyrt_send_body(b"data: 2\n\n")
    assert state.transport.written == [b"9\r\ndata: 1\n\n\r\n", b"9\r\ndata: 2\n\n\r\n"]


def test_it_is_not_ready_unless_the_response_streams_and_the_socket_has_room() -> None:
    for blocked in (
        {"response_started": False},
        {"chunked_encoding": False},
        {"response_complete": True},
        {"disconnected": True},
        {"flow": SimpleNamespace(write_paused=True)},
    ):
        assert not ChunkWriter(cycle(**blocked), None).pyrt_ready(), blocked


def test_gzip_chunks_share_the_streams_compressor_in_order() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def scenario() -> bytes:
        stream = GzipStream(send)
        state = cycle()
        writer = ChunkWriter(state, stream.compress)
        await stream({"type": "http.response.start", "status": 200, "headers": []})
        writer.pyrt_send_body(b"data: 1\n\n")
        await stream({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": True})
        writer.pyrt_send_body(b"data: 3\n\n")
        await stream({"type": "http.response.body", "body": b"", "more_body": False})
        direct = [dechunk(chunk) for chunk in state.transport.written]
        asgi = [message["body"] for message in sent[1:]]
        return direct[0] + asgi[0] + direct[1] + asgi[1]

    assert gzip.decompress(asyncio.run(scenario())) == b"data: 1\n\ndata: 2\n\ndata: 3\n\n"


def test_serve_py_streams_a_burst_in_order_with_and_without_gzip(pyrt_server: ServerProcess) -> None:
    channel = f"burst-{uuid.uuid4().hex[:8]}"

    async def read(encoding: str, ready: asyncio.Event, count: int) -> list[str]:
        headers = {"Accept-Encoding": encoding, "Accept": "text/event-stream"}
        got: list[str] = []
        async with (
            httpx.AsyncClient(timeout=20) as client,
            client.stream("GET", f"{pyrt_server.url}/sse?channel={channel}", headers=headers) as response,
        ):
            assert response.headers.get("content-encoding") == ("gzip" if encoding == "gzip" else None)
            ready.set()
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    got.append(line[6:])
                    if len(got) == count:
                        return got
        return got

    async def scenario() -> None:
        plain_ready, gzip_ready = asyncio.Event(), asyncio.Event()
        readers = [
            asyncio.ensure_future(read("identity", plain_ready, 200)),
            asyncio.ensure_future(read("gzip", gzip_ready, 200)),
        ]
        # The headers come after the subscription took effect: nothing published now is missed.
        await asyncio.wait_for(asyncio.gather(plain_ready.wait(), gzip_ready.wait()), 10)
        await asyncio.gather(*(publish_http(pyrt_server.url, channel, n) for n in range(200)))
        plain, zipped = await asyncio.wait_for(asyncio.gather(*readers), 20)
        assert sorted(int(x) for x in plain) == list(range(200))
        assert zipped == plain  # the same publications in the same (offset) order

    run(scenario())
