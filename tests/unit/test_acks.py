"""Acks: ids never repeat, timeouts run only on the wire, retries are bounded, resends keep order."""

from __future__ import annotations

import random

import pytest

from pyrt.engine.acks import AckIds, Pending, PendingAcks


def entry(ack_id: str, timeout: float = 10.0) -> Pending:
    return Pending(ack_id, f"frame {ack_id}", handle=object(), timeout=timeout)


def test_ids_are_a_random_prefix_and_a_counter() -> None:
    ids = AckIds(random.Random(1).random)
    first, second = ids.next(), ids.next()
    assert isinstance(first, str)
    assert isinstance(second, str)
    prefix, _, counter = first.partition("-")
    assert len(prefix) == 8
    assert counter == "1"
    assert second == f"{prefix}-2"


def test_two_clients_or_two_page_loads_do_not_share_ids() -> None:
    seen: set[str | int] = set()
    for seed in range(200):
        ids = AckIds(random.Random(seed).random)
        seen.update(ids.next() for _ in range(5))
    assert len(seen) == 1000


def test_numeric_ids_are_unique_and_safe_for_javascript() -> None:
    values = [AckIds(random.Random(seed).random, numeric=True).next() for seed in range(100)]
    assert len(set(values)) == 100
    assert all(isinstance(v, int) and 0 < v < 2**53 for v in values)


def test_an_entry_times_out_only_after_it_was_sent() -> None:
    acks = PendingAcks()
    e = entry("a")
    acks.add(e)
    assert acks.next_deadline() is None
    acks.sent(e, now=5.0)
    assert acks.next_deadline() == 15.0
    assert acks.due(14.9) == []
    assert acks.due(15.0) == [e]


def test_an_acknowledged_entry_never_times_out() -> None:
    acks = PendingAcks()
    e = entry("a")
    acks.add(e)
    acks.sent(e, 0.0)
    assert acks.pop("a") is e
    assert acks.due(100.0) == []
    assert acks.next_deadline() is None


def test_a_second_ack_for_the_same_id_is_recognised_as_a_duplicate() -> None:
    acks = PendingAcks()
    acks.add(entry("a"))
    assert acks.pop("a") is not None
    assert acks.pop("a") is None


def test_retries_are_bounded() -> None:
    acks = PendingAcks(retries=2)
    e = entry("a")
    acks.add(e)
    for attempt in range(3):
        acks.sent(e, float(attempt * 10))
        assert acks.due(float(attempt * 10 + 10)) == [e]
    assert e.attempts == 3
    assert acks.exhausted(e)


def test_a_resend_restarts_the_clock() -> None:
    acks = PendingAcks()
    e = entry("a")
    acks.add(e)
    acks.sent(e, 0.0)
    acks.sent(e, 4.0)
    assert acks.due(10.0) == []
    assert acks.next_deadline() == 14.0


def test_losing_the_socket_stops_every_clock() -> None:
    acks = PendingAcks()
    e = entry("a")
    acks.add(e)
    acks.sent(e, 0.0)
    acks.off_the_wire()
    assert acks.next_deadline() is None
    assert acks.due(1000.0) == []
    assert acks.in_flight() == [e]


def test_in_flight_lists_sent_entries_oldest_first() -> None:
    acks = PendingAcks()
    a, b, c = entry("a"), entry("b"), entry("c")
    for e in (a, b, c):
        acks.add(e)
    acks.sent(b, 0.0)
    acks.sent(a, 1.0)
    assert acks.in_flight() == [a, b]


def test_per_message_timeouts_are_respected() -> None:
    acks = PendingAcks()
    slow, quick = entry("slow", timeout=30.0), entry("quick", timeout=1.0)
    acks.add(slow)
    acks.add(quick)
    acks.sent(slow, 0.0)
    acks.sent(quick, 0.0)
    assert acks.next_deadline() == 1.0
    assert acks.due(1.0) == [quick]


def test_the_same_id_cannot_be_pending_twice() -> None:
    acks = PendingAcks()
    acks.add(entry("a"))
    with pytest.raises(ValueError, match="already pending"):
        acks.add(entry("a"))


def test_entries_remember_their_send_order_and_a_refusal_stops_their_clock() -> None:
    acks = PendingAcks()
    first, second = entry("a-1", timeout=1.0), entry("a-2", timeout=1.0)
    acks.add(first)
    acks.add(second)
    assert (first.order, second.order) == (1, 2)
    acks.sent(first, 0.0)
    acks.recall(first)  # the server refused it for now: no timeout until it is sent again
    assert acks.due(5.0) == []
    assert acks.next_deadline() is None
    assert acks.in_flight() == [first]  # still sent once: resent after a reconnect


def test_negative_retries_are_refused() -> None:
    with pytest.raises(ValueError, match="ack_retries"):
        PendingAcks(retries=-1)
