"""pyrt's reference server (``serve.py``, ``python -m pyrt.server``) as a real subprocess on a free port.

``ServerProcess(*args)`` starts the server on ``127.0.0.1``, port 0, with the given command-line
options (``python -m pyrt.server --help`` lists them), waits for the line it prints when it listens
(``pyrt-serve listening on URL``) and keeps everything the process writes (its log and access
log) in memory: :meth:`ServerProcess.log_text` returns it, and a failing test's report shows the
lines written during that test. :meth:`ServerProcess.restart` stops the process and starts a new one
on the same port (clients reconnect to the same URL); :meth:`ServerProcess.metric` reads one sample of
``/metrics``, :meth:`ServerProcess.rss_mib` its resident memory.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import threading
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence

from pyrt.pytest_plugin.memory import rss_mib
from pyrt.pytest_plugin.reporting import REGISTRY, tail

__all__ = ["READY_PREFIX", "ServerProcess"]

READY_PREFIX = "pyrt-serve listening on "
LOG_LINES_KEPT = 100_000
REPORT_LINES = 60

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


class ServerProcess:
    """A running server; see the module docstring.

    ``command`` replaces ``python -m pyrt.server`` (for a script of your own that prints the same
    ready line); ``env`` adds environment variables; ``files`` sets the process's open-file limit
    (soft and hard), like a small ``ulimit -n``. Raises :class:`RuntimeError` with the log when the
    server exits or stays silent for ``start_timeout`` seconds.
    """

    def __init__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        command: Sequence[str] | None = None,
        start_timeout: float = 30.0,
        files: int | None = None,
    ) -> None:
        self.command = list(command) if command is not None else [sys.executable, "-m", "pyrt.server"]
        self.args = ["--host", "127.0.0.1", "--port", "0", *args]
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.start_timeout = start_timeout
        self.files = files
        self._lines: deque[str] = deque(maxlen=LOG_LINES_KEPT)
        self._seen = 0  # lines ever written, dropped ones included
        self._lock = threading.Lock()
        #: What followed the prefix of the ready line (``--workers N`` adds the workers' pids).
        self.ready_line = self._spawn(self.args)
        self.url = self.ready_line.split()[0]
        self.ws_url = "ws" + self.url[len("http") :]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.restarts = 0
        REGISTRY.track(self)

    # -- lifecycle ---------------------------------------------------------------------------------
    def _spawn(self, args: list[str]) -> str:
        self.proc = subprocess.Popen(
            [*self.command, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            preexec_fn=None if self.files is None else _limit_files(self.files),
        )
        ready = threading.Event()
        found: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(self.proc, ready, found), daemon=True)
        self._reader.start()
        if not ready.wait(self.start_timeout) or not found:
            self._end(signal.SIGKILL, 10)
            how = "exited" if self.proc.returncode not in (None, -signal.SIGKILL) else "stayed silent"
            raise RuntimeError(
                f"{' '.join(self.command)} {' '.join(args)} {how} before listening "
                f"(within {self.start_timeout:g} s); its output:\n{self.log_text()}"
            )
        return found[0]

    def _read(self, proc: subprocess.Popen[bytes], ready: threading.Event, found: list[str]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self._append(line)
            if not found and line.startswith(READY_PREFIX):
                found.append(line[len(READY_PREFIX) :].strip())
                ready.set()
        ready.set()  # the process ended: stop waiting

    def _append(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)
            self._seen += 1

    def _end(self, sig: int, timeout: float) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self._reader.join(timeout)  # every line the process wrote is in the log now
        return int(self.proc.returncode)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send ``sig`` (default SIGTERM: a graceful drain) and return the exit code; the process
        is killed if it is still running after ``timeout`` seconds."""
        return self._end(sig, timeout)

    def kill(self) -> int:
        """SIGKILL: the process dies with nothing flushed, like a crash."""
        return self.stop(signal.SIGKILL)

    def restart(self, sig: int = signal.SIGTERM) -> int:
        """Stop the process with ``sig``, start a new one with the same options on the same port,
        and return the old process's exit code. ``url`` stays valid."""
        code = self.stop(sig)
        self.restarts += 1
        self._append(f"--- pyrt test harness: stopped with signal {sig} (exit code {code}); restarting ---")
        self._spawn([*self.args, "--port", str(self.port)])
        return code

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_mib(self) -> float:
        """The server's resident memory now, in MiB (Linux)."""
        return rss_mib(self.proc.pid)

    # -- what it said -----------------------------------------------------------------------------
    def log_text(self) -> str:
        """Everything the server wrote (stdout and stderr, every restart), oldest first."""
        with self._lock:
            return "\n".join(self._lines)

    def metric(self, name: str, **labels: str) -> float:
        """The value of one Prometheus sample of ``/metrics`` whose labels include ``labels``
        (0 when there is none)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as answer:
            text = answer.read().decode()
        for line in text.splitlines():
            match = _SAMPLE.match(line)
            if match is None or match["name"] != name:
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(match["value"])
        return 0.0

    # -- reporting (see pyrt.pytest_plugin.reporting) -----------------------------------------------
    @property
    def report_title(self) -> str:
        return f"pyrt server {self.url} ({' '.join(self.args[4:]) or 'default settings'})"

    @property
    def finished(self) -> bool:
        return not self.alive()

    def mark(self) -> object:
        return self._seen

    def report(self, since: object | None) -> str:
        with self._lock:
            new = self._seen - (since if isinstance(since, int) else 0)
            lines = list(self._lines)[-new:] if new > 0 else []
        out = tail(lines, REPORT_LINES)
        if not self.alive():
            out.append(f"(the process has exited with code {self.proc.returncode})")
        return "\n".join(out)

    def violations(self, since: object | None) -> list[str]:
        return []

    def __repr__(self) -> str:
        state = "running" if self.alive() else f"exited {self.proc.returncode}"
        return f"<ServerProcess {self.url} {state}>"


def _limit_files(files: int) -> Callable[[], None]:
    def limit() -> None:  # runs in the child, before it executes the server
        resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))

    return limit
