"""The chat room behind index.html: a pyrt WebSocketClient, one channel, every message acknowledged.

No DOM in here (page.py draws the room), so a test can drive a ``ChatRoom`` directly inside
Pyodide. What a user sees is plain data: ``messages`` (what arrived, in order), ``pending`` (what
was said and not yet confirmed by the server), ``failed`` and ``state``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from pyrt import Backoff, Heartbeat, Publication, WebSocketClient


class ChatRoom:
    """``ChatRoom(url, name=..., channel=...).connect()``; ``say(text)`` to talk."""

    def __init__(
        self,
        url: str = "/ws",
        *,
        name: str = "guest",
        channel: str = "chat",
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.name = name
        self.channel = channel
        self.client = WebSocketClient(
            url, heartbeat=heartbeat or Heartbeat(), backoff=Backoff(initial=0.1, maximum=2.0)
        )
        self.messages: list[dict[str, Any]] = []
        self.pending: dict[int, str] = {}
        self.failed: list[str] = []
        self._ids = itertools.count(1)
        self._listeners: list[Callable[[], Any]] = []
        # since="0": a newcomer also sees what the server still holds from before it joined.
        self.client.subscribe(channel, self._arrived, since="0")
        self.client.on_state(lambda state: self._changed())

    @property
    def state(self) -> str:
        """``CONNECTING``, ``OPEN``, ``RECONNECTING``, ``CLOSED``..."""
        return self.client.state.name

    def on_change(self, listener: Callable[[], Any]) -> Callable[[], Any]:
        """Call ``listener()`` whenever something a user sees has changed."""
        self._listeners.append(listener)
        return listener

    def connect(self) -> ChatRoom:
        self.client.connect()
        return self

    def say(self, text: str) -> asyncio.Future[str]:
        """Publish ``text``; it stays in ``pending`` until the server has it (queued while
        offline, retried, delivered once)."""
        n = next(self._ids)
        self.pending[n] = text
        future = self.client.publish(self.channel, {"from": self.name, "text": text})
        future.add_done_callback(lambda done: self._settled(n, done))
        self._changed()
        return future

    def close(self) -> None:
        self.client.close()

    def _settled(self, n: int, future: asyncio.Future[str]) -> None:
        text = self.pending.pop(n)
        if future.cancelled() or future.exception() is not None:
            self.failed.append(text)
        self._changed()

    def _arrived(self, publication: Publication) -> None:
        data = publication.data
        self.messages.append({"from": data["from"], "text": data["text"], "offset": publication.offset})
        self._changed()

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()
