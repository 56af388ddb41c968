"""Client benchmarks 1-6: every contender on the same bench page, in the same Chromium run.

Each function returns a JSON-able dict keyed by contender. A contender whose pyrt class does not
exist yet is reported as ``{"unavailable": "..."}``; one that fails as ``{"error": "..."}`` (the
run goes on). Repeats are interleaved round-robin across contenders, so background load on the
machine spreads over all of them alike.
"""

from __future__ import annotations

import statistics
import time
import traceback
from collections.abc import Callable
from typing import Any

from bench.browser import BenchPage, Chromium, ContenderError, Unavailable
from bench.config import Sizes

Log = Callable[[str], None]


def _attempt(func: Callable[[], Any]) -> Any:
    try:
        return func()
    except Unavailable as exc:
        return {"unavailable": str(exc)}
    except ContenderError as exc:
        return {"error": str(exc)[:4000]}
    except Exception:
        return {"error": traceback.format_exc()[-4000:]}


def _failed(value: Any) -> bool:
    return isinstance(value, dict) and ("unavailable" in value or "error" in value)


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _round_robin(
    contenders: dict[str, Callable[[], Any]],
    runs: int,
    log: Log,
    label: str,
    around: Callable[[], Any] | None = None,
) -> tuple[dict[str, list[Any]], dict[str, list[tuple[Any, Any]]]]:
    """Run every contender ``runs`` times, interleaved; a failed contender is not retried.

    With ``around``, it is also called just before and just after every run (memory snapshots).
    """
    out: dict[str, list[Any]] = {name: [] for name in contenders}
    snapshots: dict[str, list[tuple[Any, Any]]] = {name: [] for name in contenders}
    for run in range(runs):
        for name, func in contenders.items():
            if out[name] and _failed(out[name][-1]):
                continue
            before = around() if around else None
            started = time.perf_counter()
            value = _attempt(func)
            elapsed = time.perf_counter() - started
            out[name].append(value)
            if around and not _failed(value):
                snapshots[name].append((before, around()))
            status = "n/a" if _failed(value) else f"{elapsed:.1f}s"
            log(f"  {label} {name} run {run + 1}/{runs}: {status}")
    return out, snapshots


def _summarise_rate(values: list[Any], n_key: str = "n") -> dict[str, Any]:
    if not values or _failed(values[-1]):
        return values[-1] if values else {"error": "no run"}
    rates = [v[n_key] / v["seconds"] for v in values if v["seconds"] > 0]
    return {
        "msgs_per_s": statistics.median(rates),
        "runs": [round(r) for r in rates],
        "messages": sum(v[n_key] for v in values),
        "bad": sum(v["bad"] for v in values),
    }


def bench_recv(page: BenchPage, ws: str, sizes: Sizes, log: Log) -> dict[str, Any]:
    """1. Receive throughput: ``recv_runs`` floods of ``recv_n / recv_runs`` messages each."""
    n, runs = sizes.recv_n // sizes.recv_runs, sizes.recv_runs
    url = f"{ws}/flood?n={n}"
    contenders: dict[str, Callable[[], Any]] = {
        "raw_js": lambda: page.js("recv", url, n),
        "naive": lambda: page.py("recv_naive", url=url, n=n),
        "pyscript": lambda: page.py("recv_pyscript", url=url, n=n),
        "pyrt": lambda: page.py("recv_pyrt", url=url, n=n),
    }
    raw, snapshots = _round_robin(contenders, runs, log, "recv", around=page.memory)
    result = {name: _summarise_rate(values) for name, values in raw.items()}
    memory = {name: _memory_over_runs(pairs) for name, pairs in snapshots.items() if pairs}
    return {"per_run": n, "runs": runs, "contenders": result, "memory": memory}


def _memory_over_runs(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    """Growth attributable to one contender: the sum of its own runs' after - before."""
    return {
        "heap_growth_bytes": sum(a["js_heap_bytes"] - b["js_heap_bytes"] for b, a in pairs),
        "wasm_growth_bytes": sum(a["wasm_bytes"] - b["wasm_bytes"] for b, a in pairs),
        "live_proxies": [pairs[0][0]["live_proxies"], pairs[-1][1]["live_proxies"]],
        "runs": len(pairs),
    }


def _rtt_summary(value: Any) -> Any:
    if _failed(value):
        return value
    samples = value["samples"]
    return {
        "p50_ms": percentile(samples, 50),
        "p99_ms": percentile(samples, 99),
        "mean_ms": statistics.fmean(samples),
        "n": len(samples),
    }


def bench_rtt(page: BenchPage, ws: str, sizes: Sizes, log: Log) -> dict[str, Any]:
    """2. Sequential echo round trips: callback users, and ``await`` users."""
    n = sizes.rtt_n
    echo, pyrt = f"{ws}/echo", f"{ws}/pyrt"
    contenders: dict[str, Callable[[], Any]] = {
        "raw_js": lambda: page.js("rtt", echo, n),
        "naive_callback": lambda: page.py("rtt_naive_callback", url=echo, n=n),
        "naive_await": lambda: page.py("rtt_naive_await", url=echo, n=n),
        "pyscript": lambda: page.py("rtt_pyscript", url=echo, n=n),
        "pyrt_callback": lambda: page.py("rtt_pyrt_callback", url=echo, n=n),
        "pyrt_ack": lambda: page.py("rtt_pyrt_ack", url=pyrt, n=n),
    }
    raw, _ = _round_robin(contenders, 1, log, "rtt")
    return {"n": n, "contenders": {name: _rtt_summary(values[0]) for name, values in raw.items()}}


def bench_binary(page: BenchPage, ws: str, sizes: Sizes, log: Log) -> dict[str, Any]:
    """3. Binary send and receive, MB/s (1 MB = 10^6 bytes), median over repeats."""
    url = f"{ws}/blob"
    out: dict[str, Any] = {}
    for size, reps in sizes.binary:

        def run(name: str, size: int = size, reps: int = reps) -> Any:
            if name == "raw_js":
                return page.js("binary", url, size, reps)
            return page.py(f"binary_{name}", url=url, size=size, reps=reps)

        contenders = {name: (lambda name=name: run(name)) for name in ("raw_js", "naive", "pyscript", "pyrt")}
        raw, _ = _round_robin(contenders, 1, log, f"binary {_size_label(size)}")
        per: dict[str, Any] = {}
        for name, values in raw.items():
            value = values[0]
            if _failed(value):
                per[name] = value
                continue
            per[name] = {
                "send_MBps": size / 1e6 / statistics.median(value["send"]),
                "recv_MBps": size / 1e6 / statistics.median(value["recv"]),
                "send_ms": statistics.median(value["send"]) * 1000,
                "send_call_ms": statistics.median(value["call"]) * 1000,
                "recv_ms": statistics.median(value["recv"]) * 1000,
            }
        out[_size_label(size)] = {"bytes": size, "reps": reps, "contenders": per}
    return out


def _size_label(size: int) -> str:
    return f"{size >> 20}MiB" if size >= 1 << 20 else f"{size >> 10}KiB"


def bench_sse(page: BenchPage, http: str, sizes: Sizes, log: Log) -> dict[str, Any]:
    """4. SSE receive throughput."""
    n = sizes.sse_n
    url = f"{http}/sse-flood?n={n}"
    contenders: dict[str, Callable[[], Any]] = {
        "raw_js": lambda: page.js("sse", url, n),
        "naive": lambda: page.py("sse_naive", url=url, n=n),
        "pyrt_eventsource": lambda: page.py("sse_pyrt_eventsource", url=url, n=n),
        "pyrt_fetch": lambda: page.py("sse_pyrt_fetch", url=url, n=n),
    }
    raw, _ = _round_robin(contenders, sizes.sse_runs, log, "sse")
    return {"n": n, "contenders": {name: _summarise_rate(values) for name, values in raw.items()}}


def _memory_delta(page: BenchPage, func: Callable[[], Any]) -> Any:
    before = page.memory()
    value = _attempt(func)
    if _failed(value):
        return value
    after = page.memory()
    return {
        **value,
        "before": before,
        "after": after,
        "heap_growth_bytes": after["js_heap_bytes"] - before["js_heap_bytes"],
        "wasm_growth_bytes": after["wasm_bytes"] - before["wasm_bytes"],
    }


def bench_memory(page: BenchPage, ws: str, sizes: Sizes, log: Log) -> dict[str, Any]:
    """6. Memory over N connect/close cycles: live proxies, JS heap after a full GC, wasm memory,
    before and after (memory over many messages is measured around the receive runs)."""
    n, url = sizes.cycles, f"{ws}/echo"
    cycles: dict[str, Any] = {}
    for name in ("raw_js", "naive", "pyscript", "pyrt"):
        started = time.perf_counter()
        if name == "raw_js":
            cycles[name] = _memory_delta(page, lambda: page.js("cycles", url, n))
        else:
            cycles[name] = _memory_delta(page, lambda name=name: page.py(f"cycles_{name}", url=url, n=n))
        status = "n/a" if _failed(cycles[name]) else f"{time.perf_counter() - started:.1f}s"
        log(f"  {n} cycles {name}: {status}")
    return {"cycles": n, "contenders": cycles}


def bench_startup(chromium: Chromium, http: str, sizes: Sizes, log: Log) -> dict[str, Any]:
    """5. Navigation -> first message handled: bare Pyodide, PyScript, pyrt (fresh context each).

    pyrt's page twice over: a client that uses ``send``/``on_message`` only (``pyrt``) and a page
    that uses every feature (``pyrt_all_features``), each with ``/pyrt.zip`` as served (with
    bytecode) and with the sources alone (``..._source``)."""
    pages = {
        "bare_pyodide": "start-bare.html",
        "pyscript": "start-pyscript.html",
        "pyrt": "start-pyrt.html",
        "pyrt_source": "start-pyrt.html?zip=source",
        "pyrt_all_features": "start-pyrt.html?features=all",
        "pyrt_all_features_source": "start-pyrt.html?features=all&zip=source",
    }
    raw: dict[str, list[dict[str, Any]]] = {name: [] for name in pages}
    context, page = chromium.new_page()  # warm-up, not measured: the first page pays for process start
    try:
        page.goto(f"{http}/start-bare.html")
        page.wait_for_function("window.benchStart && window.benchStart.firstMs > 0", timeout=60_000)
    finally:
        context.close()
    for run in range(sizes.startup_reps):
        for name, path in pages.items():
            context, page = chromium.new_page()
            try:
                page.goto(f"{http}/{path}")
                page.wait_for_function("window.benchStart && window.benchStart.firstMs > 0", timeout=60_000)
                raw[name].append(page.evaluate("window.benchStart"))
            except Exception as exc:
                raw[name].append({"error": str(exc)[:2000]})
            finally:
                context.close()
            log(f"  startup {name} run {run + 1}/{sizes.startup_reps}")
    out: dict[str, Any] = {}
    for name, values in raw.items():
        good = [v for v in values if "error" not in v]
        if not good:
            out[name] = values[-1]
            continue
        summary: dict[str, Any] = {"first_message_ms": statistics.median(v["firstMs"] for v in good)}
        for key, label in (("bootMs", "boot_ms"), ("importMs", "import_ms"), ("loadMs", "fetch_unpack_ms")):
            if all(key in v for v in good):
                summary[label] = statistics.median(v[key] for v in good)
        if all("bootMs" in v for v in good):  # what the page does once Pyodide is up
            summary["after_boot_ms"] = statistics.median(v["firstMs"] - v["bootMs"] for v in good)
        if all("connectMs" in v for v in good):
            summary["connect_to_first_ms"] = statistics.median(v["firstMs"] - v["connectMs"] for v in good)
        if "mode" in good[0]:
            summary["mode"] = good[0]["mode"]
        summary["runs"] = [round(v["firstMs"]) for v in good]
        out[name] = summary
    return out


def run_client(
    chromium: Chromium, http: str, sizes: Sizes, log: Log, startup_only: bool = False
) -> dict[str, Any]:
    ws = "ws" + http[len("http") :]
    results: dict[str, Any] = {}
    log("start-up (fresh page per run)")
    results["startup"] = bench_startup(chromium, http, sizes, log)
    if startup_only:
        return results
    log("booting the bench page")
    page = BenchPage(chromium, http)
    try:
        results["pyrt"] = page.py("pyrt_info")
        log("receive throughput")
        results["recv"] = bench_recv(page, ws, sizes, log)
        log("round-trip latency")
        results["rtt"] = bench_rtt(page, ws, sizes, log)
        log("binary")
        results["binary"] = bench_binary(page, ws, sizes, log)
        log("SSE")
        results["sse"] = bench_sse(page, http, sizes, log)
        log("memory")
        results["memory"] = bench_memory(page, ws, sizes, log)
    finally:
        page.close()
    return results
