"""The WebSocket client engine: every decision of a reconnecting client, with no I/O.

:class:`WebSocketEngine` is a state machine in the "sans-I/O" style. The adapter (browser,
CPython, or the fakes in :mod:`pyrt.testing`) feeds it what happened and carries out what it
asks for:

Inputs (``now`` is the adapter's monotonic clock in seconds):

- :meth:`~WebSocketEngine.connect`, :meth:`~WebSocketEngine.close`, :meth:`~WebSocketEngine.send`,
  :meth:`~WebSocketEngine.send_with_ack`, :meth:`~WebSocketEngine.subscribe`,
  :meth:`~WebSocketEngine.unsubscribe`, :meth:`~WebSocketEngine.publish`,
  :meth:`~WebSocketEngine.history`, :meth:`~WebSocketEngine.presence`,
  :meth:`~WebSocketEngine.join`, :meth:`~WebSocketEngine.leave` — the user's calls;
- :meth:`~WebSocketEngine.opened`, :meth:`~WebSocketEngine.received`,
  :meth:`~WebSocketEngine.closed` — the current socket's events (:meth:`~WebSocketEngine.alive`
  for a frame the adapter routed itself; :meth:`~WebSocketEngine.forward` asks whether a frame
  another client encoded may go now, :meth:`~WebSocketEngine.forward_at` when it may: a
  connection shared by several clients, see :mod:`pyrt.aio.hub`);
- :meth:`~WebSocketEngine.save_now` — write the persisted state now;
- :meth:`~WebSocketEngine.tick` — the timer fired;
- :meth:`~WebSocketEngine.pause`, :meth:`~WebSocketEngine.resume` — going offline on purpose;
- :meth:`~WebSocketEngine.token_fetched`, :meth:`~WebSocketEngine.token_failed` — the answer to
  a :class:`FetchToken` action (clients made with ``token_refresh=True``);
- :meth:`~WebSocketEngine.remembered`, :meth:`~WebSocketEngine.probe_received`,
  :meth:`~WebSocketEngine.probe_closed` — the transport remembered for this origin, and the probe
  socket of a connection up on a fallback transport (:mod:`pyrt.engine.transports`);
- :meth:`~WebSocketEngine.network_online`, :meth:`~WebSocketEngine.page_visible`,
  :meth:`~WebSocketEngine.page_hidden`, :meth:`~WebSocketEngine.page_shown`,
  :meth:`~WebSocketEngine.woke` — the environment.

Outputs:

- :meth:`~WebSocketEngine.actions` — a drained list of :data:`Action` objects, to perform in order;
- :meth:`~WebSocketEngine.next_deadline` — when to call :meth:`~WebSocketEngine.tick` next. Arm
  **one** timer for it after every call; a timer that fires early or late is harmless.
- Two hot paths skip the action list: :meth:`~WebSocketEngine.received` *returns* the
  application message to deliver (or :data:`NO_MESSAGE`), and :meth:`~WebSocketEngine.send`
  *returns* the frame to transmit at once (or ``None`` when it was queued). The messages of a
  batched message (several frames in one, ``pyrt.v1.batch``) come as :class:`DeliverMessage`
  actions instead, in order with the other frames' actions.

Flow control (``pacing``, on by default for the pyrt protocol; :mod:`pyrt.engine.pacing`): on a new
connection frames wait for the server's ``welcome`` and its limits, then go out no faster than the
pacer allows; until then they wait in the queue (bounded by ``queue_limit``, counted in
``stats.queued``). Subscriptions being restored and acked messages sent again go before the queue;
heartbeat pings and pongs never wait. A transient refusal (:mod:`pyrt.wire.refusals`) of an acked
message puts it back in its place and sends it again after ``retry_after``; the caller hears of
it only after ``ack_retries`` such re-sends (an :class:`AckError` naming the server's code); a refused
fire-and-forget message is reported (``ReportError``, ``stats.refused``/``stats.dropped``). A
close reason or failed attempt carrying a reconnect hint (:mod:`pyrt.wire.reconnect_window`) spreads
the reconnect over the server's window.

Adapter contract: after :class:`CloseSocket` with ``detach=True``, report nothing more about that
socket (drop its handlers). Report events of the current socket only. Acks and subscription
handlers are opaque ``handle``/``handler`` objects the engine hands back in actions; it never
calls them. Skip a :class:`DeliverPublication` that is ``cancelled`` (its subscription ended
while the actions before it were carried out).

The options are those of :class:`~pyrt.engine.options.WebSocketOptions` (declared there once),
plus ``persist`` (keep a journal for :class:`SaveState`), ``token_refresh`` (the client has a
token callable), ``drain_interval`` and ``persist_interval``.

Inside, the engine is a connection core (:mod:`pyrt.engine.connection`: states, the socket,
heartbeat, reconnect; :mod:`pyrt.engine.sending`: the queue and pacing) and features that own
their frames and react to each new connection: requests (:mod:`pyrt.engine.requests`), channels
(:mod:`pyrt.engine.channels`), token refresh (:mod:`pyrt.engine.token_refresh`) and persistence
(:mod:`pyrt.engine.persisted`). This module puts them together and is the engine's one door.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pyrt.engine.actions import (
    NO_MESSAGE,
    Action,
    Closed,
    CloseProbe,
    CloseSocket,
    DeliverMessage,
    DeliverPresence,
    DeliverPublication,
    FetchToken,
    OpenProbe,
    OpenSocket,
    Reconnecting,
    RejectAck,
    RememberTransport,
    ReportError,
    ReportRestored,
    ResolveAck,
    SaveState,
    SendFrame,
    Stats,
    SubscriptionConfirmed,
)
from pyrt.engine.channels import Channels
from pyrt.engine.connection import ABANDON_CODE, ConnectionCore
from pyrt.engine.options import WebSocketOptions
from pyrt.engine.requests import Requests
from pyrt.engine.states import State, StateChanged
from pyrt.wire.frames import Member
from pyrt.wire.types import AckId, Frame

if TYPE_CHECKING:  # persistence loads only for clients that use it (an import costs in Pyodide)
    from pyrt.persist.records import Snapshot

__all__ = [
    "ABANDON_CODE",
    "NO_MESSAGE",
    "Action",
    "CloseProbe",
    "CloseSocket",
    "Closed",
    "DeliverMessage",
    "DeliverPresence",
    "DeliverPublication",
    "FetchToken",
    "OpenProbe",
    "OpenSocket",
    "Reconnecting",
    "RejectAck",
    "RememberTransport",
    "ReportError",
    "ReportRestored",
    "ResolveAck",
    "SaveState",
    "SendFrame",
    "StateChanged",
    "Stats",
    "SubscriptionConfirmed",
    "WebSocketEngine",
]


class WebSocketEngine(ConnectionCore):
    """All the decisions of one reconnecting WebSocket client. See the module docstring."""

    def __init__(
        self,
        options: WebSocketOptions | None = None,
        *,
        persist: bool = False,
        token_refresh: bool = False,
        drain_interval: float = 0.05,
        persist_interval: float = 0.0,
        **changes: Any,
    ) -> None:
        options = WebSocketOptions.of(options, **changes)
        super().__init__(options, drain_interval)
        self.requests = Requests(self, options.ack_retries)
        self.channels = Channels(self)
        self.token = None
        self.persisted = None
        self.frames.update(self.requests.frames())
        self.frames.update(self.channels.frames())
        if token_refresh:
            from pyrt.engine.token_refresh import TokenRefresher

            self.token = TokenRefresher(self)
        if persist:
            from pyrt.engine.persisted import PersistedState

            self.persisted = PersistedState(self, persist_interval)

    # ------------------------------------------------------------------------------ properties

    @property
    def queue_length(self) -> int:
        return len(self._outbox)

    @property
    def pending_acks(self) -> int:
        return len(self.requests)

    @property
    def transport(self) -> str:
        """The transport of the current (or next) connection: ``"websocket"`` or ``"http"``."""
        return self.transports.current

    def remembered(self, transport: str | None) -> None:
        """The transport remembered for this origin (a :class:`RememberTransport` of an earlier
        page or process): start from it. Call before :meth:`connect`."""
        self.transports.restore(transport)

    def probe_received(self, frame: Frame, now: float) -> None:
        """A frame arrived on the probe socket (:class:`OpenProbe`)."""
        self.transports.probe_received(frame, now)

    def probe_closed(self, now: float) -> None:
        """The probe socket closed or failed to open."""
        self.transports.probe_closed(now)

    @property
    def presence_key(self) -> str:
        """This client's name for its presence members: the same across its reconnects."""
        return self.channels.key

    def stats_snapshot(self) -> Stats:
        """A copy of :attr:`stats` with the current sizes and round-trip times filled in."""
        stats = replace(self.stats)
        stats.queue_length = len(self._outbox)
        stats.pending_acks = len(self.requests)
        stats.duplicates = self.stats.duplicates + self.channels.subs.duplicates
        if self._hb is not None:
            stats.rtt = self._hb.rtt
            stats.srtt = self._hb.srtt
        return stats

    # ------------------------------------------------------------------------------ a shared connection

    def forward(self, frame: Frame, now: float, buffered: int = 0) -> bool:
        """A frame another client encoded, for this connection as it is (the hub of a shared
        connection forwards its links' frames). Returns True when it may go on the socket now —
        open, ``buffered`` under the high-water mark, and the pacer willing (it spends a token:
        the server's limits hold for the connection as a whole); the caller sends it. Returns
        False when it must wait: the caller keeps it, in order, and asks :meth:`forward_at`.
        Nothing is queued, decoded, persisted or awaited here: the client that encoded the
        frame does all that. A pacer waiting for answers has a ping sent (its pong frees it)."""
        if self._sm.state is not State.OPEN or buffered > self._high_water:
            return False
        pacer = self._pacer
        if pacer is not None:
            if not pacer.allows(now):
                self.sender.probe_reads(now)
                return False
            pacer.spend(now)
        self.stats.sent += 1
        return True

    def forward_at(self, now: float, buffered: int = 0) -> float | None:
        """When :meth:`forward` may take a frame again: a time, or ``None`` when only an answer
        from the server can tell (a pong; then try again when one arrives) or never (not open)."""
        if self._sm.state is not State.OPEN:
            return None
        if buffered > self._high_water:
            return now + self.sender.drain_interval
        pacer = self._pacer
        return now if pacer is None else pacer.ready_at(now)

    # ------------------------------------------------------------------------------ requests

    def send_with_ack(
        self, data: Any, now: float, handle: object, timeout: float | None = None, buffered: int = 0
    ) -> AckId:
        """Send a message that wants an acknowledgement; returns its id.

        ``handle`` comes back in exactly one :class:`ResolveAck` (with the server's reply data) or
        :class:`RejectAck` (:class:`~pyrt.errors.AckTimeout`, :class:`~pyrt.errors.AckError`,
        :class:`~pyrt.errors.QueueFull`, :class:`~pyrt.errors.ClientClosedError`). ``timeout``
        overrides ``ack_timeout`` for this message: how long to wait for the ack of each
        transmission before sending it again.
        """
        self.check_sendable()
        return self.requests.send_with_ack(data, now, handle, timeout, buffered)

    def publish(
        self,
        channel: str,
        data: Any,
        now: float,
        handle: object,
        event: str | None = None,
        timeout: float | None = None,
        buffered: int = 0,
    ) -> AckId:
        """Publish into a channel; ``handle`` resolves with the publication's offset. Acked,
        retried and deduplicated like :meth:`send_with_ack`."""
        self.check_sendable()
        return self.channels.publish(channel, data, now, handle, event, timeout, buffered)

    def history(
        self,
        channel: str,
        now: float,
        handle: object,
        limit: int | None = None,
        since: str | None = None,
        reverse: bool = False,
        timeout: float | None = None,
        buffered: int = 0,
    ) -> AckId:
        """Ask for a page of ``channel``'s history (:mod:`pyrt.engine.history`); ``handle`` resolves
        with a :class:`~pyrt.engine.history.HistoryPage`. Sent at once or queued, re-sent after a
        reconnect, never persisted; fails like :meth:`send_with_ack`."""
        return self.channels.history(channel, now, handle, limit, since, reverse, timeout, buffered)

    def presence(
        self, channel: str, now: float, handle: object, timeout: float | None = None, buffered: int = 0
    ) -> AckId:
        """Ask who is in ``channel``'s presence; ``handle`` resolves with a list of
        :class:`~pyrt.wire.frames.Member`. A request like :meth:`history`."""
        return self.channels.presence(channel, now, handle, timeout, buffered)

    # ------------------------------------------------------------------------------ channels

    def subscribe(
        self, channel: str, handler: object, now: float, since: str | None = None, on_presence: object = None
    ) -> None:
        """Subscribe to ``channel``; publications come back as :class:`DeliverPublication` with
        ``handler``. ``since``: an offset (or ``"0"``) to replay from; by default live only, or
        the offset saved by a previous page when persistence is on. Restored after every
        reconnect, resuming after the last delivered publication. With ``on_presence`` the
        subscription follows the channel's presence too: joins and leaves come back as
        :class:`DeliverPresence` (after a reconnect, the differences the client missed)."""
        self.check_sendable()
        self.channels.subscribe(channel, handler, now, since, on_presence)

    def unsubscribe(self, channel: str, now: float) -> bool:
        """Stop a subscription; returns False when there was none. What it received and was not
        delivered yet is dropped (its :class:`DeliverPublication` says ``cancelled``)."""
        return self.channels.unsubscribe(channel, now)

    def join(
        self, channel: str, info: Any, now: float, handle: object = None, timeout: float | None = None
    ) -> None:
        """Be in ``channel``'s presence with ``info`` (a JSON value) until :meth:`leave`:
        joined when connected, and again after every reconnect under the same key
        (:attr:`presence_key`), so the server keeps one member. ``handle`` resolves with the
        member's id once the server confirmed it, or fails (``forbidden``: not allowed, or the
        channel's presence is full; the join is then given up). Joining again updates ``info``."""
        self.check_sendable()
        self.channels.join(channel, info, now, handle, timeout)

    def leave(
        self, channel: str, now: float, handle: object = None, timeout: float | None = None, buffered: int = 0
    ) -> AckId:
        """Leave ``channel``'s presence (also when joined by an earlier connection of this
        client); ``handle`` resolves with ``None``. A join still waiting for its answer fails."""
        return self.channels.leave(channel, now, handle, timeout, buffered)

    def members(self, channel: str) -> list[Member]:
        """The members of ``channel`` as a subscription with presence knows them (empty when
        there is none, or before the server sent them)."""
        return self.channels.members(channel)

    # ------------------------------------------------------------------------------ persistence

    def restore(self, snapshot: Snapshot) -> None:
        """Load what a previous page saved (before :meth:`connect`): its unacknowledged messages
        are sent first with their original ids — before anything sent since the client was
        made — and its channel offsets resume the same subscriptions, whether they are made
        again after this call or were made before it without an explicit ``since``. The fate of
        each restored message that wanted an ack comes back as a :class:`ReportRestored`."""
        from pyrt.engine.persisted import restore

        restore(self, snapshot)

    def save_now(self, now: float) -> bool:
        """Write what changed at once instead of at the next save (a :class:`SaveState` follows
        when something did). Returns False when persistence is off."""
        if self.persisted is None:
            return False
        self.persisted.save()
        return True

    def snapshot(self) -> Snapshot:
        """What persistence saves now: unacknowledged and unsent messages, in send order, and
        the resume offset of every channel."""
        from pyrt.engine.persisted import snapshot

        return snapshot(self)

    # ------------------------------------------------------------------------------ credentials

    def token_fetched(self, token: str, now: float, request: int | None = None) -> None:
        """The token callable returned ``token`` for :class:`FetchToken` ``request`` (``None``:
        the latest): send it in a ``refresh`` frame at once, ahead of anything queued. Ignored
        when the connection it was meant for is gone (the next one starts with a fresh token),
        when a newer request started, and when that request was answered already."""
        if self.token is not None:
            self.token.fetched(token, now, request)

    def token_failed(self, error: Exception, now: float, request: int | None = None) -> None:
        """The token callable raised ``error`` (or returned something unusable) for
        :class:`FetchToken` ``request``: report it and try again later
        (:mod:`pyrt.engine.credentials`). Ignored like a late :meth:`token_fetched`."""
        if self.token is not None:
            self.token.fetch_failed(error, now, request)
