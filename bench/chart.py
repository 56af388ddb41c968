"""A small PNG of the headline ratios against their targets (matplotlib, the ``bench`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import targets

COLORS = {"met": "#2e7d32", "missed": "#c62828"}


def draw(results: dict[str, Any], path: Path) -> str | None:
    """Write the chart; return why not when matplotlib is missing or nothing is measurable."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]')"
    ratios = [t for t in targets(results) if t.unit == "x"]
    if not ratios:
        return "no ratio to draw"
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(ratios) + 1.4), dpi=110)
    labels, values, colors = [], [], []
    for t in ratios:
        labels.append(f"{t.label}  (goal {t.goal})")
        measured = min(t.value, 200.0) if t.value is not None else 0.0  # inf: never happened
        values.append(measured)
        colors.append(COLORS.get(t.verdict, "#9e9e9e"))
    positions = list(range(len(ratios)))[::-1]
    ax.barh(positions, [v if v > 0 else 0.01 for v in values], color=colors, height=0.6)
    for pos, t, v in zip(positions, ratios, values, strict=True):
        ax.plot([t.threshold, t.threshold], [pos - 0.38, pos + 0.38], color="black", linewidth=2)
        text = f"{v:.2f}x" if t.value is not None else "not yet measurable"
        ax.text(max(v, t.threshold, 0.01) * 1.12, pos, text, va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(0.05, 200)
    ax.set_yticks(positions)
    ax.set_yticklabels(labels, fontsize=8)
    ax.axvline(1.0, color="#777777", linewidth=0.8, linestyle=":")
    ax.set_xlabel(
        "ratio, same run (black tick: target; green met, red missed, grey not measurable)", fontsize=8
    )
    when = results.get("meta", {}).get("finished", "")
    ax.set_title(f"pyrt benchmarks: headline ratios {when}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return None


def draw_fanout(results: dict[str, Any], path: Path) -> str | None:
    """Write the fan-out curve (sustained deliveries/s within the objective by subscribers, one
    line per server and transport); return why not when there is nothing to draw."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]')"
    fan = results.get("server", {}).get("fanout", {})
    lines = {}
    for name, entry in fan.items():
        scale = entry.get("scale") if isinstance(entry, dict) else None
        if not scale:
            continue
        points = sorted(
            (int(n), float(at["sustained_per_s"]))
            for n, at in scale.items()
            if isinstance(at, dict) and at.get("sustained_per_s")  # a count it missed: no point
        )
        if points:
            lines[name] = points
    if not lines:
        return "no fan-out curve to draw"
    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    for name, points in lines.items():
        style = "-" if name.endswith(" ws") else "--"
        ax.plot([p[0] for p in points], [p[1] for p in points], style, marker="o", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("subscribers on one channel", fontsize=9)
    ax.set_ylabel("sustained deliveries/s with p99 <= 250 ms", fontsize=9)
    counts = sorted({p[0] for points in lines.values() for p in points})
    ax.set_xticks(counts)
    ax.set_xticklabels([f"{n:,}" for n in counts])
    ax.grid(True, which="major", linestyle=":", color="#bbbbbb")
    ax.legend(fontsize=7, loc="best")
    meta = results.get("meta", {})
    load = meta.get("loadavg_start", [None])[0]
    load_text = f", load {load:.1f} at start" if isinstance(load, int | float) else ""
    ax.set_title(f"pyrt benchmarks: fan-out curve {meta.get('finished', '')}{load_text}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return None
