"""The server's side of one pyrt connection, sans I/O: validate, authorize, decide, answer.

:class:`ServerSession` reads the frames of one client (:mod:`pyrt.wire.codec`), checks them
against the protocol's grammar, the connection's admission (:mod:`pyrt.session.admission`), the
token's rights and the identity's quotas, and answers with frames and broker or application
actions (:mod:`pyrt.session.actions`) for its driver to carry out. ``serve.py``'s WebSocket
endpoint and :class:`pyrt.testing.FakePyrtServer` are two drivers of this one class; a driver over
HTTP is a third. Time comes in as ``now`` (monotonic seconds); Unix time is ``now + wall_offset``.

Inputs:

- :meth:`~ServerSession.start` — the connection is accepted: the ``welcome`` goes out;
- :meth:`~ServerSession.received` — one frame (text or binary) arrived;
- the outcome of each action with a ticket: :meth:`~ServerSession.published`,
  :meth:`~ServerSession.publish_failed`, :meth:`~ServerSession.handled`,
  :meth:`~ServerSession.subscribed`, :meth:`~ServerSession.subscribe_failed`,
  :meth:`~ServerSession.history_read`, :meth:`~ServerSession.presence_read`,
  :meth:`~ServerSession.read_failed`, :meth:`~ServerSession.info_shown`,
  :meth:`~ServerSession.info_refused`, :meth:`~ServerSession.joined`, :meth:`~ServerSession.left`;
- :meth:`~ServerSession.tick` — liveness and token expiry (call it at :meth:`~ServerSession.
  next_deadline`, or from a sweep over every session at least every ``heartbeat / 2`` seconds);
- :meth:`~ServerSession.drain` — the server shuts down; :meth:`~ServerSession.closed` — the
  connection ended.

Outputs: :meth:`~ServerSession.actions` (drained; perform them in order) and
:attr:`~ServerSession.reading`. **Order**: frames are handled one at a time, in order, and their
answers keep that order. Publications may be in flight to the broker together (up to
``publish_window`` of them and ``publish_window_bytes`` of their data: a larger one goes alone);
any other frame waits until they are answered, and so does every frame after a frame whose
outcome is pending. While :attr:`~ServerSession.reading` is false the driver must not
read the next frame (its bytes wait in the socket: backpressure); it turns true again on the
outcome that frees the session.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, Final

from pyrt.session.actions import (
    Abort,
    Action,
    Close,
    HandleMessage,
    ReadHistory,
    Send,
)
from pyrt.session.admission import FlowGate, TokenBucket, Verdict
from pyrt.session.channels import Channels
from pyrt.session.config import Authority, Grant, Peer, Quota, SessionConfig, Unlimited
from pyrt.session.presence import Presence
from pyrt.session.stats import Stats
from pyrt.wire import binary, codec
from pyrt.wire.close_codes import INTERNAL_ERROR, POLICY, TOKEN_EXPIRED, TOO_LARGE
from pyrt.wire.frames import (
    Ack,
    ClientFrame,
    ErrorFrame,
    HistoryPage,
    HistoryRequest,
    Message,
    Ping,
    Pong,
    PresenceJoin,
    PresenceLeave,
    PresenceRequest,
    Publish,
    RawJSON,
    Refresh,
    Subscribe,
    Unsubscribe,
    Welcome,
)
from pyrt.wire.ingress import IngressError, check_text
from pyrt.wire.names import is_channel_name, is_message_id
from pyrt.wire.offsets import parse_offset
from pyrt.wire.refusals import RATE_LIMITED, UNAVAILABLE
from pyrt.wire.types import Frame

__all__ = ["DEFAULT_HISTORY_LIMIT", "ServerSession"]

log = logging.getLogger("pyrt.server")

DEFAULT_HISTORY_LIMIT: Final = 100
_TYPE_NAMES: Final = {
    Ping: "ping",
    Pong: "pong",
    Message: "message",
    Subscribe: "subscribe",
    Unsubscribe: "unsubscribe",
    Publish: "publish",
    HistoryRequest: "history",
    PresenceRequest: "presence",
    PresenceJoin: "presence_join",
    PresenceLeave: "presence_leave",
    Refresh: "refresh",
}


class ServerSession:
    """One connection's protocol state. See the module docstring for the contract."""

    def __init__(
        self,
        config: SessionConfig,
        peer: Peer,
        authority: Authority,
        now: float,
        *,
        grant: Grant | None = None,
        wall_offset: float = 0.0,
        publish_quota: Quota | None = None,
        publish_bytes_quota: Quota | None = None,
        query_quota: Quota | None = None,
        presence_quota: Quota | None = None,
        stats: Stats | None = None,
        binary: bool = False,
    ) -> None:
        self.config = config
        #: The binary binding (``pyrt.v1.msgpack``): binary frames are read as MessagePack and
        #: every frame goes out as MessagePack (text frames are still read as JSON).
        self.binary = binary
        self.peer = peer
        self.authority = authority
        self.grant = grant
        self.wall_offset = wall_offset
        self.stats = stats if stats is not None else Stats()
        self.publish_quota: Quota = publish_quota if publish_quota is not None else Unlimited()
        self.publish_bytes_quota: Quota = (
            publish_bytes_quota if publish_bytes_quota is not None else Unlimited()
        )
        self.query_quota: Quota = query_quota if query_quota is not None else Unlimited()
        self.presence_quota: Quota = presence_quota if presence_quota is not None else Unlimited()
        self.gate = FlowGate(config.rate, config.burst, config.window, config.abuse_limit, now)
        self._refreshes = TokenBucket(config.refresh_rate, config.refresh_burst, now)
        self.last_seen = now
        #: The client said goodbye with a close frame the server did not ask for: its presence
        #: leaves at once, not after the grace.
        self.clean_exit = False
        self.closing = False  # a Close or Abort went out: nothing more is handled
        self._pinged = False
        self._expires_at = self._expiry(grant)
        self._actions: list[Action] = []
        self._tickets = 0
        #: The ticket whose outcome every later frame waits for (not a publication).
        self._current: int | None = None
        #: A frame read and waiting for its turn (publications in flight, or a full window).
        self._waiting: ClientFrame | None = None
        self._waiting_size = 0  # the length of that frame, which a publication's room is sized by
        self._pending: dict[int, _Continuation] = {}  # ticket -> what its outcome continues
        self._drain_reason: str | None = None
        self.channels = Channels(self)
        self.presence = Presence(self)
        self._handlers: dict[type, Callable[[Any, float], None]] = {
            Ping: self._on_ping,
            Pong: self._on_pong,
            Message: self._on_message,
            Subscribe: self.channels.subscribe,
            Unsubscribe: self.channels.unsubscribe,
            Publish: self.channels.publish,
            HistoryRequest: self._on_history,
            PresenceRequest: self.presence.read,
            PresenceJoin: self.presence.join,
            PresenceLeave: self.presence.leave,
            Refresh: self._on_refresh,
        }

    # --------------------------------------------------------------------------------- outputs

    def actions(self) -> list[Action]:
        """What to do now, in order (drained)."""
        out, self._actions = self._actions, []
        return out

    @property
    def reading(self) -> bool:
        """Whether the driver may read the next frame."""
        return (
            not self.closing
            and self._current is None
            and self._waiting is None
            and not self.channels.window_full
        )

    @property
    def busy(self) -> bool:
        """A frame's outcome is pending or publications are in flight: a drain closes the
        connection after their answers."""
        return self._current is not None or self._waiting is not None or self.channels.in_flight > 0

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must run next at the latest for the token's expiry (liveness needs
        a call at least every ``heartbeat / 2`` seconds besides)."""
        return self._expires_at

    def wall(self, now: float) -> float:
        return now + self.wall_offset

    # ---------------------------------------------------------------------------------- inputs

    def start(self, now: float, key: str | None = None) -> None:
        """The connection is accepted: send the ``welcome`` (with ``key``, the secret its frames
        are posted with, over the HTTP binding)."""
        config = self.config
        ttl = None
        if self.grant is not None:
            ttl = round(max(0.0, self.grant.expires - self.wall(now)), 3)
        welcome = Welcome(self.peer.session, config.server, config.heartbeat, config.limits, ttl, key)
        self.push(codec.encode(welcome))

    def received(self, frame: Frame, now: float) -> None:
        """One frame from the client (check :attr:`reading` before reading it)."""
        self.last_seen = now
        self._pinged = False
        if self.closing:
            return
        stats = self.stats
        stats.frames_in += 1
        gate = self.gate
        if not isinstance(frame, str) and not self.binary:
            if gate.admit(now) or self._gated(None, None, None, now):
                if len(frame) > self.config.max_message_chars:
                    self._too_large()
                else:
                    self.error(
                        "binary_not_supported",
                        "binary frames are pyrt frames only on the binary binding "
                        "(subprotocol pyrt.v1.msgpack)",
                    )
            return
        if len(frame) > self.config.max_message_chars:
            self._too_large()
            return
        if not gate.admit(now) and not self._gated(
            *(codec.peek(frame) if isinstance(frame, str) else binary.peek(frame)), now
        ):
            return
        try:
            if isinstance(frame, str):
                decoded = codec.decode_client_frame(frame)
            else:
                decoded = binary.decode_client_frame(frame)
        except IngressError as exc:
            self.error(exc.code, str(exc), exc.id, channel=exc.channel if exc.code == "bad_frame" else None)
            return
        stats.messages_in[_TYPE_NAMES[type(decoded)]] += 1
        if type(decoded) is Publish:
            if not self.channels.has_room(len(frame)):
                self._waiting, self._waiting_size = decoded, len(frame)
                return
        elif self.channels.in_flight:
            self._waiting = decoded  # answers keep the order of the frames they answer
            return
        self._handle(decoded, now)

    def reply(self, data: Any) -> bool:
        """A message from the application to this client (``IncomingMessage.reply``); ``False``
        when the connection is closing or ``data`` cannot be sent."""
        if self.closing:
            return False
        try:
            text: str | bytes
            if self.binary:
                text = binary.encode(Message(data))
            else:
                text = codec.encode(Message(data))
                check_text(text)
        except (ValueError, TypeError, IngressError):
            self.error("bad_frame", "the frame cannot be answered (too deep or not JSON)")
            return False
        self.push(text, own=True)
        return True

    def heard(self, now: float) -> None:
        """The client is there (the driver holds input of it not handed over yet): its silence
        starts again from ``now``."""
        self.last_seen = now
        self._pinged = False

    def tick(self, now: float) -> None:
        """Time passed: ping a quiet client, drop one silent for three heartbeats, close when
        the token expired."""
        if self.closing:
            return
        if self._expires_at is not None and now >= self._expires_at:
            self.close(TOKEN_EXPIRED, "token expired: reconnect with a fresh token")
            return
        interval = self.config.heartbeat
        if interval <= 0:
            return
        silent = now - self.last_seen
        if silent > 3 * interval:
            self.stats.drop("heartbeat")
            self.closing = True
            self._actions.append(Abort())
        elif silent >= interval and not self._pinged:
            self._pinged = True
            self.push(codec.encode(Ping(round(now * 1000))))

    def drain(self, reason: str, now: float) -> None:
        """The server shuts down: close with 1001 and ``reason`` once nothing is pending."""
        self._drain_reason = reason
        self._settle(now)

    def closed(self, code: int, now: float) -> None:
        """The connection ended (``code`` of the client's close frame; 1006 without one). Its
        presence is released, its subscriptions end; report nothing more."""
        if code in (1000, 1001) and not self.closing:
            self.clean_exit = True
        self.closing = True
        self._waiting = None
        self.presence.release_all(clean=self.clean_exit)
        self.channels.end_all()

    # ------------------------------------------------------------------------- frames handled

    def _handle(self, frame: ClientFrame, now: float) -> None:
        try:
            self._handlers[type(frame)](frame, now)
        except Exception:  # a bug: client input is refused with an error frame, never raised
            log.exception("a %s frame could not be handled: closing with 1011", _TYPE_NAMES[type(frame)])
            self.stats.error("internal")
            self.close(INTERNAL_ERROR, "internal error")

    def _on_ping(self, frame: Ping, now: float) -> None:
        self.push(codec.encode(Pong(frame.t)), own=True)

    def _on_pong(self, frame: Pong, now: float) -> None:
        self.gate.pong(frame.t, now)

    def _on_message(self, frame: Message, now: float) -> None:
        ticket = self.begin(self._message_handled)
        self._actions.append(
            HandleMessage(
                ticket, frame.id if isinstance(frame.id, str) else None, frame.data, frame.traceparent
            )
        )

    def _message_handled(self, now: float, ack: str | None, ok: bool, duplicate: bool) -> None:
        if ack is None:
            return
        if duplicate:
            self.stats.dedup_hits["message"] += 1
        self.stats.acks["ok" if ok else "error"] += 1
        self.push(ack, own=True)

    def _on_history(self, frame: HistoryRequest, now: float) -> None:
        frame_id = str(frame.id)
        if not self.read_allowed(frame_id, frame.channel, now):
            return
        config = self.config
        limit = DEFAULT_HISTORY_LIMIT if frame.limit is None else frame.limit
        since = None if frame.since is None else parse_offset(frame.since)
        then = lambda now, page: self._history_answered(frame_id, page)  # noqa: E731
        ticket = self.begin(then, frame_id, failure="cannot read history now")
        read = ReadHistory(
            ticket,
            frame.channel,
            since,
            min(limit, config.history_page_limit),
            frame.reverse,
            config.history_page_bytes,
        )
        self._actions.append(read)

    def _history_answered(self, frame_id: str, page: HistoryPage) -> None:
        self.stats.history_reads += 1
        self.push(codec.encode(Ack(frame_id, True, RawJSON(codec.encode_history_page(page)))), own=True)

    def read_allowed(self, frame_id: str, channel: str, now: float) -> bool:
        """A read (``history``, ``presence``) may go ahead: the right to subscribe to its channel
        and room in the identity's read rate; else it is refused here."""
        if not self.allowed(channel, "subscribe"):
            self.error("forbidden", f"you may not read {channel!r}", frame_id)
            return False
        retry_after = self.query_quota.wait(self.peer.identity, now)
        if retry_after:
            self.stats.drop("query_quota")
            self.refuse(frame_id, None, retry_after, "too many reads: retry later")
            return False
        return True

    def _on_refresh(self, frame: Refresh, now: float) -> None:
        """A new token for this connection: same subject, issued no earlier than the one in use
        (a narrower token cannot be undone by sending back an older, broader one). Its rights
        replace the old ones (what they no longer allow ends, with ``forbidden``). The token is
        never echoed, logged or kept beyond its grant."""
        frame_id = frame.id if isinstance(frame.id, str) else None
        retry_after = self._refreshes.wait(now)
        if retry_after:  # checked before the token: a flood costs no HMAC and no policy calls
            self.stats.rejected["refresh"] += 1
            self.refuse(frame_id, None, retry_after, "too many refreshes: retry later")
            return
        if not self.authority.tokens:  # authentication is off: nothing expires
            if frame_id is not None:
                self.push(codec.encode(Ack(frame_id, True, {"ttl": None})), own=True)
            return
        grant = self.authority.verify(frame.token, self.wall(now))
        why = ""
        if grant is None:
            why = "bad or expired token"
        elif grant.subject != (self.grant.subject if self.grant is not None else None):
            why = "a refresh must name the same subject"
        elif self.grant is not None and grant.issued < self.grant.issued:
            why = "a refresh must not be older than the token in use"  # e.g. one with broader rights
        if grant is None or why:
            self.stats.rejected["refresh"] += 1
            self.error("unauthorized", why, frame_id)
            return
        self.grant = grant
        self._expires_at = self._expiry(grant)
        self.stats.refreshes += 1
        self.channels.revoke()
        self.presence.revoke()
        if frame_id is not None:
            ttl = round(max(0.0, grant.expires - self.wall(now)), 3)
            self.push(codec.encode(Ack(frame_id, True, {"ttl": ttl})), own=True)

    # ------------------------------------------------------------------------------- outcomes

    def published(self, ticket: int, offset: str, duplicate: bool, now: float) -> None:
        self.channels.published(ticket, offset, duplicate, now)

    def publish_failed(self, ticket: int, kind: str, message: str, now: float) -> None:
        """``kind``: ``"unavailable"`` (the broker is down), ``"bad_frame"``/``"bad_json"`` (the
        broker refused what it cannot store) or ``"internal"``."""
        self.channels.publish_failed(ticket, kind, message, now)

    def handled(self, ticket: int, ack: str | None, duplicate: bool, now: float) -> None:
        """The application ran (or the dedup window answered for it): ``ack`` (from
        :mod:`pyrt.session.messages`; ``None`` for a fire-and-forget message)."""
        ok = ack is not None and ',"ok":true' in ack[:400]
        self.complete(ticket, now, ack, ok, duplicate)

    def subscribed(
        self,
        ticket: int,
        latest: str,
        recovered: bool,
        members: list[str] | None,
        version: str | None,
        now: float,
    ) -> bool:
        """The subscription took effect; ``members`` (JSON texts) and ``version`` when it follows
        presence. Returns whether the answer was queued: replay and go live only then."""
        return self.channels.subscribed(ticket, latest, recovered, members, version, now)

    def subscribe_failed(self, ticket: int, why: str, now: float) -> None:
        self.channels.subscribe_failed(ticket, why, now)

    def subscribe_forbidden(self, ticket: int, why: str, now: float) -> None:
        self.channels.subscribe_forbidden(ticket, why, now)

    def history_read(self, ticket: int, page: HistoryPage, now: float) -> None:
        self.complete(ticket, now, page)

    def presence_read(self, ticket: int, members: list[str], version: str, now: float) -> None:
        self.complete(ticket, now, members, version)

    def read_failed(self, ticket: int, now: float) -> None:
        """A history or presence read (or a leave) failed: the broker is down."""
        self.fail(ticket, now)

    def fail(self, ticket: int, now: float) -> None:
        """The broker could not do what ``ticket`` asked: ``unavailable``, naming the frame."""
        continuation = self._pending.get(ticket)
        if continuation is None:
            return
        self.finish(ticket, now, lambda: self.error(UNAVAILABLE, continuation.failure, continuation.frame_id))

    def info_shown(self, ticket: int, shown: Any, now: float) -> None:
        self.presence.info_shown(ticket, shown, now)

    def info_refused(self, ticket: int, why: str | None, now: float) -> None:
        """The application refused the join (``why``: its text) or failed (``None``)."""
        self.presence.info_refused(ticket, why, now)

    def joined(self, ticket: int, status: str, now: float) -> None:
        """``status``: ``"ok"``, or why the store refused: ``"full"``, ``"identity"``,
        ``"identity_total"``, ``"total"``, ``"unavailable"``."""
        self.presence.joined(ticket, status, now)

    def left(self, ticket: int, ok: bool, now: float) -> None:
        self.presence.left(ticket, ok, now)

    # ---------------------------------------------------------------------- for the features

    def begin(
        self,
        then: Callable[..., None],
        frame_id: str | None = None,
        *,
        failure: str = "cannot do that now",
        blocking: bool = True,
    ) -> int:
        """A new ticket whose outcome continues with ``then(now, *result)``; a ``blocking`` one
        holds every later frame until it completes. ``failure``: the ``unavailable`` error's text
        when the broker fails it (:meth:`fail`)."""
        self._tickets += 1
        ticket = self._tickets
        continuation = _Continuation(then, frame_id, failure)
        self._pending[ticket] = continuation
        if blocking:
            self._current = ticket
        return ticket

    def complete(self, ticket: int, now: float, *result: Any) -> None:
        """The outcome of ``ticket``: continue what it started, then let the next frame in."""
        continuation = self._pending.get(ticket)
        if continuation is None:
            return
        self.finish(ticket, now, continue_with=lambda: continuation.then(now, *result))

    def finish(self, ticket: int, now: float, continue_with: Callable[[], None] | None = None) -> None:
        """``ticket`` is done: run ``continue_with`` (unless the connection is closing), then let
        the next frame in."""
        self._pending.pop(ticket, None)
        if not self.closing and continue_with is not None:
            continue_with()
        if self._current == ticket:
            self._current = None
        self._settle(now)

    def _settle(self, now: float) -> None:
        """Let a waiting frame in when its turn came; close for a drain when nothing is pending."""
        while not self.closing and self._current is None and self._waiting is not None:
            frame = self._waiting
            if type(frame) is Publish:
                if not self.channels.has_room(self._waiting_size):
                    break
            elif self.channels.in_flight:
                break
            self._waiting = None
            self._handle(frame, now)
        if self._drain_reason is not None and not self.busy and not self.closing:
            self.close(1001, self._drain_reason)

    def allowed(self, channel: str, action: str) -> bool:
        return self.authority.allowed(self.grant, channel, action)

    def push(self, text: str | bytes, own: bool = False) -> None:
        """Queue a frame: JSON text from the codec (on the binary binding it goes out as
        MessagePack), or a binary frame (binary binding only)."""
        if not self.closing:
            if self.binary and type(text) is str:
                text = binary.transcode(text)
            self._actions.append(Send(text, own))

    def emit(self, action: Action) -> None:
        self._actions.append(action)

    def close(self, code: int, reason: str) -> None:
        if not self.closing:
            self.closing = True
            self._actions.append(Close(code, reason))

    def error(
        self,
        code: str,
        message: str,
        frame_id: object = None,
        *,
        channel: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """An ``error`` frame; it names the frame's id when that is a valid id."""
        self.stats.error(code)
        named = frame_id if is_message_id(frame_id) else None
        self.push(codec.encode(ErrorFrame(code, message, named, retry_after, channel)))

    def refuse(self, frame_id: object, channel: object, retry_after: float, why: str = "") -> None:
        """Answer ``rate_limited`` for a frame, naming it (its id, or the channel of a subscribe
        or unsubscribe) and when to send it again (rounded up: a wait of 0.0004 s is not "send
        again now")."""
        named = channel if isinstance(channel, str) and is_channel_name(channel) else None
        wait = math.ceil(retry_after * 1000) / 1000
        self.error(
            RATE_LIMITED, why or "too many frames: slow down", frame_id, channel=named, retry_after=wait
        )

    def hold(self, frame_id: object, retry_after: float, why: str, now: float) -> None:
        """Another limit refused a frame the admission let through: refuse it and start a hold,
        so what follows in flight is refused too and the client re-sends in order."""
        marker = self.gate.hold(now, retry_after)
        wait = self.gate.retry_after(now) if marker is not None else retry_after
        self.refuse(frame_id, None, wait, why)
        if marker is not None:
            self.push(codec.encode(Ping(marker)))

    # ---------------------------------------------------------------------------- machinery

    def _gated(self, kind: str | None, frame_id: str | None, channel: str | None, now: float) -> bool:
        """A frame the gate did not let through at once: ``True`` to handle it; else it was refused
        (``rate_limited`` naming its id or channel, with ``retry_after``; a new hold also pings),
        or the client was closed with 1008."""
        gate = self.gate
        verdict = gate.check(now, kind)
        if verdict is Verdict.ACCEPT:
            return True
        if verdict is Verdict.CLOSE:
            self.stats.drop("rate_limit")
            self.close(POLICY, "rate limit exceeded")
            return False
        self.refuse(frame_id, channel, gate.retry_after(now))
        if verdict is Verdict.HOLD:
            self.push(codec.encode(Ping(gate.marker)))
        return False

    def _too_large(self) -> None:
        self.stats.rejected["too_large"] += 1
        self.close(TOO_LARGE, "message too big")

    def _expiry(self, grant: Grant | None) -> float | None:
        return None if grant is None else grant.expires - self.wall_offset


class _Continuation:
    __slots__ = ("failure", "frame_id", "then")

    def __init__(self, then: Callable[..., None], frame_id: str | None, failure: str) -> None:
        self.then = then
        self.frame_id = frame_id
        self.failure = failure
