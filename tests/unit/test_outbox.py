"""Outbox: frames leave in order; the count and byte limits hold; each overflow policy drops what it says."""

from __future__ import annotations

import pytest

from pyrt.engine.outbox import Outbox, Queued, frame_size
from pyrt.errors import QueueFull


def q(text: str, ack_id: str | None = None) -> Queued:
    return Queued(text, frame_size(text), ack_id)


def texts(outbox: Outbox) -> list[str | bytes]:
    return [item.frame for item in outbox]


def test_frames_leave_in_the_order_they_came() -> None:
    outbox = Outbox()
    for text in ("a", "b", "c"):
        assert outbox.push(q(text)) == []
    assert [outbox.popleft().frame for _ in range(3)] == ["a", "b", "c"]
    assert not outbox


def test_drop_oldest_makes_room_by_dropping_the_front() -> None:
    outbox = Outbox(limit=2)
    outbox.push(q("a"))
    outbox.push(q("b"))
    dropped = outbox.push(q("c"))
    assert [d.frame for d in dropped] == ["a"]
    assert texts(outbox) == ["b", "c"]


def test_drop_newest_refuses_the_new_frame() -> None:
    outbox = Outbox(limit=2, overflow="drop_newest")
    outbox.push(q("a"))
    outbox.push(q("b"))
    new = q("c")
    assert outbox.push(new) == [new]
    assert texts(outbox) == ["a", "b"]


def test_raise_refuses_with_queue_full_and_changes_nothing() -> None:
    outbox = Outbox(limit=2, overflow="raise")
    outbox.push(q("a"))
    outbox.push(q("b"))
    with pytest.raises(QueueFull, match=r"full \(2 frames, 2 bytes; limits 2 frames"):
        outbox.push(q("c"))
    assert texts(outbox) == ["a", "b"]


def test_the_byte_limit_holds_too() -> None:
    outbox = Outbox(limit=100, max_bytes=10)
    outbox.push(q("12345"))
    outbox.push(q("67890"))
    dropped = outbox.push(q("abc"))
    assert [d.frame for d in dropped] == ["12345"]
    assert outbox.bytes == 8


def test_a_frame_bigger_than_the_whole_queue_never_fits() -> None:
    outbox = Outbox(max_bytes=4)
    outbox.push(q("ab"))
    big = q("abcdefgh")
    assert outbox.push(big) == [big]
    assert texts(outbox) == ["ab"]
    with pytest.raises(QueueFull, match="larger than the whole queue"):
        Outbox(max_bytes=4, overflow="raise").push(big)


def test_text_size_counts_utf8_bytes() -> None:
    assert frame_size("abc") == 3
    assert frame_size("é") == 2
    assert frame_size(b"\x00\x01") == 2


def test_push_front_puts_frames_back_in_order() -> None:
    outbox = Outbox()
    outbox.push(q("c"))
    outbox.push_front([q("a"), q("b")])
    assert texts(outbox) == ["a", "b", "c"]
    assert outbox.bytes == 3


def test_clear_returns_everything_oldest_first() -> None:
    outbox = Outbox()
    outbox.push(q("a"))
    outbox.push(q("b"))
    assert [item.frame for item in outbox.clear()] == ["a", "b"]
    assert len(outbox) == 0
    assert outbox.bytes == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, "queue_limit"),
        ({"max_bytes": 0}, "queue_bytes"),
        ({"overflow": "drop_random"}, "overflow"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Outbox(**kwargs)  # type: ignore[arg-type]  # deliberately wrong values
