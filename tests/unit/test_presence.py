"""The client's view of a channel's presence: snapshots and versioned diffs in, joins and leaves out."""

from __future__ import annotations

from typing import Any

import pytest

from pyrt.engine.presence import PresenceView
from pyrt.session.presence import member_id
from pyrt.wire.frames import Member, read_members, read_presence


def m(client: str, info: Any = None, user: str | None = None) -> Member:
    return Member("room", client, user, info)


def test_members_are_read_from_the_wire() -> None:
    wire = [{"client": "a", "user": "alice", "info": {"name": "A"}}, {"client": "b", "user": None}]
    assert read_members("room", wire) == [m("a", {"name": "A"}, "alice"), m("b")]
    assert read_presence("room", {"members": wire, "version": "3-1"}) == read_members("room", wire)
    for bad in (None, {"members": None}, {"members": [{"user": "x"}]}, {"members": ["a"]}):
        with pytest.raises(ValueError, match=r"presence|member"):
            read_presence("room", bad)


def test_a_first_snapshot_joins_everyone() -> None:
    view = PresenceView("room")
    assert view.snapshot([m("a"), m("b")], "5-2") == ([m("a"), m("b")], [])
    assert list(view.members) == ["a", "b"]
    assert view.version == (5, 2)


def test_a_snapshot_after_a_reconnect_reports_only_what_changed_meanwhile() -> None:
    view = PresenceView("room")
    view.snapshot([m("a"), m("b", "old")], "5-2")
    joined, left = view.snapshot([m("b", "new"), m("c")], "5-9")
    assert joined == [m("b", "new"), m("c")]
    assert left == [m("a")]
    assert view.snapshot([m("b", "new"), m("c")], "5-9") == ([], [])


def test_diffs_apply_in_version_order_and_stale_ones_are_dropped() -> None:
    view = PresenceView("room")
    view.snapshot([m("a")], "5-2")
    assert view.diff("5-2", [m("x")], []) == ([], [])  # already in the snapshot
    assert view.diff("5-3", [m("b")], [m("a")]) == ([m("b")], [m("a")])
    assert view.diff("5-3", [m("c")], []) == ([], [])  # a repeat
    assert view.diff("5-4", [], [m("nobody")]) == ([], [])  # nothing known left
    assert view.diff("5-5", [m("b")], []) == ([], [])  # nothing changed
    assert view.diff("6-1", [m("b", "away")], []) == ([m("b", "away")], [])  # a new life is newer
    assert view.diff("not an offset", [m("z")], []) == ([], [])
    assert list(view.members.values()) == [m("b", "away")]


def test_a_leave_reports_the_member_as_it_was_known() -> None:
    view = PresenceView("room")
    view.snapshot([m("a", {"name": "Ann"})], "1-1")
    assert view.diff("1-2", [], [m("a")]) == ([], [m("a", {"name": "Ann"})])


def test_member_ids_depend_on_identity_and_key_and_tell_neither() -> None:
    one = member_id("ip:10.0.0.1", "tab-1")
    assert one == member_id("ip:10.0.0.1", "tab-1")
    assert one != member_id("ip:10.0.0.2", "tab-1")
    assert one != member_id("ip:10.0.0.1", "tab-2")
    assert "10.0.0.1" not in one
    assert "tab" not in one
    assert len(one) == 20
