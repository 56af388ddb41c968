"""Group commit: one write in flight, the newest state wins, nothing reordered, failures retried."""

from __future__ import annotations

import pytest

from pyrt.persist.records import Changes, SavedFrame
from pyrt.persist.write_queue import WriteQueue


def put(*seqs: int) -> Changes:
    return Changes(puts={seq: SavedFrame(f"m{seq}", seq=seq) for seq in seqs})


def test_the_first_batch_is_written_at_once() -> None:
    queue = WriteQueue()
    batch = put(1)
    assert queue.submit(batch) is batch
    assert queue.in_flight is batch
    assert not queue.idle


def test_batches_that_come_during_a_write_wait_merged_into_one() -> None:
    queue = WriteQueue()
    queue.submit(put(1))
    assert queue.submit(put(2)) is None
    assert queue.submit(Changes(deletes={2}, offsets={"c": "1-1"})) is None
    assert queue.submit(Changes(offsets={"c": "1-2"})) is None
    merged = queue.finished(None)
    assert merged is not None
    assert (merged.puts, merged.deletes, merged.offsets) == ({}, set(), {"c": "1-2"})  # 2: never written
    assert queue.committed == 1
    assert queue.finished(None) is None
    assert queue.committed == 4
    assert queue.idle


def test_a_delete_of_a_record_written_earlier_is_kept() -> None:
    queue = WriteQueue()
    queue.submit(put(1))
    queue.submit(Changes(deletes={1}))
    merged = queue.finished(None)
    assert merged is not None
    assert merged.deletes == {1}


def test_a_failed_write_goes_back_in_front_of_what_waits_and_is_retried() -> None:
    queue = WriteQueue()
    queue.submit(put(1))
    queue.submit(put(2))
    error = OSError("quota")
    assert queue.finished(error) is None
    assert (queue.failures, queue.last_error, queue.committed) == (1, error, 0)
    assert queue.retry_delay() == 0.5
    retried = queue.retry()
    assert retried is not None
    assert set(retried.puts) == {1, 2}
    assert queue.finished(OSError("again")) is None
    assert queue.retry_delay() == 1.0
    assert queue.retry() is not None
    assert queue.finished(None) is None
    assert (queue.committed, queue.failures) == (2, 0)


def test_a_new_batch_after_a_failure_starts_the_retry_at_once() -> None:
    queue = WriteQueue()
    queue.submit(put(1))
    queue.finished(OSError("busy"))
    batch = queue.submit(put(2))
    assert batch is not None
    assert set(batch.puts) == {1, 2}


def test_the_retry_delay_grows_to_thirty_seconds() -> None:
    queue = WriteQueue()
    queue.failures = 20
    assert queue.retry_delay() == 30.0


def test_finishing_nothing_is_a_bug() -> None:
    with pytest.raises(RuntimeError, match="without a write in flight"):
        WriteQueue().finished(None)
