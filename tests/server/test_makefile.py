"""``make demo`` as a reader of the README runs it: ``make demo PORT=8123`` serves the demo there."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import urllib.request

from tests import REPO

READY = "pyrt-serve listening on "


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_make_demo_serves_the_demo_on_the_port_and_host_it_is_given() -> None:
    port = free_port()
    # -o setup: the demo recipe itself, without re-checking the setup it depends on (make test
    # has done it); everything else as typed.
    make = subprocess.Popen(
        ["make", "-s", "-o", "setup", "demo", f"PORT={port}", "HOST=127.0.0.1"],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # make and the server: one group, stopped together
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert make.stdout is not None
        for raw in make.stdout:
            lines.append(raw.decode(errors="replace").rstrip("\n"))
            if lines[-1].startswith(READY):
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(60), "make demo did not start the server within 60 s:\n" + "\n".join(lines)
        listening = [line.removeprefix(READY) for line in lines if line.startswith(READY)]
        assert listening == [f"http://127.0.0.1:{port}"], "\n".join(lines)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
            assert json.loads(answer.read()) == {"status": "ok", "demo": True}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as answer:
            assert "pyrt — live demo" in answer.read().decode()
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        try:
            make.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait(5)
