"""An in-memory peer speaking the pyrt protocol (see :mod:`pyrt.testing`)."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyrt.session.admission import FlowGate, Verdict
from pyrt.wire.frames import member_id
from pyrt.wire.limits import ServerLimits
from pyrt.wire.names import CHANNEL_RULE, EVENT_RULE, ID_RULE, is_channel_name, is_event_name, is_message_id
from pyrt.wire.offsets import offset_key
from pyrt.wire.refusals import RATE_LIMITED
from pyrt.wire.types import Frame

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
