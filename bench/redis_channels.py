"""Redis mode under many distinct channels: what subscribing to them costs the server and Redis,
and what it does to everyone's delivery latency meanwhile.

``python -m bench.redis_channels [N ...]`` (default 2560 5120) starts a ``redis-server`` and a
``serve.py --redis`` for each N, measures a victim's delivery latency (a publication every
10 ms, publisher and subscriber on their own addresses) at rest, then while an attacker process
subscribes to N distinct channels (256 per connection), and prints one JSON line per N: the
server's and Redis's CPU seconds for those subscriptions, and the victim's latency percentiles.
The per-identity channel cap is raised to N so that the reader's cost is what is measured.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from typing import Any

import websockets

from pyrt.pytest_plugin.redis_process import RedisServer
from pyrt.pytest_plugin.server_process import ServerProcess
from tests.server.cpu import cpu_seconds

VICTIM, PUBLISHER = "127.0.0.2", "127.0.0.3"

ATTACKER = r"""
import asyncio, json, sys, websockets
url, total, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
async def one(first, count):
    ws = await websockets.connect(url, subprotocols=["pyrt.v1"], max_queue=None, ping_interval=None)
    await ws.recv()
    for n in range(first, first + count):
        await ws.send(json.dumps({"type": "subscribe", "channel": f"{tag}-{n}"}))
    done = 0
    while done < count:
        frame = json.loads(await ws.recv())
        if frame["type"] == "subscribed":
            done += 1
        elif frame["type"] == "error":
            print("refused", frame, file=sys.stderr); done += 1
    return ws
async def main():
    conns = await asyncio.gather(*(one(first, min(256, total - first)) for first in range(0, total, 256)))
    print("subscribed", flush=True)
    sys.stdin.readline()
asyncio.run(main())
"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


async def latencies(server: ServerProcess, until: asyncio.Event) -> list[float]:
    """A publication every 10 ms until ``until`` is set; the victim's delivery latency of each, in ms."""
    channel = "victim-" + uuid.uuid4().hex[:6]
    sub = await websockets.connect(server.ws_url + "/ws", subprotocols=["pyrt.v1"], local_addr=(VICTIM, 0))  # type: ignore[list-item]
    await sub.recv()
    await sub.send(json.dumps({"type": "subscribe", "channel": channel}))
    await sub.recv()
    pub = await websockets.connect(server.ws_url + "/ws", subprotocols=["pyrt.v1"], local_addr=(PUBLISHER, 0))  # type: ignore[list-item]
    await pub.recv()
    got: list[float] = []

    async def read() -> None:
        async for message in sub:
            frame = json.loads(message)
            if frame.get("type") == "publication":
                got.append((time.perf_counter() - frame["data"]) * 1000)

    reader = asyncio.ensure_future(read())
    while not until.is_set():
        await pub.send(json.dumps({"type": "publish", "channel": channel, "data": time.perf_counter()}))
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    reader.cancel()
    await sub.close()
    await pub.close()
    return got


async def measure(n: int) -> dict[str, Any]:
    with RedisServer() as redis:
        server = (
            ServerProcess(
                "--redis", redis.url, "--max-channels-per-identity", str(n), "--max-connections-per-ip", "0"
            )
            if "--max-channels-per-identity" in _help()
            else ServerProcess("--redis", redis.url)
        )
        try:
            stop = asyncio.Event()
            rest_task = asyncio.ensure_future(latencies(server, stop))
            await asyncio.sleep(2)
            stop.set()
            rest = await rest_task
            stop = asyncio.Event()
            during_task = asyncio.ensure_future(latencies(server, stop))
            await asyncio.sleep(0.5)
            server_cpu, redis_cpu = cpu_seconds(server.proc.pid), cpu_seconds(redis.proc.pid)
            started = time.perf_counter()
            attacker = subprocess.Popen(
                [sys.executable, "-c", ATTACKER, server.ws_url + "/ws", str(n), uuid.uuid4().hex[:6]],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert attacker.stdout is not None
            line = await asyncio.get_running_loop().run_in_executor(None, attacker.stdout.readline)
            assert line.strip() == "subscribed", line
            seconds = time.perf_counter() - started
            server_cpu = cpu_seconds(server.proc.pid) - server_cpu
            redis_cpu = cpu_seconds(redis.proc.pid) - redis_cpu
            stop.set()
            during = await during_task
            attacker.communicate("\n", timeout=30)
        finally:
            server.stop()
    return {
        "channels": n,
        "subscribe_s": round(seconds, 2),
        "server_cpu_s": round(server_cpu, 2),
        "redis_cpu_s": round(redis_cpu, 2),
        "latency_rest_ms": {"p50": round(percentile(rest, 50), 2), "p99": round(percentile(rest, 99), 2)},
        "latency_during_ms": {
            "p50": round(percentile(during, 50), 2),
            "p99": round(percentile(during, 99), 2),
            "max": round(max(during, default=float("nan")), 2),
            "samples": len(during),
        },
    }


def _help() -> str:
    return subprocess.run(
        [sys.executable, "-m", "pyrt.server", "--help"], capture_output=True, text=True, check=True
    ).stdout


def main(argv: list[str]) -> None:
    for n in [int(a) for a in argv] or [2560, 5120]:
        print(json.dumps(asyncio.run(measure(n))), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
