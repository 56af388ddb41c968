"""An inspector's :class:`~pyrt.engine.inspect.View` as text (a terminal, ``print``) or as HTML
(a notebook cell, a DOM element). Pure: a view in, a string out.

The HTML is one self-contained fragment (inline styles, an inline SVG chart of round-trip times,
no script, no external resource), so it shows the same in Jupyter, in JupyterLite with no
network and in a PyScript page; every value from the wire is escaped.
"""

from __future__ import annotations

from html import escape
from typing import Final

from pyrt.engine.inspect import View

__all__ = ["render_html", "render_text"]

SHOWN: Final = 12  # frames, notes and timeline entries shown (the recorder keeps more)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.0f} ms"


def _ago(view: View, at: float) -> str:
    return f"-{max(0.0, view.now - at):.1f}s"


def _headline(view: View) -> str:
    stats = view.stats
    rtt = _ms(stats.get("srtt")) if "srtt" in stats else ""
    parts = [f"{view.client} [{view.state}] over {view.transport}"]
    if view.session:
        parts.append(f"session {view.session}")
    if rtt and rtt != "-":
        parts.append(f"srtt {rtt}")
    return " · ".join(parts)


def _counters(view: View) -> str:
    shown = {k: v for k, v in view.stats.items() if isinstance(v, int) and not isinstance(v, bool) and v}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "nothing yet"


def render_text(view: View) -> str:
    """A compact summary for a terminal: a headline, then one short section per part."""
    lines = [_headline(view), f"  counters: {_counters(view)}"]
    if view.timeline:
        lines.append("  states:")
        for entry in list(view.timeline)[-SHOWN:]:
            why = f"  ({entry.reason})" if entry.reason else ""
            lines.append(f"    {_ago(view, entry.at):>7} {entry.old} -> {entry.new}{why}")
    if view.rtts:
        lines.append("  rtt: " + " ".join(_ms(r) for r in view.rtts[-8:]))
    if view.queue:
        lines.append(f"  queue ({len(view.queue)}): " + "; ".join(view.queue[:5]))
    if view.pending:
        lines.append(f"  pending acks ({len(view.pending)}):")
        for row in view.pending[:SHOWN]:
            age = "?" if row.age is None else f"{row.age:.1f}s"
            lines.append(
                f"    #{row.id} {row.summary} age {age} sent {row.attempts}x refused {row.refusals}x"
            )
    if view.channels:
        lines.append("  channels:")
        for ch in view.channels:
            presence = "" if ch.members is None else f" members={ch.members}"
            state = "active" if ch.active else "waiting"
            recovered = "recovered" if ch.recovered else "GAP"
            lines.append(f"    {ch.channel} @{ch.offset} {state} {recovered}{presence}")
    if view.pacing:
        lines.append("  pacing: " + ", ".join(f"{k}={v}" for k, v in view.pacing.items()))
    if view.notes:
        lines.append("  events:")
        for note in list(view.notes)[-SHOWN:]:
            lines.append(f"    {_ago(view, note.at):>7} {note.topic}: {note.text}")
    if view.server:
        lines.append("  server side:")
        for note in list(view.server)[-SHOWN:]:
            lines.append(f"    {_ago(view, note.at):>7} {note.topic} {note.text}")
    if view.frames:
        lines.append("  frames:")
        for frame in list(view.frames)[-SHOWN:]:
            arrow = "<-" if frame.direction == "in" else "->"
            matched = f"  [{frame.matched}]" if frame.matched else ""
            lines.append(f"    {_ago(view, frame.at):>7} {arrow} {frame.summary}{matched}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ HTML

_BOX: Final = (
    "font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace;border:1px solid #ccd;"
    "border-radius:6px;padding:8px 10px;background:#fbfbfd;color:#222;max-width:900px"
)
_STATE_COLORS: Final = {
    "open": "#1a7f37",
    "connecting": "#9a6700",
    "reconnecting": "#bc4c00",
    "closed": "#cf222e",
}


def _section(title: str, body: str) -> str:
    return f'<div style="margin-top:6px"><b>{escape(title)}</b>{body}</div>'


def _table(rows: list[list[str]], head: list[str] | None = None) -> str:
    cells = "padding:1px 8px 1px 0;vertical-align:top;text-align:left"
    out = ['<table style="border-collapse:collapse;margin:2px 0">']
    if head:
        out.append(
            "<tr>" + "".join(f'<th style="{cells};color:#666">{escape(h)}</th>' for h in head) + "</tr>"
        )
    for row in rows:
        out.append("<tr>" + "".join(f'<td style="{cells}">{cell}</td>' for cell in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _chart(rtts: tuple[float, ...]) -> str:
    """An inline SVG line of the round-trip times (ms), newest on the right."""
    if len(rtts) < 2:
        return ""
    width, height = 240, 40
    top = max(rtts) or 1.0
    step = width / (len(rtts) - 1)
    points = " ".join(
        f"{i * step:.1f},{height - (r / top) * (height - 4) - 2:.1f}" for i, r in enumerate(rtts)
    )
    return (
        f'<svg width="{width}" height="{height}" style="display:block;background:#fff;border:1px solid #eee">'
        f'<polyline fill="none" stroke="#0969da" stroke-width="1.5" points="{points}"/></svg>'
        f'<span style="color:#666">max {_ms(top)}, last {_ms(rtts[-1])}</span>'
    )


def render_html(view: View) -> str:
    """The view as one self-contained HTML fragment (see the module docstring)."""
    color = _STATE_COLORS.get(view.state, "#57606a")
    parts = [
        f'<div class="pyrt-inspector" style="{_BOX}">',
        f'<div><b>{escape(view.client)}</b> <span style="color:{color};font-weight:bold">'
        f"{escape(view.state)}</span> over {escape(view.transport)}"
        + (f" · session {escape(view.session)}" if view.session else "")
        + "</div>",
        f'<div style="color:#555">{escape(_counters(view))}</div>',
    ]
    if view.timeline:
        rows = [
            [escape(_ago(view, e.at)), escape(f"{e.old} → {e.new}"), escape(e.reason)]
            for e in list(view.timeline)[-SHOWN:]
        ]
        parts.append(_section("States", _table(rows)))
    if view.rtts:
        parts.append(_section("Round trips", _chart(view.rtts) or escape(" " + _ms(view.rtts[-1]))))
    if view.queue or view.pending:
        rows = [
            [
                escape(f"#{r.id}"),
                escape(r.summary),
                escape("?" if r.age is None else f"{r.age:.1f}s"),
                str(r.attempts),
                str(r.refusals),
            ]
            for r in view.pending
        ]
        body = _table(rows, ["id", "kind", "age", "sent", "refused"]) if rows else ""
        queue = f'<div style="color:#555">queued: {len(view.queue)}</div>'
        parts.append(_section(f"Pending acks ({len(view.pending)})", queue + body))
    if view.channels:
        rows = [
            [
                escape(c.channel),
                escape(str(c.offset)),
                "active" if c.active else "waiting",
                "recovered" if c.recovered else '<span style="color:#cf222e">gap</span>',
                "-" if c.members is None else str(c.members),
            ]
            for c in view.channels
        ]
        parts.append(_section("Channels", _table(rows, ["channel", "offset", "", "", "members"])))
    if view.pacing:
        parts.append(_section("Pacing", " " + escape(", ".join(f"{k}={v}" for k, v in view.pacing.items()))))
    if view.notes:
        rows = [
            [escape(_ago(view, n.at)), escape(n.topic), escape(n.text)] for n in list(view.notes)[-SHOWN:]
        ]
        parts.append(_section("Events", _table(rows)))
    if view.server:
        notes = list(view.server)[-SHOWN:]
        rows = [[escape(_ago(view, n.at)), escape(n.topic), escape(n.text)] for n in notes]
        parts.append(_section("Server side (/admin/trace)", _table(rows)))
    if view.frames:
        rows = []
        for f in list(view.frames)[-SHOWN:]:
            arrow = "←" if f.direction == "in" else "→"
            matched = f' <span style="color:#1a7f37">[{escape(f.matched)}]</span>' if f.matched else ""
            rows.append([escape(_ago(view, f.at)), arrow, escape(f.summary) + matched])
        parts.append(_section("Frames", _table(rows)))
    parts.append("</div>")
    return "".join(parts)
