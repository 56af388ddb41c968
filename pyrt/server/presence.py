"""Presence: who is in a channel, kept by the broker, with join/leave diffs and bounded expiry.

A connection *joins* a channel's presence with a small ``info`` object. Its entry (a *member*)
is ``{"client": ID, "user": SUBJECT, "info": INFO}``: ``client`` is an opaque id derived from
the client's identity and the key its client object chose (:func:`member_id`), so a client that
reconnects and joins again under the same key is the same member (nobody sees it leave and come
back); ``user`` is the token's subject (``null`` without authentication), never chosen by the
client. Every change bumps the channel's presence *version* (an offset, :mod:`pyrt.wire.offsets`) and
is announced as a diff (members that joined or changed, members that left).

Entries end (rules of :class:`PresenceStore`):

1. at once on an explicit leave, and when the connection closes cleanly (a close frame);
2. ``grace`` seconds after a connection is lost without a close frame (a killed tab, a
   half-open connection once the heartbeat gives up on it), unless the client joined again
   meanwhile (then the entry is its new connection's, and nothing happens);
3. ``ttl`` seconds after their instance last refreshed them, if that instance died: live
   entries are refreshed every ``ttl / 3`` seconds, and every instance sweeps the channels it has
   presence subscribers in as often, so a dead instance's members leave within ``4/3 · ttl``.

Bounds: members per channel, members per identity per channel (one client cannot crowd out the
others), and (memory store) members in all; an ``info`` is bounded by the server (its encoded
size) before it gets here.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from pyrt.session.presence import member_id

__all__ = [
    "JoinResult",
    "MemoryPresence",
    "PresenceListener",
    "PresenceStore",
    "Snapshot",
    "member_id",
]

log = logging.getLogger("pyrt.server")

#: Called for every presence change: ``(channel, version, joins, leaves)``, the members as JSON
#: text. On the event loop, in version order per channel.
PresenceListener = Callable[[str, str, list[str], list[str]], None]

JoinStatus = Literal["ok", "full", "identity", "identity_total", "total"]


@dataclass(frozen=True, slots=True)
class JoinResult:
    """``status`` ``"ok"``, or why the join was refused: the channel is ``"full"``, the
    identity has its most members there (``"identity"``) or in the whole store
    (``"identity_total"``, memory only), the store is full (``"total"``)."""

    status: JoinStatus
    version: str = "0"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The members of a channel (JSON texts) and the version they reflect."""

    members: list[str]
    version: str


class PresenceStore(abc.ABC):
    """Where presence lives. ``start(listener)`` once; ``maintain()`` every ``ttl / 3`` seconds.

    ``owner`` names the connection an entry belongs to (this instance and its session): only
    that connection's end removes it (:meth:`release`), so a member that joined again from a new
    connection is not removed when the old one finally goes.
    """

    def __init__(self, ttl: float, grace: float) -> None:
        if not ttl > 0 or grace < 0:
            raise ValueError(f"presence ttl must be > 0 and grace >= 0, got {ttl}, {grace}")
        self.ttl = ttl
        self.grace = grace
        self._listener: PresenceListener | None = None
        #: Entries joined through this instance and not released: (channel, member) -> owner.
        self.local: dict[tuple[str, str], str] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, listener: PresenceListener) -> None:
        self._listener = listener

    async def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task

    # --- what the protocol handler calls ---------------------------------------------------------

    async def join(
        self,
        channel: str,
        member: str,
        member_json: str,
        identity: str,
        owner: str,
        *,
        max_members: int,
        max_per_identity: int,
    ) -> JoinResult:
        """Add or update ``member`` (now owned by ``owner``); a diff follows when it is new or its
        JSON changed. :class:`~pyrt.server.brokers.base.BrokerError` when the store is down."""
        result = await self._join(
            channel, member, member_json, identity, owner, max_members, max_per_identity
        )
        if result.status == "ok":
            self.local[(channel, member)] = owner
        return result

    async def leave(self, channel: str, member: str) -> None:
        """Remove ``member`` at once, whoever owns it (an explicit leave by its own client)."""
        self.local.pop((channel, member), None)
        await self._remove(channel, member, None)

    def release(self, channel: str, member: str, owner: str, *, clean: bool) -> None:
        """``owner``'s connection ended: remove its entry now (``clean``: a close frame), or
        after ``grace`` seconds unless another connection took the member over meanwhile."""
        if self.local.get((channel, member)) == owner:
            del self.local[(channel, member)]
        loop = asyncio.get_running_loop()
        if clean or self.grace <= 0:
            self._spawn(self._remove(channel, member, owner))
            return

        def later() -> None:
            self._timers.discard(timer)
            if (channel, member) not in self.local:  # nobody here took it over
                self._spawn(self._remove(channel, member, owner))

        timer = loop.call_later(self.grace, later)
        self._timers.add(timer)

    async def maintain(self, watched: Iterable[str]) -> None:
        """Refresh this instance's entries (they live ``ttl`` more seconds) and expire what
        expired in the ``watched`` channels (those with presence subscribers here)."""
        await self._touch(self.local, self.ttl)
        await self._sweep(list(watched))

    async def hand_over(self, window: float = 0.0) -> None:
        """This instance is shutting down: its entries expire after ``grace`` seconds, or after
        ``window`` (the seconds its clients were told to spread their reconnects over) when
        longer, unless their clients join again elsewhere (the other instances' sweeps remove
        them). Connections lost from now on keep their members as long."""
        self.grace = max(self.grace, window)
        await self._touch(self.local, self.grace)
        self.local.clear()

    @abc.abstractmethod
    async def members(self, channel: str) -> Snapshot:
        """The current members (expired ones removed first, with their diff)."""

    async def watch(self, channel: str) -> None:
        """Deliver ``channel``'s diffs to the listener from now on (see ``Broker.watch``)."""
        return None

    def unwatch(self, channel: str) -> None:
        return None

    # --- for the implementations ---------------------------------------------------------------

    @abc.abstractmethod
    async def _join(
        self,
        channel: str,
        member: str,
        member_json: str,
        identity: str,
        owner: str,
        max_members: int,
        max_per_identity: int,
    ) -> JoinResult: ...

    @abc.abstractmethod
    async def _remove(self, channel: str, member: str, owner: str | None) -> None:
        """Remove ``member`` if ``owner`` still owns it (``None``: whoever does), with its diff."""

    @abc.abstractmethod
    async def _touch(self, entries: dict[tuple[str, str], str], seconds: float) -> None:
        """Make the still-owned ``entries`` expire ``seconds`` from now."""

    @abc.abstractmethod
    async def _sweep(self, channels: list[str]) -> None:
        """Remove the expired members of ``channels``, with their diffs."""

    def _announce(self, channel: str, version: str, joins: list[str], leaves: list[str]) -> None:
        listener = self._listener
        if listener is not None and (joins or leaves):
            try:
                listener(channel, version, joins, leaves)
            except Exception:
                log.exception("presence diff of %r failed", channel)

    def _spawn(self, coro: object) -> None:
        async def guarded() -> None:
            try:
                await coro  # type: ignore[misc]
            except Exception as exc:  # a store that is down: the entry expires by itself
                log.warning("presence: %s", exc)

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


@dataclass(slots=True)
class _Entry:
    json: str
    identity: str
    owner: str
    expires: float


@dataclass(slots=True)
class _Channel:
    life: int
    seq: int = 0
    entries: dict[str, _Entry] = field(default_factory=dict)
    per_identity: dict[str, int] = field(default_factory=dict)


class MemoryPresence(PresenceStore):
    """Presence in this process (the memory broker's). At most ``max_total`` members in all,
    and at most a sixteenth of that (``max_per_identity_total``) for one identity, so that a
    few clients cannot fill it for everyone."""

    def __init__(
        self,
        ttl: float = 30.0,
        grace: float = 5.0,
        *,
        max_total: int = 50_000,
        max_per_identity_total: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        super().__init__(ttl, grace)
        self.max_total = max_total
        self.max_per_identity_total = (
            max(1, max_total // 16) if max_per_identity_total is None else max_per_identity_total
        )
        self._identity_totals: dict[str, int] = {}
        self._clock = clock
        self._clock_ms = clock_ms
        self._last_life = 0
        self._channels: dict[str, _Channel] = {}
        self._expiries: list[tuple[float, str, str]] = []  # (expires, channel, member), lazily kept
        self.total = 0

    async def members(self, channel: str) -> Snapshot:
        self._expire(self._clock())
        state = self._channels.get(channel)
        if state is None:
            return Snapshot([], "0")
        return Snapshot([entry.json for entry in state.entries.values()], _version(state))

    async def _join(
        self,
        channel: str,
        member: str,
        member_json: str,
        identity: str,
        owner: str,
        max_members: int,
        max_per_identity: int,
    ) -> JoinResult:
        now = self._clock()
        self._expire(now)
        state = self._channels.get(channel)
        entry = state.entries.get(member) if state is not None else None
        if entry is None:
            if self.total >= self.max_total:
                return JoinResult("total")
            if self._identity_totals.get(identity, 0) >= self.max_per_identity_total:
                return JoinResult("identity_total", _version(state) if state is not None else "0")
            if state is not None and len(state.entries) >= max_members:
                return JoinResult("full", _version(state))
            if state is not None and state.per_identity.get(identity, 0) >= max_per_identity:
                return JoinResult("identity", _version(state))
        if state is None:
            self._last_life = max(self._clock_ms(), self._last_life + 1)
            state = self._channels[channel] = _Channel(self._last_life)
        expires = now + self.ttl
        heapq.heappush(self._expiries, (expires, channel, member))
        if entry is not None:
            entry.owner, entry.expires = owner, expires
            if entry.json == member_json:
                return JoinResult("ok", _version(state))
            entry.json = member_json
        else:
            state.entries[member] = _Entry(member_json, identity, owner, expires)
            state.per_identity[identity] = state.per_identity.get(identity, 0) + 1
            self._identity_totals[identity] = self._identity_totals.get(identity, 0) + 1
            self.total += 1
        state.seq += 1
        self._announce(channel, _version(state), [member_json], [])
        return JoinResult("ok", _version(state))

    async def _remove(self, channel: str, member: str, owner: str | None) -> None:
        state = self._channels.get(channel)
        entry = state.entries.get(member) if state is not None else None
        if state is None or entry is None or (owner is not None and entry.owner != owner):
            return
        self._drop(channel, state, [member])

    async def _touch(self, entries: dict[tuple[str, str], str], seconds: float) -> None:
        expires = self._clock() + seconds
        for (channel, member), owner in entries.items():
            state = self._channels.get(channel)
            entry = state.entries.get(member) if state is not None else None
            if entry is not None and entry.owner == owner:
                entry.expires = expires
                heapq.heappush(self._expiries, (expires, channel, member))

    async def _sweep(self, channels: list[str]) -> None:
        self._expire(self._clock())  # one heap for every channel: the watched ones included

    def _expire(self, now: float) -> None:
        """Drop the members whose expiry passed (each channel's in one diff)."""
        heap = self._expiries
        due: dict[str, list[str]] = {}
        while heap and heap[0][0] <= now:
            _, channel, member = heapq.heappop(heap)
            state = self._channels.get(channel)
            entry = state.entries.get(member) if state is not None else None
            if entry is not None and entry.expires <= now:
                due.setdefault(channel, []).append(member)
        for channel, members in due.items():
            self._drop(channel, self._channels[channel], members)
        if len(heap) > 4 * max(64, self.total):  # stale items of refreshed entries: rebuild
            self._expiries = [
                (e.expires, c, m) for c, s in self._channels.items() for m, e in s.entries.items()
            ]
            heapq.heapify(self._expiries)

    def _drop(self, channel: str, state: _Channel, members: list[str]) -> None:
        leaves = []
        for member in members:
            entry = state.entries.pop(member)
            left = state.per_identity[entry.identity] - 1
            if left:
                state.per_identity[entry.identity] = left
            else:
                del state.per_identity[entry.identity]
            held = self._identity_totals[entry.identity] - 1
            if held:
                self._identity_totals[entry.identity] = held
            else:
                del self._identity_totals[entry.identity]
            self.total -= 1
            leaves.append(entry.json)
        state.seq += 1
        version = _version(state)
        if not state.entries:
            del self._channels[channel]  # a later join starts a new life (greater versions)
        self._announce(channel, version, [], leaves)


def _version(state: _Channel) -> str:
    return f"{state.life}-{state.seq}" if state.seq else "0"
