"""A session's channels: subscriptions (with presence), publications and what a refresh revokes.

Subscriptions are kept by channel, at most ``max_subscriptions``; subscribing again replaces the
subscription (the driver ends the old one first). Publications go to the broker in frame order
and may be in flight together (``publish_window`` of them, ``publish_window_bytes`` at most: a
larger one goes alone); each is acked with its offset, once per id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrt.errors import EncodeError
from pyrt.session import messages
from pyrt.session.actions import Publish as PublishAction
from pyrt.session.actions import Subscribe as SubscribeAction
from pyrt.session.actions import Unsubscribe as UnsubscribeAction
from pyrt.wire import codec
from pyrt.wire.frames import Ack, Publish, RawJSON, Subscribe, Subscribed, Unsubscribe, Unsubscribed
from pyrt.wire.offsets import parse_offset
from pyrt.wire.refusals import UNAVAILABLE

if TYPE_CHECKING:
    from pyrt.session.server import ServerSession

__all__ = ["Channels"]


class Channels:
    """The channel frames of one session (``subscribe``, ``unsubscribe``, ``publish``)."""

    def __init__(self, session: ServerSession) -> None:
        self.session = session
        #: Channel -> whether the subscription follows presence (pending or confirmed).
        self.subscriptions: dict[str, bool] = {}
        self._flight: dict[int, tuple[str | None, int]] = {}  # publish ticket -> (id, bytes)
        self._bytes = 0
        self._subscribing: dict[int, str] = {}  # subscribe ticket -> channel

    # ----------------------------------------------------------------------------- publication

    @property
    def in_flight(self) -> int:
        return len(self._flight)

    @property
    def window_full(self) -> bool:
        """No publication may join those in flight, whatever its size: the next frame is not
        read (its bytes wait in the socket)."""
        config = self.session.config
        return len(self._flight) >= config.publish_window or self._bytes >= config.publish_window_bytes

    def has_room(self, size: int) -> bool:
        """Whether a publication of ``size`` bytes (its frame's length, which bounds its data's)
        may join those in flight (one always may)."""
        config = self.session.config
        flight = self._flight
        return not flight or (
            len(flight) < config.publish_window and self._bytes + size <= config.publish_window_bytes
        )

    def publish(self, frame: Publish, now: float) -> None:
        session = self.session
        frame_id = frame.id if isinstance(frame.id, str) else None
        channel = frame.channel
        if not session.allowed(channel, "publish"):
            session.error("forbidden", f"you may not publish to {channel!r}", frame_id)
            return
        try:
            data_json = codec.json_text(frame.data)
        except EncodeError:
            session.error("bad_frame", "data cannot be encoded", frame_id)
            return
        size = len(data_json)
        identity = session.peer.identity
        retry_after = session.publish_bytes_quota.wait(identity, now, size) or session.publish_quota.wait(
            identity, now
        )
        if retry_after:
            session.stats.drop("publish_quota")
            why = "too many publications (or bytes of them) from you: retry later"
            session.hold(frame_id, retry_after, why, now)
            return
        ticket = session.begin(self._done, frame_id, blocking=False)
        self._flight[ticket] = (frame_id, size)
        self._bytes += size
        event = frame.event or "message"
        session.emit(PublishAction(ticket, channel, event, data_json, frame_id, identity, frame.traceparent))

    def _done(self, now: float) -> None:
        """A publication's outcome was handled (by :meth:`published` or :meth:`publish_failed`)."""

    def published(self, ticket: int, offset: str, duplicate: bool, now: float) -> None:
        entry = self._flight.pop(ticket, None)
        if entry is None:
            return
        frame_id, size = entry
        self._bytes -= size
        session = self.session
        stats = session.stats
        if duplicate:
            stats.dedup_hits["publish"] += 1
        else:
            stats.publications += 1
        if frame_id is not None:
            stats.acks["ok"] += 1
            session.push(codec.encode(Ack(frame_id, True, {"offset": offset})), own=True)
        session.complete(ticket, now)

    def publish_failed(self, ticket: int, kind: str, message: str, now: float) -> None:
        entry = self._flight.pop(ticket, None)
        if entry is None:
            return
        frame_id, size = entry
        self._bytes -= size
        session = self.session
        if kind in ("bad_frame", "bad_json"):
            session.error(kind, message, frame_id)
        elif frame_id is not None:
            session.stats.acks["error"] += 1
            failed = (
                messages.ack_unavailable(frame_id) if kind == UNAVAILABLE else messages.ack_internal(frame_id)
            )
            session.push(failed)
        elif kind == UNAVAILABLE:
            session.error(UNAVAILABLE, "cannot publish now", retry_after=messages.BROKER_RETRY)
        session.complete(ticket, now)

    # --------------------------------------------------------------------------- subscription

    def subscribe(self, frame: Subscribe, now: float) -> None:
        session = self.session
        channel = frame.channel
        if not session.allowed(channel, "subscribe"):
            session.error("forbidden", f"you may not subscribe to {channel!r}", channel=channel)
            return
        if frame.presence:  # its snapshot of the members is a read, like a ``presence`` frame
            retry_after = session.query_quota.wait(session.peer.identity, now)
            if retry_after:
                session.stats.drop("query_quota")
                session.refuse(None, channel, retry_after, "too many reads: retry later")
                return
        since = None if frame.since is None else parse_offset(frame.since)
        subscriptions = self.subscriptions
        most = session.config.max_subscriptions
        if channel in subscriptions:
            del subscriptions[channel]
            session.emit(UnsubscribeAction(channel))
        elif len(subscriptions) >= most:
            session.error("forbidden", f"at most {most} subscriptions per connection", channel=channel)
            return
        subscriptions[channel] = frame.presence

        def answered(
            now: float, latest: str, recovered: bool, members: list[str] | None, version: str | None
        ) -> None:
            snapshot = None
            if members is not None and version is not None:
                snapshot = ([RawJSON(member) for member in members], version)
            answer: Subscribed[RawJSON] = Subscribed(channel, latest, recovered, snapshot)
            session.push(codec.encode(answer), own=snapshot is not None)

        ticket = session.begin(answered)
        self._subscribing[ticket] = channel
        session.emit(SubscribeAction(ticket, channel, since, frame.presence))

    def subscribed(
        self,
        ticket: int,
        latest: str,
        recovered: bool,
        members: list[str] | None,
        version: str | None,
        now: float,
    ) -> bool:
        session = self.session
        self._subscribing.pop(ticket, None)
        session.complete(ticket, now, latest, recovered, members, version)
        return not session.closing

    def subscribe_failed(self, ticket: int, why: str, now: float) -> None:
        """The broker is down: the subscription is dropped, the client asks again later."""
        session = self.session
        channel = self._subscribing.pop(ticket, None)
        if channel is None:
            return
        self.subscriptions.pop(channel, None)
        session.emit(UnsubscribeAction(channel))

        def refuse() -> None:
            why_now = f"cannot subscribe now: {why}"
            session.error(UNAVAILABLE, why_now, channel=channel, retry_after=messages.BROKER_RETRY)

        session.finish(ticket, now, refuse)

    def subscribe_forbidden(self, ticket: int, why: str, now: float) -> None:
        """The broker follows as many channels as this identity (or the process) may: the
        subscription is dropped and refused with ``forbidden``."""
        session = self.session
        channel = self._subscribing.pop(ticket, None)
        if channel is None:
            return
        self.subscriptions.pop(channel, None)
        session.emit(UnsubscribeAction(channel))
        session.finish(ticket, now, lambda: session.error("forbidden", why, channel=channel))

    def unsubscribe(self, frame: Unsubscribe, now: float) -> None:
        channel = frame.channel
        if self.subscriptions.pop(channel, None) is not None:
            self.session.emit(UnsubscribeAction(channel))
        self.session.push(codec.encode(Unsubscribed(channel)), own=True)

    def revoke(self) -> None:
        """After a refresh: end the subscriptions the new token no longer allows."""
        session = self.session
        for channel in [c for c in self.subscriptions if not session.allowed(c, "subscribe")]:
            del self.subscriptions[channel]
            session.emit(UnsubscribeAction(channel))
            session.error("forbidden", f"you may no longer subscribe to {channel!r}", channel=channel)

    def end_all(self) -> None:
        """The connection ended: every subscription ends with it."""
        for channel in self.subscriptions:
            self.session.emit(UnsubscribeAction(channel))
        self.subscriptions.clear()
