"""The live trace of one channel or one identity, for an operator: what the server saw and did.

:class:`Tracer` (``runtime.tracer``) hands decoded protocol events to the readers of
``GET /admin/trace`` (:mod:`pyrt.server.admin`) whose filter they match:

- a reader of ``channel=C`` gets every event naming ``C``: subscribes and unsubscribes,
  publications with their offsets (from any publisher: the WebSocket and HTTP bindings,
  ``POST /publish``, another instance through the broker — whatever this instance's subscribers of
  ``C`` receive), presence joins, leaves and changes, acks and refusals of frames naming ``C``;
- a reader of ``user=U`` gets every event of the connections whose token subject is ``U`` (with
  authentication off, ``session=S`` names one connection instead): connects, every frame it sent
  (decoded), every answer the server sent it (acks matched by id, refusals with their code and
  ``retry_after``), disconnects with their code and reason.

Rules:

1. **No cost without a reader**: every hook is ``if tracer.active:`` on an attribute; nothing is
   decoded or built unless some reader is attached.
2. **Bounded**: each reader has a queue of at most ``trace_queue`` events. When it is full, new
   events are dropped and counted; the reader gets a ``dropped`` event with the count when it
   catches up. A slow reader never makes the server hold more.
3. **Redacted**: payloads are left out (their size is shown) unless the server runs with
   ``--trace-payloads``; tokens never appear (a ``refresh`` shows none).

Events are JSON objects with ``event`` (what happened), ``at`` (unix seconds) and the fields of
that event; the frames are decoded by :mod:`pyrt.wire.codec`, never by hand.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyrt.wire import binary, codec
from pyrt.wire.frames import (
    Ack,
    ErrorFrame,
    HistoryRequest,
    Message,
    Ping,
    Pong,
    PresenceJoin,
    PresenceLeave,
    PresenceRequest,
    Publish,
    Refresh,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Welcome,
)

if TYPE_CHECKING:
    from pyrt.server.brokers.base import Publication
    from pyrt.server.connection import Connection
    from pyrt.wire.types import Frame

__all__ = ["Filter", "TraceReader", "Tracer"]


@dataclass(frozen=True, slots=True)
class Filter:
    """What a reader follows: one channel, one token subject, or one session."""

    channel: str | None = None
    user: str | None = None
    session: str | None = None

    def describe(self) -> str:
        for name in ("channel", "user", "session"):
            value = getattr(self, name)
            if value is not None:
                return f"{name}={value}"
        return "nothing"


class TraceReader:
    """One reader's bounded queue (see rule 2 of the module docstring)."""

    __slots__ = ("_ready", "dropped", "filter", "limit", "queue", "since", "total_dropped")

    def __init__(self, filter: Filter, limit: int) -> None:
        self.filter = filter
        self.limit = max(1, limit)
        self.queue: deque[str] = deque()
        self.dropped = 0  # dropped since the last ``dropped`` event
        self.total_dropped = 0
        self.since = time.time()
        self._ready = asyncio.Event()

    def offer(self, line: str) -> None:
        """Queue one event's JSON, or count it dropped when the queue is full."""
        if len(self.queue) >= self.limit:
            self.dropped += 1
            self.total_dropped += 1
            return
        self.queue.append(line)
        self._ready.set()

    async def next_batch(self) -> list[str]:
        """Wait for events; return those queued (a ``dropped`` event first when some were)."""
        while not self.queue and not self.dropped:
            self._ready.clear()
            await self._ready.wait()
        batch: list[str] = []
        if self.dropped:
            batch.append(json.dumps({"event": "dropped", "at": time.time(), "count": self.dropped}))
            self.dropped = 0
        batch.extend(self.queue)
        self.queue.clear()
        return batch


class Tracer:
    """The readers of this server's trace, by what they follow (see the module docstring)."""

    def __init__(self, payloads: bool = False) -> None:
        self.payloads = payloads
        #: True while at least one reader is attached: every hook checks it first.
        self.active = False
        self.readers: list[TraceReader] = []
        self._channels: dict[str, list[TraceReader]] = {}
        self._users: dict[str, list[TraceReader]] = {}
        self._sessions: dict[str, list[TraceReader]] = {}

    # ------------------------------------------------------------------ readers

    def attach(self, filter: Filter, limit: int) -> TraceReader:
        reader = TraceReader(filter, limit)
        self.readers.append(reader)
        for key, table in self._tables(filter):
            table.setdefault(key, []).append(reader)
        self.active = True
        return reader

    def detach(self, reader: TraceReader) -> None:
        if reader in self.readers:
            self.readers.remove(reader)
        for key, table in self._tables(reader.filter):
            readers = table.get(key)
            if readers is not None and reader in readers:
                readers.remove(reader)
                if not readers:
                    del table[key]
        self.active = bool(self.readers)

    def _tables(self, filter: Filter) -> list[tuple[str, dict[str, list[TraceReader]]]]:
        tables = []
        if filter.channel is not None:
            tables.append((filter.channel, self._channels))
        if filter.user is not None:
            tables.append((filter.user, self._users))
        if filter.session is not None:
            tables.append((filter.session, self._sessions))
        return tables

    # ------------------------------------------------------------------ events

    def _emit(self, event: dict[str, Any], conn: Connection | None, subject: str | None) -> None:
        channel = event.get("channel")
        targets: list[TraceReader] = []
        if isinstance(channel, str):
            targets.extend(self._channels.get(channel, ()))
        if conn is not None:
            if subject is not None:
                targets.extend(self._users.get(subject, ()))
            targets.extend(self._sessions.get(conn.session, ()))
        if not targets:
            return
        if conn is not None:
            event["session"] = conn.session
            event["transport"] = conn.kind
            if subject is not None:
                event["user"] = subject
        event["at"] = round(time.time(), 6)
        line = json.dumps(event, separators=(",", ":"), default=str)
        for reader in dict.fromkeys(targets):  # once each, even when two filters match
            reader.offer(line)

    def _follows(self, conn: Connection, subject: str | None) -> bool:
        return (subject is not None and subject in self._users) or conn.session in self._sessions

    def _may_name_a_channel(self, frame: Frame) -> bool:
        """Whether ``frame`` holds the name of a traced channel (a substring test: what holds
        one is then decoded, to see whether it is really that frame's channel; MessagePack
        carries a name as its UTF-8 bytes)."""
        if isinstance(frame, str):
            return any(channel in frame for channel in self._channels)
        return any(channel.encode() in frame for channel in self._channels)

    def connected(self, conn: Connection, subject: str | None) -> None:
        if self._follows(conn, subject):
            event = {"event": "connect", "address": conn.client_ip, "identity": conn.identity}
            self._emit(event, conn, subject)

    def closing(self, conn: Connection, subject: str | None, code: int, reason: str) -> None:
        """The server closes the connection with ``code`` and ``reason``."""
        if self._follows(conn, subject):
            self._emit({"event": "close", "code": code, "reason": reason}, conn, subject)

    def disconnected(self, conn: Connection, subject: str | None, clean: bool) -> None:
        """The connection is gone (``clean``: the client closed it, or the server did)."""
        if self._follows(conn, subject):
            self._emit({"event": "disconnect", "clean": clean}, conn, subject)

    def frame_in(self, conn: Connection, subject: str | None, frame: Frame) -> None:
        """A frame a client sent (before the session handles it)."""
        if not (self._follows(conn, subject) or self._may_name_a_channel(frame)):
            return
        try:
            decoded = (
                codec.decode_client_frame(frame)
                if isinstance(frame, str)
                else binary.decode_client_frame(frame)
            )
        except Exception as exc:
            self._emit({"event": "unreadable", "why": str(exc)[:200], "bytes": len(frame)}, conn, subject)
            return
        event = self._client_event(decoded, len(frame))
        if event is not None:
            self._emit(event, conn, subject)

    def frame_out(self, conn: Connection, subject: str | None, text: Frame) -> None:
        """An answer the server queued for one client (not the publications it fans out): JSON
        text, or MessagePack on the binary binding (read through :mod:`pyrt.wire.binary`)."""
        if not (self._follows(conn, subject) or self._may_name_a_channel(text)):
            return
        if isinstance(text, str):
            frames = [codec.decode_server_frame(one) for one in codec.split_batch(text) or [text]]
        else:
            frames = binary.decode_batch(text)  # what it cannot read is a BadFrame
        for decoded in frames:
            event = self._server_event(decoded)
            if event is not None:
                self._emit(event, conn, subject)

    def publication(self, publication: Publication, subscribers: int) -> None:
        """A publication this instance fans out to its subscribers of its channel."""
        if publication.channel not in self._channels:
            return
        event: dict[str, Any] = {
            "event": "publication",
            "channel": publication.channel,
            "offset": publication.offset,
            "type": publication.event,
            "subscribers": subscribers,
        }
        if self.payloads:
            event["data"] = json.loads(publication.data_json)
        else:
            event["bytes"] = len(publication.data_json)
        self._emit(event, None, None)

    def presence(self, channel: str, version: str, joins: list[str], leaves: list[str]) -> None:
        """The presence of ``channel`` changed (members as the JSON the store keeps)."""
        if channel not in self._channels:
            return
        event: dict[str, Any] = {
            "event": "presence",
            "channel": channel,
            "version": version,
            "joined": len(joins),
            "left": len(leaves),
        }
        if self.payloads:
            event["members"] = {"joined": joins, "left": leaves}
        self._emit(event, None, None)

    # ------------------------------------------------------------------ decoding

    def _data(self, event: dict[str, Any], data: Any) -> None:
        if self.payloads:
            event["data"] = data
            return
        try:
            event["bytes"] = len(codec.json_text(data))
        except Exception:
            event["bytes"] = None

    def _client_event(self, frame: object, size: int) -> dict[str, Any] | None:
        if isinstance(frame, Ping | Pong):
            return None
        if isinstance(frame, Publish):
            event: dict[str, Any] = {"event": "publish", "channel": frame.channel, "id": frame.id}
            self._data(event, frame.data)
            return event
        if isinstance(frame, Message):
            event = {"event": "message", "id": frame.id}
            self._data(event, frame.data)
            return event
        if isinstance(frame, Subscribe):
            return {"event": "subscribe", "channel": frame.channel, "since": frame.since}
        if isinstance(frame, Unsubscribe):
            return {"event": "unsubscribe", "channel": frame.channel}
        if isinstance(frame, PresenceJoin):
            return {"event": "join", "channel": frame.channel, "id": frame.id}
        if isinstance(frame, PresenceLeave):
            return {"event": "leave", "channel": frame.channel, "id": frame.id}
        if isinstance(frame, HistoryRequest | PresenceRequest):
            what = "history" if isinstance(frame, HistoryRequest) else "presence_read"
            return {"event": what, "channel": frame.channel, "id": frame.id}
        if isinstance(frame, Refresh):
            return {"event": "refresh", "id": frame.id}  # the token stays out
        return {"event": type(frame).__name__.lower(), "bytes": size}

    def _server_event(self, frame: object) -> dict[str, Any] | None:
        if isinstance(frame, Ack):
            if frame.ok:
                return {"event": "ack", "id": frame.id, "duplicate": frame.duplicate or None}
            return {"event": "refusal", "id": frame.id, "code": frame.code, "retry_after": frame.retry_after}
        if isinstance(frame, ErrorFrame):
            return {
                "event": "refusal",
                "code": frame.code,
                "message": frame.message,
                "id": frame.id,
                "channel": frame.channel,
                "retry_after": frame.retry_after,
            }
        if isinstance(frame, Subscribed):
            return {
                "event": "subscribed",
                "channel": frame.channel,
                "offset": frame.offset,
                "recovered": frame.recovered,
            }
        if isinstance(frame, Welcome):
            return {"event": "welcome", "heartbeat": frame.heartbeat}
        return None
