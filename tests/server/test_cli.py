"""serve.py as a process: SIGTERM closes every client with 1001 (asking them to spread their
reconnects) and exits 0; TLS with a self-signed cert."""

from __future__ import annotations

import contextlib
import dataclasses
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.cli import connection_caps, file_limit, parse_args, settings_from_args
from pyrt.server.settings import ADMIN_TOKEN_ENV, FLAG, TOKEN_SECRET_ENV, Settings
from pyrt.wire.reconnect_window import parse_reason
from tests import REPO, skip_outside_ci
from tests.server.test_sse_endpoint import open_stream
from tests.server.wsclient import Client, run


def test_flags_become_settings() -> None:
    args = parse_args(["--allowed-origin", "https://a", "--allowed-origin", "https://b", "--no-demo"])
    settings = settings_from_args(args)
    assert settings.allowed_origins == ("https://a", "https://b")
    assert settings.demo is False
    assert (args.host, args.port) == ("127.0.0.1", 8000)


def test_parsing_no_flags_gives_the_default_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_SECRET_ENV, raising=False)
    assert settings_from_args(parse_args([])) == Settings()


def test_the_token_secret_defaults_to_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_SECRET_ENV, "from-the-environment")
    assert settings_from_args(parse_args([])).token_secret == "from-the-environment"
    assert settings_from_args(parse_args(["--token-secret", "given"])).token_secret == "given"


def _other_value(name: str, default: Any, tmp_path: Path) -> tuple[list[str], Any]:
    """Arguments that set field ``name`` to something else than ``default``, and that value."""
    option = next(spec for spec in dataclasses.fields(Settings) if spec.name == name).metadata[FLAG]
    if isinstance(default, bool):
        return ([f"--no-{option.name[2:]}"] if default else [option.name]), not default
    if isinstance(default, tuple):
        return [option.name, "a", option.name, "b"], ("a", "b")
    if isinstance(default, Path):
        return [option.name, str(tmp_path)], tmp_path.resolve()
    if isinstance(default, str):  # long enough for a token (admin_token takes 16 characters or more)
        return [option.name, "other-value-0123"], "other-value-0123"
    return [option.name, str(default + 1)], default + 1


def test_every_flag_sets_its_own_field_and_no_other(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_SECRET_ENV, raising=False)
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    defaults = Settings()
    for spec in dataclasses.fields(Settings):
        if spec.metadata[FLAG] is None:
            continue
        argv, value = _other_value(spec.name, getattr(defaults, spec.name), tmp_path)
        settings = settings_from_args(parse_args(argv))
        assert getattr(settings, spec.name) == value, argv
        assert dataclasses.replace(settings, **{spec.name: getattr(defaults, spec.name)}) == defaults, argv


def test_renamed_flags_still_set_their_fields() -> None:
    settings = settings_from_args(
        parse_args(
            ["--name", "edge-1", "--sse-retry", "250", "--max-history-page", "10", "--inbox-bytes", "99"]
        )
    )
    assert (settings.server_name, settings.sse_retry_ms) == ("edge-1", 250)
    assert (settings.history_page_limit, settings.total_inbox_bytes) == (10, 99)


def test_connection_caps_stay_below_the_file_limit_and_one_address_gets_at_most_half() -> None:
    assert connection_caps(Settings(), files=65_536) == (10_000, 1_000)
    assert connection_caps(Settings(), files=1024) == (896, 448)
    assert connection_caps(Settings(max_connections=0, max_connections_per_ip=0), files=2048) == (1920, 0)


def test_the_file_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert file_limit() >= soft
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] in (hard, file_limit())


def test_demo_mode_and_a_token_secret_cannot_be_combined() -> None:
    with pytest.raises(ValueError, match="demo mode cannot be combined"):
        settings_from_args(parse_args(["--demo", "--token-secret", "s"]))


def test_pages_and_node_modules_folders_become_absolute_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = settings_from_args(parse_args(["--web-dir", "site", "--node-modules", "deps"]))
    assert settings.web_dir == tmp_path / "site"
    assert settings.node_modules == tmp_path / "deps"
    assert settings_from_args(parse_args([])).web_dir == Settings().web_dir


def test_python_dash_m_pyrt_server_is_the_same_command_line() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pyrt.server", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--web-dir" in out
    assert "--node-modules" in out


def test_help_lists_the_documented_flags() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "serve.py"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in (
        "--host",
        "--port",
        "--redis",
        "--allowed-origin",
        "--allowed-host",
        "--forwarded-allow-ips",
        "--token-secret",
        "--demo",
        "--echo",
        "--certfile",
        "--history-bytes",
        "--publish-rate",
        "--max-connections",
        "--body-timeout",
        "--max-head-bytes",
    ):
        assert flag in out


def test_sigterm_closes_websockets_with_1001_after_their_acks_and_ends_sse(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    srv = pyrt_start_server("--demo-tick", "0")

    async def scenario() -> None:
        client = await Client.connect(srv.ws_url)
        async with httpx.AsyncClient(timeout=5) as http:
            stream = await open_stream(http, srv.url, params={"channel": "feed"})
            await stream.read_until(lambda s: s.decoder.retry is not None)
            sent = [f"m-{n}" for n in range(20)]
            for message_id in sent:
                await client.send({"type": "message", "id": message_id, "data": message_id})
            srv.proc.send_signal(signal.SIGTERM)
            acked = []
            try:
                while True:
                    frame = await client.recv()
                    if frame["type"] == "ack":
                        acked.append(frame["id"])
            except Exception:
                pass
            assert client.ws.close_code == 1001
            assert acked == sent[: len(acked)]  # in order, none skipped before the close
            ended = False
            try:
                await stream.read_until(lambda s: False)
            except StopAsyncIteration:
                ended = True  # the stream ended cleanly (not a read error)
            assert ended

    run(scenario())
    assert srv.proc.wait(10) == 0


def _hold_open(port: int) -> socket.socket:
    """A WebSocket that never reads nor answers the close: the drain waits for it (grace)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def test_sigterm_asks_clients_to_spread_their_reconnects_and_refuses_newcomers_with_retry_after(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    # 2 clients per second: 4 WebSockets + 2 SSE streams + the one holding the drain open = 3.5 s.
    srv = pyrt_start_server("--demo-tick", "0", "--reconnect-rate", "2", "--shutdown-grace", "8")

    async def scenario() -> None:
        clients = [await Client.connect(srv.ws_url) for _ in range(4)]
        holder = _hold_open(srv.port)
        async with httpx.AsyncClient(timeout=5) as http:
            streams = [await open_stream(http, srv.url, params={"channel": "feed"}) for _ in range(2)]
            for stream in streams:
                await stream.read_until(lambda s: s.decoder.retry == 1000)
            srv.proc.send_signal(signal.SIGTERM)
            reasons = []
            for client in clients:
                assert await client.close_code() == 1001
                assert client.ws.close_reason is not None
                reasons.append(client.ws.close_reason)
            hints = [parse_reason(reason) for reason in reasons]
            assert all(reason.startswith("server shutting down") for reason in reasons)
            assert {hint.window for hint in hints if hint is not None} == {3.5}
            retries = []
            for stream in streams:
                with contextlib.suppress(StopAsyncIteration):  # the stream ends
                    await stream.read_until(lambda s: False)
                retries.append(stream.decoder.retry)
            assert all(retry is not None and 0 < retry <= 3500 for retry in retries), retries
            # The drain is still waiting for the holder: newcomers are told when to come back.
            with pytest.raises(websockets.InvalidStatus) as refused:
                await Client.connect(srv.ws_url)
            response = refused.value.response
            assert response.status_code == 503
            assert 1 <= int(response.headers["retry-after"]) <= 4
            sse = await http.get(srv.url + "/sse", params={"channel": "feed"})
            assert sse.status_code == 503
            assert 1 <= int(sse.headers["retry-after"]) <= 4
        holder.close()

    run(scenario())
    assert srv.proc.wait(15) == 0


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        skip_outside_ci("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_serves_https_and_wss(
    pyrt_start_server: Callable[..., ServerProcess], certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    srv = pyrt_start_server("--certfile", str(cert), "--keyfile", str(key), "--demo-tick", "0")
    assert srv.url.startswith("https://127.0.0.1:")
    context = ssl.create_default_context(cafile=str(cert))
    assert httpx.get(srv.url + "/healthz", verify=context).json() == {"status": "ok", "demo": False}
    with pytest.raises(httpx.ConnectError):
        httpx.get(srv.url + "/healthz")  # not trusted without the certificate

    async def scenario() -> None:
        client = await Client.connect(srv.ws_url, ssl=context)
        assert srv.ws_url.startswith("wss://")
        await client.send({"type": "ping", "t": "secure"})
        assert (await client.expect("pong"))["t"] == "secure"
        await client.close()

    run(scenario())


def test_certfile_without_keyfile_is_refused() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "serve.py"), "--certfile", "x.pem"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "--keyfile" in result.stderr


def test_serve_py_collects_garbage_less_often_and_never_rescans_its_start_up() -> None:
    import gc

    from pyrt.server.cli import _GC_THRESHOLDS, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == _GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
