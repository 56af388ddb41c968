"""A throw-away ``redis-server`` on a free loopback port, for Redis-backed pyrt servers in tests.

No persistence, its own temporary directory, removed on :meth:`RedisServer.stop`. When the
``redis-server`` binary is not installed, :class:`RedisUnavailable` says so (the ``pyrt_redis``
fixture turns that into a skip).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile

from pyrt.pytest_plugin.waiting import wait_until

__all__ = ["RedisServer", "RedisUnavailable", "free_port"]


class RedisUnavailable(RuntimeError):
    """``redis-server`` is not on ``PATH``."""


def free_port() -> int:
    """A loopback port that was free a moment ago (for programs that cannot take port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """``RedisServer()`` starts one and waits until it answers ``PING``; ``url`` is its address."""

    def __init__(self, executable: str | None = None, start_timeout: float = 10.0) -> None:
        found = executable or shutil.which("redis-server")
        if found is None:
            raise RedisUnavailable(
                "redis-server is not installed (Debian/Ubuntu: apt-get install redis-server)"
            )
        self.dir = tempfile.TemporaryDirectory(prefix="pyrt-redis-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                found,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir.name,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        try:
            wait_until(self._answers, start_timeout, f"redis-server on port {self.port} answers PING")
        except AssertionError:
            self.stop()
            raise

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            code = self.proc.returncode
            raise RuntimeError(f"redis-server exited with code {code} (port {self.port} taken?)")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.dir.cleanup()

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
