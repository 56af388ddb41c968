"""An in-memory peer speaking the pyrt protocol (see :mod:`pyrt.testing`).

:class:`FakePyrtServer` drives the same :class:`~pyrt.session.server.ServerSession` as
``serve.py``: every frame is read, checked, admitted, authorized and answered by that one class,
so the fake cannot drift from the real server in what it answers. What is the fake's own is the
storage behind it (channels with offsets and retention, presence, the dedup window, all in
memory, answered at once) and the application (``app``, a plain function).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from pyrt.session import messages
from pyrt.session.actions import (
    Abort,
    Action,
    Close,
    HandleMessage,
    Join,
    Leave,
    Publish,
    ReadHistory,
    ReadPresence,
    Release,
    Send,
    ShowInfo,
    Subscribe,
    Unsubscribe,
)
from pyrt.session.admission import FlowGate
from pyrt.session.config import Peer, SessionConfig
from pyrt.session.server import ServerSession
from pyrt.wire import binary as wire_binary
from pyrt.wire import codec
from pyrt.wire.frames import Ack, ErrorFrame, HistoryPage, PresenceDiff, Publication, RawJSON
from pyrt.wire.limits import ServerLimits
from pyrt.wire.offsets import OffsetKey, offset_key
from pyrt.wire.refusals import RATE_LIMITED, UNAVAILABLE
from pyrt.wire.types import Frame

__all__ = ["FakePyrtServer", "ServerConnection"]


@dataclass(frozen=True, slots=True)
class _Grant:
    subject: str | None
    issued: float
    expires: float


class _Authority:
    """Tokens by ``token_ttl`` and rights by ``forbidden``, as ``serve.py``'s default policy has
    them: anyone subscribes anywhere; ``_`` channels are the server's own."""

    def __init__(self, server: FakePyrtServer) -> None:
        self.server = server

    @property
    def tokens(self) -> bool:
        return self.server.token_ttl is not None

    def verify(self, token: str, wall: float) -> _Grant | None:
        token_ttl = self.server.token_ttl
        ttl = token_ttl(token) if token_ttl is not None else None
        if ttl is None:
            return None
        self.server.refreshed.append(token)
        return _Grant(None, wall, wall + ttl)

    def allowed(self, grant: object, channel: str, action: str) -> bool:
        if channel in self.server.forbidden:
            return False
        return action == "subscribe" or not channel.startswith("_")


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
    watching: set[str] = field(default_factory=set)  # channels whose presence it follows
    close_code: int | None = None  # set when the server closed the connection (after outgoing)
    close_reason: str = ""
    #: The client offered ``pyrt.v1.batch`` and the server speaks it: :meth:`take` joins what
    #: queued up into one message, one frame per line, as ``serve.py`` does under load.
    batch: bool = False
    #: The client offered ``pyrt.v1.msgpack`` and the server speaks it: every frame for the
    #: client is MessagePack (a batch: frames one after another), as on ``serve.py``.
    binary: bool = False
    protocol: ServerSession | None = None  # the session that reads and answers this connection

    @property
    def gate(self) -> FlowGate | None:
        """The connection's admission (``None``: the server enforces no limits)."""
        if self.protocol is None or self.server.enforce is None or self.server.enforce.rate is None:
            return None
        return self.protocol.gate

    @property
    def presence(self) -> set[tuple[str, str]]:
        """The presence members it holds: (channel, member id)."""
        return self.protocol.presence.held if self.protocol is not None else set()

    def take(self) -> Frame:
        """The next message for the client: one frame, or with :attr:`batch` every queued one."""
        if not self.batch or len(self.outgoing) < 2:
            return self.outgoing.popleft()
        if self.binary:
            return b"".join(cast(bytes, self.outgoing.popleft()) for _ in range(len(self.outgoing)))
        frames = [str(self.outgoing.popleft()) for _ in range(len(self.outgoing))]
        return codec.encode_batch(frames)

    def handle(self, frame: Frame) -> None:
        """Process one frame from the client; replies land in :attr:`outgoing`."""
        self.server.handle(self, frame)

    def closed(self, code: int) -> None:
        """The socket closed: its members leave at once after a close frame (1000, 1001); after
        anything else they stay, as on ``serve.py`` for its grace period, until the client joins
        again or the test calls :meth:`FakePyrtServer.expire_lost`."""
        if not self.open:
            return
        self.open = False
        self.outgoing.clear()
        if self.protocol is not None:
            self.protocol.closed(code, self.server.now())
            self.server.perform(self)

    def push_text(self, text: str | bytes) -> None:
        """Queue a frame for the client: JSON text (as MessagePack on the binary binding) or bytes."""
        if self.open and self.close_code is None:
            self.outgoing.append(wire_binary.transcode(text) if self.binary and type(text) is str else text)
            if self.on_push is not None:
                self.on_push()

    def close(self, code: int, reason: str = "") -> None:
        """Close from the server's side: the client sees ``code`` after what is queued for it."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            if self.on_push is not None:
                self.on_push()


@dataclass(slots=True)
class _Member:
    json: str
    identity: str
    owner: ServerConnection
    lost: bool = False  # its connection ended without a close frame: it waits for a rejoin


class FakePyrtServer:
    """An in-memory pyrt protocol server (see docs/protocol.md), for the engine's tests and yours.

    ``app(data)`` handles each application message once per id and returns the ack's data
    (default: the data itself; an exception refuses the message with its text). Fire-and-forget
    messages are echoed back as ``message`` frames. ``retention`` bounds how many publications each
    channel keeps for replay. ``overlap`` makes every replay start that many publications too
    early (an at-least-once server), to check that the client drops what it already delivered.
    ``batch`` (default on, like ``serve.py``): a client that offers ``pyrt.v1.batch`` gets the
    frames that queued up for it in one message, one per line (docs/protocol.md, "Batched frames").
    ``binary`` (off by default, so that tests read the frames as JSON text; ``serve.py`` has it
    on when ``msgpack`` is installed): a client that offers ``pyrt.v1.msgpack`` speaks the binary
    binding (docs/protocol.md, "The binary binding"). :meth:`publish` takes bytes and arrays
    either way (JSON clients get their tagged form, as from ``serve.py``).

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
        binary: bool = False,
    ) -> None:
        self.app = app if app is not None else (lambda data: data)
        self.retention = retention
        self.overlap = overlap
        self.token_ttl = token_ttl
        self.forbidden = set(forbidden)
        self.refreshed: list[str] = []  # tokens accepted by refresh frames, in order
        #: Presence by channel: member id -> the member, its identity and owning connection.
        self.members: dict[str, dict[str, _Member]] = {}
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
        self.binary = binary and wire_binary.available()
        self.accepting = True  # False: new sockets fail to open (server down)
        self.handled: list[Any] = []  # application messages, each id once, in arrival order
        self.received_frames: list[Frame] = []
        self.log: dict[str, list[tuple[str, str, Any]]] = {}  # channel -> (offset, event, data)
        self.dropped_before: dict[str, int] = {}  # channel -> publications no longer retained
        self.answers: dict[tuple[str, ...], str] = {}  # dedup window: (identity, ..., id) -> answer
        self.connections: list[ServerConnection] = []
        self._authority = _Authority(self)

    def now(self) -> float:
        return self.clock() if self.clock is not None else 0.0

    def accept(self, protocols: Sequence[str] = ()) -> ServerConnection:
        """A new connection; ``protocols`` are the subprotocols the client offered."""
        conn = ServerConnection(self, f"s{len(self.connections) + 1}")
        conn.binary = self.binary and wire_binary.SUBPROTOCOL in protocols
        conn.batch = conn.binary or (self.batch and "pyrt.v1.batch" in protocols)
        self.connections.append(conn)
        conn.token = next((p[len("bearer.") :] for p in protocols if p.startswith("bearer.")), None)
        now = self.now()
        grant = None
        if self.token_ttl is not None and conn.token is not None:
            ttl = self.token_ttl(conn.token)
            if ttl is not None:
                grant = _Grant(None, now, now + ttl)
        conn.protocol = ServerSession(
            self._config(),
            Peer(conn.session, conn.identity, f"fake:{conn.session}"),
            self._authority,
            now,
            grant=grant,
            binary=conn.binary,
        )
        conn.protocol.start(now)
        self.perform(conn)
        return conn

    def _config(self) -> SessionConfig:
        enforce = self.enforce
        rate, burst, window = 0.0, 1.0, 1000
        if enforce is not None and enforce.rate is not None:
            rate = enforce.rate
            burst = enforce.burst if enforce.burst is not None else enforce.rate
            window = enforce.window if enforce.window is not None else 1000
        return SessionConfig(
            server="fake",
            heartbeat=25.0,
            limits=self.limits,
            rate=rate,
            burst=int(burst),
            window=window,
            abuse_limit=self.abuse_limit,
            refresh_rate=0.0,  # the fake does not limit refreshes
        )

    # ---------------------------------------------------------------------------- the test's

    def publish(self, channel: str, data: Any, event: str = "message") -> str:
        """Publish (as another client or the application would); returns the offset. Bytes and
        arrays are kept in their tagged JSON form (:mod:`pyrt.wire.binary`), as ``serve.py`` does."""
        data = wire_binary.json_form(data)
        log = self.log.setdefault(channel, [])
        offset = f"1-{self.dropped_before.get(channel, 0) + len(log) + 1}"
        log.append((offset, event, data))
        if self.retention is not None and len(log) > self.retention:
            del log[0]
            self.dropped_before[channel] = self.dropped_before.get(channel, 0) + 1
        text = codec.encode(Publication(channel, data, offset, event))
        for conn in self.connections:
            if conn.open and channel in conn.channels:
                conn.push_text(text)
        return offset

    def handle(self, conn: ServerConnection, frame: Frame) -> None:
        """Answer one frame as ``serve.py`` does (tests/server/test_testing.py holds the two to it)."""
        self.received_frames.append(frame)
        now = self.now()
        self.arrivals.append(now)
        if conn.protocol is None or not conn.open:
            return
        conn.protocol.received(frame, now)
        self.perform(conn)

    def expire_lost(self) -> None:
        """The grace period ran out: members of connections lost without a close frame leave."""
        for channel, members in list(self.members.items()):
            self._remove(channel, [key for key, member in members.items() if member.lost])

    def release(self, channel: str, member_key: str, conn: ServerConnection, *, clean: bool) -> None:
        """``conn`` ended: its member leaves now (``clean``) or waits as lost, unless another
        connection took it over."""
        member = self.members.get(channel, {}).get(member_key)
        if member is None or member.owner is not conn:
            return
        if clean:
            self._remove(channel, [member_key])
        else:
            member.lost = True

    # ------------------------------------------------------------------- carrying out actions

    def perform(self, conn: ServerConnection) -> None:
        """Carry out what ``conn``'s session asks, until it asks nothing more."""
        session = conn.protocol
        assert session is not None
        actions = session.actions()
        while actions:
            for action in actions:
                self._perform(conn, session, action)
            actions = session.actions()

    def _perform(self, conn: ServerConnection, session: ServerSession, action: Action) -> None:
        now = self.now()
        kind = type(action)
        if kind is Send:
            assert isinstance(action, Send)
            self._record_refusal(action.text)
            conn.push_text(action.text)
        elif kind is Close:
            assert isinstance(action, Close)
            if action.code == 1008:
                self.abuse_closes += 1
            conn.close(action.code, action.reason)
        elif kind is Abort:
            conn.close(1006, "")
        elif kind is Publish:
            assert isinstance(action, Publish)
            self._publish(conn, session, action, now)
        elif kind is HandleMessage:
            assert isinstance(action, HandleMessage)
            self._message(conn, session, action, now)
        elif kind is Subscribe:
            assert isinstance(action, Subscribe)
            self._subscribe(conn, session, action, now)
        elif kind is Unsubscribe:
            assert isinstance(action, Unsubscribe)
            conn.channels.discard(action.channel)
            conn.watching.discard(action.channel)
        elif kind is ReadHistory:
            assert isinstance(action, ReadHistory)
            page = self.history_page(action.channel, action.since, action.limit, action.reverse)
            session.history_read(action.ticket, page, now)
        elif kind is ReadPresence:
            assert isinstance(action, ReadPresence)
            members, version = self._snapshot(action.channel)
            session.presence_read(action.ticket, members, version, now)
        elif kind is ShowInfo:
            assert isinstance(action, ShowInfo)
            session.info_shown(action.ticket, action.info, now)
        elif kind is Join:
            assert isinstance(action, Join)
            session.joined(action.ticket, self._join(conn, action), now)
        elif kind is Leave:
            assert isinstance(action, Leave)
            self._remove(action.channel, [action.member])
            session.left(action.ticket, True, now)
        elif kind is Release:
            assert isinstance(action, Release)
            self.release(action.channel, action.member, conn, clean=action.clean)

    def _record_refusal(self, text: str | bytes) -> None:
        """Keep every refusal sent (``rate_limited``, ``unavailable``) as the client reads it."""
        if type(text) is bytes:
            if b"rate_limited" not in text and b"unavailable" not in text:
                return
            value = wire_binary.unpack(text)
            if isinstance(value, dict) and value.get("code") in (RATE_LIMITED, UNAVAILABLE):
                self.refusals.append(value)
            return
        assert isinstance(text, str)
        if '"rate_limited"' not in text and '"unavailable"' not in text:
            return
        frame = codec.decode_server_frame(text)
        if isinstance(frame, ErrorFrame | Ack) and frame.code in (RATE_LIMITED, UNAVAILABLE):
            self.refusals.append(json.loads(text))

    def _message(
        self, conn: ServerConnection, session: ServerSession, action: HandleMessage, now: float
    ) -> None:
        if conn.binary:
            action = replace(action, data=wire_binary.untag(action.data))
        if action.id is None:
            self.handled.append(action.data)
            session.reply(action.data)
            session.handled(action.ticket, None, False, now)
            return
        key = (conn.identity, "message", action.id)
        answer = self.answers.get(key)
        duplicate = answer is not None
        if answer is None:
            self.handled.append(action.data)
            try:
                ack, answer = messages.ack_result(action.id, self.app(action.data))
            except Exception as exc:
                ack, answer = messages.ack_refused(action.id, str(exc))
            self.answers[key] = answer
        else:
            ack = answer
        session.handled(action.ticket, ack, duplicate, now)

    def _publish(self, conn: ServerConnection, session: ServerSession, action: Publish, now: float) -> None:
        value = json.loads(action.data_json)
        if action.id is None:
            self.publish(action.channel, value, action.event)
            session.published(action.ticket, "", False, now)
            return
        key = (conn.identity, "publish", action.channel, action.id)
        offset = self.answers.get(key)
        duplicate = offset is not None
        if offset is None:
            offset = self.answers[key] = self.publish(action.channel, value, action.event)
        session.published(action.ticket, offset, duplicate, now)

    def _subscribe(
        self, conn: ServerConnection, session: ServerSession, action: Subscribe, now: float
    ) -> None:
        channel = action.channel
        log = self.log.get(channel, [])
        latest = log[-1][0] if log else "0"
        conn.channels.add(channel)
        if action.presence:
            conn.watching.add(channel)
        else:
            conn.watching.discard(channel)
        replay: list[tuple[str, str, Any]] = []
        recovered = True
        if action.since is not None:
            key = action.since
            first = next((i for i, item in enumerate(log) if _key(item[0]) > key), len(log))
            replay = log[max(0, first - self.overlap) :]
            lost = self.dropped_before.get(channel, 0)
            if key != (0, 0) and lost and key < (1, lost):
                recovered = False
        members, version = self._snapshot(channel) if action.presence else (None, None)
        session.subscribed(action.ticket, latest, recovered, members, version, now)
        self.perform(conn)  # the answer goes before the replay
        for offset, event, data in replay:
            conn.push_text(codec.encode(Publication(channel, data, offset, event)))

    def history_page(self, channel: str, since: OffsetKey | None, limit: int, reverse: bool) -> HistoryPage:
        """A page of ``channel``'s history, as ``serve.py``'s memory broker makes it (at most
        ``limit`` publications and about 1 MiB of data)."""
        log = self.log.get(channel, [])
        latest = log[-1][0] if log else "0"
        keys = [_key(item[0]) for item in log]
        recovered = True
        if reverse:
            end = len(log) if since is None else sum(1 for k in keys if k < since)
            order = list(range(end - 1, -1, -1))
        else:
            start = 0
            if since is not None and since != (0, 0):
                lost = self.dropped_before.get(channel, 0)
                if since[0] == 1 and lost <= since[1] <= lost + len(log):
                    start = since[1] - lost
                else:  # no longer retained (or never was): from the oldest retained
                    recovered = False
            order = list(range(start, len(log)))
        chosen: list[Publication] = []
        size = 0
        for index in order[:limit]:
            offset, event, data = log[index]
            size += len(codec.json_text(data))
            if chosen and size > 1 << 20:
                break
            chosen.append(Publication(channel, data, offset, event))
        if channel not in self.log:  # a channel nothing was ever published into
            recovered = reverse or since is None or since == (0, 0)
        return HistoryPage(chosen, latest, recovered, len(chosen) < len(order))

    # -- presence, as serve.py keeps it (one instance, the default limits)

    def _snapshot(self, channel: str) -> tuple[list[str], str]:
        members = self.members.get(channel, {})
        version = self._versions.get(channel, "0") if members else "0"
        return [member.json for member in members.values()], version

    def _join(self, conn: ServerConnection, action: Join) -> str:
        members = self.members.setdefault(action.channel, {})
        known = members.get(action.member)
        if known is None:
            if len(members) >= action.max_members:
                return "full"
            if sum(1 for m in members.values() if m.identity == action.identity) >= action.max_per_identity:
                return "identity"
        members[action.member] = _Member(action.member_json, action.identity, conn)
        if known is None or known.json != action.member_json:
            self._announce(action.channel, [action.member_json], [])
        return "ok"

    def _remove(self, channel: str, member_keys: list[str]) -> None:
        members = self.members.get(channel, {})
        gone = [members.pop(key).json for key in member_keys if key in members]
        if not members:
            self.members.pop(channel, None)
        if gone:
            self._announce(channel, [], gone)

    def _announce(self, channel: str, joins: list[str], leaves: list[str]) -> None:
        self._presence_version += 1
        version = self._versions[channel] = f"1-{self._presence_version}"
        diff = PresenceDiff(channel, version, [RawJSON(m) for m in joins], [RawJSON(m) for m in leaves])
        text = codec.encode(diff)
        for conn in self.connections:
            if conn.open and channel in conn.watching:
                conn.push_text(text)


def _key(offset: str) -> OffsetKey:
    return offset_key(offset) or (0, 0)
