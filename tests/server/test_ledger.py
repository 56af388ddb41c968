"""The connection ledger: a cap in all, a cap per address with a polite overflow, trusted proxies."""

from __future__ import annotations

from typing import Any

from pyrt.server.ledger import OVERFLOW, Ledger


class Transport:
    def __init__(self, address: str) -> None:
        self.address = address

    def get_extra_info(self, name: str) -> Any:
        return (self.address, 1234) if name == "peername" else None


def test_each_address_gets_its_share_then_429_then_resets() -> None:
    ledger = Ledger(max_connections=1000, per_ip=2)
    verdicts = [ledger.admit(Transport("a")) for _ in range(2 + OVERFLOW + 1)]
    assert verdicts[:2] == ["ok", "ok"]
    assert set(verdicts[2 : 2 + OVERFLOW]) == {"over"}
    assert verdicts[-1] == "refuse"
    assert ledger.admit(Transport("b")) == "ok"  # another address is not affected


def test_releasing_frees_the_slot_once() -> None:
    ledger = Ledger(max_connections=2, per_ip=0)
    first, second = Transport("a"), Transport("b")
    assert [ledger.admit(first), ledger.admit(second), ledger.admit(Transport("c"))] == ["ok", "ok", "refuse"]
    ledger.release(first)
    ledger.release(first)  # idempotent: it was counted once
    assert len(ledger) == 1
    assert ledger.admit(Transport("c")) == "ok"
    assert ledger.count("a") == 0


def test_trusted_proxies_are_not_capped_by_address() -> None:
    ledger = Ledger(max_connections=100, per_ip=1, trusted=["10.0.0.0/8"])
    assert [ledger.admit(Transport("10.1.2.3")) for _ in range(5)] == ["ok"] * 5
    assert ledger.trusted("10.9.9.9")
    assert not ledger.trusted("11.0.0.1")
    assert not ledger.trusted("not an address")
    assert Ledger(1, 1, trusted=["*"]).trusted("1.2.3.4")


def test_received_bytes_are_budgeted_per_address_and_in_all_and_room_wakes_the_waiting() -> None:
    ledger = Ledger(max_connections=100, per_ip=0, address_inbox=100, total_inbox=150)
    a1, a2, b = Transport("a"), Transport("a"), Transport("b")
    for transport in (a1, a2, b):
        ledger.admit(transport)
    ledger.inbox_add(a1, 101)
    assert ledger.inbox_full(a2)  # the same address
    assert not ledger.inbox_full(b)
    ledger.inbox_add(b, 60)
    assert ledger.inbox_full(b)  # the whole process is over 150
    woken: list[str] = []
    ledger.wait_for_room(a2, lambda: woken.append("a2"))
    ledger.inbox_remove(a1, 101)
    assert woken == ["a2"]
    assert not ledger.inbox_full(a2)
    ledger.release(b)  # a closed connection's waiting callback is forgotten
    ledger.wait_for_room(b, lambda: woken.append("b"))
    ledger.release(b)
    ledger.inbox_remove(a1, 0)
    assert woken == ["a2"]


def test_trusted_proxies_share_only_the_process_budget() -> None:
    ledger = Ledger(max_connections=100, per_ip=0, trusted=["127.0.0.1"], address_inbox=10, total_inbox=1000)
    proxy = Transport("127.0.0.1")
    ledger.admit(proxy)
    ledger.inbox_add(proxy, 500)
    assert not ledger.inbox_full(proxy)
    ledger.inbox_add(proxy, 501)
    assert ledger.inbox_full(proxy)
