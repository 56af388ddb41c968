"""EventSourceClient in Chromium + Pyodide: the native EventSource, kept alive by pyrt.

Fault scenarios run against the sse-starlette app the tests control; the last tests run both
SSE clients against the reference server's ``/sse`` endpoint (serve.py, docs/protocol.md).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pyrt.pytest_plugin.pyodide_page import PyodidePage
from pyrt.pytest_plugin.server_process import ServerProcess
from tests.browser.sse_fault_app import FaultApp

PRELUDE = """
import asyncio, js, json
from pyrt.engine.backoff import Backoff
from pyrt.aio.eventsource import EventSourceClient
from pyrt.aio.fetch_event_source import FetchEventSource
from pyrt.browser.proxies import live_count
from pyrt.errors import SSEError, SSERetriesExhaustedError

FAST = Backoff(initial=0.05, maximum=0.2)

from pyrt.testing import until
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
    return f"es-{next(_keys)}-{time.monotonic_ns()}"


def run(page: PyodidePage, code: str, **kwargs: Any) -> Any:
    return page.run(PRELUDE + code, **kwargs)


def test_http_500_is_survived_where_the_native_eventsource_gives_up(
    page: PyodidePage, fault: FaultApp, key: str
) -> None:
    got = run(
        page,
        f"""
# The bare native object on a server that fails once: it closes for good.
native = js.EventSource.new("{fault.url}/stream?key={key}-native&fail=1&retry=50")
await until(lambda: native.readyState == 2)
native.close()

client = EventSourceClient("{fault.url}/stream?key={key}&fail=1&retry=50&n=3", backoff=FAST)
got = []
async def consume():
    async for event in client:
        got.append(event.json()["n"])
        if len(got) == 3:
            client.close()
await asyncio.wait_for(consume(), 15)
[got, client.stats.opens, client.ready_state.name]
""",
    )
    assert got == [[1, 2, 3], 1, "CLOSED"]
    assert [r["status"] for r in fault.log(f"{key}-native")] == [500]
    assert [r["status"] for r in fault.log(key)][:2] == [500, 200]


def test_named_events_reach_handlers_registered_after_connect_across_recreations(
    page: PyodidePage, fault: FaultApp, key: str
) -> None:
    got = run(
        page,
        f"""
client = EventSourceClient(
    "{fault.url}/stream?key={key}&event=tick&n=1&total=4&retry=50&fail_at=3", backoff=FAST
)
messages, ticks = [], []
client.on_message = messages.append
client.connect()
def on_tick(event):
    ticks.append([event.type, event.id, event.json()["n"]])
client.on("tick", on_tick)   # after the native object exists
await until(lambda: len(ticks) == 4, timeout=15)
client.close()
[ticks, messages, client.last_event_id]
""",
    )
    assert got == [[["tick", str(n), n] for n in range(1, 5)], [], "4"]
    log = fault.log(key)
    assert [r["status"] for r in log][:5] == [200, 200, 500, 200, 200]
    # Native reconnects send the header; the re-created object carries the id in the URL.
    assert [r["last_event_id_header"] for r in log][:2] == [None, "1"]
    assert log[3]["last_event_id_param"] == "2"
    assert log[3]["last_event_id_header"] is None
    assert log[4]["last_event_id_header"] == "3"


def test_off_stops_a_handler_and_event_types_feed_async_for(
    page: PyodidePage, fault: FaultApp, key: str
) -> None:
    got = run(
        page,
        f"""
client = EventSourceClient(
    "{fault.url}/stream?key={key}&event=tick&n=1&total=3&retry=50", backoff=FAST,
    event_types=["tick"],
)
seen = []
handler = lambda event: seen.append(event.id)
client.on("tick", handler)
iterated = []
async def consume():
    async for event in client:
        iterated.append(event.id)
        if event.id == "1":
            client.off("tick", handler)
        if event.id == "3":
            client.close()
await asyncio.wait_for(consume(), 15)
[seen, iterated]
""",
    )
    assert got == [["1"], ["1", "2", "3"]]


def test_stream_end_then_native_reconnect_has_no_gap_and_no_duplicate(
    page: PyodidePage, fault: FaultApp, key: str
) -> None:
    got = run(
        page,
        f"""
client = EventSourceClient("{fault.url}/stream?key={key}&n=2&total=6&retry=50", backoff=FAST)
got = []
async def consume():
    async for event in client:
        got.append(event.id)
        if len(got) == 6:
            client.close()
await asyncio.wait_for(consume(), 15)
got
""",
    )
    assert got == ["1", "2", "3", "4", "5", "6"]
    assert [r["last_event_id_header"] for r in fault.log(key)][:3] == [None, "2", "4"]


@pytest.mark.parametrize("event", ["message", "tick"])
def test_bursts_that_cross_in_batches_arrive_in_order_each_once_across_stream_ends(
    page: PyodidePage, fault: FaultApp, key: str, event: str
) -> None:
    named = "" if event == "message" else f"&event={event}"
    got = run(
        page,
        f"""
client = EventSourceClient("{fault.url}/stream?key={key}&n=150&total=450&retry=50{named}", backoff=FAST)
got = []
def on_event(event):
    got.append(int(event.id))
    if len(got) == 450:
        client.close()
client.on("{event}", on_event)
client.connect()
await until(lambda: len(got) == 450, timeout=30)
[got == list(range(1, 451)), client.stats.opens]
""",
    )
    assert got == [True, 3]  # the stream ended after each 150: the native object reconnected
    log = fault.log(key)
    assert [r["last_event_id_header"] for r in log][:3] == [None, "150", "300"]
    assert [r["last_event_id_param"] for r in log][:3] == [None, None, None]  # never re-created


def test_attempts_exhausted_ends_iteration_with_the_error(
    page: PyodidePage, fault: FaultApp, key: str
) -> None:
    got = run(
        page,
        f"""
client = EventSourceClient(
    "{fault.url}/stream?key={key}&status=500",
    backoff=Backoff(initial=0.05, maximum=0.1, max_attempts=2),
)
errors = []
client.on_error = lambda e: errors.append(type(e).__name__)
try:
    async for event in client:
        pass
    outcome = "ended quietly"
except SSERetriesExhaustedError as exc:
    outcome = ["exhausted", exc.attempts]
[outcome, errors[-1], client.ready_state.name]
""",
    )
    assert got == [["exhausted", 2], "SSERetriesExhaustedError", "CLOSED"]
    assert len(fault.log(key)) == 3  # the first try and two re-creations


def test_close_closes_the_native_connection(page: PyodidePage, fault: FaultApp, key: str) -> None:
    got = run(
        page,
        f"""
client = EventSourceClient("{fault.url}/stream?key={key}&silent=1&n=1", backoff=FAST)
got = []
client.on_message = lambda e: got.append(e.id)
client.connect()
await until(lambda: got)
client.close()
[got, client.ready_state.name]
""",
    )
    assert got == [["1"], "CLOSED"]
    log = fault.wait_log(key, lambda log: "disconnected" in log[0])
    assert len(log) == 1


def test_cancelling_the_iterating_task_closes_the_client(
    page: PyodidePage, fault: FaultApp, key: str
) -> None:
    got = run(
        page,
        f"""
client = EventSourceClient("{fault.url}/stream?key={key}&silent=1&n=1", backoff=FAST)
got = []
async def consume():
    async for event in client:
        got.append(event.id)
task = asyncio.create_task(consume())
await until(lambda: got)
task.cancel()
await asyncio.gather(task, return_exceptions=True)
[got, client.ready_state.name]
""",
    )
    assert got == [["1"], "CLOSED"]
    fault.wait_log(key, lambda log: "disconnected" in log[0])


def test_proxies_are_released_on_every_recreation_and_on_close(
    page: PyodidePage, fault: FaultApp, key: str
) -> None:
    got = run(
        page,
        f"""
before = live_count()
client = EventSourceClient(
    "{fault.url}/stream?key={key}&fail_at=2,3,4,5&n=1&total=2&retry=50", backoff=FAST
)
client.on("message", lambda e: None)
got = []
client.on_message = lambda e: got.append(e.id)
client.connect()
await until(lambda: got == ["1", "2"], timeout=15)
during = live_count() - before   # one native object (open, error, wake, batch task), the timer (2)
recreated = client.stats.opens
client.close()
await asyncio.sleep(0)
await asyncio.sleep(0)
[during, recreated, live_count() - before]
""",
    )
    assert got == [6, 2, 0]
    statuses = [r["status"] for r in fault.log(key)]
    assert statuses[:6] == [200, 500, 500, 500, 500, 200]  # four native objects were replaced


# -- the reference server (serve.py) --------------------------------------------------------


def publish(server: ServerProcess, channel: str, event: str, n: int) -> str:
    response = httpx.post(
        f"{server.url}/publish",
        json={"channel": channel, "event": event, "data": {"n": n}},
        headers={"Origin": server.url},
        timeout=10,
    )
    response.raise_for_status()
    offset: str = response.json()["offset"]
    return offset


def drop(server: ServerProcess, cid: str) -> int:
    response = httpx.post(
        f"{server.url}/demo/drop", json={"cid": cid}, headers={"Origin": server.url}, timeout=10
    )
    response.raise_for_status()
    dropped: int = response.json()["dropped"]
    return dropped


@pytest.mark.parametrize("client_class", ["EventSourceClient", "FetchEventSource"])
def test_reference_server_named_events_survive_a_dropped_connection_exactly_once(
    py: PyodidePage, pyrt_server: ServerProcess, client_class: str
) -> None:
    """In every engine: WebKitGTK once left a reset fetch stream silent until ``stall_timeout``
    (pyrt.browser.fetch_transport now pipes the body into a sink, which hears the reset)."""
    channel = f"sse-test-{uuid.uuid4().hex[:12]}"
    cid = f"cid-{uuid.uuid4().hex[:12]}"
    offsets = [publish(pyrt_server, channel, "news", n) for n in range(1, 4)]
    ns = f"ref-{cid}"
    py.run(
        PRELUDE
        + f"""
client = {client_class}("/sse?channel={channel}&cid={cid}&lastEventId=0", backoff=FAST)
got = []
client.on("news", lambda e: got.append([e.id, e.json()["n"]]))
client.connect()
await until(lambda: len(got) == 3)
""",
        ns=ns,
    )
    try:
        assert drop(pyrt_server, cid) == 1
        # Published while the client is cut off or reconnecting: must arrive once, in order.
        offsets += [publish(pyrt_server, channel, "news", n) for n in range(4, 7)]
        got = py.run("await until(lambda: len(got) >= 6, timeout=15)\n[got, client.stats.opens]", ns=ns)
    finally:
        py.run("client.close()", ns=ns)  # the page serves later tests too
    events, opens = got
    assert events == [[offset, n] for offset, n in zip(offsets, range(1, 7), strict=True)]
    assert opens == 2
