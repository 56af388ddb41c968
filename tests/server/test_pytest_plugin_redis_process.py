"""RedisServer starts a private redis-server that answers, leaves nothing behind, or says it is missing."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pyrt.pytest_plugin.redis_process import RedisServer, RedisUnavailable, free_port


def ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64)


def test_a_redis_server_answers_on_its_own_port_and_cleans_up() -> None:
    try:
        redis = RedisServer()
    except RedisUnavailable as exc:
        pytest.skip(str(exc))
    with redis:
        assert redis.url == f"redis://127.0.0.1:{redis.port}/0"
        assert ping(redis.port).startswith(b"+PONG")
        folder = Path(redis.dir.name)
        assert folder.is_dir()
    assert redis.proc.poll() is not None
    assert not folder.exists()


def test_without_redis_server_on_the_path_the_error_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(RedisUnavailable, match="apt-get install redis-server"):
        RedisServer()


def test_free_ports_are_loopback_ports_nobody_listens_on() -> None:
    port = free_port()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
