"""The pyrt protocol over plain HTTP, as a socket: for networks where WebSockets do not pass.

:class:`HttpTransport` is a :class:`~pyrt.ports.transport.Transport` like the WebSocket ones, so
the engine, its acks, channels, presence, history, token refresh and pacing work unchanged; only
the way frames travel differs (docs/protocol.md, "The HTTP binding"):

- **server to client**: one streaming ``GET`` of the same URL (``ws://`` read as ``http://``)
  with ``Accept: text/event-stream``; every event's data is one frame, the first the ``welcome``,
  whose ``key`` names the connection; an event of type ``close`` ends it with a code and reason;
- **client to server**: ``POST`` requests to the same URL with ``?key=K&seq=N``, each carrying
  the frames sent since the last one, one per line; one is in flight at a time, in order, and a
  POST that failed on the network is sent again with the same ``seq`` (the server applies each
  ``seq`` once). ``?close=CODE`` on the last one ends the connection from the client's side.

It is built on two :class:`~pyrt.ports.sse_transport.FetchTransport` objects (the stream's and the
POSTs'), so it runs wherever a ``fetch`` does: the browser's, ``httpx`` on CPython, or the fake in
:mod:`pyrt.testing`. A token travels as ``Authorization: Bearer``, never in the URL.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from urllib.parse import quote

from pyrt.ports.sse_transport import FetchRequest, FetchTransport
from pyrt.ports.transport import SocketEvents
from pyrt.wire import codec
from pyrt.wire.frames import Welcome
from pyrt.wire.sse import SSEDecoder
from pyrt.wire.types import Frame

__all__ = ["HttpTransport", "http_url"]

_TOKEN_PREFIX = "bearer."
POST_RETRIES = 3  # network failures of one POST before the connection counts as lost


def http_url(url: str) -> str:
    """The HTTP URL of a WebSocket URL: ``ws://`` -> ``http://``, ``wss://`` -> ``https://``
    (a relative URL stays as it is)."""
    if url.startswith("ws://"):
        return "http://" + url[len("ws://") :]
    if url.startswith("wss://"):
        return "https://" + url[len("wss://") :]
    return url


class _Connection:
    """One HTTP connection: its stream, its key, what waits to be posted."""

    __slots__ = (
        "closing",
        "decoder",
        "detached",
        "events",
        "headers",
        "in_flight",
        "key",
        "outbox",
        "post",
        "reported",
        "retries",
        "seq",
        "stream",
        "url",
    )

    def __init__(self, url: str, headers: dict[str, str], events: SocketEvents) -> None:
        self.url = url
        self.headers = headers
        self.events = events
        self.decoder = SSEDecoder()
        self.key: str | None = None
        self.outbox: list[str] = []
        self.in_flight: str | None = None  # the body of the POST on its way
        self.seq = 0
        self.retries = 0
        self.stream = 0  # the stream request's id
        self.post = 0  # the POST request's id
        self.closing: tuple[int, str] | None = None  # close() was called: report this at the end
        self.reported = False  # its end was reported (or it ended detached)
        self.detached = False  # close(detach=True): nothing of it is reported any more


class HttpTransport:
    """See the module docstring. ``stream`` and ``posts``: the fetches of the stream and of the
    POSTs (two, so that a POST never waits behind the stream)."""

    def __init__(self, stream: FetchTransport, posts: FetchTransport) -> None:
        self._stream = stream
        self._posts = posts
        self._ids = itertools.count(1)
        self._conn: _Connection | None = None

    # ------------------------------------------------------------------- the Transport protocol

    def check_url(self, url: str) -> None:
        self._stream.check_url(http_url(url))

    def open(self, url: str, protocols: Sequence[str], events: SocketEvents) -> None:
        headers: dict[str, str] = {}
        for protocol in protocols:
            if protocol.startswith(_TOKEN_PREFIX):
                headers["Authorization"] = "Bearer " + protocol[len(_TOKEN_PREFIX) :]
        conn = self._conn = _Connection(http_url(url), headers, events)
        conn.stream = next(self._ids)
        request_headers = {**headers, "Accept": "text/event-stream", "Cache-Control": "no-cache"}
        request = FetchRequest(conn.stream, conn.url, "GET", request_headers, None, "same-origin")
        self._stream.start(request, _StreamEvents(self, conn))

    def send(self, frame: Frame) -> None:
        conn = self._conn
        if conn is None or conn.reported or conn.closing is not None:
            return
        conn.outbox.append(frame if isinstance(frame, str) else frame.decode("utf-8", "replace"))
        self._pump(conn)

    def buffered_amount(self) -> int:
        conn = self._conn
        if conn is None:
            return 0
        waiting = sum(len(frame) + 1 for frame in conn.outbox)
        return waiting + (len(conn.in_flight) if conn.in_flight is not None else 0)

    def close(self, code: int, reason: str, detach: bool) -> None:
        conn = self._conn
        if conn is None or conn.reported or conn.closing is not None:
            return
        conn.closing = (code, reason)
        conn.detached = detach
        if conn.key is None:  # nothing to tell the server yet
            self._stream.abort(conn.stream)
            self._report(conn, code, reason, True)
            return
        if conn.in_flight is None:
            self._post(conn)

    def dispose(self) -> None:
        conn = self._conn
        if conn is not None:
            conn.reported = conn.detached = True
            self._stream.abort(conn.stream)
            if conn.post:
                self._posts.abort(conn.post)
        self._conn = None
        self._stream.dispose()
        self._posts.dispose()

    # -------------------------------------------------------------------------------- machinery

    def _pump(self, conn: _Connection) -> None:
        if conn.in_flight is None and conn.key is not None and (conn.outbox or conn.closing is not None):
            self._post(conn)

    def _post(self, conn: _Connection) -> None:
        """The next POST: what waits in the outbox (and the close, after close())."""
        assert conn.key is not None
        body = codec.encode_batch(conn.outbox)
        conn.outbox.clear()
        conn.seq += 1
        conn.in_flight = body
        conn.retries = 0
        self._start_post(conn)

    def _start_post(self, conn: _Connection) -> None:
        assert conn.key is not None
        assert conn.in_flight is not None
        query = f"key={quote(conn.key, safe='')}&seq={conn.seq}"
        if conn.closing is not None and not conn.outbox:
            query += f"&close={conn.closing[0]}"
        separator = "&" if "?" in conn.url else "?"
        conn.post = next(self._ids)
        headers = {**conn.headers, "Content-Type": "text/plain;charset=UTF-8"}
        request = FetchRequest(
            conn.post, conn.url + separator + query, "POST", headers, conn.in_flight, "same-origin"
        )
        self._posts.start(request, _PostEvents(self, conn))

    def posted(self, conn: _Connection, status: int) -> None:
        """The answer to the POST in flight."""
        if conn is not self._conn:
            return
        if status == 204 or 200 <= status < 300:
            conn.in_flight = None
            if conn.closing is not None and not conn.outbox:
                self._stream.abort(conn.stream)
                self._report(conn, *conn.closing, True)
                return
            self._pump(conn)
            return
        conn.in_flight = None
        gone = "the server no longer knows this connection" if status in (404, 410) else "a POST was refused"
        self._lost(conn, f"{gone} (HTTP {status})")

    def post_failed(self, conn: _Connection, message: str) -> None:
        """The POST in flight failed on the network: send it again, as it was (same ``seq``)."""
        if conn is not self._conn or conn.in_flight is None:
            return
        conn.retries += 1
        if conn.retries > POST_RETRIES:
            conn.in_flight = None
            self._lost(conn, f"a POST failed {POST_RETRIES + 1} times: {message}")
            return
        self._start_post(conn)

    def _lost(self, conn: _Connection, why: str) -> None:
        self._stream.abort(conn.stream)
        if conn.closing is not None:
            self._report(conn, *conn.closing, True)
        else:
            self._report(conn, 1006, why, False)

    def _report(self, conn: _Connection, code: int, reason: str, clean: bool) -> None:
        """The connection ended: report it once (unless detached), and let go of it."""
        if conn.reported:
            return
        conn.reported = True
        if conn.post and conn.in_flight is not None:
            self._posts.abort(conn.post)
        if self._conn is conn:
            self._conn = None
        if not conn.detached:
            conn.events.socket_closed(code, reason, clean)

    def stream_response(
        self, conn: _Connection, status: int, content_type: str | None, retry_after: str | None = None
    ) -> bool:
        if conn is not self._conn or conn.reported:
            return False
        if status != 200 or content_type is None or "text/event-stream" not in content_type:
            why = f"HTTP {status} to the stream ({content_type or 'no content type'})"
            if retry_after is not None and retry_after.strip().isdigit():
                why += f" retry_after={int(retry_after.strip())}"  # the reconnect hint's grammar
            self._report(conn, 1006, why, False)
            return False
        conn.events.socket_opened()
        return True

    def stream_chunk(self, conn: _Connection, chunk: bytes) -> bool:
        if conn is not self._conn or conn.reported:
            return False
        for event in conn.decoder.feed(chunk):
            if event.type == codec.HTTP_CLOSE_EVENT:
                code, reason = codec.decode_http_close(event.data)
                self._report(conn, code, reason, True)
                return False
            frame = event.data
            if conn.key is None:
                first = codec.decode_server_frame(frame)
                if type(first) is Welcome and first.key is not None:
                    conn.key = first.key
            if conn.detached:
                return False
            conn.events.socket_message(frame)
            if conn.reported:  # the client moved on while handling it
                return False
        if conn.key is not None:
            self._pump(conn)
        return True

    def stream_ended(self, conn: _Connection, why: str) -> None:
        if conn is self._conn and not conn.reported:
            if conn.closing is not None:
                self._report(conn, *conn.closing, True)
            else:
                self._report(conn, 1006, why, False)


class _StreamEvents:
    """The stream request's reports, for one connection."""

    __slots__ = ("conn", "transport")

    def __init__(self, transport: HttpTransport, conn: _Connection) -> None:
        self.transport = transport
        self.conn = conn

    def fetch_response(
        self, request: int, status: int, content_type: str | None, retry_after: str | None, wall_time: float
    ) -> bool:
        return self.transport.stream_response(self.conn, status, content_type, retry_after)

    def fetch_chunk(self, request: int, chunk: bytes) -> bool:
        return self.transport.stream_chunk(self.conn, chunk)

    def fetch_ended(self, request: int) -> None:
        self.transport.stream_ended(self.conn, "the stream ended without a close")

    def fetch_failed(self, request: int, message: str) -> None:
        self.transport.stream_ended(self.conn, message)


class _PostEvents:
    """One POST's reports."""

    __slots__ = ("conn", "transport")

    def __init__(self, transport: HttpTransport, conn: _Connection) -> None:
        self.transport = transport
        self.conn = conn

    def fetch_response(
        self, request: int, status: int, content_type: str | None, retry_after: str | None, wall_time: float
    ) -> bool:
        self.transport.posted(self.conn, status)
        return False  # its body (empty) is not read

    def fetch_chunk(self, request: int, chunk: bytes) -> bool:
        return False

    def fetch_ended(self, request: int) -> None:
        """Nothing: the status said it all."""

    def fetch_failed(self, request: int, message: str) -> None:
        self.transport.post_failed(self.conn, message)
