"""State then stream against a real application: followers that start while four clients publish
as fast as they are acknowledged, and whose connections are reset now and then, end with exactly
the application's state, having applied each publication once, in order."""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

import httpx

from pyrt import WebSocketClient
from pyrt.aio.state_stream import SyncedState
from pyrt.engine.backoff import Backoff
from pyrt.pytest_plugin.proxy import ChaosProxy
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.wire.frames import Publication
from tests.faults.scenario import emit
from tests.server.cpython_support import run, until

APP = Path(__file__).with_name("state_app.py")
FAST = Backoff(initial=0.05, maximum=0.3)
PUBLISHERS, EACH = 4, 150


class Follower:
    """A state-then-stream follower that records every publication it applies."""

    def __init__(self, url: str, state_url: str) -> None:
        self.client = WebSocketClient(url, backoff=FAST)
        self.state_url = state_url
        self.applied: list[str] = []
        self.synced: SyncedState[int] | None = None
        self.snapshots: list[int] = []

    async def load(self) -> tuple[int, str]:
        async with httpx.AsyncClient(timeout=10) as http:
            body = (await http.get(self.state_url)).json()
        self.snapshots.append(body["count"])
        return int(body["total"]), str(body["offset"])

    def apply(self, state: int, publication: Publication) -> int:
        assert publication.offset is not None
        self.applied.append(publication.offset)
        return state + int(publication.data)

    async def start(self) -> None:
        self.client.connect()
        self.synced = await self.client.state_then_stream("counter", self.load, self.apply)


def test_followers_that_start_mid_stream_end_with_the_applications_state() -> None:
    app = ServerProcess(command=[sys.executable, str(APP)])
    proxy = ChaosProxy(app.port)
    proxy.start()

    async def publisher(n: int) -> None:
        client = WebSocketClient(app.ws_url + "/ws", backoff=FAST)
        rng = random.Random(n)
        async with client:
            for _ in range(EACH):
                await client.send_with_ack({"add": rng.randint(1, 9)})
                if rng.random() < 0.2:
                    await asyncio.sleep(rng.random() / 50)

    async def scenario() -> None:
        followers = [Follower(proxy.ws_url + "/ws", app.url + "/state") for _ in range(3)]
        publishing = [asyncio.ensure_future(publisher(n)) for n in range(PUBLISHERS)]
        for follower in followers:  # each one starts at another moment of the stream
            await asyncio.sleep(0.15)
            await follower.start()
            proxy.reset()  # and every connection through the proxy is reset: they resume
        await asyncio.gather(*publishing)
        async with httpx.AsyncClient(timeout=10) as http:
            final = (await http.get(app.url + "/state")).json()
        assert final["count"] == PUBLISHERS * EACH
        for follower in followers:
            synced = follower.synced
            assert synced is not None
            await until(lambda: synced.state == final["total"], timeout=20)  # noqa: B023 (awaited here)
            offsets = [tuple(int(x) for x in o.split("-")) for o in follower.applied]
            assert offsets == sorted(set(offsets)), "a publication applied twice or out of order"
            assert follower.snapshots[0] + len(follower.applied) == final["count"]  # none missed
            follower.client.close()
        emit(
            "state_then_stream.concurrent",
            publications=final["count"],
            started_after=[f.snapshots[0] for f in followers],
            applied=[len(f.applied) for f in followers],
            reloads=[f.synced.reloads if f.synced else None for f in followers],
            resets=proxy.stats.resets,
        )

    try:
        run(scenario, timeout=120)
    finally:
        proxy.stop()
        app.stop()


def test_a_snapshot_older_than_the_channels_retention_is_loaded_again() -> None:
    # --retention is scaled down from 1000 so that a snapshot falls out of it within the test.
    app = ServerProcess("--retention", "20", command=[sys.executable, str(APP)])

    async def scenario() -> None:
        async with WebSocketClient(app.ws_url + "/ws", backoff=FAST) as publisher:
            await publisher.send_with_ack({"add": 1})
            follower = Follower(app.ws_url + "/ws", app.url + "/state")
            stale = await follower.load()  # a snapshot kept too long (a cache, a slow page)
            for _ in range(50):
                await publisher.send_with_ack({"add": 2})
            fresh = follower.load
            loads = iter([stale])

            async def load() -> tuple[int, str]:
                return next(loads, None) or await fresh()

            follower.load = load  # type: ignore[method-assign]
            await follower.start()
            synced = follower.synced
            assert synced is not None
            await until(lambda: synced.state == 101 and not synced.loading, timeout=20)
            assert synced.reloads == 1
            await publisher.send_with_ack({"add": 5})
            await until(lambda: synced.state == 106)
            follower.client.close()

    try:
        run(scenario, timeout=60)
    finally:
        app.stop()
