"""Reliability of ``WebSocketClient`` under network faults (docs/reliability.md, scenarios 1, 3, 8,
9, 10, 12, 16): real Chromium + Pyodide, a real ``serve.py``, and the chaos proxy between them.

The page is served by the session's server; the clients connect to this module's server through a
:class:`~pyrt.pytest_plugin.proxy.ChaosProxy` (another origin, allowed with ``--allowed-origin '*'``).
Timings are scaled down: heartbeats of a few hundred milliseconds, backoff from 50 ms.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pyrt.pytest_plugin.delivery import DeliveryChecker, percentile
from pyrt.pytest_plugin.proxy import ChaosProxy, ResetSchedule
from pyrt.pytest_plugin.pyodide_page import PyodidePage
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.pytest_plugin.waiting import wait_until
from tests.faults.scenario import emit

SERVER_ARGS = (  # serve.py's default limits: the clients pace themselves by what welcome says
    "--demo",
    "--demo-tick",
    "0",
    "--allowed-origin",
    "*",  # the page's origin is the session server, not the proxy
    "--heartbeat",
    "1",
)

PRELUDE = """
import asyncio, js, json
from pyrt.engine.backoff import Backoff
from pyrt.engine.heartbeat import Heartbeat
from pyrt.aio.websocket import WebSocketClient
from pyrt.browser import proxies

loop = asyncio.get_running_loop()

from pyrt.testing import until
"""


@pytest.fixture(scope="module")
def rel_server() -> Iterator[ServerProcess]:
    proc = ServerProcess(*SERVER_ARGS)
    yield proc
    proc.stop()


@pytest.fixture
def proxy(rel_server: ServerProcess) -> Iterator[ChaosProxy]:
    with ChaosProxy(rel_server.port) as chaos:
        yield chaos


@pytest.fixture
def cid() -> str:
    return "rel" + uuid.uuid4().hex[:12]


def received(server: ServerProcess, cid: str) -> list[dict[str, Any]]:
    """What the server application handled for ``cid``, in order, once per id."""
    answer = httpx.get(f"{server.url}/demo/received", params={"cid": cid}, timeout=10)
    answer.raise_for_status()
    messages: list[dict[str, Any]] = answer.json()["messages"]
    return messages


def server_checker(messages: list[dict[str, Any]], sent: int, stream: str = "up") -> DeliveryChecker:
    checker = DeliveryChecker()
    for seq in range(sent):
        checker.send(stream, seq)
    for message in messages:
        checker.deliver(stream, message["data"]["seq"])
    return checker


# -- 1. upstream exactly-once --------------------------------------------------------------------


def test_upstream_messages_arrive_exactly_once_in_order_through_random_resets(
    py: PyodidePage, rel_server: ServerProcess, proxy: ChaosProxy, cid: str
) -> None:
    total = 2000
    ns = f"up-{cid}"
    dedup_before = rel_server.metric("pyrt_dedup_hits_total", kind="message")
    py.run(
        PRELUDE
        + f"""
client = WebSocketClient("ws://127.0.0.1:{proxy.port}/ws?cid={cid}",
                         heartbeat=Heartbeat(interval=0.3, timeout=0.3),
                         backoff=Backoff(initial=0.05, maximum=0.5))
delays = []
client.on_reconnecting(lambda attempt, delay, reason: delays.append(delay))
await client.connect().wait_open(10)
sent_at, acked_at, failed = {{}}, {{}}, {{}}

def settle(n, future):
    if future.exception() is not None:
        failed[n] = repr(future.exception())
    else:
        acked_at[n] = loop.time()

async def produce():
    for n in range({total}):
        sent_at[n] = loop.time()
        client.send_with_ack({{"seq": n}}).add_done_callback(lambda f, n=n: settle(n, f))
        if n % 20 == 19:
            await asyncio.sleep(0.05)  # ~400 messages/s: the run spans many resets

producer = asyncio.ensure_future(produce())
""",
        ns=ns,
    )
    started = time.monotonic()
    with ResetSchedule(proxy, 0.2, 1.0, seed=1) as schedule:
        py.wait_for(f"len(acked_at) + len(failed) == {total}", ns=ns, timeout=90)
    elapsed = time.monotonic() - started
    outcome = py.run(
        """
latencies = [(acked_at[n] - sent_at[n]) * 1000 for n in acked_at]
stats = client.stats
client.close()
{"failed": list(failed.items())[:5], "n_failed": len(failed), "latencies": latencies,
 "reconnects": stats.reconnects, "retried": stats.retried, "delays": delays}
""",
        ns=ns,
    )
    messages = received(rel_server, cid)
    report = server_checker(messages, total).report()
    dedup_hits = rel_server.metric("pyrt_dedup_hits_total", kind="message") - dedup_before
    latencies = outcome["latencies"]
    emit(
        "1-upstream-exactly-once",
        report,
        acks_resolved=len(latencies),
        acks_failed=outcome["n_failed"],
        ack_latency_p50_ms=percentile(latencies, 0.5),
        ack_latency_p99_ms=percentile(latencies, 0.99),
        proxy_resets=schedule.resets,
        reconnects=outcome["reconnects"],
        resent_frames=outcome["retried"],
        duplicates_before_dedup=int(dedup_hits),
        reconnect_delay_p50_ms=percentile([d * 1000 for d in outcome["delays"]], 0.5),
        reconnect_delay_max_ms=max([d * 1000 for d in outcome["delays"]], default=None),
        seconds=elapsed,
    )
    assert outcome["n_failed"] == 0, outcome["failed"]
    assert len(latencies) == total  # every send_with_ack resolved
    assert report.sent == report.unique_delivered == report.delivered == total, report.missing
    assert report.exactly_once_in_order
    assert schedule.resets >= 3  # the faults really happened during the run
    assert outcome["reconnects"] >= 3


# -- 3. half-open connections ---------------------------------------------------------------------


def test_a_half_open_connection_is_declared_dead_in_time_and_its_messages_are_resent_once(
    py: PyodidePage, rel_server: ServerProcess, proxy: ChaosProxy, cid: str
) -> None:
    interval, timeout, rounds, per_round = 0.4, 0.4, 3, 10
    bound = (interval + timeout) * 1.1
    ns = f"half-{cid}"
    drops_before = rel_server.metric("pyrt_drops_total", reason="heartbeat")
    py.run(
        PRELUDE
        + f"""
client = WebSocketClient("ws://127.0.0.1:{proxy.port}/ws?cid={cid}",
                         heartbeat=Heartbeat(interval={interval}, timeout={timeout}),
                         backoff=Backoff(initial=0.05, maximum=0.2))
verdicts = []   # [wall clock ms, reason] of every lost connection
client.on_reconnecting(lambda attempt, delay, reason: verdicts.append([js.Date.now(), reason]))
await client.connect().wait_open(10)
outcomes = {{}}
def send(n):
    def settle(future):
        outcomes[n] = "ok" if future.exception() is None else repr(future.exception())
    client.send_with_ack({{"seq": n}}).add_done_callback(settle)
""",
        ns=ns,
    )
    detections: list[float] = []
    server_drop_s: list[float] = []
    for r in range(rounds):
        py.wait_for("client.state.name == 'OPEN'", ns=ns, timeout=10)
        blackholed_at = time.time()
        assert proxy.blackhole_existing() >= 1  # (abandoned links of earlier rounds linger)
        first = r * per_round
        py.run(f"for n in range({first}, {first + per_round}): send(n)", ns=ns)  # into the void
        py.wait_for(f"len(verdicts) == {r + 1}", ns=ns, timeout=10)
        at_ms, reason = py.run("verdicts[-1]", ns=ns)
        assert "heartbeat timeout" in reason
        detections.append(at_ms / 1000 - blackholed_at)
        py.wait_for(f"len(outcomes) == {first + per_round}", ns=ns, timeout=15)
        if r == 0:  # the server's side of the same fault: it drops the silent connection
            wait_until(
                lambda: rel_server.metric("pyrt_drops_total", reason="heartbeat") > drops_before,
                10,
                "the server dropped the half-open connection",
            )
            server_drop_s.append(time.time() - blackholed_at)
    outcome = py.run(
        "stats = client.stats\nclient.close()\n"
        "[sorted(set(outcomes.values())), stats.reconnects, stats.retried]",
        ns=ns,
    )
    report = server_checker(received(rel_server, cid), rounds * per_round).report()
    emit(
        "3-half-open",
        report,
        heartbeat_interval_s=interval,
        heartbeat_timeout_s=timeout,
        detect_bound_s=bound,
        detect_s=[round(d, 3) for d in detections],
        detect_max_s=round(max(detections), 3),
        server_drop_s=[round(s, 2) for s in server_drop_s],
        reconnects=outcome[1],
        resent_frames=outcome[2],
    )
    assert outcome[0] == ["ok"]  # every message sent into the void was acknowledged
    assert report.exactly_once_in_order
    assert report.unique_delivered == rounds * per_round
    assert max(detections) <= bound, detections
    assert outcome[1] == rounds


# -- 8. offline queue -----------------------------------------------------------------------------


@pytest.mark.pyrt_engines("chromium")  # outside the reliability core
def test_while_the_server_is_unreachable_the_queue_follows_its_overflow_policy_exactly(
    py: PyodidePage, rel_server: ServerProcess, proxy: ChaosProxy, cid: str
) -> None:
    limit, sent = 100, 150
    policies = ("drop_oldest", "drop_newest", "raise")
    ns = f"queue-{cid}"
    py.run(
        PRELUDE
        + f"""
from pyrt.errors import QueueFull
clients, errors = {{}}, {{}}
for policy in {list(policies)!r}:
    c = WebSocketClient(f"ws://127.0.0.1:{proxy.port}/ws?cid={cid}-{{policy}}",
                        heartbeat=Heartbeat(interval=0.3, timeout=0.3),
                        backoff=Backoff(initial=0.05, maximum=0.2),
                        queue_limit={limit}, overflow=policy)
    errors[policy] = []
    c.on_error(lambda e, policy=policy: errors[policy].append(type(e).__name__))
    clients[policy] = c
    c.connect()
for c in clients.values():
    await c.wait_open(10)
""",
        ns=ns,
    )
    proxy.set(refuse=True)  # the server is unreachable from now on
    proxy.reset()
    py.wait_for("all(c.state.name == 'RECONNECTING' for c in clients.values())", ns=ns, timeout=10)
    during = py.run(
        f"""
raised = {{}}
for policy, c in clients.items():
    raised[policy] = []
    for n in range({sent}):
        try:
            c.send({{"seq": n}})
        except QueueFull:
            raised[policy].append(n)
# While the server is unreachable a client may also say, once, that it moves on to HTTP
# (TransportUnavailable): a report of its own, not of the queue, so it is left out here.
{{p: [c.stats.queue_length, c.stats.dropped, errors[p].count("QueueFull"), raised[p][:1], len(raised[p]),
     sorted(set(errors[p]) - {{"TransportUnavailable"}})] for p, c in clients.items()}}
""",
        ns=ns,
    )
    wait_until(lambda: proxy.stats.events.count("refused a connection") >= 3, 10, "reconnects were refused")
    proxy.set(refuse=False)
    py.wait_for(
        "all(c.stats.queue_length == 0 and c.state.name == 'OPEN' for c in clients.values())",
        ns=ns,
        timeout=15,
    )
    expected = {
        "drop_oldest": list(range(sent - limit, sent)),
        "drop_newest": list(range(limit)),
        "raise": list(range(limit)),
    }
    got = {
        p: wait_until(
            lambda p=p: (m := received(rel_server, f"{cid}-{p}")) and len(m) >= limit and m,
            10,
            f"{p}: the queue arrived",
        )
        for p in policies
    }
    reconnect_attempts = py.run("{p: c.stats.reconnects for p, c in clients.items()}", ns=ns)
    py.run("for c in clients.values(): c.close()", ns=ns)
    emit(
        "8-offline-queue",
        queue_limit=limit,
        sent_while_down=sent,
        during_outage={
            p: dict(
                zip(
                    ["queue_length", "dropped", "reported", "first_raised", "raised", "error_types"],
                    v,
                    strict=True,
                )
            )
            for p, v in during.items()
        },
        delivered_after={p: [len(v), v[0]["data"]["seq"], v[-1]["data"]["seq"]] for p, v in got.items()},
        reconnect_attempts=reconnect_attempts,
    )
    assert during["drop_oldest"] == [limit, sent - limit, sent - limit, [], 0, ["QueueFull"]]
    assert during["drop_newest"] == [limit, sent - limit, sent - limit, [], 0, ["QueueFull"]]
    assert during["raise"] == [limit, 0, 0, [limit], sent - limit, []]
    for policy in policies:
        assert [m["data"]["seq"] for m in got[policy]] == expected[policy], policy


# -- 12. flow control with the default limits -----------------------------------------------------

FLOW_PAGE = """
failed, acked, published, seen = {{}}, {{}}, {{}}, []
def settle(book, n):
    def done(future):
        if future.exception() is not None:
            failed[(book is published, n)] = repr(future.exception())
        else:
            book[n] = True
    return done
client = WebSocketClient("ws://127.0.0.1:{port}/ws?cid={cid}", queue_limit=10_000,
                         heartbeat=Heartbeat(interval=0.5, timeout=0.5),
                         backoff=Backoff(initial=0.05, maximum=0.5))
closes = []
client.on_close(lambda event: closes.append(event.code))
client.subscribe("{channel}", lambda p: seen.append(p.data), since="0")
"""


def flow_figures(py: PyodidePage, ns: str, server: ServerProcess) -> dict[str, Any]:
    outcome: dict[str, Any] = py.run(
        "stats = client.stats\n"
        "{'failed': sorted(map(str, failed.items()))[:5], 'n_failed': len(failed), 'seen': list(seen),"
        " 'closes': closes, 'state': client.state.name, 'reconnects': stats.reconnects,"
        " 'refused': stats.refused, 'queued': stats.queued, 'retried': stats.retried}",
        ns=ns,
    )
    outcome["server_refusals"] = server.metric("pyrt_errors_total", code="rate_limited")
    outcome["closes_1008"] = server.metric("pyrt_drops_total", reason="rate_limit")
    return outcome


@pytest.mark.pyrt_engines("chromium")  # outside the reliability core
def test_thousands_of_messages_queued_offline_are_all_acked_once_in_order_with_the_default_limits(
    py: PyodidePage, rel_server: ServerProcess, proxy: ChaosProxy, cid: str
) -> None:
    total = 2000
    ns = f"offline-{cid}"
    channel = f"flow-{cid}"
    refusals_before = rel_server.metric("pyrt_errors_total", code="rate_limited")
    py.run(PRELUDE + FLOW_PAGE.format(port=proxy.port, cid=cid, channel=channel), ns=ns)
    proxy.set(refuse=True)  # offline from the start: everything waits in the queue
    py.run(
        f"""
client.connect()
for n in range({total}):
    client.send_with_ack({{"seq": n}}).add_done_callback(settle(acked, n))
for n in range(500):
    client.publish("{channel}", n).add_done_callback(settle(published, n))
""",
        ns=ns,
    )
    wait_until(lambda: proxy.stats.events.count("refused a connection") >= 2, 10, "the page is offline")
    assert py.run("client.stats.queue_length", ns=ns) == total + 500
    started = time.monotonic()
    proxy.set(refuse=False)
    settled = f"len(acked) + len(published) + len(failed) == {total + 500} and (len(seen) >= 500 or failed)"
    py.wait_for(settled, ns=ns, timeout=90)
    elapsed = time.monotonic() - started
    outcome = flow_figures(py, ns, rel_server)
    py.run("client.close()\nawait client.wait_closed(10)\nNone", ns=ns)  # its proxies are gone
    report = server_checker(received(rel_server, cid), total).report()
    refusals = outcome["server_refusals"] - refusals_before
    emit(
        "12-flow-control-offline-queue",
        report,
        queued_offline=total + 500,
        drain_seconds=elapsed,
        ideal_seconds=(total + 500 + 1) / 200,  # the advertised rate (plus the subscribe)
        refused=outcome["refused"],
        server_refusals=refusals,
        closes_1008=outcome["closes_1008"],
        acks_failed=outcome["n_failed"],
    )
    assert outcome["n_failed"] == 0, outcome["failed"]
    assert report.sent == report.unique_delivered == report.delivered == total, report.missing
    assert report.exactly_once_in_order
    assert outcome["seen"] == list(range(500))
    assert outcome["state"] == "OPEN"
    assert outcome["closes"] == []
    assert outcome["closes_1008"] == 0


@pytest.mark.pyrt_engines("chromium")  # outside the reliability core
def test_a_burst_of_thousands_of_publishes_through_random_resets_is_paced_and_delivered_once(
    py: PyodidePage, rel_server: ServerProcess, proxy: ChaosProxy, cid: str
) -> None:
    publishes, messages = 2000, 500
    ns = f"burst-{cid}"
    channel = f"flow-{cid}"
    refusals_before = rel_server.metric("pyrt_errors_total", code="rate_limited")
    page = PRELUDE + FLOW_PAGE.format(port=proxy.port, cid=cid, channel=channel)
    py.run(page + "await client.connect().wait_open(10)\n", ns=ns)
    started = time.monotonic()
    with ResetSchedule(proxy, 0.3, 1.5, seed=12) as schedule:
        py.run(
            f"""
for n in range({publishes}):  # all at once: a page that fires thousands of calls
    client.publish("{channel}", n).add_done_callback(settle(published, n))
for n in range({messages}):
    client.send_with_ack({{"seq": n}}).add_done_callback(settle(acked, n))
""",
            ns=ns,
        )
        settled = f"len(published) + len(acked) + len(failed) == {publishes + messages}"
        py.wait_for(f"{settled} and (len(seen) >= {publishes} or failed)", ns=ns, timeout=90)
    elapsed = time.monotonic() - started
    outcome = flow_figures(py, ns, rel_server)
    py.run("client.close()\nawait client.wait_closed(10)\nNone", ns=ns)  # its proxies are gone
    report = server_checker(received(rel_server, cid), messages).report()
    emit(
        "12-flow-control-burst-resets",
        report,
        publishes=publishes,
        seconds=elapsed,
        ideal_seconds=(publishes + messages) / 200,
        proxy_resets=schedule.resets,
        reconnects=outcome["reconnects"],
        resent=outcome["retried"],
        refused=outcome["refused"],
        server_refusals=outcome["server_refusals"] - refusals_before,
        closes_1008=outcome["closes_1008"],
    )
    assert outcome["n_failed"] == 0, outcome["failed"]
    assert outcome["seen"] == list(range(publishes))  # once each, in order, through the resets
    assert report.exactly_once_in_order
    assert report.unique_delivered == messages
    assert outcome["state"] == "OPEN"
    assert outcome["closes"] == []
    assert outcome["closes_1008"] == 0
    assert schedule.resets >= 2  # the faults really happened during the burst


# -- 10. background-tab throttling ----------------------------------------------------------------


@pytest.mark.pyrt_engines("chromium")  # the DevTools protocol
def test_a_frozen_or_blocked_page_gets_no_false_dead_verdict_and_visibility_probes_at_once(
    py: PyodidePage, rel_server: ServerProcess, proxy: ChaosProxy, cid: str
) -> None:
    ns = f"freeze-{cid}"
    # A ping goes out after every 0.2 s of silence for the whole test, each a round trip through
    # the chaos proxy and the server. With a 0.2 s timeout, one slow round trip on a loaded 2-core
    # machine (another suite's Chromium running beside this one) is a real timeout: the test failed
    # that way only in full runs beside another suite, never alone or after this module's other
    # tests on a quiet machine (the page then holds only closed clients and no live proxy). 0.5 s
    # leaves that margin, and each pause (1.5 s) is still 3 timeouts and 7.5 intervals long, so a
    # check after it is overdue by more than timeout / 2: only a pong delivered first, or the
    # late-check grace, keeps the session.
    interval, timeout = 0.2, 0.5
    py.run(
        PRELUDE
        + f"""
client = WebSocketClient("ws://127.0.0.1:{proxy.port}/ws?cid={cid}",
                         heartbeat=Heartbeat(interval={interval}, timeout={timeout}),
                         backoff=Backoff(initial=0.05, maximum=0.2))
verdicts = []
client.on_reconnecting(lambda attempt, delay, reason: verdicts.append([js.Date.now(), reason]))
await client.connect().wait_open(10)
await until(lambda: client.session is not None and client.stats.rtt is not None)  # heartbeats flow
session = client.session
""",
        ns=ns,
    )
    # A JS ticker measures how long the page really ran no code (proof the fault took effect).
    py.page.evaluate(
        """() => { window.__gap = 0; let last = Date.now();
                   window.__ticker = setInterval(() => { const now = Date.now();
                     window.__gap = Math.max(window.__gap, now - last); last = now; }, 50); }"""
    )
    cdp = py.context.new_cdp_session(py.page)
    freezes, blocks, pause = 3, 3, 1.5  # each pause is 7.5 heartbeat intervals
    # Page.setWebLifecycleState("frozen") is a no-op on a visible headless page; pausing the
    # page's JavaScript in the debugger stops it just as hard (timers and socket events queue up).
    cdp.send("Debugger.enable")
    for _ in range(freezes):
        cdp.send("Debugger.pause")
        time.sleep(pause)  # the fault itself: the page runs no code for this long
        cdp.send("Debugger.resume")
        py.wait_for("client.stats.received > 0", ns=ns)
        py.run("pings = client.stats.sent", ns=ns)
        py.wait_for("client.stats.sent > pings + 1", ns=ns, timeout=5)  # heartbeats resumed
    take_gap = "() => { const gap = window.__gap; window.__gap = 0; return gap; }"
    frozen_gap_s = py.page.evaluate(take_gap) / 1000
    for _ in range(blocks):
        # Timers that fire late, with a pong waiting behind them: a ping goes out (the page
        # becomes visible), then the main thread is busy for 1.5 s while the pong arrives.
        py.page.evaluate(
            """ms => { document.dispatchEvent(new Event("visibilitychange"));
                       const end = Date.now() + ms; while (Date.now() < end) {} }""",
            pause * 1000,
        )
        py.run("pings = client.stats.sent", ns=ns)
        py.wait_for("client.stats.sent > pings + 1", ns=ns, timeout=5)
    survived = py.run("[client.session == session, client.stats.reconnects, verdicts]", ns=ns)
    blocked_gap_s = py.page.evaluate("() => { clearInterval(window.__ticker); return window.__gap; }") / 1000
    cdp.detach()

    # Visible again: a dead connection is found within one timeout, not after the idle interval.
    py.run(
        f"""
client.close()
probe = WebSocketClient("ws://127.0.0.1:{proxy.port}/ws?cid={cid}-v",
                        heartbeat=Heartbeat(interval=30, timeout=0.3),
                        backoff=Backoff(initial=0.05, maximum=0.2))
probe_verdicts = []
probe.on_reconnecting(lambda attempt, delay, reason: probe_verdicts.append([js.Date.now(), reason]))
await probe.connect().wait_open(10)
""",
        ns=ns,
    )
    assert proxy.blackhole_existing() >= 1
    visible_at_ms = py.run(
        "js.Date.now() + 0 if js.document.dispatchEvent(js.Event.new('visibilitychange')) else None", ns=ns
    )
    py.wait_for("probe_verdicts", ns=ns, timeout=5)
    at_ms, reason = py.run("probe_verdicts[0]", ns=ns)
    py.wait_for("probe.state.name == 'OPEN'", ns=ns, timeout=10)
    py.run("probe.close()", ns=ns)
    detect_s = (at_ms - visible_at_ms) / 1000
    emit(
        "10-background-throttling",
        heartbeat_interval_s=interval,
        heartbeat_timeout_s=timeout,
        freezes=freezes,
        main_thread_blocks=blocks,
        pause_s=pause,
        longest_pause_seen_s={"frozen": frozen_gap_s, "blocked": blocked_gap_s},
        false_dead_verdicts=len(survived[2]),
        same_session=survived[0],
        visible_probe_detect_s=round(detect_s, 3),
        visible_probe_interval_s=30,
        visible_probe_timeout_s=0.3,
    )
    assert min(frozen_gap_s, blocked_gap_s) >= pause * 0.9  # the page really stopped running code
    assert survived == [True, 0, []]
    assert "heartbeat timeout" in reason
    assert detect_s <= 0.3 * 1.1 + 0.1  # one timeout (+10%, + timer slack), not the 30 s interval


# -- 15. the laptop slept ---------------------------------------------------------------------------

# The page's wall clock, movable: Pyodide's time.time() reads Date.now(), performance.now() stays.
# A laptop that sleeps looks like this to a page on Linux and macOS: the monotonic clock (and with
# it every timer) stood still while the wall clock went on.
MOVABLE_WALL_CLOCK = """() => { if (window.__realNow) return;
  window.__realNow = Date.now; window.__ahead = 0;
  Date.now = () => window.__realNow.call(Date) + window.__ahead; }"""


def test_after_a_sleep_a_dead_socket_is_replaced_at_once_and_the_queue_arrives_once(
    py: PyodidePage, rel_server: ServerProcess, proxy: ChaosProxy, cid: str
) -> None:
    ns = f"sleep-{cid}"
    interval, timeout, slept_s = 30.0, 10.0, 600
    py.evaluate(MOVABLE_WALL_CLOCK)
    py.run(
        PRELUDE
        + f"""
import time
client = WebSocketClient("ws://127.0.0.1:{proxy.port}/ws?cid={cid}",
                         heartbeat=Heartbeat(interval={interval}, timeout={timeout}),
                         backoff=Backoff(initial=0.05, maximum=0.2))
verdicts = []
client.on_reconnecting(lambda attempt, delay, reason: verdicts.append([js.performance.now(), reason]))
await client.connect().wait_open(10)
await until(lambda: client._timer is not None)  # the clocks have had their first reading
""",
        ns=ns,
    )
    assert proxy.blackhole_existing() >= 1  # the server and every NAT forgot the connection
    woke_at_ms = py.evaluate(f"() => {{ window.__ahead = {slept_s * 1000}; return performance.now(); }}")
    py.run(
        """
acks = [client.send_with_ack({"seq": n}) for n in range(3)]  # written on waking: on the dead socket
wall_ahead = round(time.time() - js.window.__realNow.call(js.Date) / 1000)
""",
        ns=ns,
    )
    py.wait_for("verdicts", ns=ns, timeout=interval)
    py.wait_for("all(a.done() for a in acks)", ns=ns, timeout=20)
    outcome = py.run(
        """
reopened = client.state.name
result = {"verdict": verdicts[0], "wall_ahead": wall_ahead, "acked": [a.exception() is None for a in acks],
          "reconnects": client.stats.reconnects, "state": reopened}
client.close()
js.Date.now = js.window.__realNow
result
""",
        ns=ns,
    )
    detect_s = (outcome["verdict"][0] - woke_at_ms) / 1000
    messages = received(rel_server, cid)
    report = server_checker(messages, 3).report()
    emit(
        "16-laptop-sleep",
        report,
        slept_s=slept_s,
        heartbeat_interval_s=interval,
        heartbeat_timeout_s=timeout,
        detect_s=round(detect_s, 3),
        without_wake_check_s=interval + timeout,
        reconnects=outcome["reconnects"],
    )
    assert outcome["wall_ahead"] == slept_s  # Python in the page saw the wall clock jump
    assert "the machine slept for 6" in outcome["verdict"][1]
    # Found by the clock check (every 2 s), long before a heartbeat could (interval + timeout).
    assert detect_s < interval / 2
    assert outcome["acked"] == [True, True, True]
    assert outcome["reconnects"] == 1
    assert outcome["state"] == "OPEN"
    report.assert_exactly_once_in_order()


# -- 9. leak soak -----------------------------------------------------------------------------------

LEAK_CYCLE = """
from pyodide.http import pyfetch
import gc

def collect():
    gc.collect()
    return len(gc.get_objects())

# Short connect and ack timeouts: Pyodide's loop keeps a cancelled timer's handle until its
# setTimeout fires, so the longest timeout bounds how long such handles linger.
client = WebSocketClient("/ws?cid={cid}", heartbeat=Heartbeat(interval=0.5, timeout=0.5),
                         backoff=Backoff(initial=0.01, maximum=0.05, min_uptime=0),
                         connect_timeout=2.0, ack_timeout=2.0)
echoes, acked, opens = [0], [0], [0]
client.on_message(lambda message: echoes.__setitem__(0, echoes[0] + 1))
client.on_open(lambda: opens.__setitem__(0, opens[0] + 1))

async def cycles(count, per_cycle):
    for _ in range(count):
        # No asyncio.wait_for here: its own 10 s timer handle would linger like the ones above.
        await client.wait_open()
        expected = echoes[0] + per_cycle - 1
        for n in range(per_cycle - 1):
            client.send({{"seq": n}})  # echoed back by the server's application
        await client.send_with_ack({{"seq": "acked"}})
        acked[0] += 1
        await until(lambda: echoes[0] >= expected)
        reopened = opens[0] + 1
        await pyfetch("/demo/drop", method="POST", body=json.dumps({{"cid": "{cid}"}}),
                      headers={{"Content-Type": "application/json"}})
        await until(lambda: opens[0] >= reopened)
"""


def heap_after_gc(py: PyodidePage) -> float:
    """The page's JS heap in MB after a full garbage collection."""
    cdp = py.context.new_cdp_session(py.page)
    try:
        cdp.send("HeapProfiler.collectGarbage")
        used: float = cdp.send("Runtime.getHeapUsage")["usedSize"]
    finally:
        cdp.detach()
    return used / 1e6


def run_leak_soak(py: PyodidePage, cid: str, cycles: int, per_cycle: int, scenario: str) -> None:
    ns = f"leak-{cid}"
    warmup = 10
    baseline_proxies = py.run(PRELUDE + "proxies.live_count()", ns=ns)
    py.run(
        LEAK_CYCLE.format(cid=cid) + f"\nclient.connect()\nawait cycles({warmup}, {per_cycle})",
        ns=ns,
        timeout=60,
    )
    py.run("collect()", ns=ns)
    heap_before = heap_after_gc(py)
    before = py.run("[collect(), proxies.live_count(), int(js.pyodide._module.HEAP8.length)]", ns=ns)
    started = time.monotonic()
    py.run(f"soak = asyncio.ensure_future(cycles({cycles}, {per_cycle}))", ns=ns)
    py.wait_for("soak.done() and (soak.result() or True)", ns=ns, timeout=30 + cycles * 0.5)
    elapsed = time.monotonic() - started
    # Cancelled timers are released when their setTimeout fires (<= 2 s): wait for that. The
    # count that passes is the one reported: the heartbeat keeps arming timers, so a second
    # count taken later can catch some in flight (the faster the cycles, the more).
    settled = f"(lambda n: n if n - {before[0]} < 200 else 0)(collect())"
    objects_after = py.wait_for(settled, ns=ns, timeout=10)
    heap_after = heap_after_gc(py)
    after = py.run(
        "[None, proxies.live_count(), int(js.pyodide._module.HEAP8.length), echoes[0], acked[0],"
        " client.stats.reconnects]",
        ns=ns,
    )
    after[0] = objects_after
    py.run("client.close()\nawait client.wait_closed(5)\nNone", ns=ns)
    closed_proxies = py.run("proxies.live_count()", ns=ns)
    total_cycles = warmup + cycles
    emit(
        scenario,
        reconnect_cycles=total_cycles,
        messages_sent=total_cycles * per_cycle,
        echoes_received=after[3],
        acks=after[4],
        reconnects=after[5],
        live_proxies={
            "before": baseline_proxies,
            "open_after_warmup": before[1],
            "open_after_soak": after[1],
            "after_close": closed_proxies,
        },
        js_heap_mb={
            "after_warmup": heap_before,
            "after_soak": heap_after,
            "growth": heap_after - heap_before,
        },
        python_objects={"after_warmup": before[0], "after_soak": after[0], "growth": after[0] - before[0]},
        wasm_memory_mb={"after_warmup": before[2] / 1e6, "after_soak": after[2] / 1e6},
        seconds=elapsed,
    )
    assert after[3] == total_cycles * (per_cycle - 1)  # every echo came back
    assert after[4] == total_cycles
    assert after[5] == total_cycles  # one reconnect per cycle, no extra
    assert after[1] == before[1]  # an open client holds the same proxies after N reconnects
    assert closed_proxies == baseline_proxies
    assert heap_after - heap_before < 1.0, (heap_before, heap_after)  # JS heap flat (MB)
    assert after[0] - before[0] < 200, (before[0], after[0])  # no Python objects pile up


@pytest.mark.pyrt_engines("chromium")  # the DevTools protocol
def test_reconnect_cycles_leak_no_proxies_heap_or_objects(py: PyodidePage, cid: str) -> None:
    run_leak_soak(py, cid, cycles=50, per_cycle=100, scenario="9-leak-soak-short")


@pytest.mark.soak
@pytest.mark.pyrt_engines("chromium")  # the DevTools protocol
def test_soak_500_reconnect_cycles_and_50k_messages_leak_nothing(py: PyodidePage, cid: str) -> None:
    run_leak_soak(py, cid, cycles=490, per_cycle=100, scenario="9-leak-soak")
