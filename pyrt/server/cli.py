"""Command line: ``python serve.py [--host H] [--port P] [--redis URL] [--allowed-origin O ...]
[--allowed-host NAME ...] [--token-secret S] [--demo] [--certfile F --keyfile F] ...`` (``--help``
lists all; docs/server.md explains every limit).

Below the application, serve.py's protocols (:mod:`pyrt.server.uvicorn_private`) cap connections
(in all, per address) and bound every request head and body; the open-file limit is raised to its
hard limit at start.

On SIGTERM (or Ctrl-C) the server closes every WebSocket with 1001 and ends every SSE stream,
after what was queued for each (acks included), then exits 0. A second signal exits at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import ipaddress
import json
import logging
import os
import resource
import socket
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any, get_type_hints

import uvicorn

from pyrt.redact import RedactSecrets
from pyrt.server.app import PyrtApp, create_app
from pyrt.server.auth import make_token
from pyrt.server.brokers.base import Broker
from pyrt.server.ledger import HttpLimits, Ledger
from pyrt.server.settings import FLAG, SECTIONS, TOKEN_SECRET_ENV, Settings
from pyrt.server.uvicorn_private import protocols
from pyrt.server.workers import WORKERS_NEED_REDIS, supervise

__all__ = ["connection_caps", "file_limit", "main", "parse_args", "settings_from_args", "tune_gc"]

log = logging.getLogger("pyrt.server")

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
    """``serve.py``'s own options (where it listens, TLS, Redis, workers, tokens to print), then a
    flag for every :class:`Settings` field that has one (:func:`add_settings_flags`)."""
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
        "--forwarded-allow-ips",
        default="",
        metavar="IPS",
        help="comma-separated proxies whose X-Forwarded-For/-Proto are trusted (default: none)",
    )
    p.add_argument("--make-token", metavar="SUBJECT", help="print a token for SUBJECT and exit")
    p.add_argument("--token-ttl", type=float, default=3600.0, help="--make-token lifetime in seconds")
    p.add_argument(
        "--token-caps",
        metavar="JSON",
        help="--make-token channel capabilities (JSON), e.g. "
        '\'[{"channels": ["chat"], "allow": ["subscribe", "publish"]}]\' (docs/protocol.md)',
    )
    p.add_argument("--certfile", help="TLS certificate (PEM): serve https:// and wss://")
    p.add_argument("--keyfile", help="TLS private key (PEM)")
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
    p.add_argument("--log-level", default="info", help="uvicorn's log level (default info)")
    add_settings_flags(p)
    return p.parse_args(argv)


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """Add a flag for every :class:`Settings` field that has one (its metadata: a
    :class:`~pyrt.server.settings.Flag`), in the groups of :data:`~pyrt.server.settings.SECTIONS`.
    Each flag's value lands under the field's own name (``args.server_name`` for ``--name``)."""
    defaults = Settings()
    types = get_type_hints(Settings)
    groups = {first: parser.add_argument_group(title) for first, title in SECTIONS}
    group = groups[SECTIONS[0][0]]
    for spec in dataclasses.fields(Settings):
        group = groups.get(spec.name, group)
        option = spec.metadata.get(FLAG)
        if option is None:
            continue
        kind = types[spec.name]
        default = getattr(defaults, spec.name)
        if option.env is not None:
            default = os.environ.get(option.env, default)
        metavar = option.metavar or option.name.lstrip("-").replace("-", "_").upper()
        if kind is bool:
            group.add_argument(
                option.name,
                dest=spec.name,
                action=argparse.BooleanOptionalAction,
                default=default,
                help=option.help,
            )
        elif kind == tuple[str, ...]:
            group.add_argument(
                option.name,
                dest=spec.name,
                action="append",
                default=list(default),
                metavar=metavar,
                help=option.help,
            )
        else:
            shown = option.help
            if kind in (int, float) and "default" not in shown:
                shown += " (default: %(default)s)"
            parse = option.parse or kind
            group.add_argument(
                option.name, dest=spec.name, type=parse, default=default, metavar=metavar, help=shown
            )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The :class:`Settings` the flags describe (:class:`ValueError` for a contradiction)."""
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(Settings):
        if spec.metadata.get(FLAG) is not None:
            value = getattr(args, spec.name)
            values[spec.name] = tuple(value) if isinstance(value, list) else value
    return Settings(**values)


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
    given = sys.argv[1:] if argv is None else list(argv)
    if given[:1] == ["trace"]:  # python -m pyrt.server trace ...: tail a server's live trace
        from pyrt.server.trace_cli import main as trace

        return trace(given[1:])
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
