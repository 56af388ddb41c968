"""The bench server: a deliberately fast local peer for the client benchmarks.

Built directly on the ``websockets`` library so the browser, not the server, is the bottleneck:
the message flood is pre-encoded once and written to the socket in one call, and the SSE flood is
one pre-built response body. It also serves the bench pages, the vendored Pyodide/PyScript and the
working-tree ``pyrt`` as ``/pyrt.zip`` from the same origin (so ``fetch`` and ``EventSource`` need
no CORS), with cross-origin isolation headers so ``performance.now()`` has 5 µs resolution.

Run: ``python -m bench.server [--port 0]``; it prints ``bench-server listening on http://HOST:PORT``.

WebSocket endpoints (text frames unless said otherwise):

- ``/flood?n=N``: after the first frame from the client, N JSON messages of ~60 bytes
  (``{"seq":i,...}``, i = 1..N) written back to back.
- ``/echo``: every text or binary frame goes back unchanged.
- ``/hello``: one message as soon as the connection opens, then echo.
- ``/blob``: the text ``get N`` answers with N bytes in one binary frame; a binary frame is
  answered with its length as text.
- ``/pyrt``: a minimal speaker of the pyrt protocol (docs/protocol.md): welcome, ping/pong, acks
  (the ack carries the message's data back) and fire-and-forget messages echoed as ``message``.

HTTP: ``/sse-flood?n=N`` is an event stream of N events (``id:`` = seq, the same JSON as the flood)
and a final ``event: done``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import mimetypes
import zipfile
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

REPO = Path(__file__).resolve().parents[1]
PAGES = Path(__file__).resolve().parent / "pages"
VENDOR = {
    "/vendor/pyodide/": REPO / "node_modules" / "pyodide",
    "/vendor/pyscript/": REPO / "node_modules" / "@pyscript" / "core" / "dist",
}
READY_PREFIX = "bench-server listening on "
MAX_FRAME = 64 * 1024 * 1024

mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/x-python", ".py")


def flood_message(seq: int) -> bytes:
    """The ~60-byte JSON message number ``seq`` of every flood (WebSocket and SSE)."""
    return b'{"seq":%d,"ts":1732520000.123,"kind":"tick","v":"abcdefghij"}' % seq


@lru_cache(maxsize=8)
def flood_frames(n: int) -> bytes:
    """N unmasked WebSocket text frames (server to client), concatenated."""
    out = bytearray()
    for seq in range(1, n + 1):
        payload = flood_message(seq)
        out += bytes((0x81, len(payload)))  # FIN + text; every payload is < 126 bytes
        out += payload
    return bytes(out)


@lru_cache(maxsize=8)
def sse_body(n: int) -> bytes:
    parts = [b"retry: 600000\n\n"]
    parts.extend(b"id: %d\ndata: %s\n\n" % (seq, flood_message(seq)) for seq in range(1, n + 1))
    parts.append(b"event: done\ndata: %d\n\n" % n)
    return b"".join(parts)


def pyrt_zip() -> bytes:
    """The working-tree ``pyrt`` package (without the CPython-only server) as a zip."""
    package = REPO / "pyrt"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(package.rglob("*")):
            rel = path.relative_to(package)
            if not path.is_file() or rel.parts[0] in {"server", "__pycache__"}:
                continue
            if path.suffix == ".py" or path.name == "py.typed":
                zf.writestr(str(Path("pyrt") / rel), path.read_bytes())
    return buf.getvalue()


def _response(status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> Response:
    headers = Headers(
        {
            "Content-Type": content_type,
            "Content-Length": str(len(body)),
            "Cache-Control": "no-store",
            "Connection": "close",
            # Cross-origin isolation: precise performance.now() in the pages.
            "Cross-Origin-Opener-Policy": "same-origin",
            "Cross-Origin-Embedder-Policy": "require-corp",
            "Cross-Origin-Resource-Policy": "same-origin",
            **(extra or {}),
        }
    )
    reason = {200: "OK", 404: "Not Found"}.get(status, "Error")
    return Response(status, reason, headers, body)


def _static(path: str) -> Response | None:
    for prefix, directory in VENDOR.items():
        if path.startswith(prefix):
            target = (directory / path[len(prefix) :]).resolve()
            if directory.resolve() in target.parents and target.is_file():
                kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
                return _response(200, target.read_bytes(), kind)
            return None
    name = path.lstrip("/") or "bench.html"
    target = (PAGES / name).resolve()
    if target.parent == PAGES.resolve() and target.is_file():
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if kind.startswith("text/"):
            kind += "; charset=utf-8"
        return _response(200, target.read_bytes(), kind)
    return None


def process_request(connection: ServerConnection, request: Request) -> Response | None:
    """Plain HTTP requests (no ``Upgrade``) get files and the SSE flood; upgrades pass through."""
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return None
    url = urlsplit(request.path)
    if url.path == "/pyrt.zip":
        return _response(200, pyrt_zip(), "application/zip")
    if url.path == "/sse-flood":
        n = int(parse_qs(url.query).get("n", ["1000"])[0])
        return _response(200, sse_body(n), "text/event-stream")
    return _static(url.path) or _response(404, b"not found\n", "text/plain")


async def _flood(ws: ServerConnection, n: int) -> None:
    frames = flood_frames(n)
    await ws.recv()  # the client says when it is ready
    ws.transport.write(frames)  # pre-encoded: the fastest possible sender
    await ws.wait_closed()


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def _blob(ws: ServerConnection) -> None:
    async for message in ws:
        if isinstance(message, str):
            if message.startswith("get "):
                await ws.send(b"\x5a" * int(message[4:]))
        else:
            await ws.send(str(len(message)))


#: What the bench's pyrt speaker advertises, as serve.py advertises its own: limits a sequential
#: request/response loop never reaches, so the RTT row measures latency, not pacing (the row
#: against serve.py's defaults is benchmark 9's sequential acks).
SPEAKER_LIMITS = {"rate": 100_000, "burst": 100_000, "window": 100_000, "max_bytes": 1 << 20}


async def _pyrt(ws: ServerConnection) -> None:
    welcome = {
        "type": "welcome",
        "session": "bench",
        "server": "bench",
        "heartbeat": 0,
        "limits": SPEAKER_LIMITS,
    }
    await ws.send(json.dumps(welcome))
    async for raw in ws:
        try:
            frame = json.loads(raw)
        except (TypeError, ValueError):
            continue
        kind = frame.get("type")
        if kind == "ping":
            await ws.send(json.dumps({"type": "pong", "t": frame.get("t")}))
        elif kind == "message" and "id" in frame:
            await ws.send(
                json.dumps({"type": "ack", "id": frame["id"], "ok": True, "data": frame.get("data")})
            )
        elif kind == "message":
            await ws.send(json.dumps({"type": "message", "data": frame.get("data")}))


async def handler(ws: ServerConnection) -> None:
    assert ws.request is not None
    url = urlsplit(ws.request.path)
    query = parse_qs(url.query)
    try:
        if url.path == "/flood":
            await _flood(ws, int(query.get("n", ["1000"])[0]))
        elif url.path == "/echo":
            await _echo(ws)
        elif url.path == "/hello":
            await ws.send('{"hello":1}')
            await _echo(ws)
        elif url.path == "/blob":
            await _blob(ws)
        elif url.path == "/pyrt":
            await _pyrt(ws)
        else:
            await ws.close(1008, "unknown path")
    except ConnectionClosed:
        pass


def _select_subprotocol(connection: ServerConnection, subprotocols: object) -> str | None:
    offered = list(subprotocols) if isinstance(subprotocols, list | tuple) else []
    return "pyrt.v1" if "pyrt.v1" in offered else None


async def main_async(host: str, port: int) -> None:
    async with serve(
        handler,
        host,
        port,
        process_request=process_request,
        select_subprotocol=_select_subprotocol,  # type: ignore[arg-type]
        compression=None,
        max_size=MAX_FRAME,
        max_queue=None,
        ping_interval=None,
        backlog=2048,
    ) as server:
        sock = next(iter(server.sockets))
        bound_host, bound_port = sock.getsockname()[:2]
        print(f"{READY_PREFIX}http://{bound_host}:{bound_port}", flush=True)
        await asyncio.Future()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main_async(args.host, args.port))


if __name__ == "__main__":
    main()
