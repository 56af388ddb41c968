"""Command line: ``python serve.py [--host H] [--port P] [--redis URL] [--allowed-origin O ...]
[--token-secret S] [--demo/--no-demo] [--certfile F --keyfile F] ...`` (``--help`` lists all).

On SIGTERM (or Ctrl-C) the server closes every WebSocket with 1001 and ends every SSE stream,
after what was queued for each (acks included), then exits 0. A second signal exits at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Sequence
from types import FrameType

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pyrt.server.app import PyrtApp, create_app
from pyrt.server.auth import make_token
from pyrt.server.brokers.base import Broker
from pyrt.server.settings import Settings

__all__ = ["main", "parse_args", "settings_from_args"]

log = logging.getLogger("pyrt.server")

TOKEN_SECRET_ENV = "PYRT_TOKEN_SECRET"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    d = Settings()
    p = argparse.ArgumentParser(prog="serve.py", description="The pyrt reference server.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (0 picks a free one; default 8000)")
    p.add_argument("--redis", metavar="URL", help="share channels through Redis Streams (redis://host:port/db)")
    p.add_argument("--redis-prefix", default="pyrt:", help="prefix of every Redis key (default pyrt:)")
    p.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="also allow browsers from ORIGIN (repeatable; '*' allows any); the own origin always is",
    )
    p.add_argument(
        "--token-secret",
        default=os.environ.get(TOKEN_SECRET_ENV, ""),
        help=f"require signed tokens (HMAC secret; or set ${TOKEN_SECRET_ENV}). Without it auth is off",
    )
    p.add_argument("--make-token", metavar="SUBJECT", help="print a token for SUBJECT and exit")
    p.add_argument("--token-ttl", type=float, default=3600.0, help="--make-token lifetime in seconds")
    p.add_argument(
        "--demo",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="serve the demo controls and feed (default: on)",
    )
    p.add_argument("--certfile", help="TLS certificate (PEM): serve https:// and wss://")
    p.add_argument("--keyfile", help="TLS private key (PEM)")
    p.add_argument("--name", default="", help="server name sent in welcome (default pyrt-<pid>)")
    p.add_argument("--heartbeat", type=float, default=d.heartbeat, help="WebSocket heartbeat seconds")
    p.add_argument("--sse-heartbeat", type=float, default=d.sse_heartbeat, help="SSE heartbeat seconds")
    p.add_argument("--sse-retry", type=int, default=d.sse_retry_ms, help="SSE retry: milliseconds")
    p.add_argument(
        "--sse-gzip",
        action=argparse.BooleanOptionalAction,
        default=d.sse_gzip,
        help="gzip SSE streams for clients that accept it (default: on)",
    )
    p.add_argument("--retention", type=int, default=d.retention, help="publications kept per channel")
    p.add_argument("--max-message-bytes", type=int, default=d.max_message_bytes, help="message size limit")
    p.add_argument("--rate-limit", type=float, default=d.rate_limit, help="frames/s per connection (0: off)")
    p.add_argument("--rate-burst", type=int, default=d.rate_burst, help="frames allowed in a burst")
    p.add_argument("--abuse-limit", type=int, default=d.abuse_limit, help="refused frames before close 1008")
    p.add_argument(
        "--max-connections-per-ip", type=int, default=d.max_connections_per_ip, help="0: unlimited"
    )
    p.add_argument("--send-queue-bytes", type=int, default=d.send_queue_bytes, help="slow-consumer limit")
    p.add_argument("--handshake-timeout", type=float, default=d.handshake_timeout, help="seconds")
    p.add_argument("--shutdown-grace", type=float, default=d.shutdown_grace, help="seconds")
    p.add_argument("--dedup-ttl", type=float, default=d.dedup_ttl, help="seconds ids are remembered")
    p.add_argument("--demo-tick", type=float, default=d.demo_tick, help="seconds between feed ticks (0: off)")
    p.add_argument("--connect-src", action="append", default=[], help="extra CSP connect-src source")
    p.add_argument(
        "--ws-deflate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="negotiate permessage-deflate (default: on)",
    )
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings(
        demo=args.demo,
        server_name=args.name,
        allowed_origins=tuple(args.allowed_origin),
        token_secret=args.token_secret,
        connect_src=tuple(args.connect_src),
        max_message_bytes=args.max_message_bytes,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        abuse_limit=args.abuse_limit,
        max_connections_per_ip=args.max_connections_per_ip,
        send_queue_bytes=args.send_queue_bytes,
        handshake_timeout=args.handshake_timeout,
        heartbeat=args.heartbeat,
        sse_heartbeat=args.sse_heartbeat,
        sse_retry_ms=args.sse_retry,
        sse_gzip=args.sse_gzip,
        shutdown_grace=args.shutdown_grace,
        retention=args.retention,
        dedup_ttl=args.dedup_ttl,
        demo_tick=args.demo_tick,
    )


def _http_protocol(timeout: float) -> type[HttpToolsProtocol]:
    """uvicorn's HTTP protocol, plus: drop a socket that sends no complete request head in time."""

    class TimedHttpProtocol(HttpToolsProtocol):
        _pyrt_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if timeout > 0:
                self._pyrt_timer = self.loop.call_later(timeout, self._pyrt_expire)

        def _pyrt_expire(self) -> None:
            self._pyrt_timer = None
            if self.cycle is None and not self.transport.is_closing():
                self.transport.abort()

        def on_headers_complete(self) -> None:
            if self._pyrt_timer is not None:
                self._pyrt_timer.cancel()
                self._pyrt_timer = None
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._pyrt_timer is not None:
                self._pyrt_timer.cancel()
                self._pyrt_timer = None
            super().connection_lost(exc)

    return TimedHttpProtocol


class GracefulServer(uvicorn.Server):
    """uvicorn, but the first SIGTERM/SIGINT drains pyrt clients (1001) before uvicorn shuts down."""

    def __init__(self, config: uvicorn.Config, app: PyrtApp) -> None:
        super().__init__(config)
        self.pyrt_app = app
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining:
            self.force_exit = True
            self.should_exit = True
            return
        self._draining = True
        loop = asyncio.get_event_loop()
        loop.call_soon_threadsafe(lambda: loop.create_task(self._drain()))

    async def _drain(self) -> None:
        log.info("shutting down: closing every client with 1001")
        try:
            await self.pyrt_app.runtime.drain()
        finally:
            self.should_exit = True


def _make_broker(args: argparse.Namespace, settings: Settings) -> Broker | None:
    if not args.redis:
        return None
    from pyrt.server.brokers.redis import RedisBroker

    return RedisBroker(
        args.redis,
        retention=settings.retention,
        dedup_ttl=settings.dedup_ttl,
        prefix=args.redis_prefix,
    )


async def _serve(args: argparse.Namespace) -> None:
    settings = settings_from_args(args)
    broker = _make_broker(args, settings)
    app = create_app(settings, broker=broker)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    tls = bool(args.certfile)
    config = uvicorn.Config(
        app,
        log_level=args.log_level,
        lifespan="on",
        http=_http_protocol(settings.handshake_timeout),
        ws="websockets-sansio",
        ws_max_size=settings.max_message_bytes,
        ws_per_message_deflate=args.ws_deflate,
        ssl_certfile=args.certfile,
        ssl_keyfile=args.keyfile,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace)),
        server_header=False,
    )
    server = GracefulServer(config, app)
    log.info("broker: %s", "redis" if broker is not None else "memory")
    # One machine-readable line: tests and scripts read the URL from it.
    print(f"pyrt-serve listening on {'https' if tls else 'http'}://{host}:{port}", flush=True)
    await server.serve(sockets=[sock])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.make_token:
        if not args.token_secret:
            print(f"--make-token needs --token-secret or ${TOKEN_SECRET_ENV}", file=sys.stderr)
            return 2
        print(make_token(args.token_secret, args.make_token, args.token_ttl))
        return 0
    if bool(args.certfile) != bool(args.keyfile):
        print("--certfile and --keyfile go together", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0
