"""EventSourceClient on CPython: CPythonEventSourceTransport (``httpx`` playing the native
EventSource) against serve.py and the SSE fault app, as tests/browser/test_eventsource_transport.py
does with the browser's own object."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pyrt import EventSourceClient
from pyrt.cpython.eventsource_transport import CPythonEventSourceTransport
from pyrt.pytest_plugin.server_process import ServerProcess
from tests.browser.sse_fault_app import FaultApp
from tests.server import sse_scenarios
from tests.server.cpython_support import new_cid, run, until
from tests.server.sse_scenarios import FAST


@pytest.fixture(scope="module")
def fault_app() -> Iterator[FaultApp]:
    app = FaultApp()
    yield app
    app.stop()


def test_outside_pyodide_httpx_plays_the_native_object() -> None:
    async def scenario() -> None:
        client = EventSourceClient("http://127.0.0.1:9/sse", with_credentials=True, backoff=FAST)
        client.connect()
        assert type(client._transport) is CPythonEventSourceTransport
        assert client.with_credentials is True
        client.close()

    run(scenario)


def test_published_events_arrive_with_their_type_and_offset(pyrt_server: ServerProcess) -> None:
    sse_scenarios.published_events_arrive_with_their_type_and_offset(pyrt_server, EventSourceClient)


def test_a_dropped_connection_resumes_without_a_gap(pyrt_server: ServerProcess) -> None:
    sse_scenarios.dropped_connection_resumes_without_a_gap(pyrt_server, EventSourceClient)


def test_close_aborts_the_request_on_the_server(fault_app: FaultApp) -> None:
    sse_scenarios.close_aborts_the_request_on_the_server(fault_app, EventSourceClient)


def test_a_503_with_retry_after_is_waited_out(fault_app: FaultApp) -> None:
    sse_scenarios.a_503_with_retry_after_is_waited_out(fault_app, EventSourceClient)


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
