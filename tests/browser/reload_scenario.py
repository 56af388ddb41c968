"""A page reload with ``persist=``, run wherever Python runs: a page, a PyScript worker, a notebook.

:func:`reload_with_persist` drives any *runner* (an object with ``run(code, ns=...)``,
``wait_for(expression, ns=..., timeout=...)`` and ``reload()``) through the scenario of
docs/reliability.md "Page reload with persist": 20 acked messages and 50 publications go through;
then acks and publications stop reaching the client while 40 more messages reach the server and
50 more publications are missed; the client waits until they are durable; the page reloads
(a worker is simply terminated); 20 more publications come while nothing listens; the new
client (same key) restores, re-sends the 40 with their ids, resumes the channel by offset and
reports each restored message's fate. The caller checks exactly-once with the result.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Protocol

import httpx

from pyrt.pytest_plugin.delivery import DeliveryChecker, DeliveryReport
from pyrt.pytest_plugin.proxy import ChaosProxy
from pyrt.pytest_plugin.server_process import ServerProcess
from tests.faults.scenario import emit

__all__ = ["ReloadResult", "Runner", "check_exactly_once", "reload_scenario", "reload_with_persist"]

CLIENT = """
import asyncio, time
from pyrt import Backoff, Heartbeat, WebSocketClient
seen, restored = [], []
c = WebSocketClient("{url}", persist="{key}", heartbeat=Heartbeat(interval=30, timeout=10),
                    backoff=Backoff(initial=0.05, maximum=0.5))
c.on_restored(lambda m: restored.append([m.id, m.ok, m.data["seq"], m.reply["seq"] if m.ok else None]))
"""


class Runner(Protocol):
    def run(self, code: str, *, ns: str | None = None, timeout: float = 30.0) -> Any: ...

    def wait_for(self, code: str, *, ns: str | None = None, timeout: float = 10.0) -> Any: ...

    def reload(self) -> object: ...


class ReloadResult:
    """What the scenario observed; ``messages`` and ``publications`` are delivery reports."""

    def __init__(self, **figures: Any) -> None:
        self.figures = figures
        self.messages: DeliveryReport = figures.pop("messages")
        self.publications: DeliveryReport = figures.pop("publications")
        self.restored: list[list[Any]] = figures.pop("restored")


def _received(server: ServerProcess, cid: str) -> list[int]:
    answer = httpx.get(f"{server.url}/demo/received", params={"cid": cid}, timeout=10)
    return [m["data"]["seq"] for m in answer.json()["messages"]]


def reload_with_persist(
    runner: Runner, server: ServerProcess, *, cid: str, channel: str, key: str
) -> ReloadResult:
    """Run the scenario (see the module docstring) and return what it observed."""

    def publish(seqs: range) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for n in seqs:
                http.post("/publish", json={"channel": channel, "data": {"seq": n}}).raise_for_status()

    with ChaosProxy(server.port) as proxy:
        setup = CLIENT.format(url=f"ws://127.0.0.1:{proxy.port}/ws?cid={cid}", key=key)
        runner.run(
            setup
            + f"""
c.subscribe("{channel}", lambda p: seen.append(p.data["seq"]), since="0")
await c.connect().wait_open(10)
acks = [c.send_with_ack({{"seq": n}}) for n in range(20)]
await asyncio.wait_for(asyncio.gather(*acks), 10)
c.storage_kind
""",
            ns="first",
            timeout=60,
        )
        storage_kind = runner.run("c.storage_kind", ns="first")
        publish(range(50))
        runner.wait_for("len(seen) == 50", ns="first", timeout=20)
        # Acks and publications stop reaching the client; what it sends still reaches the server.
        assert proxy.blackhole_existing(("down",)) == 1
        publish(range(50, 100))
        durable_ms = runner.run(
            """
started = time.perf_counter()
pending = [c.send_with_ack({'seq': n}) for n in range(20, 60)]
await c.persisted()
(time.perf_counter() - started) * 1000
""",
            ns="first",
        )
        deadline = time.monotonic() + 20
        while len(_received(server, cid)) < 60:
            assert time.monotonic() < deadline, "the server did not handle the 40 messages"
            time.sleep(0.02)
        first_seen, unacked = runner.run("[list(seen), c.stats.pending_acks]", ns="first")
        dedup_before = server.metric("pyrt_dedup_hits_total", kind="message")
        started = time.perf_counter()
        runner.reload()
        reload_seconds = time.perf_counter() - started
        publish(range(100, 120))  # while nothing listens
        runner.run(
            setup + f'c.subscribe("{channel}", lambda p: seen.append(p.data["seq"]))\nc.connect()\nNone',
            ns="second",
        )
        try:
            done = "len(seen) >= 70 and c.stats.pending_acks == 0 and len(restored) == 40"
            runner.wait_for(done, ns="second", timeout=30)
        except AssertionError as exc:
            state = runner.run("[seen, restored, str(c.stats), c.state.name]", ns="second")
            raise AssertionError(f"after the reload: {state}") from exc
        second_seen, restored, restored_count, storage_after = runner.run(
            "[list(seen), restored, c.stats.restored, c.storage_kind]", ns="second"
        )
        runner.run("c.close()", ns="second")
    dedup_hits = server.metric("pyrt_dedup_hits_total", kind="message") - dedup_before

    messages = DeliveryChecker()
    for n in range(60):
        messages.send("messages", n)
    for seq in _received(server, cid):
        messages.deliver("messages", seq)
    publications = DeliveryChecker()
    for n in range(120):
        publications.send("publications", n)
    for seq in first_seen + second_seen:
        publications.deliver("publications", seq)
    return ReloadResult(
        messages=messages.report(),
        publications=publications.report(),
        restored=restored,
        storage=storage_kind,
        storage_after_reload=storage_after,
        unacked_at_reload=unacked,
        restored_count=restored_count,
        durable_after_ms=durable_ms,
        reload_seconds=reload_seconds,
        duplicates_before_dedup=int(dedup_hits),
        publications_before_reload=len(first_seen),
        publications_after_reload=len(second_seen),
    )


def check_exactly_once(result: ReloadResult, storage: str) -> None:
    """What every run of the scenario must show: nothing lost, nothing twice, every fate known."""
    assert result.figures["storage"] == result.figures["storage_after_reload"] == storage
    assert result.figures["unacked_at_reload"] == 40
    assert result.figures["restored_count"] == 40
    assert result.messages.exactly_once_in_order
    assert result.messages.unique_delivered == result.messages.delivered == 60
    assert result.figures["duplicates_before_dedup"] >= 40  # re-sent with their ids: dedup, not delivery
    assert sorted(seq for _, _, seq, _ in result.restored) == list(range(20, 60))
    assert all(ok and reply == seq for _, ok, seq, reply in result.restored)
    assert result.publications.exactly_once_in_order
    assert result.publications.unique_delivered == result.publications.delivered == 120


def reload_scenario(runner: Runner, server: ServerProcess, *, name: str, storage: str) -> ReloadResult:
    """Run the scenario with fresh ids, print its figures as ``<name>-messages`` and
    ``<name>-publications``, and check it (:func:`check_exactly_once`)."""
    tag = uuid.uuid4().hex[:10]
    result = reload_with_persist(runner, server, cid=f"reload-{tag}", channel=f"rel-{tag}", key=f"pyrt-{tag}")
    emit(f"{name}-messages", result.messages, **result.figures)
    emit(f"{name}-publications", result.publications)
    check_exactly_once(result, storage)
    return result
