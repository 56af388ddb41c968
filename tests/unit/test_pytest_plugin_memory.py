"""rss_mib reads a process's resident memory; PeakRss catches the peak while a block runs."""

from __future__ import annotations

import os

import pytest

from pyrt.pytest_plugin.memory import PeakRss, rss_mib
from pyrt.pytest_plugin.waiting import wait_until


def test_the_resident_memory_of_this_process_is_read_in_mib() -> None:
    assert 5 < rss_mib(os.getpid()) < 100_000


def test_the_peak_is_seen_while_the_block_runs_and_kept_after_it() -> None:
    with PeakRss(os.getpid(), interval=0.005) as meter:
        blob = b"x" * (64 << 20)  # written, so resident
        wait_until(lambda: meter.grew >= 48, 10, "the sampler saw the 64 MiB")
        del blob
    assert meter.peak >= meter.start + 48


def test_a_process_that_does_not_exist_is_an_error() -> None:
    with pytest.raises(FileNotFoundError):
        rss_mib(2**22 + 12345)
