"""Who may connect: the Origin allow-list and signed tokens (HMAC-SHA256 with an expiry).

A token is ``<payload>.<signature>``, both base64url without padding, so it is a valid HTTP token
and can ride in ``Sec-WebSocket-Protocol`` as ``bearer.<token>``. The payload is JSON
``{"sub": SUBJECT, "exp": UNIX_SECONDS, "iat": UNIX_SECONDS}``, optionally with ``"caps"``: the
channels the subject may use and how (:mod:`pyrt.server.permissions`). ``iat`` (when it was
issued) orders the tokens of one subject: a connection's ``refresh`` never goes back to an older
one. Tokens are never read from URLs and never logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from pyrt.server.permissions import Cap, parse_caps
from pyrt.wire.close_codes import TOKEN_EXPIRED

__all__ = [
    "BATCH_SUBPROTOCOL",
    "COOKIE_NAME",
    "MSGPACK_SUBPROTOCOL",
    "SUBPROTOCOL",
    "TOKEN_EXPIRED",
    "TOKEN_SUBPROTOCOL_PREFIX",
    "Claims",
    "OriginCheck",
    "check_origin",
    "make_token",
    "origin_allowed",
    "request_token",
    "token_from_scope",
    "verify_token",
]

SUBPROTOCOL = "pyrt.v1"
#: ``pyrt.v1`` whose server may send several frames in one text frame, separated by ``\n``.
BATCH_SUBPROTOCOL = "pyrt.v1.batch"
#: The binary binding (docs/protocol.md): MessagePack frames, batched.
MSGPACK_SUBPROTOCOL = "pyrt.v1.msgpack"
TOKEN_SUBPROTOCOL_PREFIX = "bearer."
COOKIE_NAME = "pyrt_token"


@dataclass(frozen=True, slots=True)
class Claims:
    """A verified token: who it names, until when (unix seconds) it is valid, the channel
    capabilities it carries (``None``: no ``caps`` claim, the channel policy alone decides), and
    when it was issued (unix seconds; 0 for a token without ``iat``, older than any other)."""

    subject: str
    expires: float
    caps: tuple[Cap, ...] | None = None
    issued: float = 0.0

    def ttl(self, now: float | None = None) -> float:
        """Seconds left before the token expires (0 when it has)."""
        return max(0.0, self.expires - (time.time() if now is None else now))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode("ascii"), hashlib.sha256).digest())


def make_token(
    secret: str,
    subject: str,
    ttl: float = 3600.0,
    *,
    now: float | None = None,
    caps: list[dict[str, Any]] | None = None,
) -> str:
    """A token for ``subject`` valid for ``ttl`` seconds from ``now`` (default: the clock).

    ``caps``: the channels it may use, e.g. ``[{"channels": ["chat", "room:*"], "allow":
    ["subscribe", "publish", "join"]}]`` (:mod:`pyrt.server.permissions`; checked here, so a
    malformed list fails now rather than as a token every server refuses)."""
    if not secret:
        raise ValueError("make_token needs a non-empty secret")
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {"sub": subject, "exp": int(issued + ttl), "iat": round(issued, 3)}
    if caps is not None:
        parse_caps(caps)
        claims["caps"] = caps
    body = json.dumps(claims, separators=(",", ":"))
    payload = _b64(body.encode())
    return f"{payload}.{_sign(secret, payload)}"


def verify_token(secret: str, token: str | None, *, now: float | None = None) -> Claims | None:
    """The token's claims if its signature is right and it has not expired, else ``None``."""
    if not secret or not token or len(token) > 4096 or not token.isascii() or token.count(".") != 1:
        return None  # a token is base64url text: anything else is refused before any work
    payload, signature = token.split(".")
    if not hmac.compare_digest(_sign(secret, payload).encode(), signature.encode()):
        return None
    try:
        claims: Any = json.loads(_unb64(payload))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(claims, dict):
        return None
    subject, expires, issued = claims.get("sub"), claims.get("exp"), claims.get("iat", 0)
    if not isinstance(subject, str) or not _number(expires) or not _number(issued):
        return None
    if expires <= (time.time() if now is None else now):
        return None
    caps = None
    if "caps" in claims:
        try:
            caps = parse_caps(claims["caps"])
        except ValueError:
            return None
    return Claims(subject, float(expires), caps, float(issued))


def _number(value: object) -> TypeGuard[float]:
    """A finite JSON number (not a boolean, nor an integer too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _headers(scope: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    for name, value in scope.get("headers", ()):
        yield name.decode("latin-1").lower(), value.decode("latin-1")


def token_from_scope(scope: Mapping[str, Any], *, cookies: bool = True) -> str | None:
    """The token a request carries: ``Authorization: Bearer``, the ``pyrt_token`` cookie (unless
    ``cookies`` is false), or (WebSocket) a ``bearer.TOKEN`` subprotocol. Never from the URL."""
    if scope.get("type") == "websocket":
        for protocol in scope.get("subprotocols", ()):
            if protocol.startswith(TOKEN_SUBPROTOCOL_PREFIX):
                return str(protocol[len(TOKEN_SUBPROTOCOL_PREFIX) :])
    for name, value in _headers(scope):
        if name == "authorization":
            scheme, _, credentials = value.partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
        elif name == "cookie" and cookies:
            try:
                cookie: SimpleCookie = SimpleCookie(value)
            except CookieError:
                continue
            if COOKIE_NAME in cookie:
                return cookie[COOKIE_NAME].value
    return None


def header(scope: Mapping[str, Any], wanted: str) -> str | None:
    """The first value of header ``wanted`` (lower-case name), or ``None``."""
    for name, value in _headers(scope):
        if name == wanted:
            return value
    return None


@dataclass(frozen=True, slots=True)
class OriginCheck:
    """Whether a request's ``Origin`` may use the server, and with the browser's credentials."""

    #: The request may go on.
    allowed: bool
    #: Cookies may authenticate it and CORS may answer with credentials: no ``Origin`` (not a
    #: browser), the server's own origin, or one listed by name. An origin admitted only by
    #: ``"*"`` gets neither (the Fetch standard forbids ``*`` with credentials): a page on any
    #: site must not act with the user's cookies.
    credentials: bool


def check_origin(scope: Mapping[str, Any], allowed: Iterable[str]) -> OriginCheck:
    """Check the request's ``Origin`` against the server's own origin (the ``Host`` the request
    was sent to, same scheme; the Host allow-list runs first) and the ``allowed`` list."""
    origin = header(scope, "origin")
    if origin is None:
        return OriginCheck(True, True)
    allowed = list(allowed)
    origin = origin.strip().rstrip("/").lower()
    if origin in {a.strip().rstrip("/").lower() for a in allowed if a != "*"}:
        return OriginCheck(True, True)
    host = header(scope, "host")
    if host is not None:
        try:
            parts = urlsplit(origin)
        except ValueError:  # not a URL ("http://[", "http://[1.2.3.4]"): not the server's own
            return OriginCheck("*" in allowed, False)
        secure = scope.get("scheme") in ("https", "wss")
        if parts.scheme == ("https" if secure else "http") and parts.netloc == host.strip().lower():
            return OriginCheck(True, True)
    return OriginCheck("*" in allowed, False)


def origin_allowed(scope: Mapping[str, Any], allowed: Iterable[str]) -> bool:
    """Whether the request's ``Origin`` may use this server (:func:`check_origin`)."""
    return check_origin(scope, allowed).allowed


def request_token(scope: Mapping[str, Any], allowed: Iterable[str]) -> str | None:
    """The token of a request, cookies counted only when its origin may use credentials."""
    return token_from_scope(scope, cookies=check_origin(scope, allowed).credentials)
