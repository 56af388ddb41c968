"""The chaos proxy forwards, resets, blackholes, delays, throttles and cuts real TCP traffic."""

from __future__ import annotations

import contextlib
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
    with pytest.raises(
        AttributeError, match=r"no setting .speed. \(it has bandwidth, buffer_streams, cut_after"
    ):
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


# ------------------------------------------------------------------ hostile middleboxes

UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
PLAIN = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class HeadServer:
    """Records the request head of each connection and answers as told."""

    def __init__(self, answer: bytes, then: bytes = b"") -> None:
        self.answer, self.then = answer, then
        self.heads: list[bytes] = []
        self.received: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            try:
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                self.heads.append(head)
                conn.sendall(self.answer)
                if self.then:
                    conn.sendall(self.then)
                while data := conn.recv(65536):
                    self.received.append(data)
            except OSError:
                return


@contextlib.contextmanager
def hostile(server: HeadServer, **settings: object) -> Iterator[ChaosProxy]:
    with ChaosProxy(server.port) as chaos:
        chaos.set(**settings)
        yield chaos


def read_all(sock: socket.socket, timeout: float = 2.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        pass
    return data


SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


def test_refuse_upgrade_answers_a_websocket_upgrade_with_the_status_and_passes_plain_requests() -> None:
    server = HeadServer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    with hostile(server, refuse_upgrade=403) as chaos:
        sock = socket.create_connection(("127.0.0.1", chaos.port), timeout=5)
        sock.sendall(UPGRADE)
        assert read_all(sock).startswith(b"HTTP/1.1 403 ")
        assert server.heads == []  # the server never saw it
        plain = socket.create_connection(("127.0.0.1", chaos.port), timeout=5)
        plain.sendall(PLAIN)
        assert recv_exactly(plain, 5) == b"HTTP/"
        assert "refused an upgrade with 403" in chaos.stats.events


def test_strip_upgrade_turns_the_upgrade_into_a_plain_get() -> None:
    server = HeadServer(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n")
    with hostile(server, strip_upgrade=True) as chaos:
        sock = socket.create_connection(("127.0.0.1", chaos.port), timeout=5)
        sock.sendall(UPGRADE)
        assert read_all(sock, 1.0).startswith(b"HTTP/1.1 426")
        wait_until(lambda: len(server.heads) == 1, message="the server got the request")
        head = server.heads[0].lower()
        assert b"upgrade:" not in head
        assert b"connection:" not in head
        assert head.startswith(b"get /ws http/1.1")


def test_swallow_upgraded_passes_the_101_then_nothing_either_way() -> None:
    server = HeadServer(SWITCHING, then=b"\x81\x05hello")
    with hostile(server, swallow_upgraded=True) as chaos:
        sock = socket.create_connection(("127.0.0.1", chaos.port), timeout=5)
        sock.sendall(UPGRADE)
        assert read_all(sock, 1.0) == SWITCHING  # the frame after it is swallowed
        sock.sendall(b"\x81\x85abcd" + b"12345")
        wait_until(lambda: chaos.stats.dropped_bytes >= 7 + 10, message="both directions dropped")
        assert server.received == []


def test_buffer_streams_holds_a_chunked_response_back_until_it_ends_but_not_an_event_stream() -> None:
    held = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n"
    server = HeadServer(held, then=b"6\r\nsecond\r\n0\r\n\r\n")
    with hostile(server, buffer_streams=True) as chaos:
        sock = socket.create_connection(("127.0.0.1", chaos.port), timeout=5)
        sock.sendall(PLAIN)
        data = read_all(sock, 1.0)
        assert data.endswith(b"0\r\n\r\n")  # it all arrived at once, at its end
        assert "holding a streamed response back until it ends" in chaos.stats.events
    stream = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    sse = HeadServer(stream + b"6\r\ndata:1\r\n")
    with hostile(sse, buffer_streams=True) as chaos:
        sock = socket.create_connection(("127.0.0.1", chaos.port), timeout=5)
        sock.sendall(PLAIN)
        assert read_all(sock, 1.0).endswith(b"data:1\r\n")  # passes as it comes


def test_idle_timeout_cuts_a_quiet_connection_and_spares_a_busy_one(proxy: ChaosProxy) -> None:
    proxy.set(idle_timeout=0.4)
    quiet = connect(proxy)
    busy = connect(proxy)
    busy.settimeout(5)
    deadline = time.monotonic() + 5
    while not any("idle for 0.4 s" in event for event in proxy.stats.events):
        assert time.monotonic() < deadline, "the quiet connection was never cut"
        busy.sendall(b"x")  # traffic every 0.05 s, as a heartbeat keeps a connection busy
        assert recv_exactly(busy, 1) == b"x"
        time.sleep(0.05)
    busy.sendall(b"z")
    assert recv_exactly(busy, 1) == b"z"  # the busy one is still there
    quiet.settimeout(5)
    with pytest.raises(ConnectionError):
        quiet.recv(1)
