"""Fakes for testing code built on pyrt, with no network, no browser and no real time.

- :class:`FakeClock` — time that moves only when told.
- :class:`FakePyrtServer` — an in-memory peer speaking the pyrt protocol: acks with dedup by id,
  channels with offsets, replay on resubscribe, limited retention, token refresh, history and
  presence (a conformance test runs the same frame scripts against it and against
  ``serve.py``), and optionally the advertised limits of ``serve.py`` enforced by the same rules
  (:mod:`pyrt.session.admission`).
- :class:`EngineHarness` — runs a :class:`~pyrt.engine.websocket.WebSocketEngine` the way an adapter
  does, against :class:`FakeSocket` objects and an optional :class:`FakePyrtServer`, and records
  what a user would see (messages, publications, ack results, states, reconnects, errors).
- :class:`FakeTransport` — ``WebSocketClient(url, transport=FakeTransport(server))``.
- :class:`FakeFetchTransport` and :class:`FakeEventSourceTransport` — ``FetchEventSource(url,
  transport=...)`` and ``EventSourceClient(url, transport=...)``, the test playing the server.
- :class:`FakeShareBus` — tabs sharing one connection: ``WebSocketClient(url, share=bus.channel(),
  transport=FakeTransport(server))`` per "tab"; :meth:`FakeShareBus.crash` kills one.

Example::

    server = FakePyrtServer()
    h = EngineHarness(server=server, heartbeat=None)
    h.connect()
    reply = h.send_with_ack({"n": 1})
    h.drop()                      # the network breaks
    h.advance(1.0)                # the client reconnects by itself
    assert reply.value == {"n": 1} and server.handled == [{"n": 1}]
"""

from __future__ import annotations

import functools
import json
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyrt.engine.presence import Member, member_id
from pyrt.engine.states import State
from pyrt.engine.subscriptions import Publication
from pyrt.engine.websocket import (
    NO_MESSAGE,
    Action,
    Closed,
    CloseSocket,
    DeliverMessage,
    DeliverPresence,
    DeliverPublication,
    FetchToken,
    OpenSocket,
    Reconnecting,
    RejectAck,
    ReportError,
    ReportRestored,
    ResolveAck,
    SaveState,
    SendFrame,
    StateChanged,
    SubscriptionConfirmed,
    WebSocketEngine,
)
from pyrt.persist.records import (
    Changes,
    MemoryRecordStore,
    RecordStore,
    RestoredMessage,
    Snapshot,
    Storage,
    as_record_store,
)
from pyrt.ports.sse_transport import EventSourceEvents, FetchEvents, FetchRequest
from pyrt.ports.transport import PageEvents, SocketEvents
from pyrt.session.admission import FlowGate, Verdict
from pyrt.wire.limits import ServerLimits
from pyrt.wire.names import CHANNEL_RULE, EVENT_RULE, ID_RULE, is_channel_name, is_event_name, is_message_id
from pyrt.wire.offsets import offset_key
from pyrt.wire.refusals import RATE_LIMITED
from pyrt.wire.types import Frame

__all__ = [
    "AckWaiter",
    "EngineHarness",
    "FakeClock",
    "FakeEventSourceTransport",
    "FakeFetchTransport",
    "FakePyrtServer",
    "FakeRequest",
    "FakeShareBus",
    "FakeShareChannel",
    "FakeSocket",
    "FakeSource",
    "FakeTransport",
    "ServerConnection",
]


class FakeClock:
    """A clock for tests: ``clock()`` returns :attr:`now`, which moves only by :meth:`advance`."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self.now += seconds
        return self.now


# ------------------------------------------------------------------------------------ the server


@dataclass(eq=False)
class ServerConnection:
    """The server's end of one fake socket."""

    server: FakePyrtServer
    session: str
    outgoing: deque[Frame] = field(default_factory=deque)  # frames for the client, in order
    channels: set[str] = field(default_factory=set)
    open: bool = True
    on_push: Callable[[], None] | None = None  # called after each frame queued for the client
    token: str | None = None  # the token of the handshake or of the last accepted refresh
    identity: str = "ip:127.0.0.1"  # who the client is, for member ids (tests may set their own)
    #: (channel, member id) it joined as: several per channel when clients share it, one per key
    presence: set[tuple[str, str]] = field(default_factory=set)
    watching: set[str] = field(default_factory=set)  # channels whose presence it follows
    gate: FlowGate | None = None  # the connection's admission (None: no limits enforced)
    close_code: int | None = None  # set when the server closed the connection (after outgoing)
    close_reason: str = ""
    #: The client offered ``pyrt.v1.batch`` and the server speaks it: :meth:`take` joins what
    #: queued up into one message, one frame per line, as ``serve.py`` does under load.
    batch: bool = False

    def take(self) -> Frame:
        """The next message for the client: one frame, or with :attr:`batch` every queued one."""
        if not self.batch or len(self.outgoing) < 2:
            return self.outgoing.popleft()
        frames = [str(self.outgoing.popleft()) for _ in range(len(self.outgoing))]
        return "\n".join(frames)

    def handle(self, frame: Frame) -> None:
        """Process one frame from the client; replies land in :attr:`outgoing`."""
        self.server.handle(self, frame)

    def error(self, code: str, message: str, frame_id: object = None) -> None:
        """An ``error`` frame; it names the frame's id when that is a valid id."""
        frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if is_message_id(frame_id):
            frame["id"] = frame_id
        self.push(frame)

    def closed(self, code: int) -> None:
        """The socket closed: its members leave at once after a close frame (1000, 1001); after
        anything else they stay, as on ``serve.py`` for its grace period, until the client joins
        again or the test calls :meth:`FakePyrtServer.expire_lost`."""
        if not self.open:
            return
        self.open = False
        self.outgoing.clear()
        for channel, member in list(self.presence):
            self.server.release(channel, member, self, clean=code in (1000, 1001))
        self.presence.clear()

    def push(self, obj: dict[str, Any]) -> None:
        if self.open and self.close_code is None:
            self.outgoing.append(json.dumps(obj, separators=(",", ":")))
            if self.on_push is not None:
                self.on_push()

    def close(self, code: int, reason: str = "") -> None:
        """Close from the server's side: the client sees ``code`` after what is queued for it."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            if self.on_push is not None:
                self.on_push()


class FakePyrtServer:
    """An in-memory pyrt protocol server (see docs/protocol.md), for the engine's tests and yours.

    ``app(data)`` handles each application message once per id and returns the ack's data
    (default: the data itself). Fire-and-forget messages are echoed back as ``message`` frames.
    ``retention`` bounds how many publications each channel keeps for replay. ``overlap`` makes
    every replay start that many publications too early (an at-least-once server), to check that
    the client drops what it already delivered. ``batch`` (default on, like ``serve.py``): a
    client that offers ``pyrt.v1.batch`` gets the frames that queued up for it in one message,
    one per line (docs/protocol.md, "Batched frames").

    ``token_ttl(token)`` turns tokens on: it returns how many seconds a token (the handshake's
    ``bearer.<token>`` subprotocol, or a ``refresh`` frame's) lasts, or ``None`` for a token the
    server refuses. ``welcome`` then carries the handshake token's ``ttl`` and ``refresh`` frames
    are answered with the new one (or ``unauthorized``). Expiry is the test's to play:
    ``transport.drop(4001, "token expired")``. ``forbidden`` lists channels nobody may use.
    ``limits`` are advertised in ``welcome`` and enforced like ``serve.py`` does (a token bucket,
    holds after refusals, 1008 for abuse: :mod:`pyrt.session.admission`), on the clock ``clock``
    (:class:`EngineHarness` lends its own). ``enforce`` enforces other limits than the advertised
    ones: a stricter server, or frames that the network bunches together. :attr:`refusals` lists
    every refusal, :attr:`arrivals` the time each frame was read.
    """

    def __init__(
        self,
        app: Callable[[Any], Any] | None = None,
        retention: int | None = None,
        overlap: int = 0,
        *,
        token_ttl: Callable[[str], float | None] | None = None,
        forbidden: Sequence[str] = (),
        limits: ServerLimits | None = None,
        enforce: ServerLimits | None = None,
        abuse_limit: int = 100,
        clock: Callable[[], float] | None = None,
        batch: bool = True,
    ) -> None:
        self.app = app if app is not None else (lambda data: data)
        self.retention = retention
        self.overlap = overlap
        self.token_ttl = token_ttl
        self.forbidden = set(forbidden)
        self.refreshed: list[str] = []  # tokens accepted by refresh frames, in order
        #: Presence by channel: member id -> (member, owning connection, lost: its connection
        #: ended without a close frame and the member waits for a rejoin or expire_lost()).
        self.members: dict[str, dict[str, tuple[dict[str, Any], ServerConnection, bool]]] = {}
        self._presence_version = 0
        self._versions: dict[str, str] = {}
        self.limits = limits
        self.enforce = enforce if enforce is not None else limits
        self.abuse_limit = abuse_limit
        self.clock: Callable[[], float] | None = clock
        self.refusals: list[dict[str, Any]] = []  # every rate_limited / unavailable answer sent
        self.arrivals: list[float] = []  # when each frame was read, on ``clock``
        self.abuse_closes = 0  # connections closed with 1008
        self.batch = batch
        self.accepting = True  # False: new sockets fail to open (server down)
        self.handled: list[Any] = []  # application messages, each id once, in arrival order
        self.received_frames: list[Frame] = []
        self.log: dict[str, list[tuple[str, str, Any]]] = {}  # channel -> (offset, event, data)
        self.dropped_before: dict[str, int] = {}  # channel -> publications no longer retained
        self.answers: dict[Any, dict[str, Any]] = {}  # dedup window: id -> ack frame
        self.connections: list[ServerConnection] = []

    def now(self) -> float:
        return self.clock() if self.clock is not None else 0.0

    def accept(self, protocols: Sequence[str] = ()) -> ServerConnection:
        """A new connection; ``protocols`` are the subprotocols the client offered."""
        conn = ServerConnection(self, f"s{len(self.connections) + 1}")
        conn.batch = self.batch and "pyrt.v1.batch" in protocols
        self.connections.append(conn)
        welcome: dict[str, Any] = {"type": "welcome", "session": conn.session, "server": "fake"}
        welcome["heartbeat"] = 25
        if self.limits is not None:
            welcome["limits"] = self.limits.to_wire()
        enforce = self.enforce
        if enforce is not None and enforce.rate is not None:
            burst = enforce.burst if enforce.burst is not None else enforce.rate
            window = enforce.window if enforce.window is not None else 1000
            conn.gate = FlowGate(enforce.rate, burst, window, self.abuse_limit, self.now())
        conn.token = next((p[len("bearer.") :] for p in protocols if p.startswith("bearer.")), None)
        if self.token_ttl is not None and conn.token is not None:
            ttl = self.token_ttl(conn.token)
            if ttl is not None:
                welcome["ttl"] = ttl
        conn.push(welcome)
        return conn

    def publish(self, channel: str, data: Any, event: str = "message") -> str:
        """Publish (as another client or the application would); returns the offset."""
        log = self.log.setdefault(channel, [])
        offset = f"1-{self.dropped_before.get(channel, 0) + len(log) + 1}"
        log.append((offset, event, data))
        if self.retention is not None and len(log) > self.retention:
            del log[0]
            self.dropped_before[channel] = self.dropped_before.get(channel, 0) + 1
        for conn in self.connections:
            if conn.open and channel in conn.channels:
                conn.push(self._publication(channel, offset, event, data))
        return offset

    def handle(self, conn: ServerConnection, frame: Frame) -> None:
        """Answer one frame as ``serve.py`` does (tests/server/test_testing.py holds the two to it)."""
        self.received_frames.append(frame)
        now = self.now()
        self.arrivals.append(now)
        gate = conn.gate
        if gate is not None and not gate.admit(now) and not self._admitted(conn, gate, frame, now):
            return
        if not isinstance(frame, str):
            conn.error("binary_not_supported", "binary frames are not pyrt frames")
            return
        try:
            msg = json.loads(frame)
        except ValueError:
            conn.error("bad_json", "the frame is not valid JSON")
            return
        if not isinstance(msg, dict):
            conn.error("bad_frame", "a frame must be a JSON object")
            return
        kind = msg.get("type")
        if kind == "ping":
            conn.push({"type": "pong", "t": msg["t"]} if "t" in msg else {"type": "pong"})
        elif kind == "pong":
            if gate is not None:
                gate.pong(msg.get("t"), now)
        elif kind == "message":
            self._message(conn, msg)
        elif kind == "subscribe":
            channel, since = msg.get("channel"), msg.get("since")
            if not is_channel_name(channel):
                conn.error("bad_frame", CHANNEL_RULE)
            elif channel in self.forbidden:
                conn.push(
                    {"type": "error", "code": "forbidden", "message": "not allowed", "channel": channel}
                )
            elif since is not None and (not isinstance(since, str) or offset_key(since) is None):
                conn.error("bad_frame", f"an offset must look like '12-3' or '0', got {since!r}")
            elif not isinstance(msg.get("presence", False), bool):
                conn.push(
                    {
                        "type": "error",
                        "code": "bad_frame",
                        "message": "presence must be true or false",
                        "channel": channel,
                    }
                )
            else:
                self._subscribe(conn, channel, since, bool(msg.get("presence", False)))
        elif kind == "unsubscribe":
            channel = msg.get("channel")
            if not isinstance(channel, str):
                conn.error("bad_frame", "unsubscribe needs a channel")
            else:
                conn.channels.discard(channel)
                conn.watching.discard(channel)
                conn.push({"type": "unsubscribed", "channel": channel})
        elif kind == "publish":
            self._publish(conn, msg)
        elif kind == "refresh":
            self._refresh(conn, msg)
        elif kind == "history":
            self._history(conn, msg)
        elif kind == "presence":
            self._presence(conn, msg)
        elif kind == "presence_join":
            self._join(conn, msg)
        elif kind == "presence_leave":
            self._leave(conn, msg)
        elif kind != "pong":
            conn.error("unknown_type", f"unknown frame type {str(kind)[:40]!r}", msg.get("id"))

    def _history(self, conn: ServerConnection, msg: dict[str, Any]) -> None:
        frame_id = msg.get("id")
        if not is_message_id(frame_id):
            conn.error("bad_frame", f"a read needs an id: {ID_RULE}")
            return
        channel, since, limit, reverse = (
            msg.get("channel"),
            msg.get("since"),
            msg.get("limit", 100),
            msg.get("reverse", False),
        )
        if channel in self.forbidden:
            conn.error("forbidden", "not allowed", frame_id)
        elif not is_channel_name(channel):
            conn.error("bad_frame", CHANNEL_RULE, frame_id)
        elif since is not None and (not isinstance(since, str) or offset_key(since) is None):
            conn.error("bad_frame", f"an offset must look like '12-3' or '0', got {since!r}", frame_id)
        elif isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            conn.error("bad_frame", "limit must be a whole number from 1", frame_id)
        elif not isinstance(reverse, bool):
            conn.error("bad_frame", "reverse must be true or false", frame_id)
        else:
            page = self.history_page(channel, since, min(limit, 1000), reverse)
            conn.push({"type": "ack", "id": frame_id, "ok": True, "data": page})

    def history_page(self, channel: str, since: str | None, limit: int, reverse: bool) -> dict[str, Any]:
        """A page of ``channel``'s history, as ``serve.py``'s memory broker makes it (at most
        ``limit`` publications and about 1 MiB of data)."""
        log = self.log.get(channel, [])
        latest = log[-1][0] if log else "0"
        keys = [offset_key(item[0]) or (0, 0) for item in log]
        key = offset_key(since) if since is not None else None
        recovered = True
        if reverse:
            end = len(log) if key is None else sum(1 for k in keys if k < key)
            order = list(range(end - 1, -1, -1))
        else:
            start = 0
            if key is not None and key != (0, 0):
                lost = self.dropped_before.get(channel, 0)
                if key[0] == 1 and lost <= key[1] <= lost + len(log):
                    start = key[1] - lost
                else:  # no longer retained (or never was): from the oldest retained
                    recovered = False
            order = list(range(start, len(log)))
        chosen: list[dict[str, Any]] = []
        size = 0
        for index in order[:limit]:
            offset, event, data = log[index]
            size += len(json.dumps(data, separators=(",", ":"), ensure_ascii=False))
            if chosen and size > 1 << 20:
                break
            chosen.append({"offset": offset, "event": event, "data": data})
        if channel not in self.log:  # a channel nothing was ever published into
            recovered = reverse or key is None or key == (0, 0)
        return {
            "publications": chosen,
            "offset": latest,
            "recovered": recovered,
            "more": len(chosen) < len(order),
        }

    # -- presence, as serve.py keeps it (one instance, the default limits)

    def _snapshot(self, channel: str) -> dict[str, Any]:
        members = self.members.get(channel, {})
        version = self._versions.get(channel, "0") if members else "0"
        return {"members": [member for member, _, _ in members.values()], "version": version}

    def _presence(self, conn: ServerConnection, msg: dict[str, Any]) -> None:
        frame_id, channel = msg.get("id"), msg.get("channel")
        if not is_message_id(frame_id):
            conn.error("bad_frame", f"a read needs an id: {ID_RULE}")
        elif channel in self.forbidden:
            conn.error("forbidden", "not allowed", frame_id)
        elif not is_channel_name(channel):
            conn.error("bad_frame", CHANNEL_RULE, frame_id)
        else:
            conn.push({"type": "ack", "id": frame_id, "ok": True, "data": self._snapshot(channel)})

    def _join(self, conn: ServerConnection, msg: dict[str, Any]) -> None:
        frame_id, channel, key = msg.get("id"), msg.get("channel"), msg.get("key", "")
        if frame_id is not None and not is_message_id(frame_id):
            conn.error("bad_frame", ID_RULE)
            return
        if not is_channel_name(channel):
            conn.error("bad_frame", CHANNEL_RULE, frame_id)
            return
        if not isinstance(key, str) or len(key) > 64:
            conn.error("bad_frame", "key must be a string of at most 64 characters", frame_id)
            return
        if channel in self.forbidden or channel.startswith("_"):
            conn.error("forbidden", "not allowed", frame_id)
            return
        member_key = member_id(conn.identity, key or conn.session)
        if (channel, member_key) not in conn.presence and len(conn.presence) >= 16:
            conn.error("forbidden", "at most 16 presence joins per connection", frame_id)
            return
        info = msg.get("info")
        if len(json.dumps(info, separators=(",", ":"), ensure_ascii=False)) > 512:
            conn.error("bad_frame", "info is too large (at most 512 characters of JSON)", frame_id)
            return
        member = {"client": member_key, "user": None, "info": info}
        members = self.members.setdefault(channel, {})
        known = members.get(member_key)
        if known is None:
            if len(members) >= 1000:
                conn.error("forbidden", "the presence is full", frame_id)
                return
            if sum(1 for _, owner, _ in members.values() if owner.identity == conn.identity) >= 16:
                conn.error("forbidden", "as many members as one client may", frame_id)
                return
        members[member_key] = (member, conn, False)
        conn.presence.add((channel, member_key))
        if known is None or known[0] != member:
            self._announce(channel, [member], [])
        if frame_id is not None:
            conn.push({"type": "ack", "id": frame_id, "ok": True, "data": {"client": member_key}})

    def _leave(self, conn: ServerConnection, msg: dict[str, Any]) -> None:
        frame_id, channel, key = msg.get("id"), msg.get("channel"), msg.get("key", "")
        if frame_id is not None and not is_message_id(frame_id):
            conn.error("bad_frame", ID_RULE)
            return
        if not is_channel_name(channel) or not isinstance(key, str) or len(key) > 64:
            conn.error(
                "bad_frame", "presence_leave needs a channel and a key of at most 64 characters", frame_id
            )
            return
        member_key = member_id(conn.identity, key or conn.session)
        conn.presence.discard((channel, member_key))
        self._remove(channel, [member_key])
        if frame_id is not None:
            conn.push({"type": "ack", "id": frame_id, "ok": True, "data": None})

    def release(self, channel: str, member_key: str, conn: ServerConnection, *, clean: bool) -> None:
        """``conn`` ended: its member leaves now (``clean``) or waits as lost (see
        :meth:`ServerConnection.closed`), unless another connection took it over."""
        entry = self.members.get(channel, {}).get(member_key)
        if entry is None or entry[1] is not conn:
            return
        if clean:
            self._remove(channel, [member_key])
        else:
            self.members[channel][member_key] = (entry[0], conn, True)

    def expire_lost(self) -> None:
        """The grace period ran out: members of connections lost without a close frame leave."""
        for channel, members in list(self.members.items()):
            self._remove(channel, [key for key, (_, _, lost) in members.items() if lost])

    def _remove(self, channel: str, member_keys: list[str]) -> None:
        members = self.members.get(channel, {})
        gone = [members.pop(key)[0] for key in member_keys if key in members]
        if not members:
            self.members.pop(channel, None)
        if gone:
            self._announce(channel, [], gone)

    def _announce(self, channel: str, joins: list[dict[str, Any]], leaves: list[dict[str, Any]]) -> None:
        self._presence_version += 1
        version = self._versions[channel] = f"1-{self._presence_version}"
        diff = {
            "type": "presence_diff",
            "channel": channel,
            "version": version,
            "joins": joins,
            "leaves": leaves,
        }
        for conn in self.connections:
            if conn.open and channel in conn.watching:
                conn.push(diff)

    def _refresh(self, conn: ServerConnection, msg: dict[str, Any]) -> None:
        frame_id, token = msg.get("id"), msg.get("token")
        if frame_id is not None and not is_message_id(frame_id):
            conn.error("bad_frame", ID_RULE)
        elif not isinstance(token, str):
            conn.error("bad_frame", "refresh needs a token (a string)", frame_id)
        elif self.token_ttl is None:
            if frame_id is not None:
                conn.push({"type": "ack", "id": frame_id, "ok": True, "data": {"ttl": None}})
        else:
            ttl = self.token_ttl(token)
            if ttl is None:
                conn.error("unauthorized", "bad or expired token", frame_id)
                return
            conn.token = token
            self.refreshed.append(token)
            if frame_id is not None:
                conn.push({"type": "ack", "id": frame_id, "ok": True, "data": {"ttl": ttl}})

    def _admitted(self, conn: ServerConnection, gate: FlowGate, frame: Frame, now: float) -> bool:
        """A frame the gate did not let through at once: accept it, or refuse it as serve.py does."""
        try:
            msg = json.loads(frame) if isinstance(frame, str) else {}
        except ValueError:
            msg = {}
        if not isinstance(msg, dict):
            msg = {}
        kind = msg.get("type")
        verdict = gate.check(now, kind if isinstance(kind, str) else None)
        if verdict is Verdict.ACCEPT:
            return True
        if verdict is Verdict.CLOSE:
            self.abuse_closes += 1
            conn.close(1008, "rate limit exceeded")
            return False
        refusal: dict[str, Any] = {
            "type": "error",
            "code": RATE_LIMITED,
            "message": "too many frames: slow down",
            "retry_after": round(gate.retry_after(now), 3),
        }
        if "id" in msg:
            refusal["id"] = msg["id"]
        if kind in ("subscribe", "unsubscribe") and isinstance(msg.get("channel"), str):
            refusal["channel"] = msg["channel"]
        self.refusals.append(refusal)
        conn.push(refusal)
        if verdict is Verdict.HOLD:
            conn.push({"type": "ping", "t": gate.marker})
        return False

    def _message(self, conn: ServerConnection, msg: dict[str, Any]) -> None:
        data = msg.get("data")
        if "id" not in msg or msg["id"] is None:
            self.handled.append(data)
            conn.push({"type": "message", "data": data})
            return
        ack_id = msg["id"]
        if not is_message_id(ack_id):
            conn.error("bad_frame", ID_RULE)
            return
        if ack_id not in self.answers:
            self.handled.append(data)
            try:
                self.answers[ack_id] = {"type": "ack", "id": ack_id, "ok": True, "data": self.app(data)}
            except Exception as exc:
                self.answers[ack_id] = {"type": "ack", "id": ack_id, "ok": False, "error": str(exc)}
        conn.push(self.answers[ack_id])

    def _publish(self, conn: ServerConnection, msg: dict[str, Any]) -> None:
        ack_id = msg.get("id")
        if ack_id is not None and not is_message_id(ack_id):
            conn.error("bad_frame", ID_RULE)
            return
        channel, event = msg.get("channel"), msg.get("event", "message")
        if not is_channel_name(channel):
            conn.error("bad_frame", CHANNEL_RULE, ack_id)
            return
        if not is_event_name(event):
            conn.error("bad_frame", EVENT_RULE, ack_id)
            return
        if ack_id is None:
            self.publish(channel, msg.get("data"), event)
            return
        if ack_id not in self.answers:
            offset = self.publish(channel, msg.get("data"), event)
            self.answers[ack_id] = {"type": "ack", "id": ack_id, "ok": True, "data": {"offset": offset}}
        conn.push(self.answers[ack_id])

    def _subscribe(
        self, conn: ServerConnection, channel: str, since: str | None, presence: bool = False
    ) -> None:
        log = self.log.get(channel, [])
        latest = log[-1][0] if log else "0"
        conn.channels.add(channel)
        if presence:
            conn.watching.add(channel)
        else:
            conn.watching.discard(channel)
        replay: list[tuple[str, str, Any]] = []
        recovered = True
        if since is not None:
            key = offset_key(since) or (0, 0)
            first = next((i for i, item in enumerate(log) if (offset_key(item[0]) or (0, 0)) > key), len(log))
            replay = log[max(0, first - self.overlap) :]
            lost = self.dropped_before.get(channel, 0)
            if since != "0" and lost and key < (1, lost):
                recovered = False
        subscribed: dict[str, Any] = {
            "type": "subscribed",
            "channel": channel,
            "offset": latest,
            "recovered": recovered,
        }
        if presence:
            subscribed["presence"] = self._snapshot(channel)
        conn.push(subscribed)
        for offset, event, data in replay:
            conn.push(self._publication(channel, offset, event, data))

    @staticmethod
    def _publication(channel: str, offset: str, event: str, data: Any) -> dict[str, Any]:
        return {"type": "publication", "channel": channel, "offset": offset, "event": event, "data": data}


# ----------------------------------------------------------------------------------- the harness


@dataclass(eq=False)
class FakeSocket:
    """One socket the engine asked for."""

    attempt: int
    state: str = "connecting"  # "connecting" | "open" | "closing" | "closed"
    sent: list[Frame] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    detached: bool = False  # the engine gave up on it
    blackholed: bool = False  # frames vanish both ways (a half-open connection)
    buffered_amount: int = 0
    conn: ServerConnection | None = None
    url: str = ""
    protocols: tuple[str, ...] = ()
    events: SocketEvents | None = None


class AckWaiter:
    """The handle of one acked send: records how it ended (and how many times, to catch bugs)."""

    __slots__ = ("error", "outcomes", "value")

    def __init__(self) -> None:
        self.value: Any = None
        self.error: Exception | None = None
        self.outcomes = 0

    @property
    def done(self) -> bool:
        return self.outcomes > 0

    def __repr__(self) -> str:
        return f"AckWaiter(value={self.value!r}, error={self.error!r}, outcomes={self.outcomes})"


class EngineHarness:
    """Drives a :class:`WebSocketEngine` like an adapter, with fake sockets and a fake clock.

    With a ``server``, sockets open at once while ``server.accepting`` (and fail with 1006 while
    not), frames reach the server and its replies come back, unless the socket is blackholed.
    Without one, the test plays the server: :meth:`open`, :meth:`receive`, :meth:`drop`.
    ``token`` plays a client's token callable: called for every socket (offered as
    ``bearer.<token>``) and for every :class:`FetchToken`; an exception it raises is reported
    to the engine as a failed fetch. Extra keyword arguments go to :class:`WebSocketEngine`
    (``rng`` defaults to a fixed 0.5).
    With ``persist=True`` every :class:`SaveState` is applied to ``store`` (a durable
    :class:`~pyrt.persist.records.MemoryRecordStore` under the key ``"test"`` unless given): pass the
    same store to a second harness and :meth:`restore` plays a page reload.
    """

    def __init__(
        self,
        engine: WebSocketEngine | None = None,
        *,
        clock: FakeClock | None = None,
        server: FakePyrtServer | None = None,
        store: MemoryRecordStore | None = None,
        token: Callable[[], str] | None = None,
        **engine_kwargs: Any,
    ) -> None:
        engine_kwargs.setdefault("rng", lambda: 0.5)
        engine_kwargs.setdefault("token_refresh", token is not None)
        self.token = token
        self.store = store if store is not None else MemoryRecordStore(durable=True)
        self.engine = engine if engine is not None else WebSocketEngine(**engine_kwargs)
        self.clock = clock if clock is not None else FakeClock()
        self.server = server
        if server is not None and server.clock is None:
            server.clock = self.clock
        self.sockets: list[FakeSocket] = []
        self.messages: list[Any] = []
        self.publications: dict[str, list[Publication]] = {}
        #: Presence events of subscriptions made with ``presence=True``: ("join" | "leave", member).
        self.presence_events: dict[str, list[tuple[str, Member]]] = {}
        self.states: list[State] = [self.engine.state]
        self.reconnects: list[Reconnecting] = []
        self.errors: list[Exception] = []
        self.closes: list[Closed] = []
        self.saved: list[Changes] = []
        self.restored: list[RestoredMessage] = []
        self.confirmed: list[SubscriptionConfirmed] = []
        self.actions_seen: list[Action] = []
        self._events: deque[Callable[[], None]] = deque()

    # ------------------------------------------------------------------------- observations

    @property
    def now(self) -> float:
        return self.clock.now

    @property
    def state(self) -> State:
        return self.engine.state

    @property
    def socket(self) -> FakeSocket | None:
        """The socket the engine currently uses (not closed, not given up), if any."""
        if self.sockets and self.sockets[-1].state != "closed":
            return self.sockets[-1]
        return None

    @property
    def sent(self) -> list[Frame]:
        """Every frame sent on every socket, in order."""
        return [frame for sock in self.sockets for frame in sock.sent]

    # ------------------------------------------------------------------------- user's calls

    def connect(self) -> None:
        self.engine.connect(self.now)
        self.pump()

    def restore(self) -> Snapshot:
        """Load what ``store`` holds into the engine (a reloaded page, before :meth:`connect`)."""
        loaded: list[Snapshot] = []
        self.store.load("test", loaded.append, self._load_failed)
        self.engine.restore(loaded[0])
        self.pump()
        return loaded[0]

    def stored(self) -> Snapshot:
        """What ``store`` holds now."""
        loaded: list[Snapshot] = []
        self.store.load("test", loaded.append, self._load_failed)
        return loaded[0]

    @staticmethod
    def _load_failed(error: Exception) -> None:
        raise error

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.engine.close(self.now, code, reason)
        self.pump()

    def send(self, data: Any) -> None:
        sock = self.socket
        frame = self.engine.send(data, self.now, sock.buffered_amount if sock else 0)
        if frame is not None:
            self._transmit(frame)
        self.pump()

    def send_with_ack(self, data: Any, timeout: float | None = None) -> AckWaiter:
        waiter = AckWaiter()
        sock = self.socket
        self.engine.send_with_ack(data, self.now, waiter, timeout, sock.buffered_amount if sock else 0)
        self.pump()
        return waiter

    def publish(self, channel: str, data: Any, event: str | None = None) -> AckWaiter:
        waiter = AckWaiter()
        self.engine.publish(channel, data, self.now, waiter, event)
        self.pump()
        return waiter

    def subscribe(self, channel: str, since: str | None = None, presence: bool = False) -> list[Publication]:
        """Subscribe; returns the list the channel's publications are appended to. With
        ``presence``, its joins and leaves go to :attr:`presence_events`."""
        received = self.publications.setdefault(channel, [])
        on_presence = None
        if presence:
            events = self.presence_events.setdefault(channel, [])

            def on_presence(joined: tuple[Member, ...], left: tuple[Member, ...]) -> None:
                events.extend(("leave", member) for member in left)
                events.extend(("join", member) for member in joined)

        self.engine.subscribe(channel, received.append, self.now, since, on_presence)
        self.pump()
        return received

    def join(self, channel: str, info: Any = None) -> AckWaiter:
        waiter = AckWaiter()
        self.engine.join(channel, info, self.now, waiter)
        self.pump()
        return waiter

    def leave(self, channel: str) -> AckWaiter:
        waiter = AckWaiter()
        self.engine.leave(channel, self.now, waiter)
        self.pump()
        return waiter

    def presence(self, channel: str) -> AckWaiter:
        waiter = AckWaiter()
        self.engine.presence(channel, self.now, waiter)
        self.pump()
        return waiter

    def unsubscribe(self, channel: str) -> None:
        self.engine.unsubscribe(channel, self.now)
        self.pump()

    # ---------------------------------------------------------------------- the peer's side

    def open(self) -> None:
        """The current socket opens."""
        sock = self._current("open")
        sock.state = "open"
        self.engine.opened(self.now)
        self.pump()

    def receive(self, frame: Frame) -> None:
        """The current socket receives ``frame``."""
        self._current("receive on")
        self._deliver(frame)
        self.pump()

    def drop(self, code: int = 1006, reason: str = "", was_clean: bool | None = None) -> None:
        """The current socket closes from the other side (1006: the network broke)."""
        sock = self._current("drop")
        self._kill(sock, code, reason)
        self.engine.closed(code, reason, self.now, was_clean)
        self.pump()

    def blackhole(self) -> None:
        """From now on the current socket carries nothing either way, and never closes."""
        self._current("blackhole").blackholed = True

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass: the engine's timers fire at their deadlines, in order."""
        target = self.now + seconds
        spins = 0
        while True:
            deadline = self.engine.next_deadline()
            if deadline is None or deadline > target:
                break
            spins = spins + 1 if deadline <= self.now else 0
            if spins > 1000:
                raise RuntimeError(f"the engine's deadline {deadline} does not move past {self.now}")
            self.clock.now = max(self.now, deadline)
            self.tick()
        self.clock.now = target
        self.tick()

    def tick(self) -> None:
        sock = self.socket
        self.engine.tick(self.now, sock.buffered_amount if sock else 0)
        self.pump()

    # --------------------------------------------------------------------------- machinery

    def pump(self) -> None:
        """Carry out the engine's actions and the events they cause, until quiet; a timer
        already due fires too (as a zero-delay timer of a real event loop would)."""
        spins = 0
        while True:
            for action in self.engine.actions():
                self.actions_seen.append(action)
                self._perform(action)
            self._flush_server()
            if self._events:
                self._events.popleft()()
                continue
            if self.engine.has_actions:
                continue
            deadline = self.engine.next_deadline()
            if deadline is None or deadline > self.now:
                return
            spins += 1
            if spins > 1000:
                raise RuntimeError(f"the engine's deadline {deadline} does not move past {self.now}")
            sock = self.socket
            self.engine.tick(self.now, sock.buffered_amount if sock else 0)

    def _current(self, what: str) -> FakeSocket:
        sock = self.socket
        if sock is None:
            raise RuntimeError(f"cannot {what} the socket: there is no current socket")
        return sock

    def _deliver(self, frame: Frame) -> None:
        message = self.engine.received(frame, self.now)
        if message is not NO_MESSAGE:
            self.messages.append(message)

    def _transmit(self, frame: Frame) -> None:
        sock = self.socket
        if sock is None or sock.state != "open":
            raise AssertionError(f"the engine sent {frame!r} while no socket was open")
        sock.sent.append(frame)
        if sock.conn is not None and not sock.blackholed:
            sock.conn.handle(frame)

    def _flush_server(self) -> None:
        sock = self.socket
        if sock is None or sock.conn is None or sock.blackholed or sock.state != "open":
            return
        conn = sock.conn
        while conn.outgoing and sock.state == "open" and not sock.detached:
            frame = conn.take()
            self._deliver(frame)
            for action in self.engine.actions():
                self.actions_seen.append(action)
                self._perform(action)
        if conn.close_code is not None and sock.state == "open" and not sock.detached:
            code, reason = conn.close_code, conn.close_reason
            self._kill(sock, code, reason)
            self.engine.closed(code, reason, self.now, True)

    @staticmethod
    def _write_done(error: Exception | None) -> None:
        if error is not None:
            raise error

    def _kill(self, sock: FakeSocket, code: int, reason: str) -> None:
        sock.state = "closed"
        sock.close_code = code
        sock.close_reason = reason
        if sock.conn is not None:
            sock.conn.closed(code)

    def _perform(self, action: Action) -> None:
        if isinstance(action, SendFrame):
            self._transmit(action.frame)
        elif isinstance(action, OpenSocket):
            protocols = ("bearer." + self.token(),) if self.token is not None else ()
            sock = FakeSocket(action.attempt, protocols=protocols)
            self.sockets.append(sock)
            if self.server is not None:
                server = self.server
                if server.accepting:

                    def accept() -> None:
                        if sock.state == "connecting" and not sock.detached:
                            sock.conn = server.accept((*self.engine.protocol.subprotocols, *sock.protocols))
                            sock.state = "open"
                            self.engine.opened(self.now)

                    self._events.append(accept)
                else:

                    def refuse() -> None:
                        if sock.state == "connecting" and not sock.detached:
                            self._kill(sock, 1006, "")
                            self.engine.closed(1006, "", self.now)

                    self._events.append(refuse)
        elif isinstance(action, CloseSocket):
            sock = self._current("close")
            if action.detach:
                self._kill(sock, action.code, action.reason)
                sock.detached = True
                return
            sock.state = "closing"
            sock.close_code, sock.close_reason = action.code, action.reason
            if not sock.blackholed:  # a half-open socket never finishes its close handshake

                def finish() -> None:
                    if sock.state == "closing":
                        self._kill(sock, action.code, action.reason)
                        self.engine.closed(action.code, action.reason, self.now, True)

                self._events.append(finish)
        elif isinstance(action, DeliverPublication):
            handler = action.handler
            assert callable(handler)
            handler(action.publication)
        elif isinstance(action, DeliverPresence):
            handler = action.handler
            assert callable(handler)
            handler(action.joined, action.left)
        elif isinstance(action, DeliverMessage):
            self.messages.append(action.data)
        elif isinstance(action, ResolveAck | RejectAck):
            waiter = action.handle
            assert isinstance(waiter, AckWaiter)
            waiter.outcomes += 1
            if isinstance(action, ResolveAck):
                waiter.value = action.value
            else:
                waiter.error = action.error
        elif isinstance(action, StateChanged):
            assert action.old is self.states[-1], f"state jumped from {self.states[-1]} to {action.old}"
            self.states.append(action.new)
        elif isinstance(action, Reconnecting):
            self.reconnects.append(action)
        elif isinstance(action, ReportError):
            self.errors.append(action.error)
        elif isinstance(action, Closed):
            self.closes.append(action)
        elif isinstance(action, SaveState):
            self.saved.append(action.changes)
            self.store.write("test", action.changes, self._write_done)
        elif isinstance(action, ReportRestored):
            self.restored.append(action.message)
        elif isinstance(action, SubscriptionConfirmed):
            self.confirmed.append(action)
        elif isinstance(action, FetchToken):
            assert self.token is not None, "FetchToken from an engine without a token callable"
            try:
                token = self.token()
            except Exception as exc:
                self.engine.token_failed(exc, self.now)
            else:
                self.engine.token_fetched(token, self.now)


class FakeTransport:
    """An in-memory transport for :class:`~pyrt.WebSocketClient`, on any runtime.

    With a ``server``, each socket connects to it (while ``server.accepting``) and frames flow
    both ways; without one, the test plays the server with :meth:`accept`, :meth:`deliver` and
    :meth:`drop`. ``schedule(callback)`` decides when socket events fire: pass
    ``loop.call_soon`` for realistic asynchrony (the default runs them at once).
    """

    def __init__(
        self,
        server: FakePyrtServer | None = None,
        schedule: Callable[[Callable[[], None]], object] | None = None,
        storage: Storage | RecordStore | None = None,
    ) -> None:
        self.server = server
        self.schedule: Callable[[Callable[[], None]], object] = schedule or (lambda callback: callback())
        self.sockets: list[FakeSocket] = []
        self.page: PageEvents | None = None
        self.disposed = False
        self._storage = as_record_store(storage) if storage is not None else MemoryRecordStore(durable=True)

    @property
    def socket(self) -> FakeSocket | None:
        if self.sockets and self.sockets[-1].state not in ("closed",) and not self.sockets[-1].detached:
            return self.sockets[-1]
        return None

    # -- the Transport protocol

    def check_url(self, url: str) -> None:
        """Any URL: nothing is resolved."""

    def open(self, url: str, protocols: Sequence[str], events: SocketEvents) -> None:
        sock = FakeSocket(len(self.sockets) + 1, url=url, protocols=tuple(protocols), events=events)
        self.sockets.append(sock)
        server = self.server
        if server is None:
            return
        if server.accepting:
            self.schedule(lambda: self._accept(sock, server))
        else:
            self.schedule(lambda: self._fail(sock, 1006, ""))

    def send(self, frame: Frame) -> None:
        sock = self.socket
        if sock is None or sock.state != "open":
            raise AssertionError(f"send({frame!r}) while no socket is open")
        sock.sent.append(frame)
        if sock.conn is not None and not sock.blackholed:
            sock.conn.handle(frame)

    def buffered_amount(self) -> int:
        sock = self.socket
        return sock.buffered_amount if sock is not None else 0

    def close(self, code: int, reason: str, detach: bool) -> None:
        sock = self.socket
        if sock is None:
            return
        if detach:
            self._kill(sock, code, reason)
            sock.detached = True
            return
        sock.state = "closing"
        sock.close_code, sock.close_reason = code, reason
        if not sock.blackholed:
            self.schedule(lambda: self._fail(sock, code, reason, clean=True))

    def watch_page(self, events: PageEvents) -> None:
        self.page = events

    def storage(self) -> RecordStore | None:
        """A durable in-memory store (shared by the clients a test gives the same transport's
        store: ``FakeTransport(server, storage=store)``)."""
        return self._storage

    def dispose(self) -> None:
        sock = self.socket
        if sock is not None:
            self._kill(sock, 1000, "")
            sock.detached = True
        self.page = None
        self.disposed = True

    # -- the test's controls

    def accept(self) -> None:
        """The current socket opens (when there is no server)."""
        sock = self._current()
        sock.state = "open"
        assert sock.events is not None
        sock.events.socket_opened()

    def deliver(self, frame: Frame) -> None:
        """The current socket receives ``frame``."""
        sock = self._current()
        assert sock.events is not None
        sock.events.socket_message(frame)

    def drop(self, code: int = 1006, reason: str = "") -> None:
        """The current socket closes from the other side (1006: the network broke)."""
        self._fail(self._current(), code, reason, clean=code != 1006)

    def blackhole(self) -> None:
        """The current socket stops carrying anything, both ways, and never closes by itself."""
        self._current().blackholed = True

    # -- machinery

    def _current(self) -> FakeSocket:
        sock = self.socket
        if sock is None:
            raise RuntimeError("there is no current socket")
        return sock

    def _accept(self, sock: FakeSocket, server: FakePyrtServer) -> None:
        if sock.state != "connecting" or sock.detached:
            return
        conn = server.accept(sock.protocols)
        sock.conn = conn
        sock.state = "open"

        def flush_later() -> None:
            self.schedule(lambda: self._flush(sock))

        conn.on_push = flush_later
        assert sock.events is not None
        sock.events.socket_opened()
        self._flush(sock)

    def _flush(self, sock: FakeSocket) -> None:
        conn = sock.conn
        while conn is not None and conn.outgoing and sock.state == "open" and not sock.detached:
            if sock.blackholed:
                return
            frame = conn.take()
            assert sock.events is not None
            sock.events.socket_message(frame)
        if conn is not None and conn.close_code is not None and not conn.outgoing and not sock.blackholed:
            self._fail(sock, conn.close_code, conn.close_reason, clean=True)

    def _fail(self, sock: FakeSocket, code: int, reason: str, clean: bool = False) -> None:
        if sock.state == "closed" or sock.detached:
            return
        self._kill(sock, code, reason)
        assert sock.events is not None
        sock.events.socket_closed(code, reason, clean)

    @staticmethod
    def _kill(sock: FakeSocket, code: int, reason: str) -> None:
        sock.state = "closed"
        sock.close_code = code
        sock.close_reason = reason
        if sock.conn is not None:
            sock.conn.closed(code)


# ---------------------------------------------------------------------------------- SSE fakes


@dataclass(eq=False)
class FakeRequest:
    """One request a :class:`~pyrt.FetchEventSource` made through a :class:`FakeFetchTransport`."""

    request: FetchRequest
    events: FetchEvents
    status: int | None = None  # set by respond()
    reading: bool = False  # the client reads the body
    aborted: bool = False  # the client aborted it
    finished: bool = False  # ended or failed (by the test)

    @property
    def url(self) -> str:
        return self.request.url

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def headers(self) -> dict[str, str]:
        return self.request.headers

    @property
    def body(self) -> str | bytes | None:
        return self.request.body


class FakeFetchTransport:
    """An in-memory ``fetch`` for :class:`~pyrt.FetchEventSource`: the test plays the server.

    Every request the client starts lands in :attr:`requests`; :meth:`respond`, :meth:`send`,
    :meth:`end` and :meth:`fail` act on the current one. The page is in :attr:`page` once the
    client watches it (call ``transport.page.page_backgrounded()`` to hide it). Example::

        transport = FakeFetchTransport()
        source = FetchEventSource("/sse", transport=transport).connect()
        transport.respond(200)
        transport.send("id: 1\ndata: hello\n\n")
        transport.end()            # the client reconnects with Last-Event-ID: 1
    """

    def __init__(self) -> None:
        self.requests: list[FakeRequest] = []
        self.page: PageEvents | None = None
        self.disposed = False

    @property
    def request(self) -> FakeRequest | None:
        """The request in flight (not aborted, not finished), if any."""
        if self.requests and not (self.requests[-1].aborted or self.requests[-1].finished):
            return self.requests[-1]
        return None

    # -- the FetchTransport protocol

    def check_url(self, url: str) -> None:
        """Any URL: nothing is fetched."""

    def start(self, request: FetchRequest, events: FetchEvents) -> None:
        self.requests.append(FakeRequest(request, events))

    def abort(self, request: int) -> None:
        for fake in self.requests:
            if fake.request.id == request:
                fake.aborted = True

    def watch_page(self, events: PageEvents) -> None:
        self.page = events

    def dispose(self) -> None:
        current = self.request
        if current is not None:
            current.aborted = True
        self.page = None
        self.disposed = True

    # -- the test's controls

    def respond(
        self,
        status: int = 200,
        content_type: str | None = "text/event-stream",
        *,
        retry_after: str | None = None,
        wall_time: float = 0.0,
    ) -> bool:
        """The current request gets its status and headers; returns whether the client reads on."""
        fake = self._current("respond to")
        if fake.status is not None:
            raise RuntimeError("this request has its response already")
        fake.status = status
        events = fake.events
        fake.reading = events.fetch_response(fake.request.id, status, content_type, retry_after, wall_time)
        return fake.reading

    def send(self, data: str | bytes) -> bool:
        """A chunk of the body of the current request; returns whether the client reads on."""
        fake = self._current("send on")
        if not fake.reading:
            raise RuntimeError("the client is not reading this request's body (respond(200) first)")
        chunk = data.encode() if isinstance(data, str) else bytes(data)
        fake.reading = fake.events.fetch_chunk(fake.request.id, chunk)
        return fake.reading

    def end(self) -> None:
        """The server ends the body of the current request."""
        fake = self._current("end")
        fake.finished = True
        fake.events.fetch_ended(fake.request.id)

    def fail(self, message: str = "network error") -> None:
        """The current request fails (no response, or a broken body)."""
        fake = self._current("fail")
        fake.finished = True
        fake.events.fetch_failed(fake.request.id, message)

    def _current(self, what: str) -> FakeRequest:
        fake = self.request
        if fake is None:
            raise RuntimeError(f"cannot {what} the request: there is no request in flight")
        return fake


@dataclass(eq=False)
class FakeSource:
    """One native ``EventSource`` a :class:`~pyrt.EventSourceClient` made."""

    source: int
    url: str
    with_credentials: bool
    events: EventSourceEvents
    state: str = "connecting"  # "connecting" | "open" | "closed", as readyState
    last_event_id: str = ""
    destroyed: bool = False


class FakeEventSourceTransport:
    """In-memory native ``EventSource`` objects for :class:`~pyrt.EventSourceClient`: the test
    plays the server and the browser.

    Every object the client creates lands in :attr:`sources`; :meth:`open`, :meth:`send`,
    :meth:`drop` and :meth:`fail` act on the current one, as a browser's object would behave:
    it keeps its last event id, reports only ``"message"`` and the :attr:`types` listened to,
    reconnects by itself after :meth:`drop` and gives up for good after :meth:`fail`.
    """

    def __init__(self) -> None:
        self.sources: list[FakeSource] = []
        self.types: set[str] = set()
        self.disposed = False

    @property
    def current(self) -> FakeSource | None:
        """The live native object, if any."""
        if self.sources and not self.sources[-1].destroyed:
            return self.sources[-1]
        return None

    # -- the EventSourceTransport protocol

    def check_url(self, url: str) -> None:
        """Any URL: nothing is fetched."""

    def create(self, source: int, url: str, with_credentials: bool, events: EventSourceEvents) -> None:
        self.sources.append(FakeSource(source, url, with_credentials, events))

    def destroy(self, source: int) -> None:
        for fake in self.sources:
            if fake.source == source:
                fake.destroyed = True
                fake.state = "closed"

    def listen(self, type: str) -> None:
        self.types.add(type)

    def unlisten(self, type: str) -> None:
        self.types.discard(type)

    def dispose(self) -> None:
        current = self.current
        if current is not None:
            self.destroy(current.source)
        self.disposed = True

    # -- the test's controls

    def open(self) -> None:
        """The current object opens (first time, or after reconnecting by itself)."""
        fake = self._current("open")
        fake.state = "open"
        fake.events.source_opened(fake.source)

    def send(self, data: str, *, type: str = "message", id: str | None = None) -> bool:
        """An event arrives on the current object; returns whether it was reported (its type is
        ``"message"`` or listened to)."""
        fake = self._current("send on")
        if fake.state != "open":
            raise RuntimeError("the EventSource is not open")
        if id is not None:
            fake.last_event_id = id
        if type != "message" and type not in self.types:
            return False
        fake.events.source_event(fake.source, type, data, fake.last_event_id)
        return True

    def drop(self) -> None:
        """The connection is lost; the object reconnects by itself (``open()`` it again)."""
        fake = self._current("drop")
        fake.state = "connecting"
        fake.events.source_error(fake.source, False)

    def fail(self) -> None:
        """The object gives up for good (an HTTP error, a wrong content type)."""
        fake = self._current("fail")
        fake.state = "closed"
        fake.events.source_error(fake.source, True)

    def _current(self, what: str) -> FakeSource:
        fake = self.current
        if fake is None or fake.state == "closed":
            raise RuntimeError(f"cannot {what} the EventSource: there is no live one")
        return fake


class FakeShareBus:
    """Share groups in memory: what Web Locks and ``BroadcastChannel`` do for the tabs of a
    browser, for clients made with ``share=bus.channel("app")`` (one channel per client).

    Each group's lock goes to its requests in order; a message reaches every other channel of the
    group, later (through ``schedule``, e.g. ``loop.call_soon``; default: at once). :meth:`crash`
    makes a channel's participant vanish as a killed tab does: its locks are released and it
    receives nothing more, without a word to the others.
    """

    def __init__(self, schedule: Callable[[Callable[[], None]], object] | None = None) -> None:
        self.schedule: Callable[[Callable[[], None]], object] = schedule or (lambda callback: callback())
        self.channels: list[FakeShareChannel] = []
        self._queues: dict[str, list[tuple[FakeShareChannel, Callable[[], None] | None]]] = {}
        self.posted: list[tuple[str, str]] = []  # (group, text) of every message, for tests

    def channel(self, name: str = "app") -> FakeShareChannel:
        channel = FakeShareChannel(self, name)
        self.channels.append(channel)
        return channel

    def holder(self, name: str) -> FakeShareChannel | None:
        """Who holds lock ``name`` now."""
        queue = self._queues.get(name)
        return queue[0][0] if queue else None

    def crash(self, channel: FakeShareChannel) -> None:
        """``channel``'s tab dies: no ``bye``, its locks go to the next in line."""
        channel.dead = True
        self._release_all(channel)

    # -- for FakeShareChannel

    def post(self, sender: FakeShareChannel, text: str) -> None:
        self.posted.append((sender.name, text))
        for channel in self.channels:
            if channel is not sender and channel.name == sender.name and channel.listening:
                self.schedule(functools.partial(channel.deliver, text))

    def request(self, channel: FakeShareChannel, lock: str, granted: Callable[[], None] | None) -> None:
        queue = self._queues.setdefault(lock, [])
        queue.append((channel, granted))
        if len(queue) == 1 and granted is not None:
            self.schedule(lambda: self._grant(lock, channel))

    def release(self, channel: FakeShareChannel, lock: str) -> None:
        queue = self._queues.get(lock, [])
        head = queue[0][0] if queue else None
        self._queues[lock] = [entry for entry in queue if entry[0] is not channel]
        if head is channel and self._queues[lock]:
            following, granted = self._queues[lock][0]
            if granted is not None:
                self.schedule(lambda: self._grant(lock, following))

    def held(self) -> set[str]:
        return {lock for lock, queue in self._queues.items() if queue}

    def _grant(self, lock: str, channel: FakeShareChannel) -> None:
        queue = self._queues.get(lock, [])
        if queue and queue[0][0] is channel and not channel.dead:
            granted = queue[0][1]
            if granted is not None:
                granted()

    def _release_all(self, channel: FakeShareChannel) -> None:
        for lock in [lock for lock, queue in self._queues.items() if any(c is channel for c, _ in queue)]:
            self.release(channel, lock)


class FakeShareChannel:
    """One participant's :class:`~pyrt.share.channel.ShareChannel` on a :class:`FakeShareBus`."""

    def __init__(self, bus: FakeShareBus, name: str) -> None:
        self.bus = bus
        self.name = name
        self.participant = ""
        self.listening = False
        self.dead = False
        self.disposed = False
        self._on_message: Callable[[str], None] | None = None

    def join(self, participant: str) -> None:
        self.participant = participant
        self.bus.request(self, f"{self.name}#{participant}", None)

    def listen(self, on_message: Callable[[str], None]) -> None:
        self._on_message = on_message
        self.listening = True

    def post(self, text: str) -> None:
        if not self.dead and not self.disposed:
            self.bus.post(self, text)

    def request_lead(self, granted: Callable[[], None]) -> None:
        self.bus.request(self, self.name, granted)

    def resign(self) -> None:
        self.bus.release(self, self.name)

    def members(self, done: Callable[[set[str]], None]) -> None:
        prefix = f"{self.name}#"
        done({lock[len(prefix) :] for lock in self.bus.held() if lock.startswith(prefix)})

    def dispose(self) -> None:
        self.disposed = True
        self.listening = False
        self.bus._release_all(self)

    def deliver(self, text: str) -> None:
        if self.listening and not self.dead and self._on_message is not None:
            self._on_message(text)
