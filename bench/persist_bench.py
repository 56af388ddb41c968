"""``persist=`` with a long queue: what saving one more message costs, before and after records.

``python -m bench.persist_bench`` prints the figures (CPython: the engine and the file stores);
``make bench`` runs it with the rest and adds the browser's (localStorage, IndexedDB) from the
bench page. Nothing is asserted: these are figures for docs/benchmarks.md.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.pages.persist_costs import engine_costs

__all__ = ["file_costs", "run_cpython"]


def file_costs(n: int, writes: int) -> dict[str, Any]:
    """Milliseconds per saved message with ``n`` saved, in a file: the whole text rewritten
    (``FileStorage`` through ``SnapshotStore``, the old way) and the journal (``FileStore``)."""
    from pyrt.cpython.storage import FileStorage, FileStore
    from pyrt.persist.records import Changes, SavedFrame, SnapshotStore

    frame = '{"type":"message","id":"k3f9x2a1-%d","data":{"text":"a chat message of fifty bytes"}}'

    def batch(first: int, count: int) -> Changes:
        return Changes(
            puts={
                s: SavedFrame(frame % s, f"k3f9x2a1-{s}", "message", s) for s in range(first, first + count)
            }
        )

    def per_write(store: Any) -> float:
        store.write("bench", batch(1, n), _ok)
        t0 = time.perf_counter()
        for seq in range(n + 1, n + 1 + writes):
            store.write("bench", batch(seq, 1), _ok)
        return (time.perf_counter() - t0) * 1000 / writes

    with tempfile.TemporaryDirectory() as old, tempfile.TemporaryDirectory() as new:
        return {
            "n": n,
            "writes": writes,
            "file_whole_ms": round(per_write(SnapshotStore(FileStorage(Path(old)))), 4),
            "file_journal_ms": round(per_write(FileStore(Path(new))), 4),
        }


def _ok(error: Exception | None) -> None:
    if error is not None:
        raise error


def run_cpython(n: int = 10_000, sends: int = 200) -> dict[str, Any]:
    return {"engine": engine_costs(n, sends), "files": file_costs(n, sends)}


def render(results: dict[str, Any]) -> str:
    """The figures as text lines (CPython, and the browser's when present)."""
    lines = []
    engine = results.get("cpython", {}).get("engine")
    if engine:
        lines.append(
            f"persist, {engine['n']:,} queued, per new message: engine save "
            f"{engine['whole_snapshot_ms']:.3f} ms (whole snapshot, {engine['bytes_per_save_whole']:,} B)"
            f" -> {engine['journal_ms']:.4f} ms (journal, {engine['bytes_per_save_journal']} B)"
        )
    files = results.get("cpython", {}).get("files")
    if files:
        whole, journal = files["file_whole_ms"], files["file_journal_ms"]
        lines.append(f"  file: {whole:.3f} ms (whole text) -> {journal:.3f} ms (journal)")
    browser = results.get("browser")
    if isinstance(browser, dict) and "localstorage_whole_ms" in browser:
        b = browser
        lines += [
            f"  Pyodide engine: {b['engine']['whole_snapshot_ms']:.3f} -> {b['engine']['journal_ms']:.4f} ms",
            f"  localStorage: {b['localstorage_whole_ms']:.3f} ms (whole text) -> "
            f"{b['localstorage_record_ms']:.3f} ms (record); "
            f"loading {b['n']:,}: {b['localstorage_load_ms']:.0f} ms",
            f"  IndexedDB: {b['indexeddb_record_ms']:.3f} ms per committed one-record write; "
            f"loading {b['n']:,}: {b['indexeddb_load_ms']:.0f} ms",
        ]
    elif browser:
        lines.append(f"  browser: {str(browser)[:300]}")
    return "\n".join(lines)


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    figures = {"cpython": run_cpython(200 if quick else 10_000, 20 if quick else 200)}
    print(render(figures))
    print(json.dumps(figures))
