"""CPU without a bound: no input may cost the server more than a small constant times its size.

Each test measures CPU against a control of the same size in the same run (a ratio, never an
absolute time), so that a loaded machine slows both alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pyrt.redact import MAX_LOGGED, redact
from tests.faults.scenario import emit

KiB = 1024


def best_of(runs: int, work: Callable[[], object]) -> float:
    """The shortest of ``runs`` timings of ``work()`` (the least disturbed by other processes)."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def adversarial_lines(size: int) -> dict[str, str]:
    """Log lines of about ``size`` characters built to make a backtracking pattern work hard:
    keywords repeated inside one name, names without an end, quotes and separators galore."""
    return {
        "query of keywords": "GET /anything?" + "key" * (size // 3),
        "query of credentials": "GET /x?" + "key=&" * (size // 5),
        "name with a late keyword": "GET /x?" + "a" * size + "key=1",
        "json name of keywords": '{"' + "key" * (size // 3),
        "json members": '"key":"' * (size // 7),
        "json names without colons": ('"' + "a" * 59 + "k") * (size // 61),
        "quoted keywords": '"key"' * (size // 5),
        "bearer and spaces": "bearer" + " " * size,
        "bearers": "bearer " * (size // 7),
        "refresh frames": '"type":"refresh"' * (size // 16),
        "separators": "?&; " * (size // 4),
    }


def test_redaction_costs_the_same_per_character_whatever_the_line() -> None:
    size = 32 * KiB
    control = "GET /anything?" + "a" * size  # the same request line without a keyword
    control_seconds = best_of(7, lambda: redact(control, limit=None))
    ratios = {}
    growth = {}
    for name, line in adversarial_lines(size).items():
        seconds = best_of(7, lambda line=line: redact(line, limit=None))  # type: ignore[misc]
        ratios[name] = seconds / control_seconds
        four_times = adversarial_lines(4 * size)[name]
        growth[name] = best_of(5, lambda line=four_times: redact(line, limit=None)) / seconds  # type: ignore[misc]
    emit(
        "abuse.cpu.redaction",
        control_ms=control_seconds * 1000,
        worst=max(ratios, key=ratios.__getitem__),
        worst_ratio=max(ratios.values()),
        worst_growth=max(growth.values()),
    )
    # A backtracking pattern costs ~150x the control on the first line at this size, and 16x
    # more for 4x the text; a linear scan at most a few times the control, 4x for 4x.
    assert max(ratios.values()) < 20, ratios
    assert max(growth.values()) < 8, growth
    logged = redact("GET /anything?" + "key" * 20_000)  # what a log line keeps by default
    assert len(logged) < MAX_LOGGED + 64
