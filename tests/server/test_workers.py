"""``serve.py --workers N``: processes on one port (SO_REUSEPORT) that share channels through Redis."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from pyrt.pytest_plugin.redis_process import RedisServer
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.pytest_plugin.waiting import wait_until
from tests import REPO
from tests.server.test_http_binding import Stream
from tests.server.wsclient import Client, run

pytestmark = pytest.mark.server


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _worker_pids(server: ServerProcess) -> list[int]:
    """The pids the supervisor's ready line names: ``URL (2 workers, pids 11 12)``."""
    return [int(pid) for pid in server.ready_line.rsplit("pids ", 1)[1].rstrip(")").split()]


def test_more_than_one_worker_without_redis_is_refused_with_a_reason() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "serve.py"), "--port", "0", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--workers 2 needs --redis URL" in done.stderr
    assert "memory broker lives inside one process" in done.stderr


async def _one_per_worker(ws_url: str, workers: int = 2) -> tuple[dict[str, Client], list[Client]]:
    """One connection on each worker (the kernel spreads them), and the extra ones opened on the way."""
    by_worker: dict[str, Client] = {}
    spare: list[Client] = []
    for _ in range(60):
        client = await Client.connect(ws_url)
        name = client.welcome["server"]
        if name in by_worker:
            spare.append(client)
        else:
            by_worker[name] = client
        if len(by_worker) == workers:
            break
    assert len(by_worker) == workers, f"every connection went to {list(by_worker)}"
    return by_worker, spare


async def _connect_to(ws_url: str, worker: str) -> tuple[Client, list[Client]]:
    """A connection that landed on ``worker``, and the others opened on the way."""
    others: list[Client] = []
    for _ in range(60):
        client = await Client.connect(ws_url)
        if client.welcome["server"] == worker:
            return client, others
        others.append(client)
    raise AssertionError(f"no connection reached {worker}")


def test_workers_share_one_port_and_channels(pyrt_redis: RedisServer) -> None:
    server = ServerProcess("--workers", "2", "--redis", pyrt_redis.url, "--redis-prefix", "workers:")
    try:
        pids = _worker_pids(server)
        assert len(pids) == 2
        assert all(_alive(pid) for pid in pids)

        async def scenario() -> None:
            by_worker, spare = await _one_per_worker(server.ws_url)
            first, second = by_worker.values()
            try:
                await second.send({"type": "subscribe", "channel": "shared"})
                await second.expect("subscribed", channel="shared")
                await first.send({"type": "publish", "id": "p1", "channel": "shared", "data": 1})
                offset = (await first.expect("ack", id="p1"))["data"]["offset"]
                live = await second.expect("publication", channel="shared")
                assert (live["offset"], live["data"]) == (offset, 1)
            finally:
                for client in [*by_worker.values(), *spare]:
                    await client.close()

        run(scenario())
    finally:
        code = server.stop()
    assert code == 0
    wait_until(lambda: not any(_alive(pid) for pid in pids), timeout=15, message="every worker exited")


def test_a_client_resumes_by_offset_on_another_worker_what_was_published_while_it_was_away(
    pyrt_redis: RedisServer,
) -> None:
    server = ServerProcess("--workers", "2", "--redis", pyrt_redis.url, "--redis-prefix", "resume:")
    try:

        async def scenario() -> None:
            by_worker, spare = await _one_per_worker(server.ws_url)
            home, away = by_worker
            publisher = by_worker[home]
            # The subscriber starts on the publisher's worker, reads one publication and leaves.
            subscriber, others = await _connect_to(server.ws_url, home)
            spare += others
            await subscriber.send({"type": "subscribe", "channel": "resume"})
            await subscriber.expect("subscribed", channel="resume")
            await publisher.send({"type": "publish", "id": "p0", "channel": "resume", "data": 0})
            await publisher.expect("ack", id="p0")
            last = (await subscriber.expect("publication", channel="resume"))["offset"]
            await subscriber.close()
            # Published on the first worker while the subscriber is away...
            for n in range(1, 4):
                await publisher.send({"type": "publish", "id": f"p{n}", "channel": "resume", "data": n})
                await publisher.expect("ack", id=f"p{n}")
            # ...and replayed by the other worker, which never saw the subscriber or the publications.
            back, others = await _connect_to(server.ws_url, away)
            spare += [back, *others]
            await back.send({"type": "subscribe", "channel": "resume", "since": last})
            assert (await back.expect("subscribed", channel="resume"))["recovered"] is True
            assert [p["data"] for p in await back.publications("resume", 3)] == [1, 2, 3]
            # Then live again, from the first worker, with nothing replayed twice.
            await publisher.send({"type": "publish", "id": "p4", "channel": "resume", "data": 4})
            assert (await back.expect("publication", channel="resume"))["data"] == 4
            assert [f for f in back.frames if f.get("type") == "publication"] == []
            for client in [*by_worker.values(), *spare]:
                await client.close()

        run(scenario())
    finally:
        assert server.stop() == 0


def test_http_binding_posts_reach_their_stream_from_either_worker_exactly_once(
    pyrt_redis: RedisServer,
) -> None:
    """Each POST on a new TCP connection: the kernel spreads them over both workers, and the one
    that does not hold the stream hands its POSTs over through Redis (without that, about half of
    them would be 404)."""
    server = ServerProcess("--workers", "2", "--redis", pyrt_redis.url, "--redis-prefix", "httpw:")
    try:

        async def scenario() -> None:
            posting = httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_keepalive_connections=0))
            async with httpx.AsyncClient(timeout=10) as reading, posting:
                request = reading.build_request(
                    "GET", server.url + "/ws", headers={"Accept": "text/event-stream"}
                )
                response = await reading.send(request, stream=True)
                stream = Stream(posting, response)
                stream.url = server.url + "/ws"
                welcome = await stream.frame()
                stream.key = welcome["key"]
                statuses = []
                for n in range(1, 41):
                    message = {"type": "message", "id": f"m{n}", "data": n}
                    statuses.append((await stream.post(message)).status_code)
                assert statuses == [204] * 40
                acks = [await stream.frame() for _ in range(40)]
                assert [(a["type"], a["id"], a["ok"]) for a in acks] == [
                    ("ack", f"m{n}", True) for n in range(1, 41)
                ]
                again = await stream.post({"type": "message", "id": "m40", "data": 40}, seq=40)  # a repeat
                assert again.status_code == 204
                unknown = await posting.post(
                    server.url + "/ws", params={"key": "x" * 32, "seq": "1"}, content=""
                )
                assert unknown.status_code == 404  # nobody holds that key
                closing = await stream.post(close="1000")
                assert closing.status_code == 204
                with pytest.raises(AssertionError, match="the stream ended"):  # closed by the client
                    await stream.event()
                assert (await stream.post({"type": "ping"})).status_code == 404  # gone everywhere
                await response.aclose()

        run(scenario())
    finally:
        assert server.stop() == 0


def test_a_worker_that_dies_is_started_again(pyrt_redis: RedisServer) -> None:
    server = ServerProcess("--workers", "2", "--redis", pyrt_redis.url, "--redis-prefix", "restart:")
    try:
        first, second = _worker_pids(server)
        os.kill(first, 9)
        wait_until(lambda: "exited with -9: starting it again" in server.log_text(), timeout=15)
        wait_until(lambda: "listens again" in server.log_text(), timeout=60)

        async def answers() -> set[str]:
            names = set()
            for _ in range(40):
                client = await Client.connect(server.ws_url)
                names.add(client.welcome["server"])
                await client.close()
            return names

        names = run(answers())
        assert f"pyrt-{second}" in names
        assert f"pyrt-{first}" not in names
        assert len(names) == 2, f"the new worker never answered: {names}"
    finally:
        assert server.stop() == 0
