"""Subscriptions: replays never duplicate, a failed recovery is flagged once."""

from __future__ import annotations

import pytest

from pyrt.engine.subscriptions import Subscriptions


def handler(_: object) -> None:
    return None


def test_publications_advance_the_offset() -> None:
    subs = Subscriptions()
    subs.add("news", handler, None)
    subs.confirmed("news", "5-1", True)
    assert subs.accept("news", "5-2") is not None
    assert subs.offsets() == {"news": "5-2"}


def test_a_replay_of_what_was_delivered_is_dropped() -> None:
    subs = Subscriptions()
    subs.add("news", handler, None)
    for offset in ("1-1", "1-2", "1-3"):
        subs.accept("news", offset)
    assert subs.accept("news", "1-2") is None
    assert subs.accept("news", "1-3") is None
    assert subs.accept("news", "1-4") is not None
    assert subs.duplicates == 2


def test_a_live_only_subscription_resumes_from_where_it_first_took_effect() -> None:
    subs = Subscriptions()
    subs.add("news", handler, None)
    subs.confirmed("news", "7-0", True)
    assert subs.offsets() == {"news": "7-0"}


def test_a_subscription_from_an_offset_keeps_it_when_confirmed() -> None:
    subs = Subscriptions()
    subs.add("news", handler, "3-0")
    subs.confirmed("news", "9-0", True)
    assert subs.offsets() == {"news": "3-0"}
    assert subs.accept("news", "3-1") is not None


def test_a_failed_recovery_is_flagged_for_the_next_publication() -> None:
    subs = Subscriptions()
    subs.add("news", handler, "3-0")
    sub = subs.confirmed("news", "9-0", recovered=False)
    assert sub is not None
    assert sub.gap_pending
    assert not sub.recovered


def test_after_a_failed_recovery_a_replay_below_the_old_offset_is_delivered() -> None:
    subs = Subscriptions()
    subs.add("news", handler, "900-5")  # from a channel's earlier life (or another server)
    subs.confirmed("news", "100-2", recovered=False)
    assert subs.accept("news", "100-1") is not None
    assert subs.accept("news", "100-2") is not None
    assert subs.accept("news", "100-2") is None  # still no duplicates within the new life
    assert subs.offsets() == {"news": "100-2"}


def test_publications_of_unknown_channels_are_dropped() -> None:
    subs = Subscriptions()
    assert subs.accept("other", "1-1") is None
    assert subs.confirmed("other", "1-1", True) is None


def test_subscribing_twice_to_a_channel_is_refused() -> None:
    subs = Subscriptions()
    subs.add("news", handler, None)
    with pytest.raises(ValueError, match="already subscribed to 'news'"):
        subs.add("news", handler, None)


def test_disconnecting_deactivates_every_subscription() -> None:
    subs = Subscriptions()
    subs.add("a", handler, None)
    subs.confirmed("a", "0", True)
    subs.disconnected()
    assert not any(sub.active for sub in subs.all())


def test_opaque_offsets_are_deduplicated_by_equality() -> None:
    subs = Subscriptions()
    subs.add("x", handler, None)
    assert subs.accept("x", "abc") is not None
    assert subs.accept("x", "abc") is None
    assert subs.accept("x", "abd") is not None


def test_a_bare_integer_offset_orders_like_the_server_reads_it() -> None:
    subs = Subscriptions()
    subs.add("news", handler, "5")
    assert subs.accept("news", "5-0") is None  # "5" is "5-0": delivered already
    assert subs.accept("news", "4-9") is None
    assert subs.accept("news", "5-1") is not None


def test_a_subscription_that_replaces_an_earlier_one_takes_nothing_before_it_is_confirmed() -> None:
    subs = Subscriptions()
    subs.add("news", handler, None)
    subs.confirmed("news", "1-3", True)
    old = subs.remove("news")
    assert old is not None
    assert old.ended
    subs.add("news", handler, "1-1")
    assert subs.accept("news", "1-4") is None  # the earlier subscription's, still on its way
    subs.confirmed("news", "1-4", True)
    assert subs.accept("news", "1-2") is not None  # the replay, from where it was asked
    assert subs.offsets() == {"news": "1-2"}


def test_after_a_disconnect_a_new_subscription_replaces_nothing() -> None:
    subs = Subscriptions()
    subs.add("news", handler, None)
    subs.remove("news")
    subs.disconnected()
    sub = subs.add("news", handler, None)
    assert not sub.replacing
