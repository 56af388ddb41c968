"""FetchEventSource on CPython: CPythonFetchTransport (``httpx`` streaming) against serve.py and
the SSE fault app.

The same behaviour as the browser tier (tests/browser/test_fetch_transport.py): resume after a
dropped connection without a gap, statuses, headers and bodies, stall detection, close aborting
the request; plus examples/cli_tail.py.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from pyrt import FetchEventSource, SSEHTTPError, SSEStalledError
from pyrt.cpython.fetch_transport import CPythonFetchTransport
from pyrt.errors import SSEError
from pyrt.pytest_plugin.server_process import ServerProcess
from tests import REPO
from tests.browser.sse_fault_app import FaultApp
from tests.server import sse_scenarios
from tests.server.cpython_support import Controls, new_cid, run, until
from tests.server.sse_scenarios import FAST


@pytest.fixture(scope="module")
def fault_app() -> Iterator[FaultApp]:
    app = FaultApp()
    yield app
    app.stop()


def test_outside_pyodide_the_client_reads_over_httpx() -> None:
    async def scenario() -> None:
        client = FetchEventSource("http://127.0.0.1:9/sse", backoff=FAST)
        client.connect()
        assert type(client._transport) is CPythonFetchTransport
        client.close()

    run(scenario)


def test_published_events_arrive_with_their_type_and_offset(pyrt_server: ServerProcess) -> None:
    sse_scenarios.published_events_arrive_with_their_type_and_offset(pyrt_server, FetchEventSource)


def test_a_dropped_connection_resumes_without_a_gap(pyrt_server: ServerProcess) -> None:
    sse_scenarios.dropped_connection_resumes_without_a_gap(pyrt_server, FetchEventSource)


def test_close_aborts_the_request_on_the_server(fault_app: FaultApp) -> None:
    sse_scenarios.close_aborts_the_request_on_the_server(fault_app, FetchEventSource)


def test_async_for_ends_quietly_when_the_server_answers_204(fault_app: FaultApp) -> None:
    key = new_cid()

    async def scenario() -> None:
        client = FetchEventSource(f"{fault_app.url}/stream?key={key}&n=3&total=7", backoff=FAST)
        got = [event.json()["n"] async for event in client]
        assert got == list(range(1, 8))
        assert client.error is None
        assert client.ready_state == client.CLOSED

    run(scenario)
    # Each reconnect resumed with the Last-Event-ID header; the last request got 204.
    log = fault_app.log(key)
    assert [(r["status"], r["last_event_id_header"]) for r in log] == [
        (200, None),
        (200, "3"),
        (200, "6"),
        (204, "7"),
    ]


def test_fetch_sends_headers_and_body_and_resumes_by_header(fault_app: FaultApp) -> None:
    key = new_cid()

    async def scenario() -> None:
        client = FetchEventSource(
            f"{fault_app.url}/stream?key={key}&n=2&total=4&auth=sesame&body=hello",
            method="POST",
            body="hello",
            headers={"Authorization": "Bearer sesame"},
            backoff=FAST,
        )
        got = [event.json() async for event in client]
        assert [(e["n"], e["method"], e["body"]) for e in got] == [(n, "POST", "hello") for n in (1, 2, 3, 4)]

    run(scenario)
    log = fault_app.log(key)
    assert [r["last_event_id_header"] for r in log] == [None, "2", "4"]
    assert {r["accept"] for r in log} == {"text/event-stream"}
    assert [r["status"] for r in log] == [200, 200, 204]


def test_fetch_retries_a_500_and_stops_on_a_401(fault_app: FaultApp) -> None:
    async def scenario() -> None:
        retried = FetchEventSource(f"{fault_app.url}/stream?key={new_cid()}&fail=2&n=1&total=1", backoff=FAST)
        errors: list[SSEError] = []
        retried.on_error = errors.append
        assert [e.json()["n"] async for e in retried] == [1]
        assert [type(e).__name__ for e in errors][:2] == ["SSEHTTPError", "SSEHTTPError"]
        assert [e.status for e in errors[:2] if isinstance(e, SSEHTTPError)] == [500, 500]

        refused = FetchEventSource(f"{fault_app.url}/stream?key={new_cid()}&auth=x", backoff=FAST)
        with pytest.raises(SSEHTTPError) as info:
            async for _ in refused:
                pass
        assert (info.value.status, info.value.retryable) == (401, False)

    run(scenario)


def test_a_503_with_retry_after_is_waited_out(fault_app: FaultApp) -> None:
    sse_scenarios.a_503_with_retry_after_is_waited_out(fault_app, FetchEventSource)


def test_a_stalled_stream_is_detected_and_reopened(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        cid = new_cid()
        channel = f"stall-{cid}"
        client = FetchEventSource(
            f"{pyrt_server.url}/sse?channel={channel}&cid={cid}", stall_timeout=0.5, backoff=FAST
        )
        errors: list[SSEError] = []
        got: list[Any] = []
        client.on_error = errors.append
        client.on_message = lambda event: got.append(event.json())
        await client.connect().wait_open(10)
        async with Controls(pyrt_server) as ctl:
            assert await ctl.stall(cid, 3) == 1
            await until(lambda: errors, timeout=5)
            await until(lambda: client.stats.opens == 2, timeout=10)
            await ctl.publish(channel, "after")
            await until(lambda: got)
        client.close()
        assert isinstance(errors[0], SSEStalledError)
        assert got == ["after"]

    run(scenario)


# ------------------------------------------------------------------------------- examples/cli_tail.py


def _lines(stream: Any, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line.rstrip("\n"))


def test_cli_tail_prints_events_published_while_it_runs(pyrt_server: ServerProcess) -> None:
    channel = f"tail-{new_cid()}"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "examples" / "cli_tail.py"), pyrt_server.url, channel, "--count", "2"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, out), daemon=True).start()
    threading.Thread(target=_lines, args=(proc.stderr, err), daemon=True).start()
    try:
        assert err.get(timeout=30).startswith("# connected to ")

        async def publish() -> None:
            async with Controls(pyrt_server) as ctl:
                await ctl.publish(channel, {"hello": "terminal"})
                await ctl.publish(channel, "bye", event="note")

        run(publish)
        first, second = out.get(timeout=30), out.get(timeout=30)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert first.split("\t")[1:] == ["message", '{"hello":"terminal"}']
    assert second.split("\t")[1:] == ["note", '"bye"']
