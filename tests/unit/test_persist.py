"""Persistence: records and snapshots survive a round trip, binary included; bad text is harmless;
batches merge in order; the in-memory and Web Storage stores apply them."""

from __future__ import annotations

import pytest

from pyrt.persist.records import (
    Changes,
    MemoryRecordStore,
    MemoryStorage,
    SavedFrame,
    Snapshot,
    SnapshotStore,
    as_record_store,
    describe,
    dumps,
    is_snapshot_text,
    loads,
    numbered,
    record_from_text,
    record_text,
)


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


def test_a_record_round_trips_through_its_text() -> None:
    for saved in (SavedFrame("f", "a-1", "publish", 3), SavedFrame(b"\x00\x01", None, "message", 4)):
        assert record_from_text(record_text(saved)) == saved
    for bad in ("", "{", "[]", '{"f": 5}', '{"f": "x", "s": "1"}', '{"f": "x", "s": true}'):
        assert record_from_text(bad) is None


def test_absorbing_a_later_batch_keeps_the_newest_state() -> None:
    first = Changes(puts={1: SavedFrame("a", seq=1), 2: SavedFrame("b", seq=2)}, deletes={0})
    first.absorb(Changes(puts={3: SavedFrame("c", seq=3)}, deletes={2, 9}, offsets={"c": "1-1"}))
    assert set(first.puts) == {1, 3}
    assert first.deletes == {0, 9}  # 2 was never written: no delete needed
    assert first.offsets == {"c": "1-1"}
    first.absorb(Changes())
    assert first.offsets == {"c": "1-1"}
    assert bool(first)
    assert not bool(Changes())


def test_numbering_gives_unnumbered_records_the_next_numbers() -> None:
    snapshot = Snapshot(frames=(SavedFrame("a", seq=4), SavedFrame("b"), SavedFrame("c")))
    assert [s.seq for s in numbered(snapshot).frames] == [4, 5, 6]
    already = Snapshot(frames=(SavedFrame("a", seq=1),))
    assert numbered(already) is already


def test_the_memory_record_store_applies_batches_and_loads_them_in_order() -> None:
    store = MemoryRecordStore()
    assert not store.durable
    assert MemoryRecordStore(durable=True).durable
    results: list[object] = []
    store.write("k", Changes(puts={2: SavedFrame("b", seq=2), 1: SavedFrame("a", seq=1)}), results.append)
    store.write("k", Changes(deletes={2}, offsets={"c": "1-1"}), results.append)
    store.load("k", results.append, results.append)
    assert results == [None, None, Snapshot((SavedFrame("a", seq=1),), {"c": "1-1"})]


def test_the_snapshot_store_writes_the_whole_set_into_a_web_storage() -> None:
    storage = MemoryStorage()
    store = SnapshotStore(storage)
    loaded: list[Snapshot] = []
    store.load("k", loaded.append, pytest.fail)
    assert loaded == [Snapshot()]
    store.write("k", Changes(puts={1: SavedFrame("a", "a-1", seq=1)}, offsets={"c": "1-2"}), _ok)
    assert loads(storage.getItem("k")) == Snapshot((SavedFrame("a", "a-1", seq=1),), {"c": "1-2"})
    storage.setItem("old", dumps(Snapshot((SavedFrame("x"),))))  # an older pyrt's snapshot
    store.load("old", loaded.append, pytest.fail)
    assert loaded[-1].frames[0].seq == 1


def test_the_snapshot_store_reports_a_storage_that_refuses() -> None:
    class Full(MemoryStorage):
        def setItem(self, key: str, value: str) -> None:
            raise OSError("quota exceeded")

        def getItem(self, key: str) -> str | None:
            raise PermissionError("forbidden")

    store = SnapshotStore(Full())
    errors: list[Exception | None] = []
    store.write("k", Changes(puts={1: SavedFrame("a", seq=1)}), errors.append)
    store.load("k", pytest.fail, errors.append)
    assert [type(e) for e in errors] == [OSError, PermissionError]


def test_any_web_storage_becomes_a_record_store() -> None:
    store = MemoryRecordStore()
    assert as_record_store(store) is store
    assert isinstance(as_record_store(MemoryStorage()), SnapshotStore)


def test_only_pyrt_snapshots_count_as_snapshot_text() -> None:
    assert is_snapshot_text(dumps(Snapshot()))
    for other in (None, "", "hello", "{}", '{"v": 1}', '{"v": 2, "frames": []}', "[1]", "{"):
        assert not is_snapshot_text(other)


def test_a_restored_message_describes_its_json_frame() -> None:
    assert describe('{"type":"publish","id":"a","channel":"news","data":{"n":1}}') == ({"n": 1}, "news")
    assert describe('{"id":1,"data":[1]}') == ([1], None)
    assert describe("ping") == (None, None)
    assert describe("{not json") == (None, None)
    assert describe(b"\x00") == (None, None)


def _ok(error: Exception | None) -> None:
    assert error is None
