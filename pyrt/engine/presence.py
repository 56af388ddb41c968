"""Presence on the client: who is in a channel, kept right across reconnects.

- ``await client.join(channel, info)`` enters the channel's presence with ``info`` (a small
  JSON value: a name, an avatar, a status). The client keeps it: after a reconnect it joins
  again under the same key, so the server sees the same member (nobody sees it leave and come
  back). ``await client.leave(channel)`` ends it.
- ``await client.presence(channel)`` asks the server who is there: a list of :class:`Member`.
- ``client.subscribe(channel, handler, on_join=f, on_leave=g)`` follows the channel's presence:
  the server sends the members with the subscription, then each change. ``f(member)`` runs for
  every member that joins (or changes its info), ``g(member)`` for every one that leaves, and
  ``client.members(channel)`` is the list now. After a reconnect the client compares the
  server's members with its own list and reports the differences as joins and leaves, so the
  handlers see every change once, even those that happened while it was offline.

A member is ``Member(channel, client, user, info)``: ``client`` names one client object (a tab,
a process) and stays the same across its reconnects; ``user`` is its token's subject (``None``
without authentication; a client cannot choose it); ``info`` is what the server's
``presence_info`` hook let others see (by default what the client joined with).

:class:`PresenceView` is the pure bookkeeping: a snapshot and versioned diffs in, the joins and
leaves to report out. Diffs at or below the version already applied are dropped, so a diff that
raced the snapshot is never applied twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyrt.wire.frames import Member
from pyrt.wire.offsets import OffsetKey, offset_key

__all__ = ["PresenceView"]


class PresenceView:
    """The members of one channel as one client knows them."""

    __slots__ = ("channel", "members", "version")

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.members: dict[str, Member] = {}
        self.version: OffsetKey | None = None  # of the last snapshot or diff applied

    def snapshot(self, members: Sequence[Member], version: str) -> tuple[list[Member], list[Member]]:
        """The server's members at ``version`` replace the view; returns ``(joined, left)``:
        the members that are new or changed, and those that are gone."""
        fresh = {member.client: member for member in members}
        joined = [member for client, member in fresh.items() if self.members.get(client) != member]
        left = [member for client, member in self.members.items() if client not in fresh]
        self.members = fresh
        self.version = offset_key(version) if isinstance(version, str) else None
        return joined, left

    def diff(
        self, version: str, joins: Sequence[Member], leaves: Sequence[Member]
    ) -> tuple[list[Member], list[Member]]:
        """Apply a diff; returns ``(joined, left)`` as it changed the view (nothing for a diff
        at or below the version applied already)."""
        key = offset_key(version) if isinstance(version, str) else None
        if key is None or (self.version is not None and key <= self.version):
            return [], []
        self.version = key
        left = []
        for member in leaves:
            known = self.members.pop(member.client, None)
            if known is not None:
                left.append(known)
        joined = []
        for member in joins:
            if self.members.get(member.client) != member:
                self.members[member.client] = member
                joined.append(member)
        return joined, left
