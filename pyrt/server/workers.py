"""``serve.py --workers N``: N server processes on one port, sharing channels through Redis.

Each worker is a whole ``serve.py`` (``python -m pyrt.server``) with its own listening socket
bound with ``SO_REUSEPORT``: the kernel spreads new connections over the workers, and a worker
that is busy or restarting never holds connections meant for the others in its accept queue.
The workers know nothing of each other: Redis carries publications, history (offsets are stream
ids, so a client resumes on any worker) and message and publish ids.

The supervisor (this module) reserves the port (``--port 0`` resolves to a free one), starts the
workers, prints one ``pyrt-serve listening on URL`` line once every worker listens, restarts a
worker that dies, and on SIGTERM/SIGINT passes the signal on (each worker drains its clients
with 1001) and waits for them. A second signal is passed on too: the workers exit at once.

Limits apply per worker: ``--max-connections``, the per-address caps and the per-identity
publish rate hold in each process (a client spread over N workers gets up to N times them).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

__all__ = ["READY_PREFIX", "WORKERS_NEED_REDIS", "reserve_port", "supervise", "worker_argv"]

log = logging.getLogger("pyrt.server")

READY_PREFIX = "pyrt-serve listening on "
WORKERS_NEED_REDIS = (
    "--workers {n} needs --redis URL: workers are separate processes and share channels, history "
    "and message ids only through Redis (the memory broker lives inside one process)"
)
_START_TIMEOUT = 60.0  # seconds a worker has to listen
_RESTART_DELAY = 1.0  # seconds before a dead worker is started again
_POLL = 0.5  # seconds between checks of the workers
_PR_SET_PDEATHSIG = 1  # prctl(2)


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound (not listening) to ``host:port`` with ``SO_REUSEPORT``: it resolves port 0
    and keeps the port while the workers bind it too. It never accepts anything."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def worker_argv(argv: Sequence[str], port: int) -> list[str]:
    """A worker's command line: the supervisor's own flags, then the port it reserved, one
    worker, ``SO_REUSEPORT`` (later flags win)."""
    return [
        sys.executable,
        "-m",
        "pyrt.server",
        *argv,
        "--port",
        str(port),
        "--workers",
        "1",
        "--reuse-port",
    ]


class _Worker:
    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, preexec_fn=_end_with_parent
        )
        self.ready = threading.Event()
        self.url = ""
        threading.Thread(target=self._relay, daemon=True).start()

    def _relay(self) -> None:
        """Note the worker's listening line; pass anything else it prints on."""
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if not self.ready.is_set() and line.startswith(READY_PREFIX):
                self.url = line[len(READY_PREFIX) :].split()[0]
                self.ready.set()
            else:
                print(line, flush=True)

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)


def _end_with_parent() -> None:
    """In the worker, before it runs: a SIGTERM when the supervisor dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def supervise(argv: Sequence[str], host: str, port: int, workers: int) -> int:
    """Run ``workers`` copies of ``serve.py`` on one port until SIGTERM/SIGINT; the exit status."""
    if not hasattr(socket, "SO_REUSEPORT"):
        print("serve.py: --workers needs SO_REUSEPORT, which this system lacks", file=sys.stderr)
        return 2
    try:
        reservation = reserve_port(host, port)
    except OSError as exc:
        print(f"serve.py: cannot bind {host}:{port}: {exc}", file=sys.stderr)
        return 2
    port = reservation.getsockname()[1]
    signals: list[int] = []

    def on_signal(sig: int, frame: FrameType | None) -> None:
        signals.append(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    pool = [_Worker(worker_argv(argv, port)) for _ in range(workers)]
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        for worker in pool:
            while not worker.ready.wait(0.1):
                if signals or worker.proc.poll() is not None or time.monotonic() > deadline:
                    print("serve.py: a worker did not start (its log is above)", file=sys.stderr)
                    _stop(pool, signals or [signal.SIGTERM])
                    return 1
        pids = " ".join(str(worker.proc.pid) for worker in pool)
        print(f"{READY_PREFIX}{pool[0].url} ({workers} workers, pids {pids})", flush=True)
        restarted: set[int] = set()  # indexes of workers started again and not listening yet
        while not signals:
            time.sleep(_POLL)
            for index, worker in enumerate(pool):
                code = worker.proc.poll()
                if code is not None and not signals:
                    pid = worker.proc.pid
                    log.warning("worker %d (pid %d) exited with %s: starting it again", index, pid, code)
                    time.sleep(_RESTART_DELAY)
                    pool[index] = _Worker(worker.argv)
                    restarted.add(index)
                elif index in restarted and worker.ready.is_set():
                    restarted.discard(index)
                    log.warning("worker %d (pid %d) listens again", index, worker.proc.pid)
        return _stop(pool, signals)
    finally:
        reservation.close()


def _stop(pool: list[_Worker], signals: list[int]) -> int:
    """Pass the first signal on and wait; a second one is passed on too (the workers exit at once)."""
    passed = 0
    while True:
        while passed < len(signals):
            for worker in pool:
                worker.signal(signal.SIGTERM if signals[passed] == signal.SIGTERM else signal.SIGINT)
            passed += 1
        if all(worker.proc.poll() is not None for worker in pool):
            return 0
        time.sleep(0.05)
