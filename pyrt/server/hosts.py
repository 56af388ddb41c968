"""The ``Host`` allow-list: the server answers only to the names it is meant to be reached by.

Without it, a page on ``evil.example`` can rebind its name to the server's address (DNS
rebinding) and then talk to it as its "own origin", cookies and all. Like Vite's
``allowedHosts`` and Jupyter's local-host check, every request whose ``Host`` is not allowed is
refused (403, before the handshake for WebSocket).

Always allowed: IP addresses (a page at an address cannot be rebound), ``localhost`` and
``*.localhost``. Entries: an exact name (``app.example.com``), a leading dot for a domain and
all its subdomains (``.example.com``), or ``*`` for any name. A request without ``Host``
(HTTP/1.0) is allowed: browsers always send one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from pyrt.server.auth import header

__all__ = ["HostGuard", "host_allowed", "hostname"]


def hostname(host: str) -> str:
    """The name part of a ``Host`` header value (no port, no IPv6 brackets), lower-case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() else host


def host_allowed(host: str | None, allowed: Iterable[str]) -> bool:
    """Whether a request with this ``Host`` value may be served (rules in the module docstring)."""
    if host is None:
        return True
    name = hostname(host).rstrip(".")
    if not name:
        return False
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    if name == "localhost" or name.endswith(".localhost"):
        return True
    for entry in allowed:
        entry = entry.strip().lower().rstrip(".")
        if entry == "*" or entry == name:
            return True
        if entry.startswith(".") and (name == entry[1:] or name.endswith(entry)):
            return True
    return False


class HostGuard:
    """ASGI middleware refusing requests whose ``Host`` is not allowed (403, or a WebSocket close
    before accept, which the client sees as HTTP 403)."""

    def __init__(self, app: Any, allowed: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = tuple(allowed)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and not host_allowed(header(scope, "host"), self.allowed):
            if scope["type"] == "websocket":
                await receive()  # websocket.connect
                await send({"type": "websocket.close", "code": 1008})
                return
            body = b"host not allowed: start the server with --allowed-host NAME to serve this name\n"
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
