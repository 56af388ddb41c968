"""Run every benchmark once, print the table of figures and ratios, save JSON and a chart.

``python -m bench.run`` (what ``make bench`` runs). Options: ``--quick`` (tiny sizes, for the
smoke test), ``--only client`` / ``server`` / ``persist`` / ``flow`` / ``transports`` (or
``startup``: the client part's start-up rows alone), ``--out DIR`` (default ``bench/results``).
Benchmarks report; the exit status is non-zero only when the harness itself broke.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import chart, report
from bench.config import FULL, QUICK, Sizes
from bench.procs import REPO, Server

DEFAULT_OUT = REPO / "bench" / "results"


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one (children inherit it): 5,000 idle
    connections need 5,000 descriptors on each side."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _node_version() -> str:
    try:
        return subprocess.run(
            ["node", "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def meta(sizes: Sizes, fd_limit: int) -> dict[str, Any]:
    try:
        pyodide = json.loads((REPO / "node_modules" / "pyodide" / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        pyodide = ""
    return {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": _node_version(),
        "pyodide": pyodide,
        "fd_limit": fd_limit,
        "loadavg_start": list(os.getloadavg()),
        "sizes": {k: getattr(sizes, k) for k in sizes.__slots__},
    }


def run_client_benchmarks(sizes: Sizes, log: Any, startup_only: bool = False) -> dict[str, Any]:
    from bench.browser import Chromium
    from bench.client_bench import run_client

    server = Server([sys.executable, "-m", "bench.server"], "bench-server listening on ")
    try:
        with Chromium() as chromium:
            results = run_client(chromium, server.url, sizes, log, startup_only)
            results["chromium"] = chromium.version
            return results
    finally:
        server.stop()


def run_server_benchmarks(sizes: Sizes, log: Any) -> dict[str, Any]:
    from bench.server_bench import run_server

    return run_server(sizes, log)


def run_persist_benchmarks(sizes: Sizes, log: Any) -> dict[str, Any]:
    """``persist=`` with a long queue: CPython's engine and files, then the browser's stores."""
    from bench.browser import BenchPage, Chromium
    from bench.persist_bench import run_cpython

    n, writes = sizes.persist_queue, sizes.persist_writes
    results: dict[str, Any] = {"cpython": run_cpython(n, writes)}
    log(f"persist: CPython done ({n:,} queued)")
    server = Server([sys.executable, "-m", "bench.server"], "bench-server listening on ")
    try:
        with Chromium() as chromium:
            page = BenchPage(chromium, server.url)
            try:
                results["browser"] = page.py("persist_writes", n=n, writes=writes)
            except Exception:
                results["browser"] = {"error": traceback.format_exc()[-2000:]}
            finally:
                page.close()
    finally:
        server.stop()
    log("persist: browser done")
    return results


def run_flow_benchmarks(sizes: Sizes, log: Any) -> dict[str, Any]:
    from bench.flow_bench import run_flow

    return run_flow(sizes, log)


def run_transport_benchmarks(sizes: Sizes, log: Any) -> dict[str, Any]:
    """The HTTP binding against WebSockets: Chromium, CPython and the server's idle memory."""
    from bench.transport_bench import run_transports

    return run_transports(sizes, log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the harness in seconds")
    parser.add_argument(
        "--only",
        choices=["client", "startup", "server", "persist", "flow", "transports"],
        help="run one part (startup: the client part's start-up rows alone)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where JSON and the chart go")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    fd_limit = raise_fd_limit()
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)

    results: dict[str, Any] = {"meta": meta(sizes, fd_limit)}
    log(f"pyrt benchmarks ({'quick' if args.quick else 'full'}), open-files limit {fd_limit}")
    broken = False
    parts = {
        "client": run_client_benchmarks,
        "server": run_server_benchmarks,
        "persist": run_persist_benchmarks,
        "flow": run_flow_benchmarks,
        "transports": run_transport_benchmarks,
    }
    if args.only == "startup":
        parts = {"client": lambda sizes, log: run_client_benchmarks(sizes, log, startup_only=True)}
    for half, func in parts.items():
        if args.only and args.only not in (half, "startup"):
            continue
        try:
            results[half] = func(sizes, log)
        except Exception:
            broken = True
            results[half] = {"error": traceback.format_exc()}
            log(f"{half} benchmarks broke:\n{results[half]['error']}")
    results["meta"]["finished"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results["meta"]["seconds"] = round(time.monotonic() - started, 1)
    results["meta"]["loadavg_end"] = list(os.getloadavg())

    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    for name in (f"bench-{stamp}.json", "latest.json"):
        (args.out / name).write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "latest.md").write_text(report.render_markdown(results))
    why_no_chart = chart.draw(results, args.out / "latest.png")
    why_no_curve = chart.draw_fanout(results, args.out / "latest-fanout.png")
    m = results["meta"]
    print(
        f"\npyrt benchmarks, {m['started']} (commit {m['commit']}{', dirty tree' if m['dirty'] else ''}); "
        f"{m['cores']} cores {m['cpu']}; load average {m['loadavg_start'][0]:.2f} at start, "
        f"{m['loadavg_end'][0]:.2f} at end; {m['seconds']:.0f} s"
    )
    print(report.render_text(results))
    if isinstance(results.get("persist"), dict):
        from bench.persist_bench import render

        print("\n" + render(results["persist"]))
    print(f"\nJSON: {args.out / 'latest.json'}  table: {args.out / 'latest.md'}", end="")
    print(f"  chart: {args.out / 'latest.png'}" if why_no_chart is None else f"  (no chart: {why_no_chart})")
    if why_no_curve is None:
        print(f"fan-out curve: {args.out / 'latest-fanout.png'}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
