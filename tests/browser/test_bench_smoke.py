"""The benchmark harness still runs end to end: every benchmark once, with tiny sizes.

It asserts nothing about speed (benchmarks report, they never fail the suite); it fails when a
contender, a peer server or the report breaks, so `make bench` cannot rot unnoticed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _broken(node: Any, path: str = "") -> list[str]:
    """Every entry that reports an error, with where it is."""
    found: list[str] = []
    if isinstance(node, dict):
        if "error" in node:
            found.append(f"{path}: {str(node['error']).strip().splitlines()[-1:]}")
        for key, value in node.items():
            found += _broken(value, f"{path}/{key}")
    return found


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, f"bench.run failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return json.loads((out / "latest.json").read_text()), proc.stdout


def test_every_benchmark_ran_without_an_error(quick_run: tuple[dict[str, Any], str]) -> None:
    results, _ = quick_run
    assert _broken(results) == []


def test_the_physical_limit_and_the_baselines_produced_figures(quick_run: tuple[dict[str, Any], str]) -> None:
    client = quick_run[0]["client"]
    assert client["recv"]["contenders"]["raw_js"]["msgs_per_s"] > 0
    assert client["recv"]["contenders"]["raw_js"]["bad"] == 0
    assert client["recv"]["contenders"]["naive"]["msgs_per_s"] > 0
    assert client["rtt"]["contenders"]["pyscript"]["p50_ms"] > 0
    for per_size in client["binary"].values():
        assert per_size["contenders"]["pyscript"]["send_MBps"] > 0
    assert client["sse"]["contenders"]["raw_js"]["msgs_per_s"] > 0
    assert client["startup"]["bare_pyodide"]["first_message_ms"] > 0
    assert client["startup"]["pyscript"]["first_message_ms"] > 0
    assert client["memory"]["contenders"]["raw_js"]["n"] > 0


def test_pyrt_contenders_run_or_say_they_are_not_available_yet(quick_run: tuple[dict[str, Any], str]) -> None:
    client = quick_run[0]["client"]
    entries = [
        client["recv"]["contenders"]["pyrt"],
        client["rtt"]["contenders"]["pyrt_callback"],
        client["rtt"]["contenders"]["pyrt_ack"],
        client["sse"]["contenders"]["pyrt_eventsource"],
        client["sse"]["contenders"]["pyrt_fetch"],
        client["memory"]["contenders"]["pyrt"],
    ]
    for entry in entries:
        assert (
            "unavailable" in entry
            or entry.get("msgs_per_s", 0) > 0
            or entry.get("p50_ms", 0) > 0
            or entry.get("n", 0) > 0
        ), entry


def test_the_minimal_fan_out_peer_delivered_every_message(quick_run: tuple[dict[str, Any], str]) -> None:
    fanout = quick_run[0]["server"]["fanout"]["websockets (minimal) ws"]
    assert fanout["steps"][0]["delivered_ratio"] == 1.0
    assert fanout["p99_ms"] is not None


def test_every_serve_py_peer_ran_the_fan_out_curve_at_both_counts(
    quick_run: tuple[dict[str, Any], str],
) -> None:
    fan = quick_run[0]["server"]["fanout"]
    for name in ("serve.py (memory)", "serve.py (redis)", "serve.py (redis, 2 workers)"):
        for transport in ("ws", "sse"):
            scale = fan[f"{name} {transport}"]["scale"]
            assert sorted(scale) == ["10", "20"], (name, transport, scale)
            assert all(at["steps"][0]["delivered_ratio"] > 0 for at in scale.values()), scale
    _, stdout = quick_run
    assert "Fan-out as subscribers grow" in stdout  # the curve's table


def test_the_table_prints_every_target_with_a_verdict(quick_run: tuple[dict[str, Any], str]) -> None:
    _, stdout = quick_run
    targets = stdout.split("\nTargets\n", 1)[1]
    assert "receive throughput, pyrt / raw JS" in targets
    assert "serve.py / socket.io (WS)" in targets  # the fan-out target
    for line in targets.strip().splitlines()[2:]:
        if not line.strip() or line.startswith("JSON:"):
            break
        assert any(verdict in line for verdict in ("met", "missed", "reported", "not yet measurable")), line


def test_the_drain_benchmark_drained_everything(quick_run: tuple[dict[str, Any], str]) -> None:
    drain = quick_run[0]["flow"]["drain"]
    for scenario in ("offline backlog", "burst while open"):
        assert drain[scenario]["failed"] == 0
        assert drain[scenario]["closes_1008"] == 0
        assert drain[scenario]["seconds"] > 0


def test_the_sequential_acks_ran_against_the_defaults_without_a_refusal(
    quick_run: tuple[dict[str, Any], str],
) -> None:
    seq = quick_run[0]["flow"]["sequential"]
    assert seq["acks"] > 0
    assert seq["client_refused"] == 0
    assert seq["server_refusals"] == 0
