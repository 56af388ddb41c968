"""History and presence are inputs too: what one client asks for can neither exhaust the server
nor read what it may not.

Each test attacks a real ``serve.py`` with its default settings, measures what matters (memory,
refusals), prints its figures, and checks that a client from another address is still served.
The attacker speaks from 127.0.0.1, the bystander from 127.0.0.2.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import websockets

from pyrt.pytest_plugin.memory import PeakRss
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.auth import make_token
from pyrt.server.hub import PRESENCE_BURST
from pyrt.server.settings import Settings
from tests.faults.scenario import emit
from tests.server.cpu import CpuUsed
from tests.server.test_abuse_memory import BYSTANDER, MARGIN_MIB, MiB, bystander_http, bystander_round_trip
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
    # The history is filled with 40 MB from one address: no publication bytes rate (16 KiB/s
    # after a 16 MiB burst), which the test is not about.
    server = pyrt_start_server("--publish-bytes-rate", "0")
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


def test_one_client_cannot_crowd_others_out_of_a_channels_presence(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    server = pyrt_start_server()
    channel = unique("crowd")
    most = DEFAULTS.max_presence_per_identity

    async def attack() -> tuple[int, list[str]]:
        clients = [await Client.connect(server.ws_url) for _ in range(most + 4)]
        joined = 0
        refusals = []
        for n, client in enumerate(clients):
            await client.send({"type": "presence_join", "id": "j", "channel": channel, "info": f"bot{n}"})
            answer = await client.recv()
            if answer["type"] == "ack":
                joined += 1
            else:
                refusals.append(answer["code"])
        one = clients[0]
        for n in range(DEFAULTS.max_presence_joins + 2):  # one connection, many channels
            await one.send({"type": "presence_join", "id": f"c{n}", "channel": f"{channel}-{n}", "info": n})
        answers = [await one.recv() for _ in range(DEFAULTS.max_presence_joins + 2)]
        refusals += [a["code"] for a in answers if a["type"] == "error"]
        bystander = await Client.connect(server.ws_url, local_addr=(BYSTANDER, 0))
        await bystander.send({"type": "presence_join", "id": "b", "channel": channel, "info": "human"})
        assert (await bystander.expect("ack", id="b"))["ok"] is True
        await bystander.send({"type": "presence", "id": "p", "channel": channel})
        members = (await bystander.expect("ack", id="p"))["data"]["members"]
        assert "human" in [m["info"] for m in members]
        for client in [*clients, bystander]:
            await client.close()
        return joined, refusals

    joined, refusals = run(attack())
    emit("abuse.channels.presence_crowd", joined=joined, refused=len(refusals), per_identity=most)
    assert joined == most
    # the 4 connections over the identity's share, and the one connection's channels beyond its
    # max_presence_joins (it was in the crowded channel already: 3 of its 18 more)
    assert refusals.count("forbidden") == len(refusals) == 4 + 3


def test_presence_info_and_members_are_bounded(pyrt_start_server: Callable[..., ServerProcess]) -> None:
    # 2,400 joins from one address measure the memory of members: no presence change rate (10/s
    # per identity), which the churn test covers.
    server = pyrt_start_server("--presence-rate", "0")
    channel = unique("bounded")
    info = "i" * (DEFAULTS.max_presence_info_bytes - 10)  # the most one member may show
    clients_count = 150

    async def attack() -> tuple[int, PeakRss]:
        # not compressed: 100 KB of one character would inflate past the ratio cap (close 1009)
        clients = [await Client.connect(server.ws_url, compression=None) for _ in range(clients_count)]
        huge = {"type": "presence_join", "id": "big", "channel": channel, "info": "x" * 100_000}
        await clients[0].send(huge)
        assert (await clients[0].expect("error", id="big"))["code"] == "bad_frame"
        members = refused = 0
        with PeakRss(server.proc.pid) as rss:  # the members alone, not their connections
            for n, client in enumerate(clients):
                for k in range(DEFAULTS.max_presence_joins):
                    where = f"{channel}-{n // DEFAULTS.max_presence_per_identity}-{k}"
                    await client.send({"type": "presence_join", "id": f"{k}", "channel": where, "info": info})
                for _ in range(DEFAULTS.max_presence_joins):
                    answer = await client.recv()
                    members += answer["type"] == "ack"
                    refused += answer["type"] == "error"
        assert refused == 0
        for client in clients:
            await client.close()
        return members, rss

    members, rss = run(attack())
    per_member = rss.grew * MiB / members
    emit(
        "abuse.channels.presence_memory",
        members=members,
        rss_grew_mib=rss.grew,
        bytes_per_member=round(per_member),
        at_max_presence_total_mib=round(DEFAULTS.max_presence_total * per_member / MiB, 1),
    )
    assert members == clients_count * DEFAULTS.max_presence_joins
    # every member at its largest info: a few KiB each at most, so the process-wide cap of
    # max_presence_total members bounds presence to tens of MiB
    assert rss.grew < members * 4 * 1024 / MiB + MARGIN_MIB / 4


def test_token_refreshes_are_rate_limited_per_connection(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    # Each refresh checks a signature and re-checks every subscription and presence of the
    # connection against its new claims: a flood of them must cost no more than the allowance.
    secret = "refresh-flood-secret"
    server = pyrt_start_server(env={"PYRT_TOKEN_SECRET": secret})
    token = make_token(secret, "mallory", ttl=600)
    asked = 200

    async def attack() -> tuple[int, int, bool]:
        bearer = ["pyrt.v1", f"bearer.{token}"]
        client = await Client.connect(server.ws_url, subprotocols=bearer)
        for n in range(asked):
            await client.send({"type": "refresh", "id": f"r{n}", "token": token})
        answered = refused = 0
        while answered + refused < asked:
            frame = await client.recv()
            if frame["type"] == "ack":
                assert frame["data"]["ttl"] > 500
                answered += 1
            elif frame["type"] == "error":
                assert frame["code"] == "rate_limited", frame
                assert frame["retry_after"] > 0
                refused += 1
        await client.send({"type": "ping", "t": 1})
        await client.expect("pong")  # refused refreshes do not end the connection
        other = await Client.connect(server.ws_url, subprotocols=bearer)  # its own allowance
        await other.send({"type": "refresh", "id": "o", "token": token})
        fresh = await other.recv()
        await client.close()
        await other.close()
        return answered, refused, fresh["type"] == "ack" and fresh["id"] == "o"

    answered, refused, other_refreshed = run(attack())
    emit("abuse.channels.refresh_flood", asked=asked, answered=answered, refused=refused)
    assert DEFAULTS.refresh_burst <= answered <= DEFAULTS.refresh_burst + 10  # a few refill meanwhile
    assert refused == asked - answered
    assert other_refreshed


def test_capabilities_stay_in_their_segment_and_a_refresh_never_goes_back_to_an_older_token(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    secret = "caps-abuse-secret"
    server = pyrt_start_server(env={"PYRT_TOKEN_SECRET": secret})
    rooms = [{"channels": ["room:*"], "allow": ["subscribe", "publish"]}]
    broad = make_token(
        secret, "mallory", ttl=3600, now=time.time() - 60, caps=[{"channels": ["*"], "allow": ["subscribe"]}]
    )
    narrow = make_token(secret, "mallory", ttl=600, caps=rooms)  # issued after: rights were narrowed

    async def attack() -> dict[str, Any]:
        client = await Client.connect(server.ws_url, subprotocols=["pyrt.v1", f"bearer.{narrow}"])
        codes = {}
        for channel in ("room:1", "room:", "room:1:admin"):
            await client.send({"type": "subscribe", "channel": channel})
            frame = await client.expect("subscribed" if channel == "room:1" else "error")
            codes[channel] = frame.get("code", "subscribed")
        await client.send({"type": "publish", "id": "p", "channel": "room:1:admin", "data": "x"})
        codes["publish room:1:admin"] = (await client.expect("error", id="p"))["code"]
        await client.send({"type": "refresh", "id": "back", "token": broad})
        codes["refresh to the older token"] = (await client.expect("error", id="back"))["code"]
        await client.send({"type": "subscribe", "channel": "admin"})
        codes["admin after it"] = (await client.expect("error"))["code"]
        await client.close()
        return codes

    codes = run(attack())
    emit("abuse.channels.caps", **codes)
    assert codes == {
        "room:1": "subscribed",
        "room:": "forbidden",
        "room:1:admin": "forbidden",
        "publish room:1:admin": "forbidden",
        "refresh to the older token": "unauthorized",
        "admin after it": "forbidden",
    }


def test_presence_churn_is_rate_limited_and_reaches_subscribers_gathered_by_tick(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    server = pyrt_start_server()
    channel = unique("churn")
    info = "i" * 480
    attackers_count, subscribers_count, seconds = 8, 20, 2.0

    async def churn(client: Client, n: int, until: float, counts: dict[str, int]) -> None:
        loop = asyncio.get_running_loop()
        step = 0
        while loop.time() < until:
            step += 1
            frame_id = f"c{n}-{step}"
            if step % 2:
                await client.send({"type": "presence_join", "id": frame_id, "channel": channel, "info": info})
            else:
                await client.send({"type": "presence_leave", "id": frame_id, "channel": channel})
            while True:
                answer = await client.recv()
                if answer.get("id") == frame_id:
                    break
            kind = "accepted" if answer["type"] == "ack" else answer["code"]
            counts[kind] = counts.get(kind, 0) + 1

    async def attack() -> tuple[dict[str, int], list[int], int]:
        subscribers = [
            await Client.connect(server.ws_url, local_addr=(BYSTANDER, 0)) for _ in range(subscribers_count)
        ]
        for client in subscribers:
            await client.send({"type": "subscribe", "channel": channel, "presence": True})
            await client.expect("subscribed")
        attackers = [await Client.connect(server.ws_url) for _ in range(attackers_count)]
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        counts: dict[str, int] = {}
        await asyncio.gather(*(churn(client, n, until, counts) for n, client in enumerate(attackers)))
        for client in attackers:
            await client.close()
        diffs = []
        for client in subscribers:
            await client.send({"type": "ping", "t": "end"})
            await client.expect("pong", t="end", timeout=10)  # still connected, not a slow consumer
            diffs.append(sum(frame["type"] == "presence_diff" for frame in client.frames))
            await client.close()
        return counts, diffs, int(server.metric("pyrt_drops_total", reason="slow_consumer"))

    counts, diffs, slow = run(attack())
    emit("abuse.channels.presence_churn", seconds=seconds, changes=counts, diffs_per_subscriber=max(diffs))
    accepted = counts.get("accepted", 0)
    assert counts.get("rate_limited", 0) > 0
    # the identity's burst, then its rate (a change in flight per connection may slip in)
    assert accepted <= DEFAULTS.presence_burst + DEFAULTS.presence_rate * (seconds + 1) + attackers_count
    # at most a burst of diffs, then two per tick, whatever the churn
    ticks = (seconds + 1) / DEFAULTS.presence_tick
    assert max(diffs) <= PRESENCE_BURST + 2 * ticks, diffs
    assert slow == 0


def test_presence_snapshots_of_subscriptions_are_reads(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    server = pyrt_start_server()
    channel = unique("snap")
    asked = 300

    async def attack() -> dict[str, int]:
        client = await Client.connect(server.ws_url)
        for _ in range(asked):
            await client.send({"type": "subscribe", "channel": channel, "presence": True})
        counts: dict[str, int] = {}
        for _ in range(asked):
            frame = await client.recv()
            while frame["type"] not in ("subscribed", "error"):
                frame = await client.recv()
            kind = frame["type"] if frame["type"] == "subscribed" else frame["code"]
            counts[kind] = counts.get(kind, 0) + 1
        await client.close()
        return counts

    counts = run(attack())
    emit("abuse.channels.presence_snapshots", asked=asked, **counts)
    assert counts.get("rate_limited", 0) > 0
    assert counts.get("subscribed", 0) <= DEFAULTS.query_burst + 20  # a few refill meanwhile


@pytest.mark.parametrize("broker", ["memory", "redis"])
def test_one_identity_subscribes_to_at_most_its_share_of_channels(
    pyrt_start_server: Callable[..., ServerProcess], broker: str
) -> None:
    server = pyrt_start_server(redis=broker == "redis")
    most = DEFAULTS.max_channels_per_identity
    per_connection = DEFAULTS.max_subscriptions
    connections = most // per_connection + 1
    tag = unique("many")

    async def attack() -> dict[str, int]:
        clients = [await Client.connect(server.ws_url) for _ in range(connections)]
        counts: dict[str, int] = {}
        for n, client in enumerate(clients):
            for k in range(per_connection):
                await client.send({"type": "subscribe", "channel": f"{tag}-{n}-{k}"})
            for _ in range(per_connection):
                frame = await client.recv()
                kind = frame["type"] if frame["type"] == "subscribed" else frame["code"]
                counts[kind] = counts.get(kind, 0) + 1
        bystander = await Client.connect(server.ws_url, local_addr=(BYSTANDER, 0))
        await bystander.send({"type": "subscribe", "channel": f"{tag}-bystander"})
        await bystander.expect("subscribed")  # another identity has its own share
        for client in [*clients, bystander]:
            await client.close()
        return counts

    counts = run(attack())
    emit("abuse.channels.distinct_channels", broker=broker, **counts)
    assert counts == {"subscribed": most, "forbidden": connections * per_connection - most}


def test_the_redis_reader_costs_the_same_per_publication_however_many_streams_it_follows(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    server = pyrt_start_server(redis=True)
    channel = unique("victim")
    publications = 300

    async def publish_all(publisher: Client, subscriber: Client) -> float:
        with CpuUsed(server.proc.pid) as cpu:
            for n in range(publications):  # one at a time: every delivery is a wake of the reader
                await publisher.send({"type": "publish", "channel": channel, "data": n})
                await subscriber.expect("publication", data=n)
        return cpu.seconds

    async def scenario() -> tuple[float, float]:
        subscriber = await Client.connect(server.ws_url, local_addr=(BYSTANDER, 0))
        await subscriber.send({"type": "subscribe", "channel": channel})
        await subscriber.expect("subscribed")
        publisher = await Client.connect(server.ws_url, local_addr=(BYSTANDER, 0))
        few = await publish_all(publisher, subscriber)
        tag = unique("idle")
        idle = [  # 2,048 channels: two identities at their cap
            await Client.connect(server.ws_url, local_addr=(address, 0))
            for address in ("127.0.0.1", "127.0.0.3")
            for _ in range(DEFAULTS.max_channels_per_identity // DEFAULTS.max_subscriptions)
        ]
        for n, client in enumerate(idle):
            for k in range(DEFAULTS.max_subscriptions):
                await client.send({"type": "subscribe", "channel": f"{tag}-{n}-{k}"})
            for _ in range(DEFAULTS.max_subscriptions):
                await client.expect("subscribed", timeout=30)
        many = await publish_all(publisher, subscriber)
        for client in [subscriber, publisher, *idle]:
            await client.close()
        return few, many

    few, many = run(scenario())
    emit("abuse.channels.redis_reader", cpu_few_s=few, cpu_2048_idle_s=many, ratio=many / few)
    # An XREAD naming every followed stream on every delivery costs several times more with
    # 2,048 of them; reading only the streams that were written to costs the same.
    assert many < 1.5 * few, (few, many)
