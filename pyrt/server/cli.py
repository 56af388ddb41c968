"""Command line: ``python serve.py [--host H] [--port P] [--no-demo]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import Sequence

import uvicorn

from pyrt.server.app import create_app
from pyrt.server.settings import Settings

__all__ = ["main", "parse_args"]

log = logging.getLogger("pyrt.server")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="serve.py", description="The pyrt reference server.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port (0 picks a free one)")
    parser.add_argument(
        "--demo",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="serve the demo page and its controls (default: on)",
    )
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    settings = Settings(demo=args.demo)
    app = create_app(settings)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    config = uvicorn.Config(app, log_level=args.log_level, lifespan="on")
    server = uvicorn.Server(config)
    # One machine-readable line: tests and scripts read the URL from it.
    print(f"pyrt-serve listening on http://{host}:{port}", flush=True)
    await server.serve(sockets=[sock])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0
