"""Persistence: snapshots survive a round trip through storage, binary included; bad text is harmless."""

from __future__ import annotations

from pyrt.persist import MemoryStorage, SavedFrame, Snapshot, dumps, loads


def test_a_snapshot_round_trips_through_storage() -> None:
    storage = MemoryStorage()
    snapshot = Snapshot(
        frames=(SavedFrame('{"type":"message","id":"a-1","data":1}', "a-1"), SavedFrame("plain")),
        offsets={"news": "12-3"},
    )
    storage.setItem("pyrt:chat", dumps(snapshot))
    assert loads(storage.getItem("pyrt:chat")) == snapshot


def test_binary_frames_survive_too() -> None:
    snapshot = Snapshot(frames=(SavedFrame(b"\x00\xff\x10"),))
    assert loads(dumps(snapshot)).frames[0].frame == b"\x00\xff\x10"


def test_publish_entries_remember_their_kind() -> None:
    snapshot = Snapshot(frames=(SavedFrame("f", "a-2", "publish"),))
    assert loads(dumps(snapshot)).frames[0].kind == "publish"


def test_missing_corrupt_or_foreign_text_gives_an_empty_snapshot() -> None:
    for text in (None, "", "{", "[]", '{"v": 99}', '{"v":1,"frames":[{"f":5}]}'):
        assert loads(text) == Snapshot()


def test_memory_storage_behaves_like_local_storage() -> None:
    storage = MemoryStorage()
    assert storage.getItem("k") is None
    storage.setItem("k", "v")
    assert storage.getItem("k") == "v"
    storage.removeItem("k")
    storage.removeItem("k")
    assert storage.getItem("k") is None
