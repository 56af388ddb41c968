"""CPU without a bound: no input may cost the server more than a small constant times its size.

Each test measures CPU against a control of the same size in the same run (a ratio, never an
absolute time), so that a loaded machine slows both alike.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
import websockets

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.redact import MAX_LOGGED, redact
from pyrt.server.settings import Settings
from tests.faults.scenario import emit
from tests.server.attacker import read_answer
from tests.server.cpu import CpuUsed
from tests.server.test_abuse_memory import BYSTANDER, bystander_round_trip
from tests.server.wsclient import Client, run

KiB = 1024
MiB = 1024 * KiB
DEFAULTS = Settings()


def best_of(runs: int, work: Callable[[], object]) -> float:
    """The shortest of ``runs`` timings of ``work()`` (the least disturbed by other processes)."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def adversarial_lines(size: int) -> dict[str, str]:
    """Log lines of about ``size`` characters built to make a backtracking pattern work hard:
    keywords repeated inside one name, names without an end, quotes and separators galore."""
    return {
        "query of keywords": "GET /anything?" + "key" * (size // 3),
        "query of credentials": "GET /x?" + "key=&" * (size // 5),
        "name with a late keyword": "GET /x?" + "a" * size + "key=1",
        "json name of keywords": '{"' + "key" * (size // 3),
        "json members": '"key":"' * (size // 7),
        "json names without colons": ('"' + "a" * 59 + "k") * (size // 61),
        "quoted keywords": '"key"' * (size // 5),
        "bearer and spaces": "bearer" + " " * size,
        "bearers": "bearer " * (size // 7),
        "refresh frames": '"type":"refresh"' * (size // 16),
        "separators": "?&; " * (size // 4),
    }


def test_redaction_costs_the_same_per_character_whatever_the_line() -> None:
    size = 32 * KiB
    control = "GET /anything?" + "a" * size  # the same request line without a keyword
    control_seconds = best_of(7, lambda: redact(control, limit=None))
    ratios = {}
    growth = {}
    for name, line in adversarial_lines(size).items():
        seconds = best_of(7, lambda line=line: redact(line, limit=None))  # type: ignore[misc]
        ratios[name] = seconds / control_seconds
        four_times = adversarial_lines(4 * size)[name]
        growth[name] = best_of(5, lambda line=four_times: redact(line, limit=None)) / seconds  # type: ignore[misc]
    emit(
        "abuse.cpu.redaction",
        control_ms=control_seconds * 1000,
        worst=max(ratios, key=ratios.__getitem__),
        worst_ratio=max(ratios.values()),
        worst_growth=max(growth.values()),
    )
    # A backtracking pattern costs ~150x the control on the first line at this size, and 16x
    # more for 4x the text; a linear scan at most a few times the control, 4x for 4x.
    assert max(ratios.values()) < 20, ratios
    assert max(growth.values()) < 8, growth
    logged = redact("GET /anything?" + "key" * 20_000)  # what a log line keeps by default
    assert len(logged) < MAX_LOGGED + 64


# --- permessage-deflate -------------------------------------------------------------------------


async def send_frames(server: ServerProcess, frames: int, compressed: bool, inflated: int) -> int:
    """One connection sending ``frames`` pyrt ``pong`` frames in one write, each ``inflated``
    bytes of JSON: compressed (one repeated character: ~1 KB on the wire for 1 MiB) or not.
    Returns when the server has handled them (a ``ping`` answered) or closed the connection."""
    ws = await websockets.connect(
        server.ws_url + "/ws",
        subprotocols=["pyrt.v1"],  # type: ignore[list-item]
        compression="deflate" if compressed else None,
        ping_interval=None,
        max_queue=None,
    )
    await ws.recv()  # welcome
    frame = json.dumps({"type": "pong", "pad": "y" * (inflated - 24)})
    for _ in range(frames):
        ws.protocol.send_text(frame.encode())
    ws.protocol.send_text(b'{"type":"ping","t":"done"}')
    burst = b"".join(ws.protocol.data_to_send())
    ws.transport.write(burst)
    try:
        while json.loads(await asyncio.wait_for(ws.recv(), 60)).get("t") != "done":
            pass
    except websockets.ConnectionClosed:
        pass
    ws.transport.abort()
    return len(burst)


def test_compressed_frames_cost_no_more_cpu_per_byte_than_plain_ones(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    server = pyrt_start_server()

    async def attack(compressed: bool, inflated: int) -> tuple[int, float]:
        with CpuUsed(server.proc.pid) as cpu:
            sent = sum([await send_frames(server, 20, compressed, inflated) for _ in range(50)])
        return sent, cpu.seconds

    bomb_bytes, bomb_cpu = run(attack(True, 1_000_000))  # 1 KB frames inflating to 1 MB
    plain_bytes, plain_cpu = run(attack(False, 1024))  # 1 KB frames as they are
    per_byte = (bomb_cpu / bomb_bytes) / max(plain_cpu / plain_bytes, 1e-9)
    emit(
        "abuse.cpu.deflate_bomb",
        bomb_kib=bomb_bytes / KiB,
        bomb_cpu_s=bomb_cpu,
        plain_kib=plain_bytes / KiB,
        plain_cpu_s=plain_cpu,
        cpu_per_byte_ratio=per_byte,
    )
    # Parsing 1 GB of inflated JSON takes seconds; refused at 32x, a handshake's worth each.
    assert bomb_cpu < 3 * plain_cpu, (bomb_cpu, plain_cpu)
    run(bystander_round_trip(server))


def test_received_bytes_are_metered_per_identity(pyrt_start_server: Callable[..., ServerProcess]) -> None:
    # No CPU budget: under it, one address's 48 MiB take its share of a core (tens of seconds on
    # a busy machine), which would pace the frames below the received bytes' rate under test.
    server = pyrt_start_server("--cpu-share-per-ip", "0")
    size, per_connection, connections = 256 * KiB, 24, 8
    rate = DEFAULTS.identity_receive_rate
    burst = max(rate, DEFAULTS.max_message_bytes)

    async def attack() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        sent = await asyncio.gather(
            *(send_frames(server, per_connection, False, size) for _ in range(connections))
        )
        return sum(sent), loop.time() - started

    sent, seconds = run(attack())
    handled = connections * per_connection * size
    emit(
        "abuse.cpu.receive_meter",
        handled_mib=handled / MiB,
        seconds=seconds,
        mib_per_s=handled / MiB / seconds,
    )
    assert sent >= handled
    # Everything was handled, no faster than the identity's rate allows (and its burst).
    assert handled <= burst + rate * seconds + connections * size, (handled, seconds)
    run(bystander_round_trip(server))


def test_a_fan_out_is_compressed_once_for_every_subscriber(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    server = pyrt_start_server()
    subscribers, publications = 20, 200
    words = [uuid.uuid4().hex for _ in range(40)]
    data = " ".join(words[(n * 7) % 40] for n in range(1000))  # ~33 KB that compresses ~5x

    async def fan_out(compression: str | None) -> float:
        channel = "fan-" + uuid.uuid4().hex[:8]
        clients = [
            await Client.connect(server.ws_url, compression=compression, local_addr=(BYSTANDER, 0))
            for _ in range(subscribers)
        ]
        for client in clients:
            await client.send({"type": "subscribe", "channel": channel})
            await client.expect("subscribed")
        with CpuUsed(server.proc.pid) as cpu:
            async with httpx.AsyncClient(timeout=10) as http:
                for n in range(publications):
                    response = await http.post(
                        server.url + "/publish", json={"channel": channel, "data": [n, data]}
                    )
                    assert response.status_code == 200
            for client in clients:
                received = await client.publications(channel, publications, timeout=30)
                assert [p["data"][0] for p in received] == list(range(publications))
                assert received[-1]["data"][1] == data
        for client in clients:
            await client.close()
        return cpu.seconds

    compressed = run(fan_out("deflate"))
    plain = run(fan_out(None))
    emit("abuse.cpu.fan_out_deflate", deflate_cpu_s=compressed, plain_cpu_s=plain, ratio=compressed / plain)
    # Compressing 33 KB for each of 20 subscribers costs several times the plain fan-out; once per
    # publication, a fraction of it.
    assert compressed < 2 * plain, (compressed, plain)


# --- CPU per byte at every way in -----------------------------------------------------------------


async def http_cpu(server: ServerProcess, request: bytes, times: int) -> tuple[int, float]:
    """``request`` sent ``times`` times on 4 keep-alive connections (opened again when the
    server closes one), each answer read; the bytes sent and the server's CPU seconds."""

    async def one(count: int) -> int:
        sent = 0
        streams = None
        for _ in range(count):
            if streams is None:
                streams = await asyncio.open_connection("127.0.0.1", server.port)
            reader, writer = streams
            writer.write(request)
            sent += len(request)
            try:
                status = await read_answer(reader)
            except (OSError, asyncio.IncompleteReadError):
                status = b""
            if not status.startswith(b"HTTP/1.1 2") and not status.startswith(b"HTTP/1.1 4"):
                raise AssertionError(f"answered {status!r}")
            if status.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431")):  # refused and closed
                writer.transport.abort()
                streams = None
        if streams is not None:
            streams[1].transport.abort()
        return sent

    with CpuUsed(server.proc.pid) as cpu:
        sent = sum(await asyncio.gather(*(one(times // 4) for _ in range(4))))
    return sent, cpu.seconds


async def ws_cpu(server: ServerProcess, frame: str, times: int) -> tuple[int, float]:
    """``frame`` sent ``times`` times over 8 connections (uncompressed), then a ``ping`` each: the
    bytes sent and the server's CPU seconds once every frame was handled."""

    async def one(count: int) -> int:
        ws = await websockets.connect(
            server.ws_url + "/ws",
            subprotocols=["pyrt.v1"],  # type: ignore[list-item]
            compression=None,
            max_queue=None,
            ping_interval=None,
        )
        await ws.recv()  # welcome
        for _ in range(count):
            await ws.send(frame)
        await ws.send('{"type":"ping","t":"end"}')
        while '"t":"end"' not in str(await asyncio.wait_for(ws.recv(), 120)):
            pass
        await ws.close()
        return count * len(frame)

    with CpuUsed(server.proc.pid) as cpu:
        sent = sum(await asyncio.gather(*(one(times // 8) for _ in range(8))))
    return sent, cpu.seconds


def _request(path: bytes, *headers: bytes, body: bytes = b"", method: bytes = b"GET") -> bytes:
    head = method + b" " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(h + b"\r\n" for h in headers)
    if body:
        head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    return head + b"\r\n" + body


N = 30_000  # bytes of each adversarial input, about
HTTP_ENTRY_POINTS: dict[str, tuple[bytes, bytes]] = {
    "request line": (
        _request(b"/anything?" + b"key" * (N // 3)),
        _request(b"/anything?" + b"a" * (N // 3 * 3)),
    ),
    "headers": (
        _request(
            b"/healthz", b"Cookie: " + b"pyrt_token=a.b; " * (N // 16), b"Origin: http://[" + b"[" * 2000
        ),
        _request(b"/healthz", b"X-Pad: " + b"a" * (N // 16 * 16 + 8), b"X-Other: " + b"a" * 2016),
    ),
    "body": (
        _request(
            b"/publish", method=b"POST", body=b'{"channel":"c","data":"' + b"\\u00e9" * (N // 6) + b'"}'
        ),
        _request(b"/publish", method=b"POST", body=b'{"channel":"c","data":"' + b"a" * (N // 6 * 6) + b'"}'),
    ),
    "trailers": (
        _request(b"/publish", b"Transfer-Encoding: chunked", method=b"POST")
        + b'1f\r\n{"channel":"trailers","data":1}\r\n0\r\n'
        + b"".join(b"X-T%d: %s\r\n" % (n, b"a" * 90) for n in range(N // 100))
        + b"\r\n",
        _request(b"/publish", b"Transfer-Encoding: chunked", method=b"POST")
        + b"%x\r\n" % (N // 100 * 100 + 31)
        + b'{"channel":"trailers","data":"'
        + b"a" * (N // 100 * 100 - 2)
        + b'"}\r\n0\r\n\r\n',
    ),
}
F = 16_000  # bytes of each WebSocket frame
WS_ENTRY_POINTS: dict[str, tuple[str, str]] = {
    "publish frame": (
        '{"type":"publish","channel":"c","data":"' + "\\u00e9" * (F // 6) + '"}',
        '{"type":"publish","channel":"c","data":"' + "a" * (F // 6 * 6) + '"}',
    ),
    "message frame": (
        '{"type":"message","data":' + "[" * 900 + "]" * 900 + ',"pad":"' + "a" * (F - 1840) + '"}',
        '{"type":"message","data":1,"pad":"' + "a" * (F - 1800 + 1800 - 6) + '"}',
    ),
    "refresh frame": (
        '{"type":"refresh","id":"r","token":"' + "a." * 2000 + "a" * (F - 4045) + '"}',
        '{"type":"pong","pad":"' + "a" * (F - 20) + '"}',
    ),
    "subscribe frame": (
        '{"type":"subscribe","channel":"' + "a:" * (F // 2 - 20) + '"}',
        '{"type":"pong","pad":"' + "a" * (F - 20) + '"}',
    ),
    "presence frame": (
        '{"type":"presence_join","id":"p","channel":"c","info":{"' + '":{"' * (F // 5 - 20) + '"}',
        '{"type":"pong","pad":"' + "a" * (F - 20) + '"}',
    ),
}


#: Publications are the input of these ways in, measured by the megabyte: no publication quotas.
PUBLISHING = ("--publish-rate", "0", "--publish-bytes-rate", "0")
SERVER_ARGS = {"body": PUBLISHING, "trailers": PUBLISHING, "publish frame": PUBLISHING}
#: What is measured is the CPU each byte costs, not how the CPU budget paces one address: without
#: it, 25 MB from one address are handled in seconds instead of its share of a core's time.
NO_CPU_BUDGET = ("--cpu-share-per-ip", "0")


@pytest.mark.parametrize("entry", [*HTTP_ENTRY_POINTS, *WS_ENTRY_POINTS])
def test_no_way_in_costs_much_more_cpu_per_byte_than_its_control(
    pyrt_start_server: Callable[..., ServerProcess], entry: str
) -> None:
    server = pyrt_start_server(*SERVER_ARGS.get(entry, ()), *NO_CPU_BUDGET)
    rounds: list[tuple[float, float]] = []  # (adversarial, control) CPU per byte, alternated

    async def measure() -> None:
        for _ in range(2):
            if entry in HTTP_ENTRY_POINTS:
                adversarial, control = HTTP_ENTRY_POINTS[entry]
                a_bytes, a_cpu = await http_cpu(server, adversarial, 200)
                c_bytes, c_cpu = await http_cpu(server, control, 200)
            else:
                adversarial_frame, control_frame = WS_ENTRY_POINTS[entry]
                a_bytes, a_cpu = await ws_cpu(server, adversarial_frame, 1600)
                c_bytes, c_cpu = await ws_cpu(server, control_frame, 1600)
            rounds.append((a_cpu / a_bytes, c_cpu / c_bytes))

    run(measure())
    adversarial_per_byte = sum(a for a, _ in rounds)
    control_per_byte = sum(c for _, c in rounds)
    ratio = adversarial_per_byte / control_per_byte
    emit(
        "abuse.cpu.per_byte",
        entry=entry,
        adversarial_ns_per_byte=adversarial_per_byte / len(rounds) * 1e9,
        control_ns_per_byte=control_per_byte / len(rounds) * 1e9,
        ratio=ratio,
    )
    assert ratio < 4, f"{entry}: {ratio:.1f} times the control's CPU per byte"
    assert "Traceback" not in server.log_text()
