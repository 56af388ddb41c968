"""The server's side of an inspected connection: ``follow_server(client.inspect(), token)``.

A pyrt server started with an admin token (``--admin-token``) streams what it sees of one
connection at ``GET /admin/trace?session=S`` (:mod:`pyrt.server.trace`): the frames it read,
its answers and refusals, its closes. :func:`follow_server` opens that stream (a
:class:`~pyrt.FetchEventSource` with the token as ``Authorization: Bearer``) for the inspected
client's current session, opens a new one for each new session after a reconnect, and shows its
events in the inspector's "Server side" section. The trace starts when the session is known (after
the server's ``welcome``), so a session's first frames may be missing.

Use it where you operate the server too (a notebook beside your own ``serve.py``): the admin
token opens the trace of every connection, so never ship it in a page.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pyrt.aio.fetch_event_source import FetchEventSource

if TYPE_CHECKING:
    from pyrt.aio.inspector import Inspector
    from pyrt.wire.sse import ServerSentEvent

__all__ = ["ServerSide", "follow_server", "http_base"]


def http_base(url: object) -> str:
    """The HTTP address of a WebSocket client's server: ``wss://h/rt/ws`` gives ``https://h/rt``
    (a relative ``/ws`` gives ``""``: the page's own origin)."""
    text = url if isinstance(url, str) else ""
    if text.startswith(("ws://", "wss://")):
        text = "http" + text[2:]
    path = text.split("?", 1)[0]
    return path[: -len("/ws")] if path.endswith("/ws") else path.rsplit("/", 1)[0]


class ServerSide:
    """The trace of the inspected client's current session (see the module docstring)."""

    def __init__(self, inspector: Inspector, admin_token: str, base_url: str) -> None:
        self.inspector = inspector
        self.base_url = base_url.rstrip("/")
        self._token = admin_token
        #: The stream of the current session's trace (``None`` before the first session, after close).
        self.source: FetchEventSource | None = None

    def session(self, session: str) -> None:
        """The client's connection is now ``session``: trace that one."""
        self.close()
        token = self._token
        source = FetchEventSource(f"{self.base_url}/admin/trace?session={session}", token=lambda: token)
        source.on("trace", self._event)
        source.on_error(lambda exc: self.inspector.record_server({"event": "trace error", "why": str(exc)}))
        self.source = source.connect()

    def _event(self, event: ServerSentEvent) -> None:
        try:
            data: Any = json.loads(event.data)
        except ValueError:
            return
        if isinstance(data, dict):
            self.inspector.record_server(data)

    def close(self) -> None:
        if self.source is not None:
            self.source.close()
            self.source = None


def follow_server(inspector: Inspector, admin_token: str, base_url: str | None = None) -> ServerSide:
    """Show the server's side of ``inspector``'s WebSocket client (see the module docstring);
    ``base_url``: the server's HTTP address (default: from the client's URL). Ends when the
    inspector is closed."""
    client: Any = inspector.client
    if not hasattr(client, "session"):
        raise TypeError("follow_server() needs the inspector of a WebSocketClient (it follows its session)")
    side = ServerSide(inspector, admin_token, base_url if base_url is not None else http_base(client.url))
    inspector.follow(side)
    return side
