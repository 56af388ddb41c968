"""Reliability of what flows *to* the page (docs/reliability.md, scenarios 2 and 7): a
``WebSocketClient`` subscription, an ``EventSourceClient`` and a ``FetchEventSource`` through the
chaos proxy, against a real ``serve.py``.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyrt import WebSocketClient
from pyrt.pytest_plugin.delivery import DeliveryChecker
from pyrt.pytest_plugin.proxy import ChaosProxy, ResetSchedule
from pyrt.pytest_plugin.pyodide_page import PyodidePage
from pyrt.pytest_plugin.redis_process import RedisServer
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.pytest_plugin.waiting import wait_until
from tests.faults.scenario import emit

PRELUDE = """
import asyncio, js, json
from pyrt.engine.backoff import Backoff
from pyrt.engine.heartbeat import Heartbeat
from pyrt.aio.websocket import WebSocketClient
from pyrt.aio.eventsource import EventSourceClient
from pyrt.aio.fetch_event_source import FetchEventSource

FAST = Backoff(initial=0.05, maximum=0.5)
"""


class Publisher:
    """Publishes ``count`` publications ``{"seq": n, "pad": ...}`` into a channel from a thread,
    through a pyrt ``WebSocketClient`` on CPython (acked ``publish``, pipelined, paced by the limits
    the server advertises), ``per_burst`` calls at a time with a pause between bursts; records when
    each call was made."""

    def __init__(
        self, ws_url: str, channel: str, count: int, per_burst: int = 10, pause: float = 0.06, pad: int = 0
    ) -> None:
        self.ws_url, self.channel, self.count = ws_url, channel, count
        self.per_burst, self.pause, self.pad = per_burst, pause, "x" * pad
        self.sent_at: dict[int, float] = {}
        self.acked = 0
        self.refused = 0  # refusals the server sent (retried by the client, never lost)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="publisher")

    def start(self) -> Publisher:
        self._thread.start()
        return self

    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the publisher did not finish within {timeout} s ({self.acked} acked)")
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            asyncio.run(self._publish())
        except BaseException as exc:
            self.error = exc

    async def _publish(self) -> None:
        queue = {"queue_limit": 100_000, "queue_bytes": 64 << 20}  # the whole run may wait at once
        async with WebSocketClient(f"{self.ws_url}/ws", heartbeat=None, **queue) as client:
            futures = []
            for n in range(self.count):
                self.sent_at[n] = time.time()
                future = client.publish(self.channel, {"seq": n, "pad": self.pad}, event="pub", timeout=30)
                future.add_done_callback(self._settled)
                futures.append(future)
                if n % self.per_burst == self.per_burst - 1 and self.pause:
                    await asyncio.sleep(self.pause)  # so the run spans many faults
            await asyncio.gather(*futures)  # raises the first failure (none expected)
            self.refused = client.stats.refused

    def _settled(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.acked += 1


def checker_for(publisher: Publisher, deliveries: list[list[Any]], stream: str) -> DeliveryChecker:
    """``deliveries``: ``[seq, wall clock ms]`` in delivery order."""
    checker = DeliveryChecker()
    for seq, at in publisher.sent_at.items():
        checker.send(stream, seq, at)
    for seq, at_ms in deliveries:
        checker.deliver(stream, seq, at_ms / 1000)
    return checker


# -- 2. downstream exactly-once ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def fan_server() -> Iterator[ServerProcess]:
    proc = ServerProcess(
        "--demo",
        "--demo-tick",
        "0",
        "--allowed-origin",
        "*",
        "--retention",
        "10000",
        "--sse-retry",
        "50",
        "--heartbeat",
        "1",
    )
    yield proc
    proc.stop()


def test_publications_reach_ws_eventsource_and_fetch_clients_exactly_once_through_random_resets(
    py: PyodidePage, fan_server: ServerProcess
) -> None:
    total = 2000
    channel = "rel-down-" + uuid.uuid4().hex[:10]
    with ChaosProxy(fan_server.port) as proxy:
        origin = proxy.url  # another origin on localhost: the page may reach it
        ns = f"down-{channel}"
        py.run(
            PRELUDE
            + f"""
got = {{"ws": [], "eventsource": [], "fetch": []}}
ws = WebSocketClient("ws://127.0.0.1:{proxy.port}/ws", heartbeat=Heartbeat(interval=0.3, timeout=0.3),
                     backoff=FAST)
ws.subscribe("{channel}", lambda p: got["ws"].append([p.data["seq"], js.Date.now(), p.recovered]), since="0")
ws.connect()
es = EventSourceClient("{origin}/sse?channel={channel}&lastEventId=0", backoff=FAST)
es.on("pub", lambda e: got["eventsource"].append([e.json()["seq"], js.Date.now()]))
es.connect()
fe = FetchEventSource("{origin}/sse?channel={channel}", last_event_id="0", backoff=FAST,
                      stall_timeout=2.0)
fe.on("pub", lambda e: got["fetch"].append([e.json()["seq"], js.Date.now()]))
fe.connect()
await ws.wait_open(10)
""",
            ns=ns,
        )
        py.wait_for("es.ready_state == 1 and fe.ready_state == 1", ns=ns, timeout=10)
        started = time.monotonic()
        publisher = Publisher(fan_server.ws_url, channel, total).start()
        with ResetSchedule(proxy, 0.2, 1.0, seed=2) as schedule:
            wait_until(publisher.done, 60, "the publisher finished", page=py)
            publisher.join(1)
            py.wait_for(f"all(len(v) >= {total} for v in got.values())", ns=ns, timeout=60)
        elapsed = time.monotonic() - started
        result = py.run(
            """
out = {"got": {k: [d[:2] for d in v] for k, v in got.items()},
       "unrecovered": sum(1 for d in got["ws"] if not d[2]),
       "reconnects": {"ws": ws.stats.reconnects, "eventsource": es.stats.opens - 1,
                      "fetch": fe.stats.opens - 1},
       "ws_duplicates_dropped": ws.stats.duplicates}
ws.close(); es.close(); fe.close()
out
""",
            ns=ns,
        )
    reports = {name: checker_for(publisher, result["got"][name], name).report() for name in result["got"]}
    for name, report in reports.items():
        emit(
            f"2-downstream-exactly-once-{name}",
            report,
            proxy_resets=schedule.resets,
            reconnects=result["reconnects"][name],
            publisher_refused=publisher.refused,
            seconds=elapsed,
            **({"client_dropped_duplicates": result["ws_duplicates_dropped"]} if name == "ws" else {}),
        )
    assert schedule.resets >= 3
    for name, report in reports.items():
        assert report.sent == total, name
        assert report.unique_delivered == report.delivered == total, (name, report.missing)
        assert report.exactly_once_in_order, name
        assert result["reconnects"][name] >= 2, name  # the faults reached this client too
    assert result["unrecovered"] == 0  # no gap was ever reported


# -- 7. slow consumer ---------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    """The peak resident memory of a process, sampled on a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = self.peak = rss_mb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_mb(self.pid))


@pytest.fixture(scope="module")
def redis_url(pyrt_redis: RedisServer) -> str:
    return pyrt_redis.url


@pytest.mark.pyrt_engines("chromium")  # outside the reliability core
def test_a_slow_consumer_is_cut_off_with_bounded_server_memory_and_recovers_without_a_gap(
    py: PyodidePage, pyrt_start_server: Any, redis_url: str
) -> None:
    # On Redis, retention lives in redis-server: the serve.py process's memory growth is what it
    # buffers for connections, which its limits bound whatever is published: the slow client's
    # send queue (64 KiB here) and a replay page (half of it), the publisher's publications in
    # flight to Redis (64 KiB) and its frames read ahead (1 MiB at most). Measured: ~1.3 MB. A
    # server that holds the backlog for the slow client (its whole replay read at once, or the
    # publisher's frames read ahead without a window) grows by about what was published instead.
    queue_limit = 64 * 1024
    total, pad = 4000, 2000  # ~8 MB of publications: 800 s at the slow client's 10 KiB/s
    link = 10 * 1024
    server: ServerProcess = pyrt_start_server(
        "--redis",
        redis_url,
        "--redis-prefix",
        f"slow{uuid.uuid4().hex[:6]}:",
        "--demo",
        "--demo-tick",
        "0",
        "--allowed-origin",
        "*",
        "--retention",
        "10000",
        # No rate limit here: the scenario measures what the server buffers for a slow reader
        # while ~8 MB arrive as fast as one publisher can push them; at the default 200 frames/s
        # the publisher would take 20 s for it, and the test would measure the limit instead.
        "--rate-limit",
        "0",
        "--publish-rate",
        "0",  # 4,000 publications at full speed: the slow consumer is measured, not the publisher
        # The publisher and the page share 127.0.0.1: the address's CPU budget would pace the
        # publisher (to 8-25 s, sometimes past the minute the test gives it) and the test would
        # measure the budget instead.
        "--cpu-share-per-ip",
        "0",
        "--send-queue-bytes",
        str(queue_limit),
        "--heartbeat",
        "5",
        "--no-ws-deflate",
    )
    channel = "rel-slow-" + uuid.uuid4().hex[:10]
    with ChaosProxy(server.port) as proxy:
        proxy.set(bandwidth=link, rcvbuf=8192)  # a 10 KiB/s link with no hidden buffers
        ns = f"slow-{channel}"
        py.run(
            PRELUDE
            + f"""
got, closes = [], []
ws = WebSocketClient("ws://127.0.0.1:{proxy.port}/ws", heartbeat=Heartbeat(interval=5, timeout=5),
                     backoff=FAST)
ws.on_reconnecting(lambda attempt, delay, reason: closes.append([js.Date.now(), reason]))
ws.subscribe("{channel}", lambda p: got.append([p.data["seq"], js.Date.now(), p.recovered]), since="0")
await ws.connect().wait_open(10)
""",
            ns=ns,
        )
        py.wait_for("ws.stats.received >= 2", ns=ns)  # welcome + subscribed
        with RssSampler(server.proc.pid) as rss:
            started = time.monotonic()
            publisher = Publisher(server.ws_url, channel, total, per_burst=100, pause=0.0, pad=pad).start()
            publisher.join(60)
            published_s = time.monotonic() - started
            wait_until(
                lambda: server.metric("pyrt_drops_total", reason="slow_consumer") >= 1,
                30,
                "the server cut the slow consumer off",
            )
            cut_off_s = time.monotonic() - started
            # The client learns at once that the server gave up on it, still on the slow link
            # (not only after the kernel's send buffer has trickled through at 10 KiB/s).
            py.wait_for("closes", ns=ns, timeout=15)
            noticed_s = time.monotonic() - started
            during = py.run("[len(got), [c[1] for c in closes]]", ns=ns)
        with RssSampler(server.proc.pid) as replay_rss:
            proxy.set(bandwidth=None)  # the link recovers
            py.wait_for(f"len(got) >= {total}", ns=ns, timeout=60)
        recovered_s = time.monotonic() - started
        result = py.run(
            "out = [[d[:2] for d in got], sum(1 for d in got if not d[2]), ws.stats.reconnects]\n"
            "ws.close()\nout",
            ns=ns,
        )
    slow_drops = server.metric("pyrt_drops_total", reason="slow_consumer")
    report = checker_for(publisher, result[0], "slow").report()
    published_mb = total * (pad + 60) / 1e6
    emit(
        "7-slow-consumer",
        report,
        broker="redis",
        link_bytes_per_s=link,
        published_mb=published_mb,
        publish_s=published_s,
        server_send_queue_limit_kb=queue_limit / 1024,
        slow_consumer_drops=int(slow_drops),
        server_cut_off_after_s=cut_off_s,
        client_noticed_after_s=noticed_s,
        delivered_before_link_recovered=during[0],
        close_reasons=sorted(set(during[1])),
        reconnects=result[2],
        server_rss_mb={
            "start": rss.start,
            "peak_while_slow": rss.peak,
            "growth_while_slow": rss.peak - rss.start,
            "peak_during_catch_up_replay": replay_rss.peak,
        },
        caught_up_after_s=recovered_s,
        unrecovered_gaps=result[1],
    )
    assert slow_drops >= 1
    assert during[0] < total / 4  # it really was far too slow to keep up
    assert report.exactly_once_in_order
    assert report.unique_delivered == report.delivered == total, report.missing
    assert result[1] == 0  # recovered by offset: no publication reported as lost
    # The server did not buffer what the slow client could not take: its memory grew by far
    # less than the volume published while the client was stuck (the bound leaves room for the
    # allocator; holding the backlog costs 10-17 MB of resident memory for these 8.2 MB).
    assert rss.peak - rss.start < published_mb / 2, (rss.start, rss.peak)
