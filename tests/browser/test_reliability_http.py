"""Every network (README, "Every network"; docs/reliability.md): ``WebSocketClient`` in real
browsers (Chromium, Firefox, WebKit) + Pyodide behind a chaos proxy that blocks or breaks
WebSockets the ways networks do. The default client comes up over the HTTP binding within its
connect timeout + 1 s, and keeps
every promise there: acked messages exactly once and in order through random resets, a backlog
sent once after being offline, subscriptions recovered without gaps; when WebSockets pass again
it moves back, and a reload behind the block goes straight to HTTP (remembered per origin).

The page is served by the session's server; the clients connect to this module's server (its
default settings, plus the demo controls for ``/demo/received`` and ``/demo/drop``) through the
proxy: another origin, allowed with ``--allowed-origin '*'``, and one per test, so what one test
remembers for its origin never reaches another.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pyrt.pytest_plugin.delivery import DeliveryChecker
from pyrt.pytest_plugin.proxy import ChaosProxy, ResetSchedule
from pyrt.pytest_plugin.pyodide_page import PyodidePage
from pyrt.pytest_plugin.server_process import ServerProcess
from tests.faults.scenario import emit

SERVER_ARGS = ("--demo", "--demo-tick", "0", "--allowed-origin", "*")

PRELUDE = """
import asyncio, js, json
from pyrt import Backoff, TransportPolicy, WebSocketClient
from pyrt.testing import until

loop = asyncio.get_running_loop()
"""

HOSTILE = {
    "refused-403": {"refuse_upgrade": 403},
    "upgrade-stripped": {"strip_upgrade": True},
    "upgraded-then-silent": {"swallow_upgraded": True},
    "streams-buffered": {"refuse_upgrade": 400, "buffer_streams": True},
}
CONNECT_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def http_server() -> Iterator[ServerProcess]:
    proc = ServerProcess(*SERVER_ARGS)
    yield proc
    proc.stop()


@pytest.fixture
def proxy(http_server: ServerProcess) -> Iterator[ChaosProxy]:
    with ChaosProxy(http_server.port) as chaos:
        yield chaos


@pytest.fixture
def cid() -> str:
    return "http" + uuid.uuid4().hex[:12]


def received(server: ServerProcess, cid: str) -> list[Any]:
    answer = httpx.get(f"{server.url}/demo/received", params={"cid": cid}, timeout=10)
    answer.raise_for_status()
    return [m["data"] for m in answer.json()["messages"]]


def publish(server: ServerProcess, channel: str, data: Any) -> None:
    httpx.post(
        f"{server.url}/publish", json={"channel": channel, "data": data}, timeout=10
    ).raise_for_status()


def client_code(proxy: ChaosProxy, cid: str, **options: str) -> str:
    extra = "".join(f", {name}={value}" for name, value in options.items())
    return f"""
client = WebSocketClient("ws://127.0.0.1:{proxy.port}/ws?cid={cid}", connect_timeout={CONNECT_TIMEOUT},
                         heartbeat=None, backoff=Backoff(initial=0.05, maximum=0.5){extra})
errors = []
client.on_error(lambda error: errors.append(str(error)))
"""


@pytest.mark.parametrize("mode", list(HOSTILE.values()), ids=list(HOSTILE))
def test_behind_each_hostile_network_the_client_is_open_over_http_within_the_connect_timeout(
    py: PyodidePage, proxy: ChaosProxy, cid: str, mode: dict[str, Any]
) -> None:
    proxy.set(**mode)
    ns = f"open-{cid}"
    took, transport, reply, errors, fallbacks = py.run(
        PRELUDE
        + client_code(proxy, cid)
        + """
started = loop.time()
await client.connect().wait_open(10)
took = loop.time() - started
reply = await client.send_with_ack({"n": 1}, timeout=10)
client.close()
await client.wait_closed(5)
[took, client.transport, reply is not None, errors, client.stats.fallbacks]
""",
        ns=ns,
    )
    emit("every-network-open", mode=mode, open_over_http_s=round(took, 3))
    assert transport == "http"
    assert took < CONNECT_TIMEOUT + 1, f"open over HTTP after {took:.2f} s"
    assert reply
    assert fallbacks == 1
    assert len(errors) == 1, errors  # why WebSockets were skipped: TransportUnavailable
    assert "trying HTTP" in errors[0]


def test_acked_messages_over_http_arrive_exactly_once_in_order_through_random_resets(
    py: PyodidePage, http_server: ServerProcess, proxy: ChaosProxy, cid: str
) -> None:
    proxy.set(refuse_upgrade=403)
    ns = f"resets-{cid}"
    total = 300
    py.run(
        PRELUDE + client_code(proxy, cid) + "await client.connect().wait_open(10)\nclient.transport", ns=ns
    )
    with ResetSchedule(proxy, low=0.3, high=0.8, seed=5) as schedule:
        outcome = py.run(
            f"""
outcomes = {{}}
def settle(n, future):
    outcomes[n] = "ok" if future.exception() is None else repr(future.exception())
for n in range({total}):
    client.send_with_ack({{"seq": n}}, timeout=60).add_done_callback(lambda f, n=n: settle(n, f))
    if n % 10 == 9:
        await asyncio.sleep(0.05)  # a steady stream, so that the resets land in the middle of it
await until(lambda: len(outcomes) == {total}, timeout=90)
{{"failed": {{n: o for n, o in outcomes.items() if o != "ok"}}, "reconnects": client.stats.reconnects,
  "transport": client.transport}}
""",
            ns=ns,
            timeout=120,
        )
    py.run("client.close()", ns=ns)
    checker = DeliveryChecker()
    for seq in range(total):
        checker.send("up", seq)
    for data in received(http_server, cid):
        checker.deliver("up", data["seq"])
    report = checker.report()
    emit(
        "every-network-upstream-resets",
        sent=total,
        delivered=report.delivered,
        duplicates=report.delivered - report.unique_delivered,
        resets=schedule.resets,
        reconnects=outcome["reconnects"],
    )
    assert schedule.connections_cut >= 3, "the resets cut nothing: the test measured nothing"
    assert outcome["transport"] == "http"
    assert outcome["failed"] == {}
    assert outcome["reconnects"] >= 1
    assert report.sent == report.unique_delivered == report.delivered == total, report.missing
    assert report.exactly_once_in_order


def test_a_backlog_sent_while_offline_goes_out_over_http_once_in_order(
    py: PyodidePage, http_server: ServerProcess, proxy: ChaosProxy, cid: str
) -> None:
    proxy.set(strip_upgrade=True)
    ns = f"backlog-{cid}"
    outcome = py.run(
        PRELUDE
        + client_code(proxy, cid)
        + """
await client.connect().wait_open(10)
client.pause()  # what the page does when the network goes: the socket closes, sends queue
await until(lambda: client.state.name == "PAUSED")
futures = [client.send_with_ack({"seq": n}, timeout=30) for n in range(50)]
queued = client.stats.queue_length
client.resume()
replies = await asyncio.gather(*futures)
client.close()
[queued, len(replies), client.transport]
""",
        ns=ns,
        timeout=60,
    )
    assert outcome == [50, 50, "http"]
    assert [data["seq"] for data in received(http_server, cid)] == list(range(50))


def test_a_subscription_over_http_recovers_what_was_published_while_away(
    py: PyodidePage, http_server: ServerProcess, proxy: ChaosProxy, cid: str
) -> None:
    proxy.set(swallow_upgraded=True)
    ns = f"down-{cid}"
    channel = f"room-{cid}"
    py.run(
        PRELUDE
        + client_code(proxy, cid)
        + f"""
seen = []
client.subscribe("{channel}", lambda p: seen.append([p.data, p.recovered]))
await client.connect().wait_open(10)
await until(lambda: client.stats.received >= 2)  # welcome, subscribed
client.transport
""",
        ns=ns,
    )
    for n in range(5):
        publish(http_server, channel, n)
    py.wait_for("len(seen) == 5", ns=ns)
    answer = httpx.post(f"{http_server.url}/demo/drop", json={"cid": cid}, timeout=10)
    # (the swallowed WebSocket may still be open on the server, until its heartbeat gives up)
    assert answer.json()["dropped"] >= 1
    py.wait_for("client.stats.reconnects >= 1", ns=ns)
    for n in range(5, 10):
        publish(http_server, channel, n)  # while the client is away
    py.wait_for("client.state.name == 'OPEN'", ns=ns, timeout=15)
    for n in range(10, 15):
        publish(http_server, channel, n)
    seen, transport = py.run(
        "await until(lambda: len(seen) >= 15)\nclient.close()\n[seen, client.transport]", ns=ns
    )
    assert transport == "http"
    assert [data for data, _ in seen] == list(range(15))
    assert all(recovered for _, recovered in seen)


def test_when_websockets_pass_again_the_client_moves_back_losing_and_repeating_nothing(
    py: PyodidePage, http_server: ServerProcess, proxy: ChaosProxy, cid: str
) -> None:
    proxy.set(refuse_upgrade=403)
    ns = f"upgrade-{cid}"
    total = 200
    py.run(
        PRELUDE
        + client_code(proxy, cid, transport_policy="TransportPolicy(probe_first=0.5, probe_max=1.0)")
        + f"""
await client.connect().wait_open(10)
assert client.transport == "http"
outcomes = {{}}
def settle(n, future):
    outcomes[n] = "ok" if future.exception() is None else repr(future.exception())
async def produce():
    for n in range({total}):
        client.send_with_ack({{"seq": n}}, timeout=30).add_done_callback(lambda f, n=n: settle(n, f))
        await asyncio.sleep(0.02)
producing = asyncio.ensure_future(produce())
None
""",
        ns=ns,
    )
    py.wait_for("len(outcomes) >= 20", ns=ns)
    proxy.set(refuse_upgrade=None)  # the block is lifted while messages flow
    outcome = py.run(
        f"""
await until(lambda: client.transport == "websocket" and client.state.name == "OPEN", timeout=20)
await producing
await until(lambda: len(outcomes) == {total}, timeout=30)
client.close()
[{{n: o for n, o in outcomes.items() if o != "ok"}}, client.stats.upgrades, client.transport]
""",
        ns=ns,
        timeout=60,
    )
    assert outcome == [{}, 1, "websocket"]
    assert [data["seq"] for data in received(http_server, cid)] == list(range(total))


def test_a_reload_behind_the_block_goes_straight_to_http(
    py: PyodidePage, proxy: ChaosProxy, cid: str
) -> None:
    proxy.set(refuse_upgrade=403)
    ns = f"remember-{cid}"
    remembered = py.run(
        PRELUDE
        + client_code(proxy, cid, transport_policy="TransportPolicy(probe_first=0.3, probe_max=0.3)")
        + f"""
await client.connect().wait_open(10)
key = "pyrt:transport:http://127.0.0.1:{proxy.port}"
await until(lambda: isinstance(js.localStorage.getItem(key), str), timeout=10)  # a probe confirmed it
client.close()
await client.wait_closed(5)
js.localStorage.getItem(key).split(" ")[0]
""",
        ns=ns,
    )
    assert remembered == "http"
    refused = sum("refused an upgrade" in event for event in proxy.stats.events)
    py.reload()
    took, transport = py.run(
        PRELUDE
        + client_code(proxy, cid)
        + """
started = loop.time()
await client.connect().wait_open(10)
took = loop.time() - started
client.close()
[took, client.transport]
""",
        ns=ns,
    )
    assert transport == "http"
    # Straight to HTTP: not one upgrade was attempted, so it never waited out the WebSocket's
    # connect timeout (how long the page took is load, not behaviour: a loaded WebKit takes ~2 s).
    assert sum("refused an upgrade" in event for event in proxy.stats.events) == refused, (
        f"it tried WebSockets (open after {took:.2f} s)"
    )
    py.run(f'js.localStorage.removeItem("pyrt:transport:http://127.0.0.1:{proxy.port}")', ns=ns)
