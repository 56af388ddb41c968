"""The binary binding (``pyrt.v1.msgpack``) against the JSON one, on CPython.

``python -m bench.binary_bench [--quick] [--json OUT]`` prints:

1. **Receive throughput** (no socket): a client reading N frames the server wrote, for the same
   messages on each binding — ``decode`` of ``publication`` frames (what a subscription costs
   before the handler runs) and ``WebSocketEngine.received`` of ``message`` frames (the engine's
   whole receive path). Two payloads: a small dashboard-like dict, and 100 floats.
2. **Fan-out cost on the server**: building one subscriber kind's frame from the stored data,
   done once per publication per kind of subscriber (JSON text as stored; MessagePack converted).
3. **A 1M-element float32 array end to end** through a real ``serve.py`` (limits raised to let
   20 MB messages through; no per-address CPU share or receive rate: one address sends it
   all): publish on one client until the subscriber on another has a NumPy array in hand, for
   the array on the binary binding, the same data as a JSON list (``tolist()``) on the JSON
   binding, and base64 in JSON made by hand on the JSON binding. Then the CPU time of each step
   of that trip in one process, with no socket.

Figures only: best (CPU time) or median (wall clock) of a few runs, on whatever else the machine
is doing (say so when you publish them).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.procs import serve_py
from pyrt import WebSocketClient, WebSocketEngine
from pyrt.wire import binary, codec
from pyrt.wire.frames import Publish, RawJSON
from pyrt.wire.protocols import PyrtBinaryProtocol, PyrtProtocol

PAYLOADS: dict[str, Any] = {
    "dashboard dict": {
        "n": 1234,
        "cpu": 0.731,
        "mem": 512.5,
        "ok": True,
        "host": "web-3",
        "tags": ["a", "b"],
    },
    "100 floats": [i * 0.37 for i in range(100)],
}


def _best(fn: Callable[[], float], runs: int) -> float:
    return min(fn() for _ in range(runs))


def _decode_rate(decode: Callable[[Any], Any], frame: Any, n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        decode(frame)
    return n / (time.process_time() - start)


def _engine(protocol: Any, welcome: Any) -> WebSocketEngine:
    engine = WebSocketEngine(protocol=protocol, rng=lambda: 0.5)
    engine.connect(0.0)
    engine.opened(0.0)
    engine.received(welcome, 0.0)
    engine.actions()
    return engine


def _received_rate(engine: WebSocketEngine, frame: Any, n: int) -> float:
    received = engine.received
    now = 2.0
    start = time.process_time()
    for _ in range(n):
        now += 0.001
        received(frame, now)
    elapsed = time.process_time() - start
    engine.actions()
    return n / elapsed


def receive_row(name: str, data: Any, n: int, runs: int) -> dict[str, Any]:
    welcome_json = '{"type":"welcome","session":"s1"}'
    welcome_bin = binary.transcode(welcome_json)
    stored = codec.json_text(data)
    pub_json = codec.encode_publication("metrics", "1-42", "message", RawJSON(stored))
    pub_bin = binary.encode_publication("metrics", "1-42", "message", stored)
    msg_json = codec.encode_message(data)
    msg_bin = binary.encode_message(data)
    json_proto, bin_proto = PyrtProtocol(), PyrtBinaryProtocol()
    decode_json = _best(lambda: _decode_rate(json_proto.decode, pub_json, n), runs)
    decode_bin = _best(lambda: _decode_rate(bin_proto.decode, pub_bin, n), runs)
    recv_json = _best(lambda: _received_rate(_engine("pyrt-json", welcome_json), msg_json, n), runs)
    recv_bin = _best(lambda: _received_rate(_engine("pyrt-msgpack", welcome_bin), msg_bin, n), runs)
    return {
        "payload": name,
        "bytes_json": len(pub_json.encode()),
        "bytes_msgpack": len(pub_bin),
        "decode_publication_per_s": {"json": decode_json, "msgpack": decode_bin},
        "engine_received_per_s": {"json": recv_json, "msgpack": recv_bin},
    }


def receive_rows(n: int, runs: int) -> list[dict[str, Any]]:
    return [receive_row(name, data, n, runs) for name, data in PAYLOADS.items()]


def fanout_rows(n: int, runs: int) -> list[dict[str, Any]]:
    rows = []
    for name, data in PAYLOADS.items():
        stored = codec.json_text(data)

        def as_json(stored: str = stored) -> float:
            start = time.process_time()
            for _ in range(n):
                codec.encode_publication("metrics", "1-42", "message", RawJSON(stored))
            return (time.process_time() - start) / n * 1e6

        def as_msgpack(stored: str = stored) -> float:
            start = time.process_time()
            for _ in range(n):
                binary.encode_publication("metrics", "1-42", "message", stored)
            return (time.process_time() - start) / n * 1e6

        rows.append(
            {
                "payload": name,
                "us_per_fanout": {"json": _best(as_json, runs), "msgpack": _best(as_msgpack, runs)},
            }
        )
    return rows


# ------------------------------------------------------------------------ 1M float32, end to end

SERVER_ARGS = (
    "--max-message-bytes", str(64 * 1024 * 1024),
    "--send-queue-bytes", str(256 * 1024 * 1024),
    "--publish-bytes-rate", "0",
    "--history-bytes", str(1024 * 1024 * 1024),
    "--max-replay-bytes", str(256 * 1024 * 1024),
    "--inbox-bytes-per-ip", str(256 * 1024 * 1024),
    # one address sends everything here: no per-address CPU share, no receive rate
    "--cpu-share-per-ip", "0",
    "--receive-rate", "0",
    "--receive-rate-per-identity", "0",
)  # fmt: skip


async def _one_way(ws_url: str, variant: str, array: Any) -> tuple[float, int]:
    """Seconds from ``publish`` to a NumPy array in the subscriber's hand, and the bytes of the
    frame the subscriber received."""
    protocol = "pyrt-msgpack" if variant == "binary" else "pyrt-json"
    got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    channel = f"big-{variant.replace(' ', '_')}-{time.monotonic_ns()}"
    async with (
        WebSocketClient(ws_url, heartbeat=None, protocol=protocol) as sender,
        WebSocketClient(ws_url, heartbeat=None, protocol=protocol) as receiver,
    ):

        def arrived(publication: Any) -> None:
            data = publication.data
            if variant == "binary":
                result = data
            elif variant == "json list":
                result = np.array(data, dtype="<f4")
            else:
                result = np.frombuffer(base64.b64decode(data["b64"]), dtype=data["dtype"]).reshape(
                    data["shape"]
                )
            if not got.done():
                got.set_result(result)

        receiver.subscribe(channel, arrived)
        await sender.history(channel, limit=1)  # the sender is up
        await receiver.history(channel, limit=1)  # and the subscription answered before it
        start = time.perf_counter()
        if variant == "binary":
            payload: Any = array
        elif variant == "json list":
            payload = array.tolist()
        else:
            payload = {
                "dtype": array.dtype.str,
                "shape": list(array.shape),
                "b64": base64.b64encode(array.tobytes()).decode(),
            }
        await sender.publish(channel, payload, timeout=60)
        result = await asyncio.wait_for(got, 60)
        elapsed = time.perf_counter() - start
    if not np.array_equal(result, array):
        raise AssertionError(f"{variant}: the array arrived different")
    if variant == "binary":
        size = len(binary.encode_message(array))
    else:
        size = len(codec.encode_message(payload).encode())
    return elapsed, size


def big_array_codec_rows(elements: int, runs: int) -> list[dict[str, Any]]:
    """CPU time of each step of the same trip with no socket (what the wall clock above hides
    under the machine's other work): client encode, server ingest (read + the stored form),
    the fan-out frame for one kind of subscriber, client decode into a NumPy array."""
    array = np.random.default_rng(1).random(elements, dtype=np.float32)
    rows = []
    for variant in ("binary", "json list", "base64 in JSON"):
        steps: dict[str, list[float]] = {"encode": [], "ingest": [], "fanout": [], "decode": []}
        for _ in range(runs):
            clock = time.process_time()
            if variant == "binary":
                frame: Any = binary.encode(Publish("c", array, "k-1", None))
            else:
                payload: Any = (
                    array.tolist()
                    if variant == "json list"
                    else {
                        "dtype": "<f4",
                        "shape": [elements],
                        "b64": base64.b64encode(array.tobytes()).decode(),
                    }
                )
                frame = codec.encode(Publish("c", payload, "k-1", None))
            steps["encode"].append(time.process_time() - clock)
            clock = time.process_time()
            read = (
                binary.decode_client_frame(frame) if variant == "binary" else codec.decode_client_frame(frame)
            )
            stored = codec.json_text(read.data)  # type: ignore[union-attr]
            steps["ingest"].append(time.process_time() - clock)
            clock = time.process_time()
            if variant == "binary":
                out: Any = binary.encode_publication("c", "1-1", "message", stored)
            else:
                out = codec.encode_publication("c", "1-1", "message", RawJSON(stored))
            steps["fanout"].append(time.process_time() - clock)
            clock = time.process_time()
            if variant == "binary":
                result = PyrtBinaryProtocol().decode(out).data  # type: ignore[union-attr]
            elif variant == "json list":
                result = np.array(PyrtProtocol().decode(out).data, dtype="<f4")  # type: ignore[union-attr]
            else:
                data = PyrtProtocol().decode(out).data  # type: ignore[union-attr]
                result = np.frombuffer(base64.b64decode(data["b64"]), dtype=data["dtype"])
            steps["decode"].append(time.process_time() - clock)
            if not np.array_equal(result, array):
                raise AssertionError(f"{variant}: the array came back different")
        rows.append({"variant": variant, "cpu_ms": {k: min(v) * 1000 for k, v in steps.items()}})
    return rows


def big_array_rows(elements: int, runs: int) -> list[dict[str, Any]]:
    array = np.random.default_rng(1).random(elements, dtype=np.float32)
    server = serve_py(*SERVER_ARGS)
    try:
        ws_url = server.url.replace("http://", "ws://") + "/ws"
        rows = []
        for variant in ("binary", "json list", "base64 in JSON"):
            times = []
            size = 0
            for _ in range(runs):
                elapsed, size = asyncio.run(_one_way(ws_url, variant, array))
                times.append(elapsed)
            rows.append(
                {"variant": variant, "median_s": statistics.median(times), "runs": times, "frame_bytes": size}
            )
        return rows
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.binary_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=str, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    n, runs, elements, e2e_runs = (2_000, 2, 10_000, 1) if args.quick else (50_000, 5, 1_000_000, 5)
    out: dict[str, Any] = {}
    out["receive"] = receive_rows(n, runs)
    for row in out["receive"]:
        d, r = row["decode_publication_per_s"], row["engine_received_per_s"]
        print(
            f"{row['payload']:15} frame {row['bytes_json']:4} B JSON / {row['bytes_msgpack']:4} B msgpack | "
            f"decode publication: JSON {d['json']:9,.0f}/s msgpack {d['msgpack']:9,.0f}/s "
            f"(x{d['msgpack'] / d['json']:.2f}) | engine.received: JSON {r['json']:9,.0f}/s "
            f"msgpack {r['msgpack']:9,.0f}/s (x{r['msgpack'] / r['json']:.2f})"
        )
    out["fanout"] = fanout_rows(n, runs)
    for row in out["fanout"]:
        f = row["us_per_fanout"]
        print(
            f"{row['payload']:15} fan-out frame per subscriber kind: "
            f"JSON {f['json']:.2f} us, msgpack {f['msgpack']:.2f} us"
        )
    out["big_array_codec"] = big_array_codec_rows(elements, runs)
    for row in out["big_array_codec"]:
        c = row["cpu_ms"]
        total = sum(c.values())
        print(
            f"{elements:,} float32 as {row['variant']:15} CPU, no socket: encode {c['encode']:7.1f} ms, "
            f"server ingest {c['ingest']:7.1f}, fan-out frame {c['fanout']:7.1f}, "
            f"decode {c['decode']:7.1f}; total {total:7.1f} ms"
        )
    out["big_array"] = big_array_rows(elements, e2e_runs)
    base = out["big_array"][0]["median_s"]
    for row in out["big_array"]:
        print(
            f"{elements:,} float32 as {row['variant']:15}: {row['median_s'] * 1000:8.1f} ms median of "
            f"{len(row['runs'])} (x{row['median_s'] / base:.1f} the binary time), "
            f"frame {row['frame_bytes']:,} B"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
