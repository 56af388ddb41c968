"""A small SSE server on sse-starlette that the SSE browser tests control, and that no one here wrote
the SSE framing of (sse-starlette writes CRLF line endings by default).

Run: ``python -m tests.browser.sse_fault_app`` — binds 127.0.0.1 on a free port and prints
``sse-fault-app listening on http://127.0.0.1:PORT``. CORS admits any ``http://127.0.0.1:*`` page.

``GET|POST /stream`` query parameters (all optional):

- ``key``: the name under which requests are logged (``GET /log?key=...`` returns the log);
- ``fail=K`` (+ ``fail_status``, default 500, + ``retry_after``): the first K requests of this
  key get that status instead of a stream; ``fail_at=I,J``: so do requests number I and J;
- ``status=S``: every request gets status S (204, 401, 404 ...), no stream;
- ``content_type=T``: answer 200 with that content type and an SSE-looking body;
- ``auth=TOKEN``: require ``Authorization: Bearer TOKEN`` (401 otherwise); ``body=TEXT``:
  require exactly that request body (400 otherwise);
- ``n`` (default 3) events per connection, numbered after the ``Last-Event-ID`` header (or the
  ``lastEventId`` query parameter), up to ``total``; once all are sent, requests get 204;
- ``event``: the event type; ``retry``: a ``retry:`` (ms) sent first; ``sep``: ``crlf`` (default),
  ``lf`` or ``cr`` line endings;
- ``silent=1``: after the events, keep the response open and send nothing (no pings);
  the log records when the client went away (``disconnected``).
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import uvicorn
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

LOG: dict[str, list[dict[str, Any]]] = {}
SEPS = {"crlf": "\r\n", "lf": "\n", "cr": "\r"}


async def stream(request: Request) -> Response:
    q = request.query_params
    key = q.get("key", "default")
    log = LOG.setdefault(key, [])
    body = (await request.body()).decode("utf-8", errors="replace")
    last = request.headers.get("last-event-id") or q.get("lastEventId") or ""
    record: dict[str, Any] = {
        "t": time.monotonic(),
        "method": request.method,
        "last_event_id_header": request.headers.get("last-event-id"),
        "last_event_id_param": q.get("lastEventId"),
        "accept": request.headers.get("accept"),
        "authorization": request.headers.get("authorization"),
        "body": body,
        "status": 200,
    }
    log.append(record)

    def refuse(status: int, headers: dict[str, str] | None = None) -> Response:
        record["status"] = status
        return Response(status_code=status, headers=headers)

    fail_at = {int(i) for i in q.get("fail_at", "").split(",") if i}
    if len(log) <= int(q.get("fail", "0")) or len(log) in fail_at:
        retry_after = q.get("retry_after")
        return refuse(int(q.get("fail_status", "500")), {"Retry-After": retry_after} if retry_after else None)
    if "status" in q:
        return refuse(int(q["status"]))
    if "content_type" in q:
        return PlainTextResponse("data: not an event stream\n\n", media_type=q["content_type"])
    if "auth" in q and request.headers.get("authorization") != f"Bearer {q['auth']}":
        return refuse(401)
    if "body" in q and body != q["body"]:
        return refuse(400)

    start = int(last) if last.isdigit() else 0
    total = int(q.get("total", "1000000000"))
    if start >= total:
        return refuse(204)
    stop = min(start + int(q.get("n", "3")), total)
    sep = SEPS[q.get("sep", "crlf")]

    async def events() -> AsyncIterator[ServerSentEvent]:
        if "retry" in q:
            yield ServerSentEvent(retry=int(q["retry"]), sep=sep)
        for n in range(start + 1, stop + 1):
            data = json.dumps({"n": n, "method": request.method, "body": body})
            yield ServerSentEvent(data=data, id=str(n), event=q.get("event"), sep=sep)
        if "silent" in q:
            try:
                await asyncio.sleep(3600)
            finally:
                record["disconnected"] = time.monotonic()

    return EventSourceResponse(events(), sep=sep, ping=0)


async def get_log(request: Request) -> Response:
    return JSONResponse(LOG.get(request.query_params.get("key", "default"), []))


app = Starlette(
    routes=[Route("/stream", stream, methods=["GET", "POST"]), Route("/log", get_log)],
    middleware=[
        Middleware(
            CORSMiddleware,
            allow_origin_regex=r"http://127\.0\.0\.1:\d+",
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            expose_headers=["Retry-After"],
            allow_credentials=True,
        )
    ],
)


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.listen(128)  # before saying so: a client that connects before uvicorn runs waits in the backlog
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    print(f"sse-fault-app listening on http://127.0.0.1:{port}", flush=True)
    server.run(sockets=[sock])
    sys.exit(0)


if __name__ == "__main__":
    main()


class FaultApp:
    """This app as a subprocess (for the test process); :meth:`log` reads a key's request log."""

    def __init__(self, timeout: float = 20.0) -> None:
        import subprocess
        import threading
        from pathlib import Path

        repo = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.browser.sse_fault_app"],
            cwd=repo,
            stdout=subprocess.PIPE,
            text=True,
        )
        found: list[str] = []

        def read() -> None:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            if line.startswith("sse-fault-app listening on "):
                found.append(line.split(" on ", 1)[1].strip())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if not found:
            self.stop()
            raise RuntimeError(f"the SSE fault app did not start within {timeout}s")
        self.url = found[0]

    def log(self, key: str) -> list[dict[str, Any]]:
        import httpx

        response = httpx.get(f"{self.url}/log", params={"key": key}, timeout=10)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    def wait_log(
        self, key: str, ok: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Poll the request log of ``key`` until ``ok(log)`` holds (or fail after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log(key)
            if ok(log):
                return log
            if time.monotonic() > deadline:
                raise AssertionError(f"server log for {key} never satisfied the condition: {log}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:
                self.proc.kill()
                self.proc.wait()
