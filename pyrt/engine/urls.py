"""URLs outside the browser: there is no page to resolve ``"/ws"`` against, so say so clearly.

Pure string functions (no I/O), used where a client runs outside a browser.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pyrt.errors import RelativeURLError

__all__ = ["http_url", "websocket_url"]

_WS_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
_HTTP_SCHEMES = ("http", "https")


def _relative(url: str, example_scheme: str) -> RelativeURLError:
    path = url if url.startswith("/") else "/" + url
    return RelativeURLError(
        f"the relative URL {url!r} cannot be resolved outside a browser (there is no page); "
        f"pass an absolute URL such as '{example_scheme}://127.0.0.1:8000{path}'"
    )


def websocket_url(url: str) -> str:
    """The ``ws://``/``wss://`` URL to connect to: ``http(s)://`` becomes ``ws(s)://`` (as in
    the browser adapter); a relative URL raises :class:`RelativeURLError`; any other scheme
    raises ``ValueError``."""
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if not scheme:
        raise _relative(url, "ws")
    mapped = _WS_SCHEMES.get(scheme)
    if mapped is None:
        raise ValueError(f"a WebSocket URL must start with ws://, wss://, http:// or https://, got {url!r}")
    return mapped + url[len(scheme) :]


def http_url(url: str) -> str:
    """``url`` itself when it is an absolute ``http(s)://`` URL (what an event stream needs);
    a relative URL raises :class:`RelativeURLError`; any other scheme raises ``ValueError``."""
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if not scheme:
        raise _relative(url, "http")
    if scheme not in _HTTP_SCHEMES:
        raise ValueError(f"an event stream URL must start with http:// or https://, got {url!r}")
    return url
