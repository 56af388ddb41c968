"""ServerProcess runs pyrt's server on a free port, keeps its log, restarts it in place, reads metrics."""

from __future__ import annotations

import signal
import sys
import urllib.request
from pathlib import Path

import pytest

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.pytest_plugin.waiting import wait_until


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return int(answer.status)


@pytest.fixture
def server() -> ServerProcess:
    proc = ServerProcess("--demo-tick", "0", "--name", "under-test")
    yield proc  # type: ignore[misc]
    proc.stop()


def test_the_server_listens_on_a_free_loopback_port_and_logs(server: ServerProcess) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    assert server.ws_url == "ws" + server.url[4:]
    assert server.port > 0
    assert get(server.url + "/healthz") == 200
    assert f"pyrt-serve listening on {server.url}" in server.log_text()
    # The access log line follows the answer: it arrives a moment later.
    wait_until(lambda: "GET /healthz" in server.log_text(), 10, "the access log shows the request")


def test_a_restart_keeps_the_address_and_the_log(server: ServerProcess) -> None:
    first_pid = server.proc.pid
    assert server.restart(signal.SIGKILL) == -signal.SIGKILL
    assert server.proc.pid != first_pid
    assert server.alive()
    assert get(server.url + "/healthz") == 200  # the same URL answers again
    log = server.log_text()
    assert "restarting" in log
    assert log.count("pyrt-serve listening on") == 2
    assert server.restarts == 1


def test_a_stopped_server_restarts_when_asked(server: ServerProcess) -> None:
    assert server.stop() == 0  # SIGTERM: a graceful drain
    assert not server.alive()
    server.restart()
    assert get(server.url + "/healthz") == 200


def test_metrics_are_read_by_name_and_labels(server: ServerProcess) -> None:
    assert server.metric("pyrt_connections", transport="websocket") == 0.0
    assert server.metric("no_such_metric_anywhere") == 0.0
    assert server.metric("process_start_time_seconds") > 0


def test_the_report_holds_the_lines_written_since_the_mark(server: ServerProcess) -> None:
    mark = server.mark()
    assert server.report(mark) == ""
    get(server.url + "/healthz")
    server.stop()
    report = server.report(mark)
    assert "GET /healthz" in report
    assert "pyrt-serve listening" not in report  # written before the mark
    assert report.endswith("(the process has exited with code 0)")
    assert server.finished


def test_a_server_that_cannot_start_raises_with_its_output() -> None:
    with pytest.raises(RuntimeError, match="exited before listening") as failed:
        ServerProcess("--port", "not-a-number")
    assert "invalid int value" in str(failed.value)


def test_any_command_that_prints_the_ready_line_can_be_run() -> None:
    script = "import sys, time\nprint('booting', sys.argv[1:])\nprint('pyrt-serve listening on http://127.0.0.1:9')\n"
    own = ServerProcess(command=[sys.executable, "-u", "-c", script + "time.sleep(60)"])
    try:
        assert own.url == "http://127.0.0.1:9"
        assert "booting ['--host', '127.0.0.1', '--port', '0']" in own.log_text()
    finally:
        assert own.stop() == -signal.SIGTERM


def test_the_open_file_limit_and_the_memory_of_the_process() -> None:
    limited = ServerProcess("--demo-tick", "0", files=512)
    try:
        limits = Path(f"/proc/{limited.proc.pid}/limits").read_text()
        assert [line.split()[3:5] for line in limits.splitlines() if line.startswith("Max open files")] == [
            ["512", "512"]
        ]
        assert 10 < limited.rss_mib() < 2000
    finally:
        limited.stop()
