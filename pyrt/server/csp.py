"""Security headers: a Content-Security-Policy for the pages, ``nosniff`` for everything.

Pages may run Pyodide: ``script-src 'self' 'wasm-unsafe-eval'`` (WebAssembly compilation) is
enough for Pyodide itself, so plain Pyodide pages get no ``'unsafe-eval'``. PyScript pages (that
load ``pyscript``/``core.js`` or hold ``<script type="py">``) also get ``'unsafe-eval'``, because
PyScript's ``core.js`` builds functions with ``Function(...)``. Inline scripts are allowed by their
SHA-256 hash, computed from the page that is actually served. ``connect-src`` allows the server's
own origin, the allowed origins, the configured extra sources and, for a page served from a
loopback address, any loopback port (so a local test proxy or a second local instance can be
reached; CSP host sources cannot name an IPv6 literal, so ``[::1]`` is recognised as loopback but
not listed).

Under the excluded prefixes (the JupyterLite site at ``/lab/``, which evaluates code and starts
workers from ``blob:`` URLs the page policy would refuse), every response gets
:data:`FRAMED_SITE_POLICY` instead: no framing by other sites (clickjacking), no plugins, no
``<base>`` rewriting.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from pyrt.server.auth import header

__all__ = ["FRAMED_SITE_POLICY", "SecurityHeaders", "inline_script_hashes", "page_policy", "uses_pyscript"]

FRAMED_SITE_POLICY = "frame-ancestors 'self'; object-src 'none'; base-uri 'self'"

_SCRIPT = re.compile(rb"<script\b([^>]*)>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL)
_TYPE = re.compile(rb"""\btype\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)
_SRC = re.compile(rb"\bsrc\s*=", re.IGNORECASE)
_JS_TYPES = {b"", b"module", b"text/javascript", b"application/javascript", b"importmap"}
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
_PYSCRIPT = re.compile(
    rb"""<script\b[^>]*(?:\btype\s*=\s*["']?m?py\b|\bsrc\s*=\s*["'][^"']*pyscript)|<py-script\b""",
    re.IGNORECASE,
)


def uses_pyscript(html: bytes) -> bool:
    """Whether ``html`` loads PyScript (which needs ``'unsafe-eval'``)."""
    return _PYSCRIPT.search(html) is not None


def inline_script_hashes(html: bytes) -> list[str]:
    """``'sha256-…'`` sources for the inline scripts the browser would execute in ``html``."""
    hashes = []
    for match in _SCRIPT.finditer(html):
        attributes, body = match.group(1), match.group(2)
        if _SRC.search(attributes):
            continue
        kind = _TYPE.search(attributes)
        if (kind.group(1).lower() if kind else b"") not in _JS_TYPES:
            continue  # e.g. <script type="py">: data for PyScript, not run by the browser
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        hashes.append(f"'sha256-{digest}'")
    return hashes


def _websocket_twin(origin: str) -> list[str]:
    parts = urlsplit(origin)
    if parts.scheme in ("http", "https") and parts.netloc:
        return [origin, f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}"]
    return [origin]


def page_policy(
    host: str | None, script_hashes: Iterable[str], connect: Iterable[str], *, pyscript: bool = False
) -> str:
    """The CSP for a page served to ``host`` (the ``Host`` header); ``pyscript`` adds eval."""
    connect_src = ["'self'"]
    for source in connect:
        connect_src.extend(_websocket_twin(source) if source != "*" else ["*"])
    host = host or ""
    hostname = host.split("]")[0] + "]" if host.startswith("[") else host.rsplit(":", 1)[0]
    if hostname in _LOOPBACK:
        for name in _LOOPBACK[:2]:  # not "[::1]": browsers reject IPv6 literals in CSP sources
            connect_src.extend(f"{scheme}://{name}:*" for scheme in ("http", "https", "ws", "wss"))
    directives = [
        "default-src 'self'",
        " ".join(
            ["script-src 'self' 'wasm-unsafe-eval'", *(["'unsafe-eval'"] if pyscript else []), *script_hashes]
        ),
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src " + " ".join(dict.fromkeys(connect_src)),
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
    return "; ".join(directives)


class SecurityHeaders:
    """ASGI middleware: ``X-Content-Type-Options``/``Referrer-Policy`` on every HTTP response,
    and the page CSP on HTML (except under ``exclude`` prefixes, e.g. a JupyterLite site)."""

    def __init__(
        self,
        app: Any,
        connect: Iterable[str] = (),
        exclude: tuple[str, ...] = ("/lab/",),
    ) -> None:
        self.app = app
        self.connect = tuple(connect)
        self.exclude = exclude

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        wants_csp = not path.startswith(self.exclude)
        host = header(scope, "host")
        start: dict[str, Any] | None = None
        body: list[bytes] = []

        async def wrapped(message: dict[str, Any]) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                headers.append((b"referrer-policy", b"no-referrer"))
                if not wants_csp:
                    headers.append((b"content-security-policy", FRAMED_SITE_POLICY.encode()))
                    headers.append((b"x-frame-options", b"SAMEORIGIN"))
                message = {**message, "headers": headers}
                content_type = dict(headers).get(b"content-type", b"")
                if wants_csp and content_type.startswith(b"text/html"):
                    start = message  # hold it until the page is read: its hashes go in the CSP
                    return
                await send(message)
                return
            if start is not None and message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                html = b"".join(body)
                policy = page_policy(
                    host, inline_script_hashes(html), self.connect, pyscript=uses_pyscript(html)
                )
                headers = [*start["headers"], (b"content-security-policy", policy.encode())]
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": html})
                start = None
                return
            await send(message)

        await self.app(scope, receive, wrapped)
