"""The chaos proxy forwards, resets, blackholes, delays, throttles and cuts real TCP traffic."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from pyrt.pytest_plugin.proxy import ChaosProxy, ResetSchedule
from pyrt.pytest_plugin.waiting import wait_until


class EchoServer:
    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                return


@pytest.fixture
def proxy() -> Iterator[ChaosProxy]:
    echo = EchoServer()
    with ChaosProxy(echo.port) as chaos:
        yield chaos
    echo.sock.close()


def connect(proxy: ChaosProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    wait_until(lambda: proxy.active() >= 1, message="proxy accepted the connection")
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_pass_through_forwards_both_ways(proxy: ChaosProxy) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"hello")
        assert recv_exactly(sock, 5) == b"hello"
    assert proxy.stats.bytes_up == 5


def test_reset_aborts_the_connection_with_an_error(proxy: ChaosProxy) -> None:
    with connect(proxy) as sock:
        assert proxy.reset() == 1
        sock.settimeout(5)
        with pytest.raises(ConnectionResetError):
            sock.recv(100)
    assert proxy.stats.resets == 1


def test_blackhole_keeps_the_socket_open_but_forwards_nothing(proxy: ChaosProxy) -> None:
    with connect(proxy) as sock:
        proxy.set(mode="blackhole")
        sock.sendall(b"into the void")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(100)
        wait_until(lambda: proxy.stats.dropped_bytes == 13, message="bytes dropped")
        proxy.set(mode="pass")
        sock.settimeout(5)
        sock.sendall(b"back")
        assert recv_exactly(sock, 4) == b"back"


def test_latency_delays_every_chunk(proxy: ChaosProxy) -> None:
    proxy.set(latency=0.1)
    with connect(proxy) as sock:
        started = time.monotonic()
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"
        assert time.monotonic() - started >= 0.2  # once up, once down


def test_bandwidth_cap_throttles_throughput(proxy: ChaosProxy) -> None:
    proxy.set(bandwidth=20_000)
    with connect(proxy) as sock:
        started = time.monotonic()
        sock.sendall(b"x" * 10_000)
        assert len(recv_exactly(sock, 10_000)) == 10_000
        assert time.monotonic() - started >= 0.4


def test_cut_after_resets_once_the_byte_budget_is_spent(proxy: ChaosProxy) -> None:
    proxy.set(cut_after=100)
    with connect(proxy) as sock:
        sock.sendall(b"a" * 40)
        assert recv_exactly(sock, 40) == b"a" * 40  # 80 bytes carried
        sock.sendall(b"b" * 40)  # 80 + 40 > 100: the proxy cuts instead of forwarding
        try:
            received = recv_exactly(sock, 40)
        except ConnectionResetError:
            received = b""
        assert received == b""
    assert proxy.stats.events[-1] == "cut after 80 bytes"


def test_unknown_settings_are_refused_and_change_nothing(proxy: ChaosProxy) -> None:
    with pytest.raises(AttributeError, match=r"no setting 'speed' \(it has bandwidth, cut_after"):
        proxy.set(mode="blackhole", speed=3)
    assert proxy.mode == "pass"


def test_a_fault_lasts_for_its_block_then_the_previous_settings_return(proxy: ChaosProxy) -> None:
    proxy.set(latency=0.01)
    with connect(proxy) as sock:
        with proxy.fault(mode="blackhole", latency=0.0):
            assert (proxy.mode, proxy.latency) == ("blackhole", 0.0)
            sock.sendall(b"lost")
            wait_until(lambda: proxy.stats.dropped_bytes == 4, message="bytes dropped in the block")
        assert (proxy.mode, proxy.latency) == ("pass", 0.01)
        sock.sendall(b"kept")
        assert recv_exactly(sock, 4) == b"kept"


def test_the_proxy_has_http_and_websocket_addresses_and_reports_its_events(proxy: ChaosProxy) -> None:
    assert proxy.url == f"http://127.0.0.1:{proxy.port}"
    assert proxy.ws_url == f"ws://127.0.0.1:{proxy.port}"
    mark = proxy.mark()
    assert proxy.report(mark) == ""  # nothing happened since
    with connect(proxy):
        proxy.reset()
    report = proxy.report(mark)
    assert report.splitlines()[0] == "reset 1"
    assert "accepted 1" in report


def test_a_reset_schedule_cuts_connections_until_it_stops(proxy: ChaosProxy) -> None:
    with connect(proxy), ResetSchedule(proxy, low=0.01, high=0.02, seed=1) as schedule:
        wait_until(lambda: schedule.connections_cut >= 1, message="the schedule cut the connection")
    assert not schedule.running  # stopped with the block: no reset can follow
    with pytest.raises(ValueError, match="low <= high"):
        ResetSchedule(proxy, low=0.5, high=0.1)


def test_blackhole_existing_drops_current_connections_while_new_ones_pass(proxy: ChaosProxy) -> None:
    with connect(proxy) as old:
        assert proxy.blackhole_existing() == 1
        old.sendall(b"lost")
        with connect(proxy) as new:
            new.sendall(b"fresh")
            assert recv_exactly(new, 5) == b"fresh"
        old.settimeout(0.3)
        with pytest.raises(TimeoutError):
            old.recv(100)


def test_blackhole_existing_can_drop_one_direction_only(proxy: ChaosProxy) -> None:
    with connect(proxy) as sock:
        proxy.blackhole_existing(("down",))
        sock.sendall(b"up only")
        wait_until(lambda: proxy.stats.bytes_up == 7, message="the upstream direction still flows")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(100)  # the echo was dropped on its way down


def test_refuse_resets_new_connections_at_once(proxy: ChaosProxy) -> None:
    proxy.set(refuse=True)
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
            sock.sendall(b"x")
            received = sock.recv(100)
    except (ConnectionResetError, BrokenPipeError):
        received = b""
    assert received == b""  # reset (or closed) without a byte of answer
    assert proxy.stats.events[-1] == "refused a connection"
    proxy.set(refuse=False)
    with connect(proxy) as sock:
        sock.sendall(b"ok")
        assert recv_exactly(sock, 2) == b"ok"


def test_retarget_sends_new_connections_to_another_upstream(proxy: ChaosProxy) -> None:
    other = EchoServer()
    try:
        proxy.retarget(other.port)
        with connect(proxy) as sock:
            sock.sendall(b"there")
            assert recv_exactly(sock, 5) == b"there"
    finally:
        other.sock.close()


def test_a_small_receive_buffer_keeps_a_capped_link_from_hoarding_bytes(proxy: ChaosProxy) -> None:
    proxy.set(bandwidth=20_000, rcvbuf=4096)
    with connect(proxy) as sock:
        sock.sendall(b"y" * 2_000)
        assert recv_exactly(sock, 2_000) == b"y" * 2_000
