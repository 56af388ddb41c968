"""The engine's share of saving ``persist=`` state with a long queue, before and after.

Runs on CPython (``python -m bench.persist_bench``) and inside the bench page's Pyodide (loaded
as ``persist_costs``). With ``n`` messages queued, it times what saving costs per new message:

- *whole snapshot*: what pyrt did before records (every save serialised the whole queue:
  ``dumps(engine.snapshot())``);
- *journal*: what it does now (the journal's batch of one record, serialised).
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["engine_costs"]


def engine_costs(n: int, sends: int) -> dict[str, Any]:
    """Milliseconds per message (send + save) with ``n`` messages queued, both ways."""
    from pyrt.engine.websocket import SaveState, WebSocketEngine
    from pyrt.persist.records import Snapshot, dumps, record_text

    def queued() -> WebSocketEngine:
        engine = WebSocketEngine(persist=True, heartbeat=None, queue_limit=n + sends + 1, queue_bytes=1 << 28)
        engine.restore(Snapshot())  # IDLE: every send waits in the queue
        for i in range(n):
            engine.send({"text": "a chat message", "n": i}, 0.0)
        engine.save_now(0.0)
        engine.actions()
        return engine

    engine = queued()
    t0 = time.perf_counter()
    for i in range(sends):
        engine.send({"text": "a chat message", "n": n + i}, 0.0)
        dumps(engine.snapshot())
    whole = (time.perf_counter() - t0) * 1000 / sends

    engine = queued()
    written = 0
    t0 = time.perf_counter()
    for i in range(sends):
        engine.send({"text": "a chat message", "n": n + i}, 0.0)
        engine.save_now(0.0)
        for action in engine.actions():
            if type(action) is SaveState:
                written += sum(len(record_text(saved)) for saved in action.changes.puts.values())
    journal = (time.perf_counter() - t0) * 1000 / sends
    return {
        "n": n,
        "sends": sends,
        "whole_snapshot_ms": round(whole, 4),
        "journal_ms": round(journal, 4),
        "bytes_per_save_whole": len(dumps(engine.snapshot())),
        "bytes_per_save_journal": written // sends,
    }
