"""Turn a results dict into the printed table, the target verdicts and the markdown for the docs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

NA = "not yet measurable"


@dataclass(frozen=True, slots=True)
class Target:
    """One goal, as a ratio (or a figure) measured in the same run."""

    label: str
    value: float | None  # None: not measurable in this run
    goal: str  # e.g. ">= 0.9x"
    op: str  # ">=" or "<="
    threshold: float
    unit: str = "x"
    why_na: str = ""

    @property
    def verdict(self) -> str:
        if self.value is None or math.isnan(self.value):
            return NA
        if not self.op:  # a figure to report, no goal
            return "reported"
        ok = self.value >= self.threshold if self.op == ">=" else self.value <= self.threshold
        return "met" if ok else "missed"

    def shown(self) -> str:
        if self.value is None or math.isnan(self.value):
            return "—"
        return f"{self.value:.3g}{self.unit}" if self.unit == "x" else f"{self.value:.4g} {self.unit}"


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _ok(entry: Any) -> bool:
    return isinstance(entry, dict) and "unavailable" not in entry and "error" not in entry


def _why(entry: Any, limit: int = 100) -> str:
    why = "not run"
    if isinstance(entry, dict):
        if "unavailable" in entry:
            why = str(entry["unavailable"])
        elif "error" in entry:
            lines = str(entry["error"]).strip().splitlines()
            why = "error: " + (lines[-1] if lines else "?")
    return why if len(why) <= limit else why[: limit - 1] + "…"


def _ratio(a: Any, b: Any) -> float | None:
    if isinstance(a, int | float) and isinstance(b, int | float) and b:
        return float(a) / float(b)
    return None


def targets(results: dict[str, Any]) -> list[Target]:
    c = results.get("client", {})
    s = results.get("server", {})
    out: list[Target] = []

    recv = _get(c, "recv", "contenders") or {}
    raw = _get(recv, "raw_js", "msgs_per_s")
    pyrt = recv.get("pyrt")
    out.append(
        Target(
            "receive throughput, pyrt / raw JS",
            _ratio(_get(pyrt, "msgs_per_s"), raw),
            ">= 0.9x",
            ">=",
            0.9,
            why_na=_why(pyrt),
        )
    )

    rtt = _get(c, "rtt", "contenders") or {}
    raw_p50 = _get(rtt, "raw_js", "p50_ms")
    for key, label, limit in (
        ("pyrt_callback", "RTT p50, pyrt callback / raw JS", 1.3),
        ("pyrt_ack", "RTT p50, pyrt await send_with_ack / raw JS", 1.5),
    ):
        entry = rtt.get(key)
        value = _ratio(_get(entry, "p50_ms"), raw_p50)
        out.append(Target(label, value, f"<= {limit}x", "<=", limit, why_na=_why(entry)))

    for size, per in (_get(c, "binary") or {}).items():
        contenders = per.get("contenders", {})
        pyrt_entry = contenders.get("pyrt")
        why = _why(pyrt_entry)
        label = f"binary send {size}"
        call = _ratio(_get(contenders, "pyscript", "send_call_ms"), _get(pyrt_entry, "send_call_ms"))
        e2e = _ratio(_get(pyrt_entry, "send_MBps"), _get(contenders, "pyscript", "send_MBps"))
        vs_raw = _ratio(_get(contenders, "raw_js", "send_MBps"), _get(pyrt_entry, "send_MBps"))
        out += [
            Target(f"{label}: send() call, pyscript time / pyrt time", call, ">= 20x", ">=", 20, why_na=why),
            Target(f"{label}: end to end, pyscript time / pyrt time", e2e, ">= 20x", ">=", 20, why_na=why),
            Target(f"{label}: end to end, pyrt time / raw JS time", vs_raw, "<= 1.5x", "<=", 1.5, why_na=why),
        ]

    start = _get(c, "startup") or {}
    pyrt_start = start.get("pyrt")
    bare = start.get("bare_pyodide")
    extra = None
    if _ok(pyrt_start) and _ok(bare) and pyrt_start.get("mode") == "pyrt.WebSocketClient":
        # Both pages boot Pyodide the same way; what pyrt adds is measured after the boot, inside
        # each page, so the (large, load-dependent) boot time does not drown it.
        ours, theirs = pyrt_start.get("after_boot_ms"), bare.get("after_boot_ms")
        extra = None if ours is None or theirs is None else ours - theirs
    why = _why(pyrt_start) if not _ok(pyrt_start) else "pyrt.WebSocketClient not available yet"
    label = "start-up: pyrt fetch + import + connect, over bare Pyodide (after boot)"
    out.append(Target(label, extra, "<= 100 ms", "<=", 100, "ms", why))

    cycles = _get(c, "memory", "contenders", "pyrt")
    live = None
    heap = None
    if _ok(cycles):
        before, after = cycles["before"]["live_proxies"], cycles["after"]["live_proxies"]
        live = None if before is None or after is None else float(after - before)
        heap = cycles["heap_growth_bytes"] / 1024
    n = _get(c, "memory", "cycles") or 1000
    out.append(
        Target(f"live pyrt proxies after {n} cycles, over baseline", live, "0", "<=", 0, "", _why(cycles))
    )
    out.append(Target(f"JS heap growth over {n} cycles", heap, "< 1024 KiB", "<=", 1024, "KiB", _why(cycles)))
    flood = _get(c, "recv", "memory", "pyrt")
    m = _get(c, "recv", "per_run")
    m = m * flood["runs"] if m and isinstance(flood, dict) and "runs" in flood else None
    out.append(
        Target(
            f"JS heap growth over {_fmt(m)} pyrt messages",
            flood["heap_growth_bytes"] / 1024
            if isinstance(flood, dict) and "heap_growth_bytes" in flood
            else None,
            "< 1024 KiB",
            "<=",
            1024,
            "KiB",
            _why(recv.get("pyrt")),
        )
    )

    fan = s.get("fanout", {})
    ours = fan.get("serve.py (memory) ws")

    def fan_ratio(label: str, a: Any, b: Any, limit: float) -> None:
        value = _ratio(_get(a, "sustained_per_s"), _get(b, "sustained_per_s"))
        why = _why(a) if not _ok(a) else _why(b)
        out.append(Target(label, value, f">= {limit}x", ">=", limit, why_na=why))

    for peer, limit in (("socket.io (node) ws", 3.0), ("websockets (minimal) ws", 0.8)):
        label = f"fan-out at p99 <= 250 ms, serve.py / {peer.split(' (')[0]} (WS)"
        fan_ratio(label, ours, fan.get(peer), limit)
    sse = fan.get("serve.py (memory) sse")
    fan_ratio("fan-out, serve.py WS / serve.py SSE", ours, sse, 0.5)
    for transport in ("ws", "sse"):
        memory, redis = fan.get(f"serve.py (memory) {transport}"), fan.get(f"serve.py (redis) {transport}")
        fan_ratio(f"fan-out, Redis broker / memory broker ({transport.upper()})", redis, memory, 0.8)
        refused = _get(redis, "connect_retries")
        out.append(
            Target(
                f"refused connects, Redis broker ({transport.upper()})",
                float(refused) if isinstance(refused, int) else None,
                "0",
                "<=",
                0,
                "",
                _why(redis),
            )
        )
    idle = s.get("idle", {})
    for transport, name in (("ws", "WS"), ("ws-deflate", "WS (deflate offered)"), ("sse", "SSE")):
        entry = idle.get(f"serve.py (memory) {transport}")
        value = entry["bytes_per_connection"] / 1024 if _ok(entry) else None
        out.append(
            Target(
                f"serve.py memory per idle {name} connection",
                value,
                "<= 30 KiB",
                "<=",
                30,
                "KiB",
                _why(entry),
            )
        )
    backlog = _get(results, "flow", "drain", "offline backlog")
    n = _get(backlog, "messages")
    ratio = backlog.get("ratio") if _ok(backlog) else None
    label = f"drain {_fmt(n)} acked messages against the default limits, time / ideal"
    out.append(Target(label, ratio, "<= 1.1x", "<=", 1.1, why_na=_why(backlog)))
    refusals = None
    if _ok(backlog):
        refusals = float(backlog["client_refused"] + backlog["server_refusals"])
    out.append(Target("refusals seen while draining it", refusals, "0", "<=", 0, "", _why(backlog)))
    seq = _get(results, "flow", "sequential")
    per_s = seq.get("acks_per_s") if _ok(seq) else None
    label = "sequential await send_with_ack against the default limits, acks/s"
    out.append(Target(label, per_s, "reported", "", 0, "/s", _why(seq)))
    return out


# ---------------------------------------------------------------- the figures table


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def sections(results: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for every measurement."""
    c = results.get("client", {})
    s = results.get("server", {})
    out: list[tuple[str, list[str], list[list[str]]]] = []

    recv = _get(c, "recv") or {}
    rows = []
    raw = _get(recv, "contenders", "raw_js", "msgs_per_s")
    for name, entry in (recv.get("contenders") or {}).items():
        if _ok(entry):
            rows.append(
                [name, _fmt(entry["msgs_per_s"]), _times(_ratio(entry["msgs_per_s"], raw)), str(entry["bad"])]
            )
        else:
            rows.append([name, _why(entry), "", ""])
    if rows:
        title = f"1. Receive throughput ({_fmt(recv.get('per_run'))} msgs x {recv.get('runs')} runs, median)"
        out.append((title, ["contender", "msgs/s", "vs raw JS", "lost/out of order"], rows))

    rtt = _get(c, "rtt") or {}
    rows = []
    raw_p50 = _get(rtt, "contenders", "raw_js", "p50_ms")
    for name, entry in (rtt.get("contenders") or {}).items():
        if _ok(entry):
            rows.append(
                [name, _fmt(entry["p50_ms"]), _fmt(entry["p99_ms"]), _times(_ratio(entry["p50_ms"], raw_p50))]
            )
        else:
            rows.append([name, _why(entry), "", ""])
    if rows:
        title = f"2. Round-trip latency ({rtt.get('n')} sequential echoes)"
        out.append((title, ["contender", "p50 ms", "p99 ms", "p50 vs raw JS"], rows))

    for size, per in (_get(c, "binary") or {}).items():
        rows = []
        contenders = per.get("contenders", {})
        raw_send = _get(contenders, "raw_js", "send_MBps")
        raw_recv = _get(contenders, "raw_js", "recv_MBps")
        for name, entry in contenders.items():
            if _ok(entry):
                rows.append(
                    [
                        name,
                        _fmt(entry["send_MBps"]),
                        _times(_ratio(entry["send_MBps"], raw_send)),
                        _fmt(entry["send_call_ms"]),
                        _fmt(entry["recv_MBps"]),
                        _times(_ratio(entry["recv_MBps"], raw_recv)),
                    ]
                )
            else:
                rows.append([name, _why(entry), "", "", "", ""])
        out.append(
            (
                f"3. Binary {size} (median of {per.get('reps')})",
                ["contender", "send MB/s", "vs raw JS", "send() call ms", "receive MB/s", "vs raw JS"],
                rows,
            )
        )

    sse = _get(c, "sse") or {}
    rows = []
    raw = _get(sse, "contenders", "raw_js", "msgs_per_s")
    for name, entry in (sse.get("contenders") or {}).items():
        if _ok(entry):
            rows.append(
                [name, _fmt(entry["msgs_per_s"]), _times(_ratio(entry["msgs_per_s"], raw)), str(entry["bad"])]
            )
        else:
            rows.append([name, _why(entry), "", ""])
    if rows:
        title = f"4. SSE receive throughput ({_fmt(sse.get('n'))} events, median)"
        out.append((title, ["contender", "events/s", "vs raw JS", "lost/out of order"], rows))

    start = _get(c, "startup") or {}
    rows = []
    bare = _get(start, "bare_pyodide", "first_message_ms")
    for name, entry in start.items():
        if _ok(entry):
            detail = []
            if "boot_ms" in entry:
                detail.append(f"Pyodide boot {entry['boot_ms']:.0f} ms")
            if "import_ms" in entry:
                detail.append(f"import pyrt {entry['import_ms']:.0f} ms")
            if "fetch_unpack_ms" in entry:
                detail.append(f"fetch+unpack {entry['fetch_unpack_ms']:.0f} ms")
            if "connect_to_first_ms" in entry:
                detail.append(f"connect -> first message {entry['connect_to_first_ms']:.0f} ms")
            if "mode" in entry:
                detail.append(entry["mode"])
            delta = None if bare is None else entry["first_message_ms"] - bare
            after = _fmt(entry.get("after_boot_ms"))
            rows.append([name, _fmt(entry["first_message_ms"]), _fmt(delta), after, "; ".join(detail)])
        else:
            rows.append([name, _why(entry), "", "", ""])
    if rows:
        out.append(
            (
                "5. Start-up: navigation -> first message handled (median)",
                ["page", "ms", "vs bare Pyodide (ms)", "after Pyodide boot (ms)", "detail"],
                rows,
            )
        )

    mem = _get(c, "memory") or {}
    rows = []
    for name, entry in (mem.get("contenders") or {}).items():
        if _ok(entry):
            lp = (entry["before"]["live_proxies"], entry["after"]["live_proxies"])
            rows.append(
                [
                    f"{name}: {mem.get('cycles')} connect/close",
                    _fmt(entry["heap_growth_bytes"] / 1024),
                    _fmt(entry["wasm_growth_bytes"] / 1024),
                    "—" if lp[0] is None else f"{lp[0]} -> {lp[1]}",
                    _fmt(entry["seconds"]),
                ]
            )
        else:
            rows.append([f"{name}: cycles", _why(entry), "", "", ""])
    per_run = _get(c, "recv", "per_run")
    for name, entry in (_get(c, "recv", "memory") or {}).items():
        lp = entry["live_proxies"]
        rows.append(
            [
                f"{name}: {_fmt(per_run * entry['runs'] if per_run else None)} messages",
                _fmt(entry["heap_growth_bytes"] / 1024),
                _fmt(entry["wasm_growth_bytes"] / 1024),
                "—" if lp[0] is None else f"{lp[0]} -> {lp[1]}",
                "",
            ]
        )
    if rows:
        out.append(
            (
                "6. Memory (JS heap after a full GC; wasm memory; live pyrt proxies)",
                ["run", "JS heap growth KiB", "wasm growth KiB", "live proxies", "seconds"],
                rows,
            )
        )

    fan = s.get("fanout") or {}
    rows = []
    base = _get(fan, "socket.io (node) ws", "sustained_per_s")
    slo = _fmt(next((e["slo_p99_ms"] for e in fan.values() if _ok(e) and "slo_p99_ms" in e), None))
    for name, entry in fan.items():
        if _ok(entry):
            steps = entry["steps"]
            best = next((st for st in steps if st["rate"] == entry["at_rate"]), steps[0])
            rows.append(
                [
                    name,
                    str(entry["subscribers"]),
                    f"{entry['at_rate']:g}/s" if entry["slo_met"] else f"missed at {steps[0]['rate']:g}/s",
                    _fmt(float(entry["sustained_per_s"])),
                    _times(_ratio(entry["sustained_per_s"], base)),
                    _fmt(entry["delivered_per_s"]),
                    _fmt(entry["p99_ms"]),
                    _fmt(entry["server_rss_connected_bytes"] / 2**20),
                    f"{best['server_cpu_cores']:.2f} / {best['client_cpu_cores']:.2f}",
                    str(entry.get("connect_retries", 0)),
                ]
            )
        else:
            rows.append([name, _why(entry), "", "", "", "", "", "", "", ""])
    if rows:
        out.append(
            (
                f"7. Fan-out (one channel; highest publish rate with >= 99% delivered and p99 <= {slo} ms)",
                [
                    "server",
                    "subscribers",
                    "publish rate",
                    "sustained msgs/s",
                    "vs socket.io",
                    "measured msgs/s",
                    "p99 ms",
                    "server RSS MiB",
                    "CPU cores server / clients",
                    "refused connects",
                ],
                rows,
            )
        )
        counts = sorted({int(n) for e in fan.values() if _ok(e) for n in e.get("scale", {})})
        curve_rows = []
        for name, entry in fan.items():
            if _ok(entry) and len(counts) > 1:
                row = [name]
                for n in counts:
                    at = entry.get("scale", {}).get(str(n))
                    if not _ok(at):
                        row.append(_why(at, 40))
                    elif at["slo_met"]:
                        row.append(f"{_fmt(float(at['sustained_per_s']))} ({_fmt(at['p99_ms'])} ms)")
                    else:
                        row.append(f"missed at {at['steps'][0]['rate']:g}/s")
                curve_rows.append(row)
        if curve_rows:
            out.append(
                (
                    "7c. Fan-out as subscribers grow: sustained deliveries/s within the objective (p99)",
                    ["server", *[f"{n:,} subscribers" for n in counts]],
                    curve_rows,
                )
            )
        steps_rows = []
        for name, entry in fan.items():
            if not _ok(entry):
                continue
            for at in entry.get("scale", {str(entry["subscribers"]): entry}).values():
                if not _ok(at):
                    continue
                for st in at["steps"]:
                    steps_rows.append(
                        [
                            name,
                            f"{st['subscribers']:,}",
                            f"{st['rate']:g}/s",
                            _fmt(st["delivered_per_s"]),
                            f"{100 * st['delivered_ratio']:.1f}%",
                            _fmt(st["p50_ms"]),
                            _fmt(st["p99_ms"]),
                            f"{st['server_cpu_cores']:.2f}",
                            f"{st['client_cpu_cores']:.2f}",
                            _fmt(st.get("loadavg")),
                        ]
                    )
        out.append(
            (
                "7b. Fan-out, every step",
                [
                    "server",
                    "subscribers",
                    "publish rate",
                    "delivered msgs/s",
                    "delivered",
                    "p50 ms",
                    "p99 ms",
                    "server CPU",
                    "client CPU",
                    "load average",
                ],
                steps_rows,
            )
        )

    rows = []
    for name, entry in (_get(results, "flow", "drain") or {}).items():
        if _ok(entry):
            rows.append(
                [
                    name,
                    _fmt(entry["messages"]),
                    _fmt(entry["seconds"]),
                    _fmt(entry["ideal_seconds"]),
                    _times(entry["ratio"]),
                    f"{entry['client_refused']} / {entry['server_refusals']:.0f}",
                    f"{entry['closes_1008']:.0f}",
                ]
            )
        else:
            rows.append([name, _why(entry), "", "", "", "", ""])
    seq = _get(results, "flow", "sequential")
    if _ok(seq):
        rows.append(
            [
                f"sequential acks for {_fmt(seq['seconds'])} s",
                _fmt(seq["acks"]),
                f"{seq['acks_per_s']:.0f}/s (advertised {seq['advertised_rate']:.0f}/s)",
                f"p50 {seq['rtt_p50_ms']:.2f} ms",
                "",
                f"{seq['client_refused']} / {seq['server_refusals']:.0f}",
                "",
            ]
        )
    if rows:
        out.append(
            (
                "9. Draining acked messages against serve.py's default limits (200/s, bursts of 400)",
                ["scenario", "messages", "seconds", "ideal s", "vs ideal", "refused client / server", "1008"],
                rows,
            )
        )

    idle = s.get("idle") or {}
    rows = []
    for name, entry in idle.items():
        if _ok(entry):
            rows.append(
                [
                    name,
                    str(entry["connections"]),
                    _fmt(entry["bytes_per_connection"] / 1024),
                    _fmt(entry["rss_after_bytes"] / 2**20),
                    _fmt(entry["connect_seconds"]),
                ]
            )
        else:
            rows.append([name, _why(entry), "", "", ""])
    if rows:
        out.append(
            (
                "8. Idle connections (server RSS growth / connections)",
                ["server", "connections", "KiB per connection", "server RSS MiB", "connect s"],
                rows,
            )
        )
    return out


def _text_table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) if i < len(r) else 0 for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        cells = [*row, *[""] * (len(header) - len(row))]
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip())
    return lines


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [*row, *[""] * (len(header) - len(row))]
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return lines


def target_rows(results: dict[str, Any]) -> list[list[str]]:
    return [
        [t.label, t.shown(), t.goal, t.verdict + (f" ({t.why_na})" if t.verdict == NA and t.why_na else "")]
        for t in targets(results)
    ]


def render_text(results: dict[str, Any]) -> str:
    lines: list[str] = []
    for title, header, rows in sections(results):
        lines += ["", title, *_text_table(header, rows)]
    lines += [
        "",
        "Targets",
        *_text_table(["target", "measured", "goal", "verdict"], target_rows(results)),
    ]
    return "\n".join(lines)


def render_markdown(results: dict[str, Any]) -> str:
    lines: list[str] = []
    for title, header, rows in sections(results):
        lines += ["", f"**{title}**", "", *_md_table(header, rows)]
    lines += [
        "",
        "**Targets**",
        "",
        *_md_table(["target", "measured", "goal", "verdict"], target_rows(results)),
    ]
    return "\n".join(lines).strip() + "\n"
