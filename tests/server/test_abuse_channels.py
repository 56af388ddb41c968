"""History and presence are inputs too: what one client asks for can neither exhaust the server
nor read what it may not.

Each test attacks a real ``serve.py`` with its default settings, measures what matters (memory,
refusals), prints its figures, and checks that a client from another address is still served.
The attacker speaks from 127.0.0.1, the bystander from 127.0.0.2.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable

import httpx
import websockets

from pyrt.pytest_plugin.memory import PeakRss
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.settings import Settings
from tests.faults.scenario import emit
from tests.server.test_abuse_memory import MARGIN_MIB, MiB, bystander_http, bystander_round_trip
from tests.server.wsclient import Client, run

DEFAULTS = Settings()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_history_reads_are_rate_limited_per_identity(pyrt_start_server: Callable[..., ServerProcess]) -> None:
    server = pyrt_start_server()
    channel = unique("reads")
    asked = DEFAULTS.query_burst + 100

    async def attack() -> tuple[int, int]:
        client = await Client.connect(server.ws_url)
        for n in range(asked):
            await client.send({"type": "history", "id": f"h{n}", "channel": channel, "limit": 1})
        answered = refused = 0
        while answered + refused < asked:
            frame = await client.recv()
            if frame["type"] == "ack":
                answered += 1
            elif frame["type"] == "error":
                assert frame["code"] == "rate_limited"
                assert frame["retry_after"] > 0
                assert frame["id"].startswith("h")
                refused += 1
        await client.send({"type": "ping", "t": 1})
        await client.expect("pong")  # refused reads do not end the connection
        await client.close()
        return answered, refused

    answered, refused = run(attack())
    over_http = None
    with httpx.Client(timeout=10) as attacker:  # the same identity over HTTP: the same allowance
        for _ in range(DEFAULTS.query_burst * 2):
            over_http = attacker.get(server.url + "/history", params={"channel": channel})
            if over_http.status_code != 200:
                break
    with bystander_http() as bystander:
        other = bystander.get(server.url + "/history", params={"channel": channel})
    emit("abuse.channels.history_reads", asked=asked, answered=answered, refused=refused)
    assert answered >= DEFAULTS.query_burst
    assert refused >= asked - DEFAULTS.query_burst - 20  # a few tokens refill meanwhile
    assert over_http is not None
    assert over_http.status_code == 429
    assert int(over_http.headers["retry-after"]) >= 1
    assert other.status_code == 200  # another identity has its own allowance


def test_big_history_pages_nobody_reads_stay_within_the_identity_budget(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    server = pyrt_start_server()
    channel = unique("big")
    payload = "z" * 1_000_000
    for n in range(40):  # 40 MB of history, within the 64 MiB budget
        response = httpx.post(server.url + "/publish", json={"channel": channel, "data": f"{payload}{n}"})
        assert response.status_code == 200

    async def attack() -> tuple[int, list[int | None]]:
        sockets = []
        asked = 0
        for _ in range(3):  # three connections of one identity, none of which reads
            ws = await websockets.connect(server.ws_url + "/ws", subprotocols=["pyrt.v1"], max_queue=1)
            sockets.append(ws)
        for round_ in range(60):
            for ws in sockets:
                frame = {"type": "history", "id": f"b{round_}", "channel": channel, "limit": 1000}
                try:
                    await ws.send(json.dumps(frame))
                    asked += 1
                except websockets.ConnectionClosed:
                    pass
        await asyncio.sleep(1.0)  # let the server answer what it will
        codes = []
        for ws in sockets:
            try:
                async with asyncio.timeout(20):
                    while True:
                        await ws.recv()
            except websockets.ConnectionClosed as closed:
                codes.append(closed.rcvd.code if closed.rcvd is not None else None)
            except TimeoutError:
                codes.append(0)
                await ws.close()
        return asked, codes

    with PeakRss(server.proc.pid) as rss:
        asked, codes = run(attack())
    run(bystander_round_trip(server))
    emit(
        "abuse.channels.history_pages",
        asked=asked,
        page_mib=DEFAULTS.history_page_bytes / MiB,
        rss_grew_mib=rss.grew,
        bound_mib=DEFAULTS.identity_queue_bytes / MiB + MARGIN_MIB,
        close_codes=codes,
    )
    assert asked * DEFAULTS.history_page_bytes > 2 * DEFAULTS.identity_queue_bytes  # big enough
    assert 1013 in codes  # cut off as slow consumers once their identity's budget was full
    assert rss.grew < DEFAULTS.identity_queue_bytes / MiB + MARGIN_MIB
