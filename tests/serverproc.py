"""Run ``serve.py`` as a real subprocess on 127.0.0.1, port 0, and find its URL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
READY_PREFIX = "pyrt-serve listening on "


class ServerProcess:
    """A ``serve.py`` subprocess. Its stderr (the server log) goes to :attr:`log_path`."""

    def __init__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        start_timeout: float = 30.0,
        files: int | None = None,
    ):
        """``files`` sets the process's open-file limit (soft and hard), like a small ``ulimit -n``."""
        self.args = ["--host", "127.0.0.1", "--port", "0", *args]
        fd, log = tempfile.mkstemp(prefix="pyrt-serve-", suffix=".log")
        os.close(fd)
        self.log_path = Path(log)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "serve.py"), *self.args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            preexec_fn=None if files is None else lambda: _limit_files(files),
        )
        self.url = self._wait_ready(start_timeout)
        self.ws_url = "ws" + self.url[len("http") :]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.stdout_lines: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _wait_ready(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        result: list[str] = []

        def read() -> None:
            assert self.proc.stdout is not None
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace").strip()
                if line.startswith(READY_PREFIX):
                    result.append(line[len(READY_PREFIX) :])
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if not result:
            self.kill()
            raise RuntimeError(
                f"serve.py {' '.join(self.args)} did not report its URL within {timeout}s; "
                f"log:\n{self.log_text()}"
            )
        return result[0]

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.stdout_lines.append(raw.decode(errors="replace").rstrip("\n"))

    def log_text(self) -> str:
        """The server log so far (also after :meth:`stop`)."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_mib(self) -> float:
        """The server's resident memory now, in MiB."""
        return rss_mib(self.proc.pid)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send ``sig`` and wait for the exit code (killing the process after ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self._log.close()
        return self.proc.returncode

    def kill(self) -> int:
        return self.stop(signal.SIGKILL)


def _limit_files(files: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))


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
        self._thread = threading.Thread(target=self._run, daemon=True)

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


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.01, message: str = ""):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes (then fail)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {message or predicate}")
        time.sleep(interval)
