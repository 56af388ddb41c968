"""``python -m pyrt.server trace``: tail a server's live trace (``GET /admin/trace``) in a terminal.

::

    python -m pyrt.server trace --url http://127.0.0.1:8000 --channel chat
    python -m pyrt.server trace --url https://rt.example.com --user alice --json

The admin token comes from ``--token`` or ``$PYRT_ADMIN_TOKEN`` (safer: a flag shows in the
process list). One line per event; ``--json`` prints the events as the server sent them.
Standard library only (``http.client``), so it runs wherever the server does.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO
from urllib.parse import urlencode, urlsplit

from pyrt.server.settings import ADMIN_TOKEN_ENV
from pyrt.wire.sse import SSEDecoder

__all__ = ["describe", "main"]


def _fields(event: dict[str, Any], *names: str) -> str:
    return " ".join(f"{name}={event[name]}" for name in names if event.get(name) is not None)


def describe(event: dict[str, Any]) -> str:
    """One trace event in one line: time, session, what happened and its fields."""
    at = event.get("at")
    when = (
        datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%H:%M:%S.%f")[:-3]
        if isinstance(at, int | float)
        else "--:--:--"
    )
    who = event.get("session") or "-"
    if event.get("user"):
        who = f"{who}({event['user']})"
    what = event.get("event", "?")
    shown = {k: v for k, v in event.items() if k not in ("at", "session", "user", "event", "transport")}
    if what == "publication":
        rest = f"{event.get('channel')}@{event.get('offset')} " + _fields(
            event, "type", "subscribers", "bytes"
        )
        if "data" in event:
            rest += f" data={json.dumps(event['data'])[:80]}"
        return f"{when} {'*':<12} publication {rest}"
    if what == "dropped":
        return f"{when} {'*':<12} dropped {event.get('count')} events (this terminal fell behind)"
    details = " ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in shown.items())
    return f"{when} {who:<12} {what} {details}".rstrip()


def _args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pyrt.server trace", description="Tail a pyrt server's live trace."
    )
    parser.add_argument("--url", required=True, help="the server's base URL (http:// or https://)")
    parser.add_argument("--token", default=None, help=f"the admin token (default: ${ADMIN_TOKEN_ENV})")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--channel", help="follow one channel")
    which.add_argument("--user", help="follow one token subject's connections")
    which.add_argument("--session", help="follow one connection")
    parser.add_argument("--json", action="store_true", help="print the events as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str], out: TextIO = sys.stdout, opened: Callable[[], None] | None = None) -> int:
    args = _args(argv)
    token = args.token or os.environ.get(ADMIN_TOKEN_ENV, "")
    if not token:
        print(f"trace: an admin token is needed (--token or ${ADMIN_TOKEN_ENV})", file=sys.stderr)
        return 2
    url = urlsplit(args.url)
    if url.scheme not in ("http", "https") or not url.hostname:
        print(f"trace: --url must be http:// or https://, got {args.url!r}", file=sys.stderr)
        return 2
    which = {
        k: v for k, v in (("channel", args.channel), ("user", args.user), ("session", args.session)) if v
    }
    path = f"{url.path.rstrip('/')}/admin/trace?{urlencode(which)}"
    kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    conn = kind(url.hostname, url.port, timeout=60)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"})
        response = conn.getresponse()
        if response.status != 200:
            print(f"trace: {response.status} {response.read(500).decode(errors='replace')}", file=sys.stderr)
            return 1
        if opened is not None:
            opened()
        decoder = SSEDecoder()
        while chunk := response.read1(65536):
            for event in decoder.feed(chunk):
                if event.type != "trace":
                    continue
                print(event.data if args.json else describe(json.loads(event.data)), file=out, flush=True)
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"trace: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    print("trace: the server ended the stream", file=sys.stderr)
    return 0
