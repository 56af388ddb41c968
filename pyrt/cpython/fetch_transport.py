"""The CPython transport of :class:`~pyrt.FetchEventSource`: ``httpx`` streaming responses.

It carries out the engine's requests one at a time and aborts one by cancelling its task.
Statuses, ``Retry-After``, ``retry:``, ``Last-Event-ID``, backoff and stall detection behave
exactly as in the browser, because the engine decides them.

What browser-only options mean here: there is no page, so ``when_hidden`` never pauses;
``credentials="omit"`` keeps no cookies, the other values keep the cookies the server sets for
this client's own requests (like same-origin requests in a browser); a relative URL raises
:class:`~pyrt.errors.RelativeURLError` from ``connect()``. Each client has its own
``httpx.AsyncClient`` (made by its first request, closed with the client).
"""

from __future__ import annotations

import asyncio
import time

from pyrt.cpython.http import HttpSession, describe, with_default
from pyrt.engine.urls import http_url
from pyrt.ports.sse_transport import FetchEvents, FetchRequest

__all__ = ["CPythonFetchTransport"]


class CPythonFetchTransport:
    """``httpx`` for :class:`~pyrt.FetchEventSource` on CPython (picked automatically)."""

    def __init__(self) -> None:
        self.session = HttpSession()

    def check_url(self, url: str) -> None:
        http_url(url)

    def start(self, request: FetchRequest, events: FetchEvents) -> None:
        self.session.start(request.id, self._run(request, events))

    def abort(self, request: int) -> None:
        self.session.stop(request)

    def dispose(self) -> None:
        self.session.close()

    async def _run(self, request: FetchRequest, events: FetchEvents) -> None:
        """One request: send it, report the response, read the body."""
        number = request.id
        session = self.session
        headers = with_default(dict(request.headers), "Cache-Control", "no-cache")
        if isinstance(request.body, str):
            with_default(headers, "Content-Type", "text/plain;charset=UTF-8")  # as fetch does
        try:
            http = session.client(cookies=request.credentials != "omit")
            stream = http.stream(request.method, http_url(request.url), headers=headers, content=request.body)
            async with stream as response:
                read = events.fetch_response(
                    number,
                    response.status_code,
                    response.headers.get("content-type"),
                    response.headers.get("retry-after"),
                    time.time(),
                )
                if not read:
                    return
                async for chunk in response.aiter_bytes():
                    if not events.fetch_chunk(number, chunk):
                        return  # aborted (a handler called close(), a stall, ...)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # httpx.TransportError (refused, reset, incomplete body) & co
            if session.done(number):
                events.fetch_failed(number, describe(exc))
            return
        if session.done(number):
            events.fetch_ended(number)
