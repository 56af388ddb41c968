"""Reliability across server restarts, failover and page reloads (docs/reliability.md, scenarios 4,
5 and 11): real Chromium + Pyodide, real ``serve.py`` processes on a real ``redis-server``.

Two page clients share each scenario: a *producer* that sends acked messages and publishes into a
channel, and a *subscriber* of that channel. The application records every message it handles
(``/demo/received``, kept in Redis), so what the server received can be checked after restarts.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pyrt.pytest_plugin.delivery import DeliveryChecker
from pyrt.pytest_plugin.pyodide_page import PyodidePage
from pyrt.pytest_plugin.redis_process import RedisServer
from pyrt.pytest_plugin.server_process import ServerProcess
from tests.browser.reload_scenario import reload_scenario
from tests.faults.scenario import emit

pytestmark = pytest.mark.pyrt_engines("chromium")  # Redis failover: outside the reliability core

StartServer = Callable[..., ServerProcess]

PRELUDE = """
import asyncio, js, json
from pyrt.engine.backoff import Backoff
from pyrt.engine.heartbeat import Heartbeat
from pyrt.aio.websocket import WebSocketClient

def client(url):
    return WebSocketClient(url, heartbeat=Heartbeat(interval=0.3, timeout=0.3),
                           backoff=Backoff(initial=0.05, maximum=0.5))
"""

PAIR = """
producer, subscriber = client(PRODUCER_URL), client(SUBSCRIBER_URL)
reasons = {"producer": [], "subscriber": []}
opens = {"producer": [], "subscriber": []}
for name, c in (("producer", producer), ("subscriber", subscriber)):
    c.on_reconnecting(lambda attempt, delay, reason, name=name: reasons[name].append([js.Date.now(), reason]))
    c.on_open(lambda name=name: opens[name].append(js.Date.now()))
pubs = []
subscriber.subscribe(CHANNEL, lambda p: pubs.append([p.data["seq"], p.recovered]), since="0")
acked, failed, published, publish_failed = {}, {}, {}, {}

def track(ok, bad, n):
    def settle(future):
        if future.exception() is None:
            ok[n] = True
        else:
            bad[n] = repr(future.exception())
    return settle

messages_on, messages_sent = [True], [0]

async def produce_messages(total):
    for n in range(total):
        while not messages_on[0]:
            await asyncio.sleep(0.01)
        producer.send_with_ack({"seq": n}).add_done_callback(track(acked, failed, n))
        messages_sent[0] = n + 1
        if n % 10 == 9:
            await asyncio.sleep(0.05)  # ~200 messages a second

async def produce_publications(total):
    for n in range(total):
        producer.publish(CHANNEL, {"seq": n}).add_done_callback(track(published, publish_failed, n))
        if n % 10 == 9:
            await asyncio.sleep(0.05)  # ~200 publications a second

def produce(total):
    return asyncio.gather(produce_messages(total), produce_publications(total))

producer.connect()
subscriber.connect()
await producer.wait_open(10)
await subscriber.wait_open(10)
"""


@pytest.fixture(scope="module")
def redis_url(pyrt_redis: RedisServer) -> str:
    return pyrt_redis.url


def redis_args(redis_url: str, prefix: str, name: str) -> tuple[str, ...]:
    return (
        "--redis",
        redis_url,
        "--redis-prefix",
        prefix,
        "--name",
        name,
        "--demo",
        "--demo-tick",
        "0",
        "--allowed-origin",
        "*",
        "--heartbeat",
        "1",
        "--shutdown-grace",
        "1",
        "--retention",
        "10000",
    )


def received(server: ServerProcess, cid: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{server.url}/demo/received", params={"cid": cid}, timeout=10)
    answer.raise_for_status()
    messages: list[dict[str, Any]] = answer.json()["messages"]
    return messages


def reports(total: int, server_seqs: list[int], pub_seqs: list[int]) -> dict[str, Any]:
    out = {}
    for stream, seqs in (("messages", server_seqs), ("publications", pub_seqs)):
        checker = DeliveryChecker()
        for n in range(total):
            checker.send(stream, n)
        for seq in seqs:
            checker.deliver(stream, seq)
        out[stream] = checker.report()
    return out


PAIR_STATE = """
[len(acked), sorted(failed.items())[:3], len(published), sorted(publish_failed.items())[:3], len(pubs),
 reasons, str(producer.stats), str(subscriber.stats), producer.state.name, subscriber.state.name]
"""


def wait_progress(py: PyodidePage, ns: str, condition: str, timeout: float = 30) -> None:
    """Wait for ``condition``; on failure, say where both clients stand."""
    try:
        py.wait_for(condition, ns=ns, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{condition}: {py.run(PAIR_STATE, ns=ns)}") from exc


def settle_pair(py: PyodidePage, ns: str, total: int) -> dict[str, Any]:
    wait_progress(
        py,
        ns,
        f"len(acked) + len(failed) == {total} and len(published) + len(publish_failed) == {total}",
        timeout=60,
    )
    wait_progress(py, ns, f"len(pubs) >= {total} - len(publish_failed)")
    result: dict[str, Any] = py.run(
        """
out = {"failed": sorted(failed.items())[:5], "n_failed": len(failed),
       "publish_failed": sorted(publish_failed.items())[:5], "n_publish_failed": len(publish_failed),
       "pubs": [p[0] for p in pubs], "unrecovered": sum(1 for p in pubs if not p[1]),
       "reasons": reasons, "opens": opens,
       "reconnects": [producer.stats.reconnects, subscriber.stats.reconnects]}
producer.close(); subscriber.close()
out
""",
        ns=ns,
    )
    return result


def quiesce_messages(py: PyodidePage, ns: str) -> None:
    """Hold new acked messages until every one sent so far is acknowledged.

    A SIGKILL while the application handles a message leaves that id claimed in Redis until the
    claim's lease lapses; the re-sent copy then runs the handler again (at-least-once for that
    message, see tests/server/test_reliability_crash.py). The kill scenarios here keep that window
    closed so they can check exactly-once for the rest; publications keep streaming.
    """
    py.run("messages_on[0] = False", ns=ns)
    wait_progress(py, ns, "len(acked) + len(failed) == messages_sent[0]")


def reopened_after(opens: list[float], since_ms: float) -> float:
    """Seconds from ``since_ms`` to the first open after it."""
    return (min(at for at in opens if at > since_ms) - since_ms) / 1000


# -- 4. server restart -------------------------------------------------------------------------------


def test_a_killed_and_a_terminated_server_on_redis_lose_nothing_and_queued_messages_arrive(
    py: PyodidePage, pyrt_start_server: StartServer, redis_url: str
) -> None:
    total = 1000
    prefix = f"restart{uuid.uuid4().hex[:6]}:"
    args = redis_args(redis_url, prefix, "restart")
    server = pyrt_start_server(*args)
    port = server.port
    cid = "restart-" + uuid.uuid4().hex[:10]
    channel = "rel-restart-" + uuid.uuid4().hex[:8]
    ns = f"restart-{cid}"
    url = f"ws://127.0.0.1:{port}/ws"
    py.run(
        PRELUDE
        + f"PRODUCER_URL, SUBSCRIBER_URL, CHANNEL = '{url}?cid={cid}', '{url}', '{channel}'\n"
        + PAIR
        + f"\nproduction = asyncio.ensure_future(produce({total}))",
        ns=ns,
    )
    phases: dict[str, dict[str, Any]] = {}
    for phase, sig, after in (("sigkill", signal.SIGKILL, 200), ("sigterm", signal.SIGTERM, 500)):
        wait_progress(py, ns, f"len(acked) >= {after}")
        if sig == signal.SIGKILL:
            quiesce_messages(py, ns)
        stopped_ms = time.time() * 1000
        code = server.stop(sig)
        py.run("messages_on[0] = True", ns=ns)  # sent while the server is down: they queue
        queued = py.run("[producer.stats.queue_length, producer.stats.pending_acks]", ns=ns)
        server = pyrt_start_server(*args, "--port", str(port))  # the same address, a new process
        ready_ms = time.time() * 1000
        for name in ("producer", "subscriber"):
            py.wait_for(f"opens['{name}'][-1] > {stopped_ms}", ns=ns, timeout=15)
        opens = py.run("opens", ns=ns)
        lost = py.run(f"[r for name in reasons for at, r in reasons[name] if at >= {stopped_ms}]", ns=ns)
        phases[phase] = {
            "exit_code": code,
            "down_s": (ready_ms - stopped_ms) / 1000,
            "queued_while_down": queued,
            "close_reasons": sorted(set(lost)),
            "reopen_after_ready_s": {
                name: reopened_after(opens[name], stopped_ms) - (ready_ms - stopped_ms) / 1000
                for name in ("producer", "subscriber")
            },
        }
    result = settle_pair(py, ns, total)
    messages = [m["data"]["seq"] for m in received(server, cid)]
    found = reports(total, messages, result["pubs"])
    for stream, report in found.items():
        emit(
            f"4-server-restart-{stream}",
            report,
            broker="redis",
            phases=phases,
            acks_failed=result["n_failed"],
            publishes_failed=result["n_publish_failed"],
            reconnects=result["reconnects"],
        )
    assert result["n_failed"] == 0, result["failed"]
    assert result["n_publish_failed"] == 0, result["publish_failed"]
    for stream, report in found.items():
        assert report.exactly_once_in_order, (stream, report.missing)
        assert report.unique_delivered == report.delivered == total, stream
    assert result["unrecovered"] == 0
    # A terminated server drains: it exits 0 after closing its clients with 1001 (the close itself
    # is checked in tests/server/test_cli.py). Here the 1001 waits behind the frames queued for the
    # producer, and on a loaded machine the test's 0.3 s heartbeat may give up on the socket first:
    # what this test holds the server to is the exit and, above, that nothing was lost.
    assert phases["sigterm"]["exit_code"] == 0, phases["sigterm"]
    assert phases["sigkill"]["exit_code"] != 0, phases["sigkill"]
    assert max(phases["sigterm"]["queued_while_down"]) > 0  # messages really waited for the restart


# -- 5. failover across instances ----------------------------------------------------------------------


def test_clients_fail_over_to_the_other_instance_and_resume_without_a_gap(
    py: PyodidePage, pyrt_start_server: StartServer, redis_url: str
) -> None:
    total = 800
    prefix = f"failover{uuid.uuid4().hex[:6]}:"
    first = pyrt_start_server(*redis_args(redis_url, prefix, "first"))
    second = pyrt_start_server(*redis_args(redis_url, prefix, "second"))
    cid = "failover-" + uuid.uuid4().hex[:10]
    channel = "rel-failover-" + uuid.uuid4().hex[:8]
    ns = f"failover-{cid}"
    py.run(
        PRELUDE
        + f"""
URLS = ["{first.ws_url}/ws", "{second.ws_url}/ws"]
picks = {{"producer": [], "subscriber": []}}

def failover(name, query=""):
    # Called before every attempt, and an attempt follows a failure: move to the next URL.
    def pick():
        url = URLS[len(picks[name]) % len(URLS)]
        picks[name].append(url)
        return url + query
    return pick

PRODUCER_URL, SUBSCRIBER_URL = failover("producer", "?cid={cid}"), failover("subscriber")
CHANNEL = "{channel}"
"""
        + PAIR
        + f"\nproduction = produce({total})",
        ns=ns,
    )
    assert py.run("[picks['producer'], picks['subscriber']]", ns=ns) == [[f"{first.ws_url}/ws"]] * 2
    wait_progress(py, ns, "len(acked) >= 200 and len(pubs) >= 200")
    quiesce_messages(py, ns)
    killed_ms = time.time() * 1000
    first.kill()
    py.run("messages_on[0] = True", ns=ns)
    for name in ("producer", "subscriber"):
        wait_progress(py, ns, f"opens['{name}'][-1] > {killed_ms}", timeout=15)
    moved = py.run("{n: [p[-1], len(p)] for n, p in picks.items()}", ns=ns)
    opens = py.run("opens", ns=ns)
    result = settle_pair(py, ns, total)
    messages = [m["data"]["seq"] for m in received(second, cid)]
    found = reports(total, messages, result["pubs"])
    failover_s = {name: reopened_after(opens[name], killed_ms) for name in ("producer", "subscriber")}
    for stream, report in found.items():
        emit(
            f"5-failover-{stream}",
            report,
            broker="redis",
            instances=2,
            failover_s=failover_s,
            attempts_after_kill={name: moved[name][1] - 1 for name in moved},
            acks_failed=result["n_failed"],
            publishes_failed=result["n_publish_failed"],
        )
    assert all(url == f"{second.ws_url}/ws" for url, _ in moved.values())  # both moved over
    assert result["n_failed"] == 0, result["failed"]
    assert result["n_publish_failed"] == 0, result["publish_failed"]
    for stream, report in found.items():
        assert report.exactly_once_in_order, (stream, report.missing)
        assert report.unique_delivered == report.delivered == total, stream
    assert result["unrecovered"] == 0


# -- 11. page reload with persist ----------------------------------------------------------------------


def test_unacked_messages_and_offsets_survive_a_reload_and_are_delivered_exactly_once(
    pyrt_new_page: Callable[..., PyodidePage], pyrt_start_server: StartServer
) -> None:
    # The client reaches the server through a chaos proxy (another port: any origin).
    server = pyrt_start_server("--demo", "--demo-tick", "0", "--allowed-origin", "*")
    reload_scenario(pyrt_new_page(server.url), server, name="11-reload-persist", storage="localStorage")
