"""Throughput of a WebSocketClient with an inspector open vs none (CPython, no browser, no socket).

A client over :class:`pyrt.testing.FakeTransport` sends N messages to a
:class:`pyrt.testing.FakePyrtServer`, which echoes each one back; the time is the CPU time until
the N echoes were delivered to ``on_message``. Three modes, interleaved run by run:

- ``closed``: no inspector was ever opened (what every client pays);
- ``detached``: one was opened and closed again (it must leave nothing behind);
- ``open``: one is open (frames in and out kept in its rings; no view attached).

Prints the best of a few runs in messages per second and the ratio to ``closed``; the modes take
turns going first.
``python -m bench.inspector_bench [N]``
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time

from pyrt.aio.websocket import WebSocketClient
from pyrt.testing import FakePyrtServer, FakeTransport

MODES = ("closed", "detached", "open")


async def _run(mode: str, n: int) -> float:
    transport = FakeTransport(FakePyrtServer(), asyncio.get_running_loop().call_soon)
    client = WebSocketClient("ws://bench/ws", transport=transport, heartbeat=None, pacing=None)
    if mode != "closed":
        inspector = client.inspect()
        if mode == "detached":
            inspector.close()
    got = 0
    done = asyncio.get_running_loop().create_future()

    def count(_: object) -> None:
        nonlocal got
        got += 1
        if got == n and not done.done():
            done.set_result(None)

    client.on_message(count)
    await client.connect().wait_open(5)
    start = time.process_time()
    for i in range(n):
        client.send({"n": i, "text": "hello"})
    await asyncio.wait_for(done, 120)
    elapsed = time.process_time() - start
    client.close()
    return n / elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    runs = 5
    best = dict.fromkeys(MODES, 0.0)
    for run in range(runs):
        for mode in MODES[run % 3 :] + MODES[: run % 3]:  # each mode goes first in turn
            gc.collect()  # the previous run's garbage is not collected on this one's time
            best[mode] = max(best[mode], asyncio.run(_run(mode, n)))
    for mode in MODES:
        ratio = best[mode] / best["closed"]
        rate = f"{best[mode]:9.0f} msg/s ({ratio:.2f}x)"
        print(f"inspector {mode:8}: {n} echoed messages, best of {runs}: {rate}")


if __name__ == "__main__":
    main()
