"""What every plain-HTTP endpoint of the server checks first (``POST /publish``, ``GET /history``).

:func:`guard` refuses a foreign ``Origin`` (403), answers a CORS preflight (204), and, with
authentication on, refuses a request without a valid token (403); otherwise it returns the CORS
headers every answer carries and the token's claims.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pyrt.server.auth import Claims, check_origin, request_token, verify_token
from pyrt.server.runtime import Runtime
from pyrt.server.sse_endpoint import cors_headers

__all__ = ["Admitted", "guard"]


@dataclass(frozen=True, slots=True)
class Admitted:
    """A request that may go on: the CORS headers for its answers and its token's claims
    (``None`` with authentication off)."""

    cors: dict[str, str]
    claims: Claims | None


def guard(rt: Runtime, request: Request, methods: str, headers: str) -> Admitted | Response:
    """Check ``request``'s origin, answer a preflight (``methods`` and ``headers`` allowed), check
    its token. A :class:`Response` is the answer to send as it is."""
    settings = rt.settings
    scope = request.scope
    if not check_origin(scope, settings.allowed_origins).allowed:
        rt.stats.rejected["origin"] += 1
        return JSONResponse({"error": "origin not allowed"}, status_code=403)
    allowed = settings.allowed_origins
    cors = {k.decode(): v.decode("latin-1") for k, v in cors_headers(dict(scope), allowed)}
    if request.method == "OPTIONS":
        preflight = {
            "access-control-allow-methods": methods,
            "access-control-allow-headers": headers,
            "access-control-max-age": "600",
        }
        return Response(status_code=204, headers={**cors, **preflight})
    claims = None
    if settings.token_secret:
        claims = verify_token(settings.token_secret, request_token(scope, allowed))
        if claims is None:
            rt.stats.rejected["auth"] += 1
            return JSONResponse({"error": "missing, bad or expired token"}, status_code=403, headers=cors)
    return Admitted(cors, claims)
