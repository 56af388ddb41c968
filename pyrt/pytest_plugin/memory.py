"""How much memory a process holds: now (:func:`rss_mib`) and at its peak while a block runs
(:class:`PeakRss`), read from Linux's ``/proc``; for tests that bound a server's memory."""

from __future__ import annotations

import threading
from pathlib import Path

__all__ = ["PeakRss", "rss_mib"]


def rss_mib(pid: int) -> float:
    """The resident memory of process ``pid``, in MiB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class PeakRss:
    """The peak resident memory of a process while the ``with`` block runs, sampled on a thread:
    ``start``, ``peak`` and ``grew`` (peak - start) in MiB."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.start = self.peak = rss_mib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="peak-rss")

    @property
    def grew(self) -> float:
        return self.peak - self.start

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, rss_mib(self.pid))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.peak = max(self.peak, rss_mib(self.pid))
            except (OSError, RuntimeError):
                return
