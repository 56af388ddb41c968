"""FetchEventSource and EventSourceClient on CPython (``httpx``) against serve.py and the SSE fault app.

The same behaviour as the browser tier (tests/browser/test_fetch_transport.py and
test_eventsource_transport.py): resume after a dropped connection without a gap, statuses, headers and
bodies, stall detection, close aborting the request; plus examples/cli_tail.py.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from pyrt import (
    Backoff,
    EventSourceClient,
    FetchEventSource,
    SSEHTTPError,
    SSEStalledError,
)
from pyrt.cpython import RelativeURLError
from pyrt.cpython.sse import CPythonEventSourceClient, CPythonFetchEventSource
from pyrt.errors import SSEError
from pyrt.sse import ServerSentEvent
from pyrt.sse_policy import SSEState
from tests.browser.sse_fault_app import FaultApp
from tests.server.cpython_support import Controls, new_cid, run, until
from tests.serverproc import REPO, ServerProcess, wait_until

FAST = Backoff(initial=0.05, maximum=0.1, jitter="none")


@pytest.fixture(scope="module")
def fault_app() -> Iterator[FaultApp]:
    app = FaultApp()
    yield app
    app.stop()


def test_outside_pyodide_the_classes_build_the_httpx_adapters() -> None:
    fetch = FetchEventSource("http://127.0.0.1:1/sse", headers={"X": "1"}, method="POST", body="b")
    native = EventSourceClient("http://127.0.0.1:1/sse", with_credentials=True)
    assert type(fetch) is CPythonFetchEventSource
    assert isinstance(fetch, FetchEventSource)
    assert (fetch.method, fetch.body) == ("POST", "b")
    assert type(native) is CPythonEventSourceClient
    assert isinstance(native, EventSourceClient)
    assert native.with_credentials is True


@pytest.mark.parametrize("cls", [FetchEventSource, EventSourceClient])
def test_a_relative_url_is_a_clear_error_naming_the_fix(cls: Any) -> None:
    async def scenario() -> None:
        client = cls("/sse?channel=x")
        with pytest.raises(RelativeURLError, match=re.escape("http://127.0.0.1:8000/sse")):
            client.connect()
        assert client.state is SSEState.IDLE

    run(scenario)


@pytest.mark.parametrize("cls", [FetchEventSource, EventSourceClient])
def test_published_events_arrive_with_their_type_and_offset(server: ServerProcess, cls: Any) -> None:
    async def scenario() -> None:
        channel = f"feed-{new_cid()}"
        client = cls(f"{server.url}/sse?channel={channel}")
        messages: list[ServerSentEvent] = []
        alerts: list[ServerSentEvent] = []
        client.on_message = messages.append
        client.on("alert", alerts.append)
        await client.connect().wait_open(10)
        async with Controls(server) as ctl:
            first = await ctl.publish(channel, {"n": 1})
            second = await ctl.publish(channel, "fire", event="alert")
        await until(lambda: messages and alerts)
        client.close()
        assert [(e.type, e.json(), e.id) for e in messages] == [("message", {"n": 1}, first)]
        assert [(e.type, e.json(), e.id) for e in alerts] == [("alert", "fire", second)]
        assert client.last_event_id == second

    run(scenario)


@pytest.mark.parametrize("cls", [FetchEventSource, EventSourceClient])
def test_a_dropped_connection_resumes_without_a_gap(server: ServerProcess, cls: Any) -> None:
    async def scenario() -> None:
        cid = new_cid()
        channel = f"resume-{cid}"
        client = cls(f"{server.url}/sse?channel={channel}&cid={cid}", backoff=FAST)
        got: list[Any] = []
        errors: list[SSEError] = []
        client.on_message = lambda event: got.append(event.json())
        client.on_error = errors.append
        await client.connect().wait_open(10)
        async with Controls(server) as ctl:
            for n in range(3):
                await ctl.publish(channel, n)
            await until(lambda: len(got) == 3)
            assert await ctl.drop(cid) == 1
            await until(lambda: errors)
            for n in range(3, 6):
                await ctl.publish(channel, n)  # while the client is away (retry: 1000 ms)
            await until(lambda: client.stats.opens == 2, timeout=15)
            for n in range(6, 9):
                await ctl.publish(channel, n)
            await until(lambda: len(got) >= 9, timeout=15)
        client.close()
        assert got == list(range(9))
        assert client.stats.disconnects == 1

    run(scenario)


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


def test_event_source_recreates_the_native_object_with_the_last_id_in_the_url(fault_app: FaultApp) -> None:
    """Like the browser: the native object resumes a dropped stream itself (header); after an
    HTTP error it gives up, and the policy re-creates it with ``?lastEventId=``."""
    key = new_cid()

    async def scenario() -> None:
        client = EventSourceClient(
            f"{fault_app.url}/stream?key={key}&n=3&total=6&retry=50&fail_at=2", backoff=FAST
        )
        got: list[int] = []
        client.on_message = lambda event: got.append(event.json()["n"])
        client.connect()
        await until(lambda: len(got) == 6, timeout=15)
        client.close()
        assert got == [1, 2, 3, 4, 5, 6]

    run(scenario)
    log = fault_app.log(key)
    assert [(r["status"], r["last_event_id_header"], r["last_event_id_param"]) for r in log[:3]] == [
        (200, None, None),  # the first object
        (500, "3", None),  # its own reconnect, with the header: fails for good
        (200, None, "3"),  # a new object, resuming by query parameter
    ]


def test_a_stalled_stream_is_detected_and_reopened(server: ServerProcess) -> None:
    async def scenario() -> None:
        cid = new_cid()
        channel = f"stall-{cid}"
        client = FetchEventSource(
            f"{server.url}/sse?channel={channel}&cid={cid}", stall_timeout=0.5, backoff=FAST
        )
        errors: list[SSEError] = []
        got: list[Any] = []
        client.on_error = errors.append
        client.on_message = lambda event: got.append(event.json())
        await client.connect().wait_open(10)
        async with Controls(server) as ctl:
            assert await ctl.stall(cid, 3) == 1
            await until(lambda: errors, timeout=5)
            await until(lambda: client.stats.opens == 2, timeout=10)
            await ctl.publish(channel, "after")
            await until(lambda: got)
        client.close()
        assert isinstance(errors[0], SSEStalledError)
        assert got == ["after"]

    run(scenario)


@pytest.mark.parametrize("cls", [FetchEventSource, EventSourceClient])
def test_close_aborts_the_request_on_the_server(fault_app: FaultApp, cls: Any) -> None:
    key = new_cid()

    async def scenario() -> None:
        client = cls(f"{fault_app.url}/stream?key={key}&n=1&silent=1")
        got: list[ServerSentEvent] = []
        client.on_message = got.append
        client.connect()
        await until(lambda: got)
        client.close()
        assert client.ready_state == client.CLOSED
        await until(lambda: not client._tasks, timeout=5)  # the request task and the http client

    run(scenario)
    # The server sees the client go away (and no second request comes).
    log = wait_until(lambda: [r for r in fault_app.log(key) if "disconnected" in r], timeout=10)
    assert len(fault_app.log(key)) == len(log) == 1


# ------------------------------------------------------------------------------- examples/cli_tail.py


def _lines(stream: Any, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line.rstrip("\n"))


def test_cli_tail_prints_events_published_while_it_runs(server: ServerProcess) -> None:
    channel = f"tail-{new_cid()}"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "examples" / "cli_tail.py"), server.url, channel, "--count", "2"],
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
            async with Controls(server) as ctl:
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
