"""Micro-benchmark of the WebSocket engine's two hot paths on CPython (no browser, no socket).

Times N calls of ``WebSocketEngine.send`` (open, nothing queued: it returns the frame) and N
calls of ``WebSocketEngine.received`` (a plain message: it returns the data), on an open and
welcomed engine with the default options, for two protocols:

- ``pyrt``: the default (JSON frames through the codec, pacing, heartbeat): what a user pays;
- ``raw``: frames as they are (no codec, no pacing): what the engine itself costs.

Prints the best of a few runs in ns of CPU time per call (process time: other processes on the
machine disturb it less than the wall clock). ``python -m bench.engine_hot_paths [N]``
"""

from __future__ import annotations

import sys
import time
from typing import Any

from pyrt import WebSocketEngine

WELCOME = '{"type":"welcome","session":"s1"}'
FRAMES = {"pyrt": '{"type":"message","data":{"n":1,"text":"hello"}}', "raw": '{"n":1,"text":"hello"}'}
DATA: dict[str, Any] = {"pyrt": {"n": 1, "text": "hello"}, "raw": '{"n":1,"text":"hello"}'}


def _engine(protocol: str) -> WebSocketEngine:
    engine = WebSocketEngine(protocol=protocol, rng=lambda: 0.5)
    engine.connect(0.0)
    engine.opened(0.0)
    if protocol == "pyrt":
        engine.received(WELCOME, 0.0)  # no limits advertised: the default pace (50/s)
    engine.actions()
    return engine


def bench_send(protocol: str, n: int) -> float:
    engine = _engine(protocol)
    send = engine.send
    data = DATA[protocol]
    step = 1.0 / 40.0  # under the default pace: every send goes out at once, as the hot path
    now = 2.0
    start = time.process_time()
    for _ in range(n):
        now += step
        if send(data, now) is None:
            raise AssertionError("a send was queued: the benchmark measures the direct path")
    return (time.process_time() - start) / n * 1e9


def bench_received(protocol: str, n: int) -> float:
    engine = _engine(protocol)
    received = engine.received
    frame = FRAMES[protocol]
    now = 2.0
    start = time.process_time()
    for _ in range(n):
        now += 0.001
        received(frame, now)
    elapsed = time.process_time() - start
    engine.actions()
    return elapsed / n * 1e9


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    runs = 5
    for protocol in ("pyrt", "raw"):
        send = min(bench_send(protocol, n) for _ in range(runs))
        recv = min(bench_received(protocol, n) for _ in range(runs))
        print(f"{protocol:5} send():     {n} calls, best of {runs}: {send:7.1f} ns/call")
        print(f"{protocol:5} received(): {n} calls, best of {runs}: {recv:7.1f} ns/call")


if __name__ == "__main__":
    main()
