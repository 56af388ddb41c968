"""Scenarios both SSE clients must pass on CPython (their transports: httpx as fetch, httpx as a
native EventSource), against serve.py and the SSE fault app. Each transport's test module runs
them with its client class."""

from __future__ import annotations

from typing import Any

from pyrt import Backoff
from pyrt.errors import SSEError
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.pytest_plugin.waiting import wait_until
from pyrt.wire.sse import ServerSentEvent
from tests.browser.sse_fault_app import FaultApp
from tests.server.cpython_support import Controls, new_cid, run, until

FAST = Backoff(initial=0.05, maximum=0.1, jitter="none")


def published_events_arrive_with_their_type_and_offset(server: ServerProcess, cls: Any) -> None:
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


def dropped_connection_resumes_without_a_gap(server: ServerProcess, cls: Any) -> None:
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


def close_aborts_the_request_on_the_server(fault_app: FaultApp, cls: Any) -> None:
    key = new_cid()

    async def scenario() -> None:
        client = cls(f"{fault_app.url}/stream?key={key}&n=1&silent=1")
        got: list[ServerSentEvent] = []
        client.on_message = got.append
        client.connect()
        await until(lambda: got)
        client.close()
        assert client.ready_state == client.CLOSED
        session = client._transport.session
        await until(lambda: not session.tasks, timeout=5)  # the request task and the http client

    run(scenario)
    # The server sees the client go away (and no second request comes).
    log = wait_until(lambda: [r for r in fault_app.log(key) if "disconnected" in r], timeout=10)
    assert len(fault_app.log(key)) == len(log) == 1


def a_503_with_retry_after_is_waited_out(fault_app: FaultApp, cls: Any) -> None:
    """The client waits what the server asked (a browser's native EventSource cannot see the
    header; the CPython one can, so it does better)."""
    key = new_cid()

    async def scenario() -> None:
        client = cls(f"{fault_app.url}/stream?key={key}&fail=1&fail_status=503&retry_after=1&n=1&total=1",
                     backoff=FAST)  # fmt: skip
        got: list[int] = []
        delays: list[float | None] = []
        client.on_message = lambda event: got.append(event.json()["n"])
        client.on_error = lambda error: delays.append(client.stats.last_delay)
        client.connect()
        await until(lambda: got, timeout=15)
        client.close()
        assert delays[0] == 1.0  # not FAST's 0.05 s

    run(scenario)
    log = fault_app.log(key)
    assert [r["status"] for r in log[:2]] == [503, 200]
