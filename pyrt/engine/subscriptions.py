"""Channel subscriptions that survive reconnects without gaps or duplicates.

For each channel the client keeps the offset of the last publication it delivered. After a
reconnect it subscribes again with ``since=<that offset>``; the server replays what was missed,
and anything at or before the last offset (a replay overlapping what was already delivered) is
dropped here. When the server says it could not replay everything (``recovered: false``), the
next publication delivered carries ``recovered=False``: there may be a gap before it.

A subscription that replaces an earlier one of the same channel (``unsubscribe`` then
``subscribe``) takes publications only once the server confirmed it (``subscribed``): one that
arrives before belongs to the earlier subscription (the server sent it before it read the
unsubscribe), and the replay after the confirmation holds it in its place; taking it first would
move the offset past that replay and lose what the replay holds.

Offsets are ordered by :func:`pyrt.wire.offsets.offset_key` (the grammar of docs/protocol.md, shared
with the server); a string of another form is compared as an opaque string, only for equality.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyrt.engine.presence import PresenceView
from pyrt.wire.offsets import OffsetKey, offset_key

__all__ = ["Subscription", "Subscriptions"]


@dataclass(slots=True, eq=False)
class Subscription:
    """The client's side of one channel subscription."""

    channel: str
    handler: object  # the adapter's callback; pyrt never calls it
    offset: str | None = None  # last delivered (or the subscribe point), None: live only
    key: OffsetKey | None = None
    active: bool = False  # the server confirmed it on the current connection
    recovered: bool = True
    gap_pending: bool = False  # the next publication must carry recovered=False
    on_presence: object = None  # the adapter's presence callback: the subscription follows presence
    view: PresenceView | None = None  # the members as known (once the server sent them)
    ended: bool = False  # unsubscribed (or refused): what it took and did not deliver yet is moot
    replacing: bool = False  # replaces an earlier subscription: nothing taken before confirmed


class Subscriptions:
    """Every subscription of one client, by channel, in subscribe order."""

    __slots__ = ("_ended", "_subs", "duplicates")

    def __init__(self) -> None:
        self._subs: dict[str, Subscription] = {}
        self._ended: set[str] = set()  # unsubscribed since the last disconnect
        self.duplicates = 0  # publications dropped because they were delivered already

    def __contains__(self, channel: object) -> bool:
        return channel in self._subs

    def __len__(self) -> int:
        return len(self._subs)

    def get(self, channel: str) -> Subscription | None:
        return self._subs.get(channel)

    def all(self) -> list[Subscription]:
        return list(self._subs.values())

    def add(
        self, channel: str, handler: object, since: str | None, on_presence: object = None
    ) -> Subscription:
        """Register a subscription (the caller sends the subscribe frame when open); with
        ``on_presence``, it follows the channel's presence too."""
        if channel in self._subs:
            raise ValueError(f"already subscribed to {channel!r}; unsubscribe first")
        sub = Subscription(
            channel, handler, since, offset_key(since) if since else None, on_presence=on_presence
        )
        if channel in self._ended:
            self._ended.discard(channel)
            sub.replacing = True
        self._subs[channel] = sub
        return sub

    def remove(self, channel: str) -> Subscription | None:
        sub = self._subs.pop(channel, None)
        if sub is not None:
            sub.ended = True
            self._ended.add(channel)
        return sub

    def offsets(self) -> dict[str, str]:
        """The resume offset of every subscription that has one."""
        return {c: s.offset for c, s in self._subs.items() if s.offset is not None}

    def disconnected(self) -> None:
        """The socket is gone: every subscription must be confirmed again."""
        self._ended.clear()  # nothing of an earlier subscription comes on the next socket
        for sub in self._subs.values():
            sub.active = False

    def confirmed(self, channel: str, offset: str | None, recovered: bool) -> Subscription | None:
        """The server confirmed ``channel`` at ``offset``; returns the subscription if known.

        A live-only subscription adopts ``offset`` as its resume point, so a later reconnect
        recovers everything published after the moment it first took effect.
        """
        sub = self._subs.get(channel)
        if sub is None:
            return None
        sub.active = True
        sub.replacing = False
        sub.recovered = recovered
        if not recovered:
            sub.gap_pending = True
            # The replay starts at the oldest retained publication, which can lie below the old
            # position (a channel from an earlier life, another server): forget that position
            # so nothing of the replay is dropped as a duplicate.
            sub.offset, sub.key = "0", (0, 0)
        if sub.offset is None and offset is not None:
            sub.offset = offset
            sub.key = offset_key(offset)
        return sub

    def accept(self, channel: str, offset: str | None) -> Subscription | None:
        """The subscription that must receive a publication at ``offset``, or None to drop it.

        Drops publications of unknown channels, those of an earlier subscription (see the
        module docstring) and those at or before the last delivered offset, and advances the
        offset of the one it returns.
        """
        sub = self._subs.get(channel)
        if sub is None or sub.replacing:
            return None
        if offset is None:
            return sub
        key = offset_key(offset)
        if key is None:
            if offset == sub.offset:
                self.duplicates += 1
                return None
        elif sub.key is not None and key <= sub.key:
            self.duplicates += 1
            return None
        sub.offset = offset
        sub.key = key
        return sub
