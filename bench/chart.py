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
        measured = t.value if t.value is not None else 0.0
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
