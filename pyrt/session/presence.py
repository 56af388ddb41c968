"""A session's presence: joining and leaving channels' presence, reading members, and what a
connection's end or a refresh releases.

A member is named by the client's identity and the key its client object chose
(:func:`~pyrt.wire.frames.member_id`), so a client that reconnects joins as the same member.
What others see of it is what the application's ``presence_info`` hook shows (a ``ShowInfo``
action), bounded to ``max_presence_info_bytes``; the store bounds members per channel and per
identity. One connection holds at most ``max_presence_joins`` members (several clients may share
it: tabs of one site).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Final

from pyrt.errors import EncodeError
from pyrt.session.actions import Join, Leave, ReadPresence, Release, ShowInfo
from pyrt.wire import codec
from pyrt.wire.frames import Ack, PresenceJoin, PresenceLeave, PresenceRequest, RawJSON
from pyrt.wire.ingress import IngressError, check_text

if TYPE_CHECKING:
    from pyrt.session.server import ServerSession

__all__ = ["FULL", "Presence", "member_id"]

#: Why the store refused a join, in words (the ``forbidden`` error's text).
FULL: Final = {
    "full": "the presence of {channel!r} is full",
    "identity": "you have as many members in {channel!r} as one client may",
    "identity_total": "you have as many members on this server as one client may",
    "total": "the server's presence is full",
}


def member_id(identity: str, key: str) -> str:
    """A member's public id (the server makes it): the same for the same client identity and
    key, telling neither."""
    return hashlib.sha256(f"{identity}\x00{key}".encode()).hexdigest()[:20]


class Presence:
    """The presence frames of one session (``presence_join``, ``presence_leave``, ``presence``)."""

    def __init__(self, session: ServerSession) -> None:
        self.session = session
        #: The members this connection holds: (channel, member).
        self.held: set[tuple[str, str]] = set()
        self._joining: dict[int, tuple[PresenceJoin, str]] = {}  # ticket -> (frame, member)

    def join(self, frame: PresenceJoin, now: float) -> None:
        """Join (or update) this client's member in a channel's presence."""
        session = self.session
        frame_id = frame.id if isinstance(frame.id, str) else None
        channel = frame.channel
        if not session.allowed(channel, "join"):
            session.error("forbidden", f"you may not join the presence of {channel!r}", frame_id)
            return
        if not self._allowed(frame_id, now):
            return
        member = member_id(session.peer.identity, frame.key or session.peer.session)
        most = session.config.max_presence_joins
        if (channel, member) not in self.held and len(self.held) >= most:
            session.error("forbidden", f"at most {most} presence joins per connection", frame_id)
            return
        ticket = session.begin(self._shown, frame_id, failure="cannot join presence now")
        self._joining[ticket] = (frame, member)
        subject = session.grant.subject if session.grant is not None else None
        session.emit(ShowInfo(ticket, channel, subject, frame.info))

    def _shown(self, now: float) -> None:
        """Nothing: a join's first step continues in :meth:`info_shown`."""

    def info_shown(self, ticket: int, shown: Any, now: float) -> None:
        """What the application lets others see: encode it, bound it, and enter the member."""
        session = self.session
        entry = self._joining.get(ticket)
        if entry is None:
            return
        frame, member = entry
        frame_id = frame.id if isinstance(frame.id, str) else None
        try:
            info_json = codec.json_text(shown)
            check_text(info_json)
        except (EncodeError, IngressError):
            return self._refuse(ticket, now, "bad_frame", "info cannot be encoded", frame_id)
        most = session.config.max_presence_info_bytes
        if len(info_json) > most:
            why = f"info is too large (at most {most} characters of JSON)"
            return self._refuse(ticket, now, "bad_frame", why, frame_id)
        subject = session.grant.subject if session.grant is not None else None
        config = session.config
        peer = session.peer
        session.emit(
            Join(
                ticket,
                frame.channel,
                member,
                codec.encode_member(member, subject, RawJSON(info_json)),
                peer.identity,
                peer.owner,
                config.max_presence,
                config.max_presence_per_identity,
            )
        )

    def info_refused(self, ticket: int, why: str | None, now: float) -> None:
        entry = self._joining.get(ticket)
        if entry is None:
            return
        frame_id = entry[0].id if isinstance(entry[0].id, str) else None
        if why is None:
            self._refuse(ticket, now, "bad_frame", "info was refused (internal error)", frame_id)
        else:
            self._refuse(ticket, now, "forbidden", why, frame_id)

    def _refuse(self, ticket: int, now: float, code: str, why: str, frame_id: str | None) -> None:
        self._joining.pop(ticket, None)
        self.session.finish(ticket, now, lambda: self.session.error(code, why, frame_id))

    def joined(self, ticket: int, status: str, now: float) -> None:
        session = self.session
        entry = self._joining.pop(ticket, None)
        if entry is None:
            return
        frame, member = entry
        frame_id = frame.id if isinstance(frame.id, str) else None
        channel = frame.channel

        def answer() -> None:
            if status == "unavailable":
                session.error("unavailable", "cannot join presence now", frame_id)
            elif status != "ok":
                session.stats.drop(f"presence_{status}")
                session.error("forbidden", FULL.get(status, "refused").format(channel=channel), frame_id)
            else:
                self.held.add((channel, member))
                if frame_id is not None:
                    session.push(codec.encode(Ack(frame_id, True, {"client": member})), own=True)

        session.finish(ticket, now, answer)

    def leave(self, frame: PresenceLeave, now: float) -> None:
        session = self.session
        frame_id = frame.id if isinstance(frame.id, str) else None
        if not self._allowed(frame_id, now):
            return
        member = member_id(session.peer.identity, frame.key or session.peer.session)
        self.held.discard((frame.channel, member))

        def answered(now: float) -> None:
            if frame_id is not None:
                session.push(codec.encode(Ack(frame_id, True, None)), own=True)

        ticket = session.begin(answered, frame_id, failure="cannot leave presence now")
        session.emit(Leave(ticket, frame.channel, member))

    def _allowed(self, frame_id: str | None, now: float) -> bool:
        """Whether a presence change (a join, an update, a leave) fits in the identity's presence
        rate: each one is a diff for every presence subscriber of the channel. Else refused
        (``rate_limited`` with ``retry_after``)."""
        session = self.session
        retry_after = session.presence_quota.wait(session.peer.identity, now)
        if retry_after:
            session.stats.drop("presence_quota")
            session.refuse(frame_id, None, retry_after, "too many presence changes: retry later")
            return False
        return True

    def left(self, ticket: int, ok: bool, now: float) -> None:
        if ok:
            self.session.complete(ticket, now)
        else:
            self.session.fail(ticket, now)

    def read(self, frame: PresenceRequest, now: float) -> None:
        session = self.session
        frame_id = str(frame.id)
        if not session.read_allowed(frame_id, frame.channel, now):
            return

        def answered(now: float, members: list[str], version: str) -> None:
            data = codec.encode_members([RawJSON(m) for m in members], version)
            session.push(codec.encode(Ack(frame_id, True, RawJSON(data))), own=True)

        ticket = session.begin(answered, frame_id, failure="cannot read presence now")
        session.emit(ReadPresence(ticket, frame.channel))

    def revoke(self) -> None:
        """After a refresh: leave what the new token no longer allows."""
        session = self.session
        for channel, member in [p for p in self.held if not session.allowed(p[0], "join")]:
            self.held.discard((channel, member))
            session.emit(Release(channel, member, session.peer.owner, clean=True))
            session.error("forbidden", f"you may no longer be present in {channel!r}", channel=channel)

    def release_all(self, *, clean: bool) -> None:
        """The connection ended: its members leave now (``clean``) or after the grace."""
        owner = self.session.peer.owner
        for channel, member in self.held:
            self.session.emit(Release(channel, member, owner, clean))
        self.held.clear()
