"""``httpx`` for the SSE transports on CPython: one client per SSE client, one request at a time.

:class:`HttpSession` owns an ``httpx.AsyncClient`` (made on the first request, closed by
:meth:`~HttpSession.close`) and the task of the current request, which
:meth:`~HttpSession.stop` cancels (that closes its connection: the server sees the client go).
The TLS context is made once per process, so creating hundreds of clients is cheap. ``httpx``
is imported when the first session is made (a client's ``connect()``), so a missing ``httpx``
raises its :class:`ImportError` from ``connect()`` at once, never a client stuck connecting.
"""

from __future__ import annotations

import asyncio
import functools
import http.cookiejar
import ssl
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = ["HttpSession", "describe", "new_http_client", "with_default"]


@functools.cache
def _httpx() -> Any:
    try:
        import httpx
    except ImportError as exc:
        raise ImportError(
            'pyrt\'s CPython SSE clients need the httpx library: pip install "pyrt[cpython]"'
        ) from exc
    return httpx


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """httpx's default TLS context, made once (it loads the CA bundle, which is slow)."""
    context: ssl.SSLContext = _httpx().create_ssl_context()
    return context


def new_http_client(*, cookies: bool = True) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` as the SSE transports use it: no timeouts (the engine detects
    stalls), redirects followed (as ``fetch`` does), the shared TLS context, and with
    ``cookies=False`` a cookie jar that keeps nothing."""
    lib = _httpx()
    jar = None
    if not cookies:
        jar = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    client: httpx.AsyncClient = lib.AsyncClient(
        timeout=None, follow_redirects=True, verify=_ssl_context(), cookies=jar
    )
    return client


def describe(exc: BaseException) -> str:
    """``"ConnectError: [Errno 111] Connection refused"``: the type and the first line."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def with_default(headers: dict[str, str], name: str, value: str) -> dict[str, str]:
    """Set header ``name`` unless the caller set it already (in any case)."""
    if not any(key.lower() == name.lower() for key in headers):
        headers[name] = value
    return headers


class HttpSession:
    """The ``httpx`` client and the one running request of an SSE transport."""

    def __init__(self) -> None:
        _httpx()  # without httpx the client's connect() raises here, with the install hint
        self._client: httpx.AsyncClient | None = None
        self._current: tuple[int, asyncio.Task[None]] | None = None
        self.tasks: set[asyncio.Task[Any]] = set()  # requests and client closes not finished yet

    def client(self, *, cookies: bool = True) -> httpx.AsyncClient:
        """The ``httpx.AsyncClient``, made on first use (``cookies`` applies then)."""
        if self._client is None:
            self._client = new_http_client(cookies=cookies)
        return self._client

    def start(self, number: int, coro: Coroutine[Any, Any, None]) -> None:
        """Run request ``number`` as the current task (stop the previous one first)."""
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._current = (number, task)
        self._track(task)

    def is_current(self, number: int) -> bool:
        return self._current is not None and self._current[0] == number

    def done(self, number: int) -> bool:
        """Request ``number`` ended by itself: forget it. False when it was stopped already."""
        if not self.is_current(number):
            return False
        self._current = None
        return True

    def stop(self, number: int | None = None) -> None:
        """Cancel request ``number`` (any current one when ``None``)."""
        current = self._current
        if current is not None and (number is None or current[0] == number):
            self._current = None
            current[1].cancel()

    def close(self) -> None:
        """Stop the request and close the ``httpx`` client (in the background)."""
        self.stop()
        client, self._client = self._client, None
        if client is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # closed from outside the loop (it has ended): nothing to wait on
            return
        self._track(loop.create_task(client.aclose()))

    def _track(self, task: asyncio.Task[Any]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
