"""The limits a server advertises in welcome: written by the server, read leniently by clients."""

from __future__ import annotations

import math

import pytest

from pyrt.wire.limits import ServerLimits


def test_what_the_server_writes_the_client_reads_back() -> None:
    limits = ServerLimits(
        rate=200.0, burst=400, window=1000, max_bytes=1 << 20, subscriptions=256,
        publish_rate=50.0, publish_burst=9,
    )  # fmt: skip
    assert limits.to_wire() == {
        "rate": 200.0,
        "burst": 400,
        "window": 1000,
        "max_bytes": 1 << 20,
        "subscriptions": 256,
        "publish_rate": 50.0,
        "publish_burst": 9,
    }
    assert ServerLimits.from_wire(limits.to_wire()) == limits


def test_unlimited_fields_are_left_out() -> None:
    assert ServerLimits(max_bytes=10).to_wire() == {"max_bytes": 10}
    assert ServerLimits().to_wire() == {}


@pytest.mark.parametrize("value", [None, [], "fast", 3])
def test_no_limits_object_means_none_advertised(value: object) -> None:
    assert ServerLimits.from_wire(value) is None


@pytest.mark.parametrize("bad", [0, -5, True, "200", None, math.inf, math.nan, [1]])
def test_a_malformed_field_reads_as_not_advertised_and_leaves_the_others(bad: object) -> None:
    limits = ServerLimits.from_wire({"rate": bad, "burst": 10, "unknown": "ignored"})
    assert limits == ServerLimits(rate=None, burst=10)


def test_counts_are_whole_and_at_least_one() -> None:
    assert ServerLimits.from_wire({"burst": 2.9, "window": 0.4}) == ServerLimits(burst=2, window=1)
