"""The inspector's renderers: text for a terminal, escaped self-contained HTML for cells and pages."""

from __future__ import annotations

from pyrt.engine.inspect import ChannelRow, FrameEntry, Note, PendingRow, StateEntry, View
from pyrt.engine.inspect_render import render_html, render_text


def view(**changes: object) -> View:
    base: dict[str, object] = dict(
        client="WebSocketClient",
        state="open",
        transport="websocket",
        now=100.0,
        stats={"sent": 3, "received": 2, "reconnects": 1, "srtt": 0.012},
        timeline=(StateEntry(90.0, "open", "reconnecting", "closed by the server (code 1012)"),),
        frames=(
            FrameEntry(99.0, "out", 'publish #a1 chat "hi"', 30, "a1"),
            FrameEntry(99.5, "in", 'ack #a1 ok "4"', 20, "a1", 'answers publish #a1 chat "hi" (500 ms)'),
        ),
        notes=(Note(95.0, "channel chat", "subscribed at 3, recovered"),),
        rtts=(0.010, 0.014, 0.012),
        queue=("- hello",),
        pending=(PendingRow("a2", "Publish", 1.5, 2, 0),),
        channels=(ChannelRow("chat", "4", True, False, 3),),
        pacing={"rate": 50.0, "tokens": 2.0},
        session="s1",
    )
    base.update(changes)
    return View(**base)  # type: ignore[arg-type]


def test_the_text_summary_tells_state_reason_acks_channels_and_frames() -> None:
    text = render_text(view())
    assert text.splitlines()[0] == "WebSocketClient [open] over websocket · session s1 · srtt 12 ms"
    assert "-10.0s open -> reconnecting  (closed by the server (code 1012))" in text
    assert "#a2 Publish age 1.5s sent 2x refused 0x" in text
    assert "chat @4 active GAP members=3" in text
    assert '<- ack #a1 ok "4"  [answers publish #a1 chat "hi" (500 ms)]' in text
    assert "rtt: 10 ms 14 ms 12 ms" in text


def test_an_empty_client_renders_a_headline_and_no_empty_sections() -> None:
    empty = view(
        stats={}, timeline=(), frames=(), notes=(), rtts=(), queue=(), pending=(), channels=(), pacing={}
    )
    assert render_text(empty).splitlines() == [
        "WebSocketClient [open] over websocket · session s1",
        "  counters: nothing yet",
    ]
    assert "<table" not in render_html(empty)


def test_the_html_escapes_everything_that_came_from_the_wire() -> None:
    evil = view(frames=(FrameEntry(99.0, "in", "<script>alert(1)</script>", 5),), session="<b>")
    html = render_html(evil)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "&lt;b&gt;" in html


def test_the_html_has_a_chart_of_round_trips_and_the_matched_ack() -> None:
    html = render_html(view())
    assert html.startswith('<div class="pyrt-inspector"')
    assert html.endswith("</div>")
    assert "<polyline" in html
    assert "max 14 ms" in html
    assert "answers publish #a1 chat &quot;hi&quot; (500 ms)" in html
    assert "gap" in html  # the channel that did not recover
