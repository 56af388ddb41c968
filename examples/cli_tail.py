"""Tail a pyrt Server-Sent Events channel from the terminal (CPython).

    python examples/cli_tail.py http://127.0.0.1:8000 CHANNEL [--since 0] [--count N]

Prints one line per event, ``<id> TAB <type> TAB <data>``, and status lines (connected,
reconnecting) on stderr. The same :class:`pyrt.FetchEventSource` as in the browser, here over
``httpx``: it reconnects with backoff and resumes from the last event id, so nothing published
while the connection was down is missed. ``--since 0`` first replays what the server retains;
``--count N`` exits after N events. Needs ``pip install "pyrt[cpython]"``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from urllib.parse import urlencode

from pyrt import FetchEventSource, SSEError


async def tail(base: str, channel: str, since: str = "", count: int = 0, token: str | None = None) -> int:
    url = f"{base.rstrip('/')}/sse?{urlencode({'channel': channel})}"
    headers = {"Authorization": f"Bearer {token}"} if token else None
    source = FetchEventSource(url, headers=headers, last_event_id=since)
    source.on_open = lambda: print(f"# connected to {url}", file=sys.stderr, flush=True)
    source.on_error = lambda error: print(f"# {error}", file=sys.stderr, flush=True)
    seen = 0
    try:
        async for event in source:
            print(f"{event.id}\t{event.type}\t{event.data}", flush=True)
            seen += 1
            if count and seen >= count:
                break
    except SSEError as exc:  # stopped for good: 401, 404, attempts exhausted, ...
        print(f"# stopped: {exc}", file=sys.stderr)
        return 1
    finally:
        source.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Tail a pyrt SSE channel.")
    parser.add_argument("server", help="the server's base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("channel", help="the channel to follow")
    parser.add_argument("--since", default="", help='resume after this event id ("0": all retained)')
    parser.add_argument("--count", type=int, default=0, help="exit after this many events")
    parser.add_argument("--token", default=None, help="a bearer token, when the server requires one")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(tail(args.server, args.channel, args.since, args.count, args.token))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
