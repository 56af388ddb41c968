"""Channels: subscriptions that recover, presence and history — the channel side of one client.

- **Subscriptions** (:mod:`pyrt.engine.subscriptions`): made again after every reconnect from the
  last delivered offset; replays are deduplicated, a failed recovery is flagged on the next
  publication. A subscription the server refused (``forbidden``) is given up and reported; one it
  refused for now is asked for again.
- **Presence** (:mod:`pyrt.engine.presence`): :meth:`Channels.join` keeps the client in a
  channel's presence, joined again on every connection under the same :attr:`Channels.key`, so
  the server sees one member; a subscription made with ``on_presence`` follows the members.
- **Reads**: a page of history (:mod:`pyrt.engine.history`), who is present, a leave — requests
  whose answers go to the caller (:class:`~pyrt.engine.requests.Read`).

The frames it owns: ``publication``, ``subscribed``, ``presence_diff``, and the errors that name
a channel. On each new connection it restores the subscriptions (first in the lane ahead of the
queue) and the presence joins (sent at once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Final

from pyrt.engine.actions import (
    DeliverPresence,
    DeliverPublication,
    RejectAck,
    ReportError,
    ResolveAck,
    SubscriptionConfirmed,
)
from pyrt.engine.presence import PresenceView
from pyrt.engine.requests import Publish, Read, Request, Requests
from pyrt.engine.sending import Ahead
from pyrt.engine.states import State
from pyrt.engine.subscriptions import Subscriptions
from pyrt.errors import AckTimeout, ChannelRefused, ClientClosedError, UnsupportedByProtocol
from pyrt.wire.frames import Ack, ErrorFrame, Member, PresenceDiff, Publication, Subscribed, read_presence
from pyrt.wire.names import CHANNEL_RULE, is_channel_name
from pyrt.wire.offsets import offset_key
from pyrt.wire.types import AckId, Frame

if TYPE_CHECKING:
    from pyrt.engine.connection import ConnectionCore

__all__ = ["Channels", "JoinRequest"]

_KEY_CHARS: Final = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(slots=True)
class _Join:
    """A channel whose presence the client wants to be in (joined again after every reconnect)."""

    info: Any
    handles: list[object]  # the callers waiting for the server to confirm it


@dataclass(slots=True, eq=False)
class JoinRequest(Request):
    """A presence join on the current connection: its answer settles the channel's join (every
    caller waiting for it); the next connection joins again by itself."""

    name: ClassVar[str] = "join"
    persisted: ClassVar[bool] = False
    resent: ClassVar[bool] = False
    channel: str = ""
    owner: Channels | None = None

    def answered(self, requests: Requests, ack: Ack, now: float) -> None:
        assert self.owner is not None
        self.owner.join_answered(self, ack)

    def refused(self, requests: Requests, code: str | None, message: str, now: float) -> None:
        assert self.owner is not None
        self.owner.join_answered(self, ErrorFrame(str(code), message, self.id))

    def timed_out(self, requests: Requests, now: float) -> None:
        if requests.acks.exhausted(self):
            assert self.owner is not None
            requests.acks.discard(self)
            self.owner.join_answered(self, None)
        else:
            Request.timed_out(self, requests, now)  # sent again on this connection

    def aborted(self, requests: Requests, why: str, now: float) -> None:
        """Its callers wait in the join itself (:meth:`Channels.abort`)."""


def _nothing(channel: str, data: Any) -> None:
    """The answer to a leave carries nothing."""
    return None


class Channels:
    """The subscriptions, presence joins and channel reads of one client (see the module docstring)."""

    __slots__ = ("core", "joins", "key", "restored_offsets", "subs")

    def __init__(self, core: ConnectionCore) -> None:
        self.core = core
        self.subs = Subscriptions()
        self.restored_offsets: dict[str, str] = {}  # saved by a previous page, not subscribed yet
        self.joins: dict[str, _Join] = {}  # presence the client is in, by channel
        #: This client's name for its presence members: the same across its reconnects.
        self.key = "".join(_KEY_CHARS[int(core.rng() * 36) % 36] for _ in range(16))

    def frames(self) -> dict[type, Callable[[Any, float], None]]:
        """The inbound frames this feature owns, and their handlers."""
        return {
            Publication: self.on_publication,
            Subscribed: self.on_subscribed,
            PresenceDiff: self.on_presence_diff,
        }

    # ------------------------------------------------------------------------------ subscriptions

    def subscribe(
        self, channel: str, handler: object, now: float, since: str | None, on_presence: object
    ) -> None:
        self._check_channels()
        if not isinstance(channel, str) or not channel:
            raise ValueError(f"channel must be a non-empty str, got {channel!r}")
        if since is None:
            since = self.restored_offsets.pop(channel, None)
        sub = self.subs.add(channel, handler, since, on_presence)
        core = self.core
        if core._sm.state is State.OPEN:
            frame = core.protocol.encode_subscribe(channel, sub.offset, on_presence is not None)
            core.sender.send_ahead(Ahead(frame), now)
        self._offsets_moved(now)

    def unsubscribe(self, channel: str, now: float) -> bool:
        if self.subs.remove(channel) is None:
            return False
        core = self.core
        if core._sm.state is State.OPEN:
            core.sender.send_ahead(Ahead(core.protocol.encode_unsubscribe(channel)), now)
        self._offsets_moved(now)
        return True

    def members(self, channel: str) -> list[Member]:
        sub = self.subs.get(channel)
        if sub is None or sub.view is None:
            return []
        return list(sub.view.members.values())

    def offsets(self) -> dict[str, str]:
        """The resume offset of every channel: subscribed, or saved by a previous page."""
        offsets = dict(self.restored_offsets)
        offsets.update(self.subs.offsets())
        return offsets

    def restore_offsets(self, offsets: dict[str, str]) -> None:
        """Offsets a previous page saved: they resume the same subscriptions, made again later
        or made before without an explicit ``since``."""
        for channel, offset in offsets.items():
            sub = self.subs.get(channel)
            if sub is None:
                self.restored_offsets[channel] = offset
            elif sub.offset is None:  # subscribed before restore(), live only: resume instead
                sub.offset, sub.key = offset, offset_key(offset)

    def publish(
        self,
        channel: str,
        data: Any,
        now: float,
        handle: object,
        event: str | None,
        timeout: float | None,
        buffered: int,
    ) -> AckId:
        self._check_channels()
        requests = self.core.requests
        ack_id = requests.ids.next()
        frame = self.core.protocol.encode_publish(ack_id, channel, data, event)
        requests.submit(Publish(ack_id, frame, handle, requests.timeout(timeout)), now, buffered)
        return ack_id

    # ------------------------------------------------------------------------------ reads

    def history(
        self,
        channel: str,
        now: float,
        handle: object,
        limit: int | None,
        since: str | None,
        reverse: bool,
        timeout: float | None,
        buffered: int,
    ) -> AckId:
        from pyrt.engine.history import check_query, read_page  # loaded by clients that read history

        check_query(channel, limit, since, reverse)
        protocol = self.core.protocol

        def encode(ack_id: AckId, channel: str) -> Frame:
            return protocol.encode_history(ack_id, channel, limit, since, reverse)

        return self.read(channel, now, handle, timeout, buffered, encode, partial(read_page, reverse=reverse))

    def presence(
        self, channel: str, now: float, handle: object, timeout: float | None, buffered: int
    ) -> AckId:
        return self.read(
            channel, now, handle, timeout, buffered, self.core.protocol.encode_presence, read_presence
        )

    def read(
        self,
        channel: str,
        now: float,
        handle: object,
        timeout: float | None,
        buffered: int,
        encode: Callable[[AckId, str], Frame],
        decode: Callable[[str, Any], Any],
    ) -> AckId:
        """Ask the server something about ``channel``; ``handle`` gets ``decode(channel, data)``."""
        self.core.check_sendable()
        self._check_channels()
        self._check_channel(channel)
        requests = self.core.requests
        ack_id = requests.ids.next()
        entry = Read(
            ack_id,
            encode(ack_id, channel),
            handle,
            requests.timeout(timeout),
            decode=partial(decode, channel),
        )
        requests.submit(entry, now, buffered)
        return ack_id

    # ------------------------------------------------------------------------------ presence

    def join(self, channel: str, info: Any, now: float, handle: object, timeout: float | None) -> None:
        self._check_channels()
        self._check_channel(channel)
        self.core.protocol.encode_join("probe", channel, info, self.key)  # EncodeError now
        join = self.joins.get(channel)
        handles = [] if join is None else join.handles
        if handle is not None:
            handles.append(handle)
        self.joins[channel] = _Join(info, handles)
        if self.core._sm.state is State.OPEN:
            self._send_join(channel, now, timeout)

    def leave(self, channel: str, now: float, handle: object, timeout: float | None, buffered: int) -> AckId:
        self._check_channel(channel)
        join = self.joins.pop(channel, None)
        if join is not None:
            error = ClientClosedError(f"left {channel!r} before the join was confirmed")
            for waiting in join.handles:
                self.core._actions.append(RejectAck(waiting, error))
        key, protocol = self.key, self.core.protocol
        return self.read(
            channel,
            now,
            handle,
            timeout,
            buffered,
            lambda ack_id, ch: protocol.encode_leave(ack_id, ch, key),
            _nothing,
        )

    def _send_join(self, channel: str, now: float, timeout: float | None = None) -> None:
        requests = self.core.requests
        ack_id = requests.ids.next()
        frame = self.core.protocol.encode_join(ack_id, channel, self.joins[channel].info, self.key)
        entry = JoinRequest(ack_id, frame, None, requests.timeout(timeout), channel=channel, owner=self)
        requests.send_now(entry, now)  # at once (ahead of the queue), counted by the pacer

    def join_answered(self, entry: JoinRequest, event: Ack | ErrorFrame | None) -> None:
        """A join frame was answered (``None``: it timed out after its retries)."""
        channel = entry.channel
        join = self.joins.get(channel)
        if join is None:
            return  # left meanwhile
        actions = self.core._actions
        if isinstance(event, Ack) and event.ok:
            data = event.data if isinstance(event.data, dict) else {}
            handles, join.handles = join.handles, []
            for handle in handles:
                actions.append(ResolveAck(handle, data.get("client")))
            return
        del self.joins[channel]  # refused: asking again after every reconnect would be refused again
        if event is None:
            error: Exception = AckTimeout(entry.id, entry.attempts, entry.timeout)
        elif isinstance(event, ErrorFrame):
            error = ChannelRefused(event.code, event.message, channel)
        else:
            error = ChannelRefused("refused", str(event.error), channel)
        if not join.handles:
            actions.append(ReportError(error))
        for handle in join.handles:
            actions.append(RejectAck(handle, error))

    # ------------------------------------------------------------------------------ frames

    def on_publication(self, event: Publication, now: float) -> None:
        sub = self.subs.accept(event.channel, event.offset)
        if sub is None:
            return
        if sub.gap_pending:
            sub.gap_pending = False
            event = replace(event, recovered=False)
        self.core._actions.append(DeliverPublication(sub.handler, event, sub))
        if self.core.persisted is not None:
            self._offsets_moved(now)

    def on_subscribed(self, event: Subscribed[Member], now: float) -> None:
        sub = self.subs.confirmed(event.channel, event.offset, event.recovered)
        if sub is None:
            return
        actions = self.core._actions
        actions.append(SubscriptionConfirmed(event.channel, event.offset, event.recovered))
        self._offsets_moved(now)
        if sub.on_presence is not None and event.presence is not None:
            if sub.view is None:
                sub.view = PresenceView(sub.channel)
            joined, left = sub.view.snapshot(*event.presence)
            if joined or left:
                actions.append(DeliverPresence(sub.on_presence, tuple(joined), tuple(left)))

    def on_presence_diff(self, event: PresenceDiff[Member], now: float) -> None:
        sub = self.subs.get(event.channel)
        if sub is not None and sub.view is not None and sub.on_presence is not None:
            joined, left = sub.view.diff(event.version, event.joins, event.leaves)
            if joined or left:
                self.core._actions.append(DeliverPresence(sub.on_presence, tuple(joined), tuple(left)))

    def refused(self, event: ErrorFrame, now: float) -> bool:
        """An error about a channel: a subscription refused or revoked is given up (asking again
        after every reconnect would only be refused again). False when it names none of ours."""
        if event.code != "forbidden" or event.channel is None or event.channel not in self.subs:
            return False
        self.subs.remove(event.channel)
        self._offsets_moved(now)
        self.core._actions.append(ReportError(ChannelRefused(event.code, event.message, event.channel)))
        return True

    def refused_for_now(self, channel: str, wait: float, now: float) -> None:
        """A subscribe or unsubscribe refused for now: the current wish goes again after ``wait``."""
        protocol = self.core.protocol
        sub = self.subs.get(channel)
        if sub is not None:
            frame = protocol.encode_subscribe(channel, sub.offset, sub.on_presence is not None)
        else:
            frame = protocol.encode_unsubscribe(channel)
        self.core.sender.ahead.append(Ahead(frame, None, now + wait))

    # ------------------------------------------------------------------------------ lifecycle

    def opened(self, now: float) -> None:
        """A new connection: the subscriptions go first (in the lane), the joins at once."""
        core = self.core
        ahead = core.sender.ahead
        encode = core.protocol.encode_subscribe
        for sub in self.subs.all():
            ahead.append(Ahead(encode(sub.channel, sub.offset, sub.on_presence is not None)))
        for channel in self.joins:  # presence again, as the same member
            self._send_join(channel, now)

    def lost(self) -> None:
        self.subs.disconnected()

    def abort(self, why: str) -> None:
        """The client stopped: every caller still waiting for a join fails."""
        actions = self.core._actions
        for channel, join in self.joins.items():
            handles, join.handles = join.handles, []
            for handle in handles:
                actions.append(
                    RejectAck(handle, ClientClosedError(f"{why} before joining {channel!r} was confirmed"))
                )

    # ------------------------------------------------------------------------------ helpers

    def _offsets_moved(self, now: float) -> None:
        persisted = self.core.persisted
        if persisted is not None:
            persisted.offsets_moved(now)

    def _check_channel(self, channel: object) -> None:
        if not is_channel_name(channel):
            raise ValueError(f"{CHANNEL_RULE}, got {channel!r}")

    def _check_channels(self) -> None:
        protocol = self.core.protocol
        if not protocol.channels:
            raise UnsupportedByProtocol(
                f"the {protocol.name!r} protocol has no channels; use protocol='pyrt' "
                "with a pyrt server for subscribe/publish"
            )
