"""Command line: ``python serve.py [--host H] [--port P] [--redis URL] [--allowed-origin O ...]
[--allowed-host NAME ...] [--token-secret S] [--demo] [--certfile F --keyfile F] ...`` (``--help``
lists all; docs/server.md explains every limit).

Below the application, :mod:`pyrt.server.protocols` caps connections (in all, per address) and
bounds every request head and body; the open-file limit is raised to its hard limit at start.

On SIGTERM (or Ctrl-C) the server closes every WebSocket with 1001 and ends every SSE stream,
after what was queued for each (acks included), then exits 0. A second signal exits at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import ipaddress
import json
import logging
import os
import resource
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import uvicorn

from pyrt.redact import RedactSecrets
from pyrt.server.app import PyrtApp, create_app
from pyrt.server.auth import make_token
from pyrt.server.brokers.base import Broker
from pyrt.server.protocols import HttpLimits, Ledger, protocols
from pyrt.server.settings import Settings
from pyrt.server.workers import WORKERS_NEED_REDIS, supervise

__all__ = ["connection_caps", "file_limit", "main", "parse_args", "settings_from_args", "tune_gc"]

log = logging.getLogger("pyrt.server")

TOKEN_SECRET_ENV = "PYRT_TOKEN_SECRET"
_FILES_WANTED = 65_536  # the open-file limit asked for when the hard limit is unlimited
_FILES_RESERVED = 128  # files kept free for Redis, logs, static files and the listening socket
_ACCEPT_BATCH = 64  # sockets accepted per turn of the event loop (below _FILES_RESERVED)
_LISTEN_BACKLOG = 2048  # connections the kernel queues for accept (a reconnect storm)
#: The garbage collector's thresholds (generation 0 allocations; collections of 0 and of 1 before
#: the next generation's). With thousands of connections the defaults (700, 10, 10) collect the
#: young generation several times per fan-out and keep promoting its short-lived objects, so
#: full collections of every connection's objects (hundreds of ms at 10,000) come every few
#: seconds. Measured at 5,000 subscribers and 16 publications/s: p50 latency 40 ms against 140.
_GC_THRESHOLDS = (20_000, 50, 50)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    d = Settings()
    p = argparse.ArgumentParser(
        prog="serve.py",
        description="The pyrt reference server. Every limit is listed in docs/server.md (Limits and abuse).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (0 picks a free one; default 8000)")
    p.add_argument(
        "--redis", metavar="URL", help="share channels through Redis Streams (redis://host:port/db)"
    )
    p.add_argument("--redis-prefix", default="pyrt:", help="prefix of every Redis key (default pyrt:)")
    p.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="also allow browsers from ORIGIN (repeatable; '*' allows any, without credentials); "
        "the own origin always is",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name this server answers to (repeatable; '.example.com' for a domain and its "
        "subdomains, '*' for any). IP addresses and localhost always work",
    )
    p.add_argument(
        "--forwarded-allow-ips",
        default="",
        metavar="IPS",
        help="comma-separated proxies whose X-Forwarded-For/-Proto are trusted (default: none)",
    )
    p.add_argument(
        "--token-secret",
        default=os.environ.get(TOKEN_SECRET_ENV, ""),
        help=f"require signed tokens (HMAC secret; or set ${TOKEN_SECRET_ENV}). Without it auth is off",
    )
    p.add_argument("--make-token", metavar="SUBJECT", help="print a token for SUBJECT and exit")
    p.add_argument("--token-ttl", type=float, default=3600.0, help="--make-token lifetime in seconds")
    p.add_argument(
        "--token-caps",
        metavar="JSON",
        help="--make-token channel capabilities (JSON), e.g. "
        '\'[{"channels": ["chat"], "allow": ["subscribe", "publish"]}]\' (docs/protocol.md)',
    )
    p.add_argument(
        "--demo",
        action=argparse.BooleanOptionalAction,
        default=d.demo,
        help="serve the demo controls and feed (default: off; refused with a token secret)",
    )
    p.add_argument(
        "--echo",
        action=argparse.BooleanOptionalAction,
        default=d.echo,
        help="serve /echo, a raw WebSocket echo for benchmarks and raw-mode tests (default: off)",
    )
    p.add_argument(
        "--web-dir",
        type=Path,
        default=d.web_dir,
        metavar="DIR",
        help="serve the pages in DIR (default: web/ of the pyrt checkout)",
    )
    p.add_argument(
        "--node-modules",
        type=Path,
        default=d.node_modules,
        metavar="DIR",
        help="where npm installed pyodide and @pyscript/core, served under /vendor/ (default: ./node_modules "
        "of the pyrt checkout)",
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
    limits = p.add_argument_group("limits (docs/server.md, 'Limits and abuse'; 0 turns most off)")
    add = limits.add_argument
    add("--max-message-bytes", type=int, default=d.max_message_bytes, help="message / body size limit")
    add("--rate-limit", type=float, default=d.rate_limit, help="frames/s per WebSocket connection (0: off)")
    add("--rate-burst", type=int, default=d.rate_burst, help="frames allowed in a burst")
    add(
        "--rate-window",
        type=int,
        default=d.rate_window,
        help="frames a client may have unanswered; more refused before it answers: close 1008",
    )
    add(
        "--abuse-limit",
        type=int,
        default=d.abuse_limit,
        help="frames sent after reading a refusal, before its retry_after, tolerated before close 1008",
    )
    add("--send-queue-bytes", type=int, default=d.send_queue_bytes, help="slow-consumer limit per connection")
    add("--max-subscriptions", type=int, default=d.max_subscriptions, help="subscriptions per connection")
    add(
        "--max-channels-per-identity",
        type=int,
        default=d.max_channels_per_identity,
        help="distinct channels one identity's connections may subscribe to together",
    )
    add(
        "--max-subscribed-channels",
        type=int,
        default=d.max_subscribed_channels,
        help="distinct channels this process's clients may subscribe to together",
    )
    add("--max-presence-joins", type=int, default=d.max_presence_joins, help="presence joins per connection")
    add(
        "--max-presence-info-bytes",
        type=int,
        default=d.max_presence_info_bytes,
        help="bytes of one presence info (JSON)",
    )
    add("--max-presence", type=int, default=d.max_presence, help="members of one channel's presence")
    add(
        "--max-presence-per-identity",
        type=int,
        default=d.max_presence_per_identity,
        help="members one identity may have in one channel",
    )
    add("--max-presence-total", type=int, default=d.max_presence_total, help="members in all (memory broker)")
    add("--presence-rate", type=float, default=d.presence_rate, help="presence joins/leaves/s per identity")
    add(
        "--presence-burst",
        type=int,
        default=d.presence_burst,
        help="presence changes in a burst per identity",
    )
    add(
        "--presence-tick",
        type=float,
        default=d.presence_tick,
        help="seconds over which presence changes are gathered into one diff per channel",
    )
    add("--presence-ttl", type=float, default=d.presence_ttl, help="seconds a dead instance's members last")
    add(
        "--presence-grace",
        type=float,
        default=d.presence_grace,
        help="seconds a member of a lost connection stays, awaiting its reconnect",
    )
    add(
        "--max-connections-per-ip",
        type=int,
        default=d.max_connections_per_ip,
        help="open connections per client address (at most half of --max-connections; 0: no cap)",
    )
    add("--max-connections", type=int, default=d.max_connections, help="open TCP connections in all")
    add("--publish-rate", type=float, default=d.publish_rate, help="publications/s per client identity")
    add("--publish-burst", type=int, default=d.publish_burst, help="publications in a burst per identity")
    add(
        "--publish-bytes-rate",
        type=int,
        default=d.publish_bytes_rate,
        help="bytes/s of publication data per identity (what it can hold in history; 0: off)",
    )
    add(
        "--publish-bytes-burst",
        type=int,
        default=d.publish_bytes_burst,
        help="bytes of publication data per identity in a burst",
    )
    add("--query-rate", type=float, default=d.query_rate, help="history/presence reads/s per identity")
    add("--query-burst", type=int, default=d.query_burst, help="history/presence reads in a burst")
    add(
        "--receive-rate",
        type=int,
        default=d.receive_rate,
        help="bytes/s of received WebSocket messages (inflated) per connection; over it, reading waits",
    )
    add(
        "--receive-rate-per-identity",
        type=int,
        default=d.identity_receive_rate,
        help="bytes/s of received WebSocket messages (inflated) per identity",
    )
    add(
        "--max-inflate-ratio",
        type=int,
        default=d.max_inflate_ratio,
        help="a compressed message inflates to at most 16 KiB or this many times its size (0: no cap)",
    )
    add("--refresh-rate", type=float, default=d.refresh_rate, help="token refreshes/s per connection")
    add(
        "--refresh-burst", type=int, default=d.refresh_burst, help="token refreshes in a burst per connection"
    )
    add("--max-history-page", type=int, default=d.history_page_limit, help="publications per history page")
    add(
        "--max-history-page-bytes",
        type=int,
        default=d.history_page_bytes,
        help="bytes of data per history page",
    )
    add("--history-bytes", type=int, default=d.history_bytes, help="bytes of history, all channels (memory)")
    add("--max-channels", type=int, default=d.max_channels, help="channels with history (memory broker)")
    add("--history-ttl", type=float, default=d.history_ttl, help="seconds a publication is retained")
    add("--retention", type=int, default=d.retention, help="publications kept per channel")
    add("--max-replay", type=int, default=d.max_replay, help="publications per replay (0: --retention)")
    add("--max-replay-bytes", type=int, default=d.max_replay_bytes, help="bytes per replay")
    add("--dedup-ttl", type=float, default=d.dedup_ttl, help="seconds ids are remembered")
    add("--dedup-max", type=int, default=d.dedup_max, help="ids remembered in all (memory broker)")
    add("--dedup-per-identity", type=int, default=d.dedup_per_identity, help="ids remembered per identity")
    add(
        "--identity-queue-bytes",
        type=int,
        default=d.identity_queue_bytes,
        help="bytes queued for one identity's connections before large answers are refused",
    )
    add("--handshake-timeout", type=float, default=d.handshake_timeout, help="seconds to send a request head")
    add("--body-timeout", type=float, default=d.body_timeout, help="seconds to send a request body")
    add("--max-head-bytes", type=int, default=d.max_head_bytes, help="bytes of a request head")
    add(
        "--cpu-share-per-ip",
        type=float,
        default=d.cpu_share_per_ip,
        help="share of one core that reading one address's input may take (0: no budget)",
    )
    add("--cpu-burst", type=float, default=d.cpu_burst, help="seconds of work an address may cause at once")
    add(
        "--inbox-bytes-per-ip",
        type=int,
        default=d.address_inbox_bytes,
        help="received WebSocket bytes waiting to be handled, per address",
    )
    add("--inbox-bytes", type=int, default=d.total_inbox_bytes, help="received WebSocket bytes waiting")
    p.add_argument("--shutdown-grace", type=float, default=d.shutdown_grace, help="seconds")
    p.add_argument(
        "--reconnect-rate",
        type=float,
        default=d.reconnect_rate,
        help="clients per second a restart takes back: SIGTERM spreads reconnects over n/rate s (0: off)",
    )
    p.add_argument("--demo-tick", type=float, default=d.demo_tick, help="seconds between feed ticks (0: off)")
    p.add_argument("--connect-src", action="append", default=[], help="extra CSP connect-src source")
    p.add_argument(
        "--ws-deflate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="negotiate permessage-deflate (default: on)",
    )
    p.add_argument(
        "--ws-deflate-context",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="keep the compression context between messages (default: off; ~40 KiB more per "
        "connection, smaller frames when messages repeat)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes serving the port (SO_REUSEPORT), sharing channels through --redis (default 1)",
    )
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)  # a worker's socket
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The :class:`Settings` the flags describe (:class:`ValueError` for a contradiction)."""
    return Settings(
        web_dir=args.web_dir.resolve(),
        node_modules=args.node_modules.resolve(),
        demo=args.demo,
        echo=args.echo,
        server_name=args.name,
        allowed_origins=tuple(args.allowed_origin),
        allowed_hosts=tuple(args.allowed_host),
        token_secret=args.token_secret,
        connect_src=tuple(args.connect_src),
        max_message_bytes=args.max_message_bytes,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        rate_window=args.rate_window,
        abuse_limit=args.abuse_limit,
        reconnect_rate=args.reconnect_rate,
        max_connections_per_ip=args.max_connections_per_ip,
        send_queue_bytes=args.send_queue_bytes,
        max_subscriptions=args.max_subscriptions,
        max_channels_per_identity=args.max_channels_per_identity,
        max_subscribed_channels=args.max_subscribed_channels,
        max_presence_joins=args.max_presence_joins,
        max_presence_info_bytes=args.max_presence_info_bytes,
        max_presence=args.max_presence,
        max_presence_per_identity=args.max_presence_per_identity,
        max_presence_total=args.max_presence_total,
        presence_rate=args.presence_rate,
        presence_burst=args.presence_burst,
        presence_tick=args.presence_tick,
        presence_ttl=args.presence_ttl,
        presence_grace=args.presence_grace,
        handshake_timeout=args.handshake_timeout,
        publish_rate=args.publish_rate,
        publish_burst=args.publish_burst,
        publish_bytes_rate=args.publish_bytes_rate,
        publish_bytes_burst=args.publish_bytes_burst,
        dedup_per_identity=args.dedup_per_identity,
        identity_queue_bytes=args.identity_queue_bytes,
        query_rate=args.query_rate,
        query_burst=args.query_burst,
        refresh_rate=args.refresh_rate,
        receive_rate=args.receive_rate,
        identity_receive_rate=args.receive_rate_per_identity,
        max_inflate_ratio=args.max_inflate_ratio,
        refresh_burst=args.refresh_burst,
        history_page_limit=args.max_history_page,
        history_page_bytes=args.max_history_page_bytes,
        history_bytes=args.history_bytes,
        max_channels=args.max_channels,
        history_ttl=args.history_ttl,
        max_replay=args.max_replay,
        max_replay_bytes=args.max_replay_bytes,
        max_connections=args.max_connections,
        max_head_bytes=args.max_head_bytes,
        cpu_share_per_ip=args.cpu_share_per_ip,
        cpu_burst=args.cpu_burst,
        address_inbox_bytes=args.inbox_bytes_per_ip,
        total_inbox_bytes=args.inbox_bytes,
        body_timeout=args.body_timeout,
        heartbeat=args.heartbeat,
        sse_heartbeat=args.sse_heartbeat,
        sse_retry_ms=args.sse_retry,
        sse_gzip=args.sse_gzip,
        shutdown_grace=args.shutdown_grace,
        retention=args.retention,
        dedup_ttl=args.dedup_ttl,
        dedup_max=args.dedup_max,
        demo_tick=args.demo_tick,
    )


def file_limit() -> int:
    """Raise this process's open-file limit to its hard limit; return the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, _FILES_WANTED)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    return soft if soft != resource.RLIM_INFINITY else _FILES_WANTED


def connection_caps(settings: Settings, files: int) -> tuple[int, int]:
    """``(max_connections, per_ip)`` in force: the total stays below the file limit (with room for
    Redis, logs and static files), and one address never gets more than half of it, unless the
    per-address cap is turned off (0: load tests from one address)."""
    total = settings.max_connections
    ceiling = max(16, files - _FILES_RESERVED)
    if total <= 0 or total > ceiling:
        if total > 0:
            message = "--max-connections %d is above what %d open files allow: using %d"
            log.warning(message, total, files, ceiling)
        total = ceiling
    per_ip = settings.max_connections_per_ip
    if per_ip > 0:
        per_ip = min(per_ip, max(1, total // 2))
    return total, max(0, per_ip)


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
        history_ttl=settings.history_ttl,
        presence_ttl=settings.presence_ttl,
        presence_grace=settings.presence_grace,
        history_bytes=settings.history_bytes,
        dedup_per_identity=settings.dedup_per_identity,
        dedup_max=settings.dedup_max,
    )


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def tune_gc() -> None:
    """Collect less often, and never look at what was made while starting again (see
    :data:`_GC_THRESHOLDS`). ``serve.py`` only: an application embedding the server keeps its own."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


async def _serve(args: argparse.Namespace, settings: Settings) -> None:
    broker = _make_broker(args, settings)
    app = create_app(settings, broker=broker)
    trusted = [ip.strip() for ip in args.forwarded_allow_ips.split(",") if ip.strip()]
    total, per_ip = connection_caps(settings, file_limit())
    ledger = Ledger(
        total,
        per_ip,
        trusted,
        address_inbox=settings.address_inbox_bytes,
        total_inbox=settings.total_inbox_bytes,
        cpu_share=settings.cpu_share_per_ip,
        cpu_burst=settings.cpu_burst,
    )
    limits = HttpLimits(
        settings.handshake_timeout,
        settings.body_timeout,
        settings.max_head_bytes,
        settings.max_message_bytes,
        inflate_ratio=settings.max_inflate_ratio,
    )
    http_protocol, ws_protocol = protocols(ledger, limits, deflate_context=args.ws_deflate_context)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP; without
    # it every keep-alive response waits ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if args.reuse_port:  # one of serve.py --workers N (pyrt.server.workers)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((args.host, args.port))
    sock.listen(_LISTEN_BACKLOG)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    tls = bool(args.certfile)
    config = uvicorn.Config(
        app,
        log_level=args.log_level,
        lifespan="on",
        http=http_protocol,
        ws=ws_protocol,
        ws_max_size=settings.max_message_bytes,
        ws_per_message_deflate=args.ws_deflate,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        ssl_certfile=args.certfile,
        ssl_keyfile=args.keyfile,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace)),
        server_header=False,
        # asyncio accepts this many sockets per turn of the loop, before any is refused and
        # closed: a short batch keeps a flood of connections from using up the file descriptors.
        backlog=_ACCEPT_BATCH,
    )
    redact = RedactSecrets()
    for name in ("uvicorn.access", "uvicorn.error"):
        logging.getLogger(name).addFilter(redact)
    server = GracefulServer(config, app)
    kind = "redis" if broker is not None else "memory"
    log.info("broker: %s; at most %d connections, %d per address", kind, total, per_ip)
    if not _loopback(args.host) and not settings.allowed_hosts:
        log.warning(
            "listening on %s without --allowed-host: only IP addresses and localhost are accepted "
            "in Host; pass --allowed-host NAME for every name clients use",
            args.host,
        )
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    if not serving.done():
        sock.listen(_LISTEN_BACKLOG)  # asyncio set the kernel's queue to the batch: lengthen it again
        tune_gc()
        # One machine-readable line, once the app has started and SIGTERM drains the clients (the
        # signal handlers are in place): tests and scripts read the URL from it.
        print(f"pyrt-serve listening on {'https' if tls else 'http'}://{host}:{port}", flush=True)
    await serving


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.make_token:
        if not args.token_secret:
            print(f"--make-token needs --token-secret or ${TOKEN_SECRET_ENV}", file=sys.stderr)
            return 2
        try:
            caps = None if args.token_caps is None else json.loads(args.token_caps)
            print(make_token(args.token_secret, args.make_token, args.token_ttl, caps=caps))
        except ValueError as exc:
            print(f"--token-caps: {exc}", file=sys.stderr)
            return 2
        return 0
    if bool(args.certfile) != bool(args.keyfile):
        print("--certfile and --keyfile go together", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("serve.py: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers > 1 and not args.redis:
        print(f"serve.py: {WORKERS_NEED_REDIS.format(n=args.workers)}", file=sys.stderr)
        return 2
    try:
        settings = settings_from_args(args)
        for trusted in filter(None, (ip.strip() for ip in args.forwarded_allow_ips.split(","))):
            if trusted != "*":
                ipaddress.ip_network(trusted, strict=False)
    except ValueError as exc:
        print(f"serve.py: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    if args.workers > 1:
        return supervise(sys.argv[1:] if argv is None else argv, args.host, args.port, args.workers)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args, settings))
    return 0
