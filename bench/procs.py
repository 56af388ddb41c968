"""Child processes of the bench: servers that print their URL, and line-oriented load clients."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``serve.py --workers N`` is a supervisor and N workers)."""
    out = [pid]
    for index in range(len(out) + 1_000):
        if index >= len(out):
            break
        try:
            for task in os.listdir(f"/proc/{out[index]}/task"):
                with open(f"/proc/{out[index]}/task/{task}/children") as f:
                    out.extend(int(child) for child in f.read().split())
        except OSError:
            continue
    return out


def rss_bytes(pid: int) -> int:
    """Resident set size of a process and its descendants (``VmRSS``)."""
    total = 0
    for member in tree(pid):
        try:
            with open(f"/proc/{member}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its living descendants so far."""
    total = 0.0
    for member in tree(pid):
        try:
            with open(f"/proc/{member}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


class Child:
    """A subprocess whose stdout lines are collected by a thread; stderr goes to a log file."""

    def __init__(self, argv: list[str], *, stdin: bool = False, env: dict[str, str] | None = None) -> None:
        fd, log = tempfile.mkstemp(prefix="pyrt-bench-", suffix=".log")
        os.close(fd)
        self.log_path = Path(log)
        self._log = self.log_path.open("wb")
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            cwd=REPO,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode(errors="replace").rstrip("\n"))
        self.lines.put("")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, chars: int = 2000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def wait_line(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line.startswith(prefix):
                return line
            if line == "" and self.proc.poll() is not None:
                break
        raise RuntimeError(f"{' '.join(self.argv[:4])}: no {prefix!r} line in {timeout}s\n{self.log_tail()}")

    def wait_event(self, name: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            line = self.wait_line("{", max(0.01, deadline - time.monotonic()))
            event: dict[str, Any] = json.loads(line)
            if event.get("event") == name:
                return event

    def command(self, text: str, reply: str, timeout: float = 30.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((text + "\n").encode())
        self.proc.stdin.flush()
        return self.wait_event(reply, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self._log.close()
        self.log_path.unlink(missing_ok=True)


class Server(Child):
    """A server that prints ``PREFIX http://...`` once it listens."""

    def __init__(self, argv: list[str], prefix: str, *, timeout: float = 30.0) -> None:
        super().__init__(argv)
        line = self.wait_line(prefix, timeout)
        self.url = line[len(prefix) :].split()[0]
        self.extra = line[len(prefix) :].split()[1:]
        self.port = int(self.url.rsplit(":", 1)[1])


def serve_py(*extra: str) -> Server:
    """The reference server, tuned for load from one address: no per-IP cap, no rate limits (the
    one publisher publishes up to thousands per second), room for 10,000 subscribers and more."""
    argv = [
        sys.executable,
        str(REPO / "serve.py"),
        "--host", "127.0.0.1",
        "--port", "0",
        "--no-demo",
        "--log-level", "warning",
        "--max-connections-per-ip", "0",
        "--rate-limit", "0",
        "--publish-rate", "0",
        "--max-connections", "20000",
        *extra,
    ]  # fmt: skip
    return Server(argv, "pyrt-serve listening on ")


def serve_py_default_limits() -> Server:
    """The reference server as a deployment runs it: its default limits (one client connects)."""
    argv = [
        sys.executable,
        str(REPO / "serve.py"),
        "--host", "127.0.0.1",
        "--port", "0",
        "--no-demo",
        "--log-level", "warning",
    ]  # fmt: skip
    return Server(argv, "pyrt-serve listening on ")


def broadcast_server() -> Server:
    return Server([sys.executable, "-m", "bench.broadcast_ws"], "broadcast-server listening on ")


def socketio_available() -> str | None:
    """Why the Socket.IO peer cannot run, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (BENCH / "node_modules" / "socket.io").is_dir():
        return "bench/node_modules is missing: run `npm ci --prefix bench`"
    return None


def socketio_server() -> Server:
    return Server(["node", str(BENCH / "socketio_server.js")], "socketio-server listening on ")


class Redis:
    """A throwaway ``redis-server`` on a free loopback port, no persistence."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def subscribers(kind: str, url: str, count: int, *, sample_every: int = 10) -> Child:
    argv = [sys.executable, "-m", "bench.loadgen", "sub", "--kind", kind, "--url", url, "--count", str(count)]
    return Child([*argv, "--sample-every", str(sample_every)], stdin=True)


def publisher(kind: str, url: str, rate: float, seconds: float) -> Child:
    argv = [sys.executable, "-m", "bench.loadgen", "pub", "--kind", kind, "--url", url]
    return Child([*argv, "--rate", str(rate), "--seconds", str(seconds)])
