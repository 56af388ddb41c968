"""The journal: a write holds only what changed; what leaves before it is written costs nothing."""

from __future__ import annotations

from pyrt.persist.journal import Journal
from pyrt.persist.records import SavedFrame


def offsets() -> dict[str, str]:
    return {"news": "1-5"}


def test_nothing_is_taken_while_held_and_everything_after_the_release() -> None:
    journal = Journal()
    journal.add("a-1", SavedFrame("one", "a-1"))
    assert not journal.dirty
    assert journal.take(offsets) is None
    journal.release()
    changes = journal.take(offsets)
    assert changes is not None
    assert changes.puts == {1: SavedFrame("one", "a-1", "message", 1)}


def test_records_are_numbered_in_the_order_they_were_added() -> None:
    journal = Journal(held=False)
    for n in range(3):
        journal.add(f"a-{n}", SavedFrame(str(n), f"a-{n}"))
    changes = journal.take(offsets)
    assert changes is not None
    assert [(seq, s.frame) for seq, s in changes.puts.items()] == [(1, "0"), (2, "1"), (3, "2")]
    journal.add("a-3", SavedFrame("3", "a-3"))
    later = journal.take(offsets)
    assert later is not None
    assert list(later.puts) == [4]


def test_a_message_that_leaves_before_it_is_written_is_never_written() -> None:
    journal = Journal(held=False)
    journal.add("a-1", SavedFrame("one", "a-1"))
    journal.remove("a-1")
    assert not journal.dirty
    assert journal.take(offsets) is None
    assert len(journal) == 0


def test_a_written_message_that_leaves_becomes_one_delete() -> None:
    journal = Journal(held=False)
    plain = object()
    journal.add(plain, SavedFrame("plain"))
    journal.add("a-1", SavedFrame("acked", "a-1"))
    journal.take(offsets)
    journal.remove(plain)
    journal.remove("unknown")  # ignored
    changes = journal.take(offsets)
    assert changes is not None
    assert (changes.puts, changes.deletes, changes.offsets) == ({}, {1}, None)
    assert len(journal) == 1


def test_offsets_are_read_only_when_they_changed() -> None:
    journal = Journal(held=False)
    calls: list[int] = []

    def read() -> dict[str, str]:
        calls.append(1)
        return offsets()

    journal.offsets_changed()
    changes = journal.take(read)
    assert changes is not None
    assert changes.offsets == {"news": "1-5"}
    journal.add("a-1", SavedFrame("x", "a-1"))
    assert journal.take(read) is not None
    assert len(calls) == 1


def test_restored_records_keep_their_numbers_and_new_ones_follow() -> None:
    journal = Journal()
    journal.restored("a-1", SavedFrame("old", "a-1", "message", 7))
    journal.restored("b-1", SavedFrame("older format", "b-1"))  # no number: written again
    journal.release()
    journal.add("c-1", SavedFrame("new", "c-1"))
    journal.remove("a-1")
    changes = journal.take(offsets)
    assert changes is not None
    assert changes.deletes == {7}
    assert [(seq, s.frame) for seq, s in changes.puts.items()] == [(8, "older format"), (9, "new")]
