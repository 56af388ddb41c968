"""What the reliability scenarios share: their figures line, server metrics, a reset schedule.

Each scenario prints one JSON line (``{"scenario": ..., ...}``) with its figures; with the
environment variable ``PYRT_FIGURES`` set to a file name, the line is also appended there (the
figures in docs/reliability.md come from such a file).
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.faults.delivery import DeliveryReport
from tests.faults.proxy import ChaosProxy

__all__ = ["ResetSchedule", "emit", "metric", "pump_wait", "rounded", "wait_for"]


def rounded(value: Any, digits: int = 3) -> Any:
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v, digits) for v in value]
    return value


def emit(scenario: str, report: DeliveryReport | None = None, **figures: Any) -> dict[str, Any]:
    """Print the scenario's figures as one JSON line (and append it to ``$PYRT_FIGURES``)."""
    if report is not None:
        body = json.loads(report.json_line(scenario, **figures))
    else:
        body = {"scenario": scenario, **figures}
    line = json.dumps(rounded(body), sort_keys=True)
    print(line, flush=True)
    path = os.environ.get("PYRT_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")
    parsed: dict[str, Any] = json.loads(line)
    return parsed


_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def metric(base_url: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample of ``base_url/metrics`` (0 when absent)."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match["name"] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match["value"])
    return 0.0


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"within {timeout:g} s: {what} (last: {value!r})")
        time.sleep(interval)


def pump_wait(page: Any, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """:func:`wait_for`, but idle in Playwright (``page.wait_for_timeout``) between polls.

    Use it while a page makes requests that go through ``context.route`` handlers: the sync
    Playwright API runs those handlers only while the test thread is inside a Playwright call, so
    a plain ``time.sleep`` or ``thread.join`` would hold every routed request (an SSE reconnect,
    say) until the wait ends.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"within {timeout:g} s: {what} (last: {value!r})")
        page.wait_for_timeout(20)


class ResetSchedule:
    """Reset every connection through ``proxy`` at random intervals in ``[low, high]`` seconds
    (seeded), on a thread of its own, until :meth:`stop`."""

    def __init__(self, proxy: ChaosProxy, low: float = 0.2, high: float = 1.0, seed: int = 8) -> None:
        self.proxy = proxy
        self.low, self.high = low, high
        self.rng = random.Random(seed)
        self.resets = 0  # reset events
        self.connections_cut = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="reset-schedule")

    def __enter__(self) -> ResetSchedule:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.rng.uniform(self.low, self.high)):
            self.resets += 1
            self.connections_cut += self.proxy.reset()
