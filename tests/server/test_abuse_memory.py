"""Memory without a bound: what one client sends can never grow the server past its budgets.

Each test attacks a real ``serve.py`` with its default settings (a timeout is scaled down only
where waiting for the default would make the test slow, and the test says so), measures the
server's resident memory with a margin for the allocator and the frame being handled, prints
its figures, and checks that other clients are still served. The attacker speaks from 127.0.0.1,
the bystander from 127.0.0.2 (another loopback address: another client to the server).
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
import redis
import websockets

from pyrt.pytest_plugin.memory import PeakRss
from pyrt.pytest_plugin.redis_process import RedisServer
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.settings import Settings
from tests import skip_outside_ci
from tests.faults.scenario import emit
from tests.server.wsclient import Client, run

DEFAULTS = Settings()
MiB = 1024 * 1024
BYSTANDER = "127.0.0.2"
#: What the server may grow by beyond the budget under test: the frame being parsed and its copies,
#: socket buffers, and the allocator's slack.
MARGIN_MIB = 48
SLOW_POST_HEAD = (
    b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
)


def bystander_http() -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=BYSTANDER), timeout=10)


async def bystander_round_trip(server: ServerProcess) -> None:
    """A client from another address subscribes, publishes and gets its publication."""
    channel = "bystander-" + uuid.uuid4().hex[:8]
    client = await Client.connect(server.ws_url, local_addr=(BYSTANDER, 0))
    await client.send({"type": "subscribe", "channel": channel})
    await client.expect("subscribed")
    await client.send({"type": "publish", "id": "b-1", "channel": channel, "data": "still here"})
    publication = await client.expect("publication", channel=channel)
    assert publication["data"] == "still here"
    await client.close()


def test_big_publications_into_new_channels_stay_within_the_history_budget(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    # The test measures the history budget, reached with 400 MB of publications of one repeated
    # character from one address: no inflate ratio cap (they inflate 1000x), no receive rates and
    # no publication bytes rate (at their defaults they would take hours to arrive).
    server = pyrt_start_server(
        "--max-inflate-ratio",
        "0",
        "--receive-rate",
        "0",
        "--receive-rate-per-identity",
        "0",
        "--publish-bytes-rate",
        "0",
    )
    payload = "x" * 1_000_000  # ~1 KB on the wire with permessage-deflate

    async def attack() -> tuple[int, float]:
        ws = await websockets.connect(server.ws_url + "/ws", subprotocols=["pyrt.v1"], max_queue=None)
        await ws.recv()  # welcome
        loop = asyncio.get_running_loop()
        started = loop.time()
        published = 0
        while published < 400:  # 400 MB: six times the budget
            for _ in range(20):
                frame = {"type": "publish", "channel": f"flood-{published}", "data": payload}
                await ws.send(json.dumps(frame))
                published += 1
            await ws.send(json.dumps({"type": "ping", "t": published}))
            while json.loads(await ws.recv())["type"] != "pong":
                pass
        await ws.close()
        return published, loop.time() - started

    with PeakRss(server.proc.pid) as rss:
        published, seconds = run(attack())
    run(bystander_round_trip(server))
    assert bystander_http().get(server.url + "/healthz").status_code == 200
    emit(
        "abuse.memory.channels",
        published_mib=published * len(payload) / MiB,
        seconds=seconds,
        rss_start_mib=rss.start,
        rss_grew_mib=rss.grew,
        budget_mib=DEFAULTS.history_bytes / MiB,
    )
    assert published * len(payload) > 4 * DEFAULTS.history_bytes  # the attack was big enough
    assert rss.grew < DEFAULTS.history_bytes / MiB + MARGIN_MIB


def test_post_publish_is_rate_limited_per_address_with_retry_after(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    # The allowance is scaled down from 200/s (bursts of 1000): a loaded 2-core machine answers
    # POST /publish at about 200 a second, so the default allowance could refill as fast as it
    # is spent and the test would measure the machine, not the limit. The mechanism (a bucket
    # per address, 429 with Retry-After) is the same at any rate; the default values are checked
    # in test_protocol_handler (the welcome advertises them). Requests go out 32 at a time, so
    # the client is never the bottleneck. No CPU budget either: it would pace one address's
    # requests below that rate just the same.
    rate, burst = 20.0, 100
    server = pyrt_start_server(
        "--publish-rate", str(rate), "--publish-burst", str(burst), "--cpu-share-per-ip", "0"
    )

    async def attack() -> tuple[int, httpx.Response | None, float]:
        accepted = 0
        refused: httpx.Response | None = None
        started = time.monotonic()
        deadline = started + 60
        counter = iter(range(10**9))

        async def worker(client: httpx.AsyncClient) -> None:
            nonlocal accepted, refused
            while refused is None and time.monotonic() < deadline:
                body = {"channel": "spam", "data": next(counter)}
                response = await client.post(server.url + "/publish", json=body)
                if response.status_code == 429:
                    refused = refused or response
                    return
                assert response.status_code == 200, response.text
                accepted += 1

        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(timeout=10, limits=limits) as client:
            await asyncio.gather(*(worker(client) for _ in range(32)))
        return accepted, refused, time.monotonic() - started

    accepted, refused, seconds = asyncio.run(attack())
    emit("abuse.memory.post_publish", accepted_before_429=accepted, seconds=seconds)
    assert refused is not None, f"{accepted} publications accepted in {seconds:.1f} s without a 429"
    assert burst <= accepted <= burst + rate * seconds + 1  # a burst is fine; beyond it, the rate
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["retry_after"] >= 1
    with bystander_http() as bystander:  # another address has its own allowance
        other = bystander.post(server.url + "/publish", json={"channel": "spam", "data": "ok"})
        assert other.status_code == 200


def test_redis_channels_expire_after_the_history_ttl(
    pyrt_redis: RedisServer, pyrt_start_server: Callable[..., ServerProcess]
) -> None:
    # --history-ttl is scaled down from 600 s so that expiry is seen within the test.
    prefix = f"ttl{uuid.uuid4().hex[:6]}:"
    server = pyrt_start_server("--redis", pyrt_redis.url, "--redis-prefix", prefix, "--history-ttl", "1")
    channel = "expiring"
    response = httpx.post(server.url + "/publish", json={"channel": channel, "data": 1})
    assert response.status_code == 200
    direct = redis.Redis.from_url(pyrt_redis.url)
    key = f"{prefix}ch:{channel}"
    ttl_ms = direct.pttl(key)
    assert 0 < ttl_ms <= 1000 + 60_000, ttl_ms  # Redis's own expiry: a minute after the server's
    deadline = time.monotonic() + 15
    while direct.exists(key):  # deleted with its bytes by housekeeping (every 5 s) once idle 1 s
        assert time.monotonic() < deadline, "the idle stream never expired"
        time.sleep(0.05)
    assert int(direct.get(f"{prefix}hb") or 0) == 0  # and its bytes left the history's account
    emit("abuse.memory.redis_ttl", ttl_ms=ttl_ms)


def test_redis_history_stays_within_its_byte_budget_and_everyone_can_publish(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    backend = RedisServer()  # its own: maxmemory as docs/server.md advises, noeviction
    server = None
    try:
        direct = redis.Redis.from_url(backend.url)
        direct.config_set("maxmemory", 256 * MiB)
        direct.config_set("maxmemory-policy", "noeviction")
        server = pyrt_start_server("--redis", backend.url)
        base = direct.info("memory")["used_memory"]
        attackers = [f"127.0.0.{n}" for n in (1, 3, 4, 5, 6, 7, 8, 9)]  # 8 identities
        data = [uuid.uuid4().hex * 28_000 for _ in range(4)]  # ~900 KB each

        async def attack(address: str) -> tuple[int, int]:
            client = await Client.connect(server.ws_url, local_addr=(address, 0), compression=None)
            accepted = refused = 0
            for n in range(20):  # 18 MB each: more than its burst of publication bytes
                await client.send(
                    {"type": "publish", "id": f"p{n}", "channel": f"fill-{address}-{n}", "data": data[n % 4]}
                )
                answer = await client.recv(30)
                while answer.get("id") != f"p{n}":
                    answer = await client.recv(30)
                if answer["type"] == "ack":
                    accepted += 1
                else:
                    assert answer["code"] == "rate_limited", answer
                    refused += 1
            await client.close()
            return accepted, refused

        async def everyone() -> list[tuple[int, int]]:
            return list(await asyncio.gather(*(attack(address) for address in attackers)))

        results = run(everyone())
        used = direct.info("memory")["used_memory"] - base
        accounted = int(direct.get("pyrt:hb") or 0)
        with bystander_http() as bystander:
            answer = bystander.post(server.url + "/publish", json={"channel": "after", "data": "still works"})
        emit(
            "abuse.memory.redis_budget",
            accepted_mib=sum(a for a, _ in results) * len(data[0]) / MiB,
            refused=sum(r for _, r in results),
            accounted_mib=accounted / MiB,
            redis_grew_mib=used / MiB,
            bystander=answer.status_code,
        )
        assert all(refused > 0 for _, refused in results)  # each identity met its bytes budget
        assert sum(a for a, _ in results) * len(data[0]) > DEFAULTS.history_bytes  # more than fits
        assert accounted <= DEFAULTS.history_bytes
        assert used < DEFAULTS.history_bytes * 1.5, used / MiB
        assert answer.status_code == 200
    finally:
        if server is not None:
            server.stop()
        backend.stop()


def test_redis_remembers_a_bounded_number_of_ids_per_identity_and_in_all(
    pyrt_start_server: Callable[..., ServerProcess], pyrt_redis: RedisServer
) -> None:
    # The bounds are scaled down (10,000 per identity and 100,000 in all by default) so that a few
    # thousand messages reach them; the rule under test is the same.
    prefix = f"ids{uuid.uuid4().hex[:6]}:"
    server = pyrt_start_server(
        "--redis",
        pyrt_redis.url,
        "--redis-prefix",
        prefix,
        "--dedup-per-identity",
        "300",
        "--dedup-max",
        "1000",
    )
    sent = 0

    async def flood(address: str, messages: int) -> None:
        clients = [await Client.connect(server.ws_url, local_addr=(address, 0)) for _ in range(4)]
        for n in range(messages):
            await clients[n % 4].send({"type": "message", "id": f"{address}-{n}", "data": n})
        for n in range(messages):
            await clients[n % 4].expect("ack", id=f"{address}-{n}", timeout=30)
        for client in clients:
            await client.close()

    async def scenario() -> None:
        nonlocal sent
        for address in ("127.0.0.1", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"):
            await flood(address, 500)
            sent += 500

    run(scenario())
    direct = redis.Redis.from_url(pyrt_redis.url)
    kept = sum(1 for _ in direct.scan_iter(f"{prefix}msg:*", count=1000))
    mine = sum(1 for key in direct.scan_iter(f"{prefix}msg:*", count=1000) if b"127.0.0.6" in key)
    emit("abuse.memory.redis_ids", sent=sent, kept=kept, last_identity_kept=mine)
    assert mine <= 300
    assert kept <= 1000


def test_acked_messages_keep_only_their_result(pyrt_start_server: Callable[..., ServerProcess]) -> None:
    # --demo records every message for /demo/received: that record is bounded by the history budget.
    # The test measures what the dedup window keeps of 150 MB of messages of one repeated
    # character: no inflate ratio cap and no receive rates (they would make it wait minutes).
    server = pyrt_start_server(
        "--demo",
        "--demo-tick",
        "0",
        "--max-inflate-ratio",
        "0",
        "--receive-rate",
        "0",
        "--receive-rate-per-identity",
        "0",
    )
    size = 500_000

    async def attack() -> tuple[int, dict[str, object]]:
        client = await Client.connect(server.ws_url)
        sent = 0
        while sent < 300:  # 150 MB
            await client.send({"type": "message", "id": f"m{sent}", "data": "y" * size + str(sent)})
            ack = await client.expect("ack", id=f"m{sent}")
            assert ack["ok"]
            assert len(ack["data"]) > size  # the first answer carries the result
            sent += 1
        await client.send({"type": "message", "id": "m0", "data": "y"})
        again = await client.expect("ack", id="m0")
        await client.close()
        return sent, again

    with PeakRss(server.proc.pid) as rss:
        sent, again = run(attack())
    emit(
        "abuse.memory.acked_messages",
        sent_mib=sent * size / MiB,
        rss_grew_mib=rss.grew,
        bound_mib=DEFAULTS.history_bytes / MiB + MARGIN_MIB,
    )
    # handled once; the data was not kept
    assert again == {"type": "ack", "id": "m0", "ok": True, "duplicate": True}
    assert sent * size > 2 * DEFAULTS.history_bytes
    assert rss.grew < DEFAULTS.history_bytes / MiB + MARGIN_MIB


def test_a_request_head_has_a_size_limit(pyrt_start_server: Callable[..., ServerProcess]) -> None:
    server = pyrt_start_server()
    sent = 0
    answer = b""
    with PeakRss(server.proc.pid) as rss, socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(10)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        line = b"X-Pad: " + b"a" * 8000 + b"\r\n"
        try:
            while sent < 40 * MiB:
                sock.sendall(line)
                sent += len(line)
            sock.sendall(b"\r\n")
        except OSError:
            pass  # the server stopped reading and closed: what we want
        try:
            answer = sock.recv(200)
        except OSError:
            answer = b""
    status = answer[:12].decode(errors="replace")
    emit("abuse.memory.head_size", sent_mib=sent / MiB, answer=status, rss_grew_mib=rss.grew)
    assert sent < 40 * MiB, "the server read a 40 MiB head"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431")
    assert rss.grew < 16
    assert bystander_http().get(server.url + "/healthz").status_code == 200


CHUNKED_PUBLISH = (
    b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


async def trailers_attack(port: int, shape: str, most: int) -> tuple[int, bytes]:
    """One chunked ``POST /publish`` whose body is followed by up to ``most`` bytes of trailer
    fields (``shape``: many 8 KB fields, or one field that never ends); what it sent and the
    status line it got back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b'{"channel":"trailers","data":1}'
    writer.write(CHUNKED_PUBLISH + b"%x\r\n%s\r\n0\r\n" % (len(body), body))
    sent = 0
    try:
        if shape == "one field":
            writer.write(b"X-Pad: ")
        while sent < most:
            pad = b"a" * 8000
            piece = pad if shape == "one field" else b"X-Pad-%d: %s\r\n" % (sent, pad)
            writer.write(piece)
            sent += len(piece)
            await asyncio.wait_for(writer.drain(), 10)
        writer.write(b"\r\n\r\n")
        await writer.drain()
    except (OSError, TimeoutError):
        pass  # the server stopped reading: what we want
    try:
        status = await asyncio.wait_for(reader.readline(), 10)
    except (OSError, TimeoutError):
        status = b""
    writer.transport.abort()
    return sent, status


def test_chunked_trailers_are_refused_and_cost_no_memory(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    server = pyrt_start_server()
    most = 64 * MiB

    async def attack() -> list[tuple[int, bytes]]:
        shapes = ["many fields", "one field"] * 2
        return list(await asyncio.gather(*(trailers_attack(server.port, shape, most) for shape in shapes)))

    with PeakRss(server.proc.pid) as rss:
        results = run(attack())
    small = run(trailers_attack(server.port, "many fields", 1))  # one trailer field
    emit(
        "abuse.memory.trailers",
        sent_mib=[round(sent / MiB, 2) for sent, _ in results],
        answers=sorted({status[:12].decode() for _, status in results}),
        small=small[1][:12].decode(),
        rss_grew_mib=rss.grew,
    )
    assert all(sent < most for sent, _ in results), "the server read 64 MiB of trailers"
    assert all(
        status == b"" or status.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431")) for _, status in results
    )
    assert small[1].startswith(b"HTTP/1.1 400")  # even one trailer: refused, never published
    assert rss.grew < 16
    assert bystander_http().get(server.url + "/healthz").status_code == 200


def test_every_request_head_has_a_time_limit_also_on_keep_alive(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    # --handshake-timeout is scaled down from 10 s to keep the test short.
    server = pyrt_start_server("--handshake-timeout", "1")
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(10)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the second head, dribbled
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 8:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
                time.sleep(0.1)
            except OSError:
                closed = True
                break
        emit("abuse.memory.keep_alive_head", closed=closed, after_s=time.monotonic() - started)
        assert closed, "a keep-alive head dribbled for 8 s was never timed out"


def test_a_slow_request_body_times_out(pyrt_start_server: Callable[..., ServerProcess]) -> None:
    # --body-timeout is scaled down from 30 s to keep the test short.
    server = pyrt_start_server("--body-timeout", "1")
    head = SLOW_POST_HEAD
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(10)
        sock.sendall(head + b"{")
        started = time.monotonic()
        answer = sock.recv(200)
        emit("abuse.memory.slow_body", answer=answer[:12].decode(), after_s=time.monotonic() - started)
        assert answer.startswith(b"HTTP/1.1 408")
        assert sock.recv(200) == b""  # and closed
    assert "Traceback" not in server.log_text()


def test_slow_bodies_cannot_exhaust_file_descriptors(pyrt_start_server: Callable[..., ServerProcess]) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = resource.RLIM_INFINITY
    if hard != unlimited and hard < 1400:
        skip_outside_ci(f"this test opens 1,100 sockets and the open-file limit is {hard}")
    if soft != unlimited and soft < 1400:  # the test's own sockets
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096 if hard == unlimited else min(hard, 4096), hard))
    server = pyrt_start_server(files=1024)  # a common default `ulimit -n`
    head = SLOW_POST_HEAD + b"{"
    attackers: list[socket.socket] = []
    try:
        for _ in range(1100):
            sock = socket.socket()
            sock.settimeout(5)
            try:
                sock.connect(("127.0.0.1", server.port))
                sock.sendall(head)
            except OSError:
                pass
            attackers.append(sock)
        with bystander_http() as bystander:
            assert bystander.get(server.url + "/healthz").status_code == 200
        run(bystander_round_trip(server))
        refused = answered_429 = 0
        time.sleep(0.5)  # let the last answers arrive
        for sock in attackers:
            sock.setblocking(False)
            try:
                data = sock.recv(64)
            except BlockingIOError:
                continue  # still held: within the attacker's allowance
            except OSError:
                refused += 1
                continue
            if data.startswith(b"HTTP/1.1 429"):
                answered_429 += 1
            elif data == b"":
                refused += 1
        held = len(attackers) - refused - answered_429
    finally:
        for sock in attackers:
            sock.close()
    log = server.log_text()
    emit(
        "abuse.memory.slow_bodies",
        attempted=len(attackers),
        held=held,
        answered_429=answered_429,
        refused=refused,
    )
    assert "Too many open files" not in log
    assert held <= (1024 - 128) // 2  # one address never holds more than half of the connections


@pytest.mark.parametrize("path", ["/ws", "/echo"])
def test_pings_without_reading_hold_one_socket_buffer(
    pyrt_start_server: Callable[..., ServerProcess], path: str
) -> None:
    server = pyrt_start_server("--echo")  # /echo is opt-in

    async def attack() -> float:
        ws = await websockets.connect(
            server.ws_url + path,
            subprotocols=["pyrt.v1"] if path == "/ws" else None,
            ping_interval=None,
            max_queue=None,
        )
        ws.transport.pause_reading()  # never read a PONG
        loop = asyncio.get_running_loop()
        started = loop.time()
        written = 0
        while loop.time() - started < 4:
            if ws.transport.get_write_buffer_size() > MiB:  # the server stopped reading us
                await asyncio.sleep(0.02)
                continue
            for _ in range(1000):
                ws.protocol.send_ping(b"p" * 125)
            data = b"".join(ws.protocol.data_to_send())
            ws.transport.write(data)
            written += len(data)
            await asyncio.sleep(0)
        ws.transport.abort()
        return written / MiB

    with PeakRss(server.proc.pid) as rss:
        written = run(attack())
    run(bystander_round_trip(server))
    emit("abuse.memory.pings", path=path, pings_written_mib=written, rss_grew_mib=rss.grew)
    assert rss.grew < 16, f"{rss.grew:.0f} MiB buffered for a client that does not read"


def test_compressed_input_cannot_inflate_into_the_servers_memory(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    server = pyrt_start_server()

    async def attack() -> int:
        ws = await websockets.connect(server.ws_url + "/ws", subprotocols=["pyrt.v1"], ping_interval=None)
        await ws.recv()  # welcome
        frame = json.dumps({"type": "nothing", "pad": "y" * 1_000_000}).encode()
        for _ in range(380):
            ws.protocol.send_text(frame)  # each 1 MB frame deflates to ~1 KB
        burst = b"".join(ws.protocol.data_to_send())
        ws.transport.write(burst)  # one write: the server reads hundreds of frames at once
        await asyncio.sleep(3)
        ws.transport.abort()
        return len(burst)

    with PeakRss(server.proc.pid, interval=0.005) as rss:
        sent = run(attack())
    run(bystander_round_trip(server))
    emit("abuse.memory.inflate", sent_kib=sent / 1024, inflated_mib=380, rss_grew_mib=rss.grew)
    assert rss.grew < 32, f"{rss.grew:.0f} MiB held for {sent >> 10} KiB received"


def test_idle_connections_keep_nothing_of_what_they_sent(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    server = pyrt_start_server()
    connections = 100

    async def attack() -> None:
        data = "y" * 1_000_000  # ~1 KB on the wire: 1 MB in the server once inflated
        opened = []
        for _ in range(connections):
            ws = await websockets.connect(
                server.ws_url + "/ws", subprotocols=["pyrt.v1"], max_queue=None, ping_interval=None
            )
            await ws.recv()  # welcome
            ws.transport.pause_reading()  # and never read again
            for n in range(3):
                await ws.send(json.dumps({"type": "message", "id": f"m{n}", "data": data}))
            opened.append(ws)
        await asyncio.sleep(2)  # everything sent has been handled; the clients now sit idle
        for ws in opened:
            ws.transport.abort()

    start = server.rss_mib()
    with PeakRss(server.proc.pid) as rss:
        run(attack())
    run(bystander_round_trip(server))
    emit(
        "abuse.memory.idle_connections",
        connections=connections,
        inflated_mib_sent=connections * 3,
        rss_grew_mib=rss.peak - start,
    )
    assert rss.peak - start < 48, f"{rss.peak - start:.0f} MiB for {connections} idle connections"
