"""FetchEventSource in Chromium + Pyodide against an sse-starlette server the tests control."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pyrt.pytest_plugin.pyodide_page import PyodidePage
from tests.browser.sse_fault_app import FaultApp

PRELUDE = """
import asyncio, js
from pyrt.engine.backoff import Backoff
from pyrt.aio.fetch_event_source import FetchEventSource
from pyrt.browser.proxies import live_count
from pyrt.errors import SSEError, SSEHTTPError, SSEContentTypeError, SSEStalledError

FAST = Backoff(initial=0.05, maximum=0.2)

from pyrt.testing import until

async def collect(client, limit=None, timeout=15.0):
    got = []
    async def run():
        async for event in client:
            got.append([event.type, event.id, event.json()["n"]])
            if limit is not None and len(got) >= limit:
                client.close()
    await asyncio.wait_for(run(), timeout)
    return got
"""

_keys = itertools.count()


@pytest.fixture(scope="module")
def fault() -> Iterator[FaultApp]:
    app = FaultApp()
    yield app
    app.stop()


@pytest.fixture(scope="module")
def page(py: PyodidePage, fault: FaultApp) -> PyodidePage:
    """The module's Pyodide page; the fault app is another origin on localhost, which the page may
    reach (only requests that leave localhost are intercepted)."""
    return py


@pytest.fixture
def key() -> str:
    return f"fetch-{next(_keys)}-{time.monotonic_ns()}"


def run(page: PyodidePage, code: str, **kwargs: Any) -> Any:
    return page.run(PRELUDE + code, **kwargs)


@pytest.mark.parametrize("sep", ["crlf", "lf", "cr"])
def test_stream_end_resumes_with_last_event_id_no_gap_no_duplicate(
    page: PyodidePage, fault: FaultApp, key: str, sep: str
) -> None:
    got = run(
        page,
        f"""
client = FetchEventSource("{fault.url}/stream?key={key}&n=2&total=5&sep={sep}", backoff=FAST)
events = await collect(client)
[events, client.ready_state.name, client.error is None]
""",
    )
    assert got == [[["message", str(n), n] for n in range(1, 6)], "CLOSED", True]
    log = fault.log(key)
    assert [r["last_event_id_header"] for r in log] == [None, "2", "4", "5"]
    assert [r["status"] for r in log] == [200, 200, 200, 204]  # 204: stopped for good
    assert {r["accept"] for r in log} == {"text/event-stream"}


def test_http_500_is_retried_with_backoff_until_the_stream_opens(
    page: PyodidePage, fault: FaultApp, key: str
) -> None:
    got = run(
        page,
        f"""
client = FetchEventSource("{fault.url}/stream?key={key}&fail=2&n=3&total=3", backoff=FAST)
errors = []
client.on_error = lambda e: errors.append([type(e).__name__, getattr(e, "status", None)])
events = await collect(client)
[[e[2] for e in events], errors[:2]]
""",
    )
    assert got == [[1, 2, 3], [["SSEHTTPError", 500], ["SSEHTTPError", 500]]]
    assert [r["status"] for r in fault.log(key)][:3] == [500, 500, 200]


def test_204_stops_for_good_and_ends_iteration_quietly(page: PyodidePage, fault: FaultApp, key: str) -> None:
    got = run(
        page,
        f"""
client = FetchEventSource("{fault.url}/stream?key={key}&status=204", backoff=FAST)
events = await collect(client)
[events, client.ready_state.name, client.error, client.stats.opens]
""",
    )
    assert got == [[], "CLOSED", None, 0]
    assert len(fault.log(key)) == 1


@pytest.mark.parametrize("status", [401, 403, 404])
def test_client_errors_stop_with_an_error_carrying_the_status(
    page: PyodidePage, fault: FaultApp, key: str, status: int
) -> None:
    got = run(
        page,
        f"""
client = FetchEventSource("{fault.url}/stream?key={key}&status={status}", backoff=FAST)
try:
    await collect(client)
    outcome = "no error"
except SSEHTTPError as exc:
    outcome = [exc.status, exc.retryable]
[outcome, client.ready_state.name]
""",
    )
    assert got == [[status, False], "CLOSED"]
    assert len(fault.log(key)) == 1  # never retried


def test_wrong_content_type_stops_with_an_error(page: PyodidePage, fault: FaultApp, key: str) -> None:
    got = run(
        page,
        f"""
client = FetchEventSource("{fault.url}/stream?key={key}&content_type=text/plain", backoff=FAST)
try:
    await collect(client)
    outcome = "no error"
except SSEContentTypeError as exc:
    outcome = exc.content_type
outcome
""",
    )
    assert got.startswith("text/plain")


def test_authorization_header_and_post_body_reach_the_server_on_every_connection(
    page: PyodidePage, fault: FaultApp, key: str
) -> None:
    got = run(
        page,
        f"""
client = FetchEventSource(
    "{fault.url}/stream?key={key}&auth=s3cret&body=%7B%22q%22%3A1%7D&n=1&total=2",
    method="POST",
    headers={{"Authorization": "Bearer s3cret", "Content-Type": "application/json"}},
    body='{{"q":1}}',
    backoff=FAST,
)
await collect(client)
""",
    )
    assert [e[2] for e in got] == [1, 2]
    log = fault.log(key)
    assert [r["status"] for r in log] == [200, 200, 204]
    assert {(r["method"], r["authorization"], r["body"]) for r in log} == {
        ("POST", "Bearer s3cret", '{"q":1}')
    }
    assert [r["last_event_id_header"] for r in log] == [None, "1", "2"]


def test_missing_token_is_a_401_not_a_retry_loop(page: PyodidePage, fault: FaultApp, key: str) -> None:
    got = run(
        page,
        f"""
client = FetchEventSource("{fault.url}/stream?key={key}&auth=s3cret", backoff=FAST)
try:
    await collect(client)
    outcome = None
except SSEHTTPError as exc:
    outcome = exc.status
outcome
""",
    )
    assert got == 401


def test_the_streams_retry_field_sets_the_reconnect_delay(
    page: PyodidePage, fault: FaultApp, key: str
) -> None:
    run(
        page,
        f"""
client = FetchEventSource("{fault.url}/stream?key={key}&retry=700&n=1&total=3", backoff=FAST)
await collect(client)
""",
    )
    times = [r["t"] for r in fault.log(key)]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 3
    # FAST alone would wait at most 0.2 s; the server asked for 0.7 s.
    assert all(0.7 <= gap < 3.0 for gap in gaps), gaps


def test_retry_after_on_a_503_is_honoured(page: PyodidePage, fault: FaultApp, key: str) -> None:
    run(
        page,
        f"""
client = FetchEventSource(
    "{fault.url}/stream?key={key}&fail=1&fail_status=503&retry_after=1&n=1&total=1", backoff=FAST
)
await collect(client)
""",
    )
    log = fault.log(key)
    assert [r["status"] for r in log][:2] == [503, 200]
    assert log[1]["t"] - log[0]["t"] >= 1.0


def test_a_silent_stream_is_detected_by_stall_timeout_and_resumed(
    page: PyodidePage, fault: FaultApp, key: str
) -> None:
    got = run(
        page,
        f"""
client = FetchEventSource(
    "{fault.url}/stream?key={key}&silent=1&n=1&total=2", backoff=FAST, stall_timeout=0.5
)
errors = []
client.on_error = lambda e: errors.append(type(e).__name__)
events = await collect(client, limit=2)
[[e[2] for e in events], errors[0], client.stats.stalls]
""",
    )
    assert got == [[1, 2], "SSEStalledError", 1]
    log = fault.wait_log(key, lambda log: len(log) >= 2 and "disconnected" in log[0])
    assert log[1]["last_event_id_header"] == "1"
    assert log[0]["disconnected"] - log[0]["t"] >= 0.5  # aborted by the client, not earlier


def test_close_aborts_the_request(page: PyodidePage, fault: FaultApp, key: str) -> None:
    got = run(
        page,
        f"""
client = FetchEventSource("{fault.url}/stream?key={key}&silent=1&n=1", backoff=FAST)
events = await collect(client, limit=1)
[events, client.ready_state.name]
""",
    )
    assert got == [[["message", "1", 1]], "CLOSED"]
    log = fault.wait_log(key, lambda log: "disconnected" in log[0])
    assert len(log) == 1


def test_cancelling_the_iterating_task_aborts_the_request(
    page: PyodidePage, fault: FaultApp, key: str
) -> None:
    got = run(
        page,
        f"""
client = FetchEventSource("{fault.url}/stream?key={key}&silent=1&n=1", backoff=FAST)
got = []
async def consume():
    async for event in client:
        got.append(event.id)
task = asyncio.create_task(consume())
await until(lambda: got)
task.cancel()
await asyncio.gather(task, return_exceptions=True)
[got, task.cancelled(), client.ready_state.name]
""",
    )
    assert got == [["1"], True, "CLOSED"]
    fault.wait_log(key, lambda log: "disconnected" in log[0])


def test_named_events_go_to_their_handlers_and_not_to_on_message(
    page: PyodidePage, fault: FaultApp, key: str
) -> None:
    got = run(
        page,
        f"""
client = FetchEventSource("{fault.url}/stream?key={key}&event=tick&n=3&total=3", backoff=FAST)
ticks, messages, opens = [], [], []
client.on_message = messages.append
client.on_open = lambda: opens.append(1)
@client.on("tick")
def on_tick(event):
    ticks.append(event.json()["n"])
client.connect()
await until(lambda: client.ready_state == client.CLOSED)
[ticks, messages, len(opens)]
""",
    )
    assert got == [[1, 2, 3], [], 1]


def test_pause_while_hidden_closes_the_stream_and_resumes_from_the_last_id(
    page: PyodidePage, fault: FaultApp, key: str
) -> None:
    def set_hidden(hidden: bool) -> None:
        page.evaluate(
            """(hidden) => {
                Object.defineProperty(document, "hidden", {configurable: true, get: () => hidden});
                document.dispatchEvent(new Event("visibilitychange"));
            }""",
            hidden,
        )

    ns = f"pause-{key}"
    run(
        page,
        f"""
client = FetchEventSource(
    "{fault.url}/stream?key={key}&silent=1&n=1&total=2", backoff=FAST, when_hidden="pause"
)
got = []
client.on_message = lambda e: got.append(e.id)
client.connect()
await until(lambda: got == ["1"])
""",
        ns=ns,
    )
    try:
        set_hidden(True)
        assert page.wait_for("client.state.value == 'paused'", ns=ns)
        log = fault.wait_log(key, lambda log: "disconnected" in log[0])
        assert len(log) == 1  # nothing reopened while hidden
        set_hidden(False)
        got = page.run("await until(lambda: got == ['1', '2'])\nclient.close()\ngot", ns=ns)
    finally:
        set_hidden(False)
    assert got == ["1", "2"]
    log = fault.log(key)
    assert log[1]["last_event_id_header"] == "1"


def test_no_proxy_outlives_the_client(page: PyodidePage, fault: FaultApp, key: str) -> None:
    got = run(
        page,
        f"""
before = live_count()
for i in range(5):
    client = FetchEventSource(
        "{fault.url}/stream?key={key}&n=1&total=1", backoff=FAST, when_hidden="pause"
    )
    await collect(client)
await asyncio.sleep(0)
[before, live_count()]
""",
    )
    assert got[0] == got[1]


def test_a_client_closed_mid_stream_holds_no_proxy_once_close_returns(
    page: PyodidePage, fault: FaultApp, key: str
) -> None:
    """The body's sink proxies go with the abort itself, not when the engine later calls the
    sink (a turn of the loop after ``close()`` in every engine; an engine that never did would
    have kept them for good)."""
    got = run(
        page,
        f"""
before = live_count()
client = FetchEventSource("{fault.url}/stream?key={key}&silent=1&n=1", backoff=FAST)
events = []
client.on_message(events.append)
client.connect()
await until(lambda: events)
during = live_count() - before
client.close()
[during, live_count() - before]
""",
    )
    during, after = got
    assert during > 0  # the stream was being read through proxies
    assert after == 0


def test_a_body_that_cannot_be_read_fails_the_request_and_keeps_no_proxy(
    page: PyodidePage, fault: FaultApp, key: str
) -> None:
    """The sink's proxies are made before the sink: when making it fails, they go all the same."""
    got = run(
        page,
        f"""
before = live_count()
saved = js.WritableStream
errors = []
try:
    js.globalThis.WritableStream = js.Object.freeze  # not a constructor: ``new`` throws
    client = FetchEventSource("{fault.url}/stream?key={key}&n=1&total=1", backoff=FAST)
    client.on_error = lambda e: errors.append(type(e).__name__)
    client.connect()
    await until(lambda: errors)
    client.close()
finally:
    js.globalThis.WritableStream = saved
[errors[0], live_count() - before]
""",
    )
    assert got == ["SSENetworkError", 0]
