"""The sending side of a connection: the bounded queue, the lane ahead of it, and pacing.

What goes out, in this order:

1. frames that never wait: heartbeat pings and pongs (:meth:`Sender.emit_now`), presence joins
   and token refreshes (sent at once, ahead of everything, counted by the pacer);
2. the lane ahead of the queue (:attr:`Sender.ahead`): subscriptions being restored and requests
   sent again — after a reconnect, a timeout or a transient refusal — in their send order, each
   not before its ``not_before``;
3. the queue (:class:`~pyrt.engine.outbox.Outbox`), in order.

The lane and the queue drain (:meth:`Sender.flush`) as far as the pacer
(:mod:`pyrt.engine.pacing`), the socket's buffer (``high_water``) and the server's frame size
limit allow; the rest waits for the drain timer (:attr:`Sender.drain_at`) or for an answer that
frees the pacer (:meth:`Sender.wake`). A queued frame larger than the server takes is failed,
never sent. Nothing leaves the queue silently: each dropped frame is reported (a plain message)
or fails its request.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from pyrt.engine.actions import ReportError, SendFrame
from pyrt.engine.backoff import Backoff
from pyrt.engine.outbox import Outbox, Queued, frame_size
from pyrt.engine.pacing import Pacer
from pyrt.engine.states import State
from pyrt.errors import ClientClosedError, MessageTooLarge, QueueFull, ServerError
from pyrt.wire.refusals import RATE_LIMITED
from pyrt.wire.types import AckId, Frame

if TYPE_CHECKING:
    from pyrt.engine.connection import ConnectionCore
    from pyrt.engine.requests import Request

__all__ = ["RATE_HOLD", "RETRY_FIRST", "Ahead", "Sender"]

RATE_HOLD: Final = 0.5  # seconds to hold after a rate_limited refusal that names no retry_after
RETRY_FIRST: Final = 0.5  # seconds a frame refused for the first time waits, without retry_after


@dataclass(slots=True)
class Ahead:
    """A frame that goes before the queue: a subscription being restored, or a request sent
    again (after a reconnect, a timeout or a transient refusal), not before ``not_before``."""

    frame: Frame
    entry: Request | None = None
    not_before: float = 0.0


class Sender:
    """The queue, the lane ahead of it and the pacer of one client (see the module docstring)."""

    __slots__ = (
        "ahead",
        "core",
        "drain_at",
        "drain_interval",
        "high_water",
        "max_bytes",
        "outbox",
        "pacer",
        "probes",
        "retry",
        "rng",
    )

    def __init__(
        self,
        core: ConnectionCore,
        outbox: Outbox,
        pacer: Pacer | None,
        *,
        high_water: int,
        drain_interval: float,
        ack_timeout: float,
        rng: Callable[[], float],
    ) -> None:
        self.core = core
        self.outbox = outbox
        self.ahead: deque[Ahead] = deque()  # goes out before the queue, in order
        self.pacer = pacer
        self.high_water = high_water
        self.drain_interval = drain_interval
        self.drain_at: float | None = None  # when to flush again (None: nothing waits for time)
        self.max_bytes: int | None = None  # the server's frame size limit, once advertised
        self.probes = 0  # pings sent to learn how far the server has read
        #: How long a refused frame waits when the server names no ``retry_after``: 0.5 s
        #: doubling with each refusal, up to the ack timeout, with equal jitter.
        self.retry = Backoff(initial=min(RETRY_FIRST, ack_timeout), maximum=ack_timeout, jitter="equal")
        self.rng = rng

    # ------------------------------------------------------------------------------ frames

    def emit(self, frame: Frame) -> None:
        core = self.core
        core.stats.sent += 1
        core._actions.append(SendFrame(frame))

    def emit_now(self, frame: Frame, now: float) -> None:
        """A frame that never waits for the pacer (pings, pongs): it still spends a token."""
        if self.pacer is not None:
            self.pacer.force(now)
        self.emit(frame)

    def can_send(self, now: float, buffered: int) -> bool:
        """Whether a paced frame may go at once: open, nothing waiting, room in the socket's
        buffer and a token in the pacer."""
        pacer = self.pacer
        return (
            self.core._sm.state is State.OPEN
            and not self.outbox
            and not self.ahead
            and buffered <= self.high_water
            and (pacer is None or pacer.allows(now))
        )

    def check_size(self, frame: Frame, ack_id: AckId | None) -> None:
        """Raise :class:`MessageTooLarge` for a frame larger than the server takes."""
        limit = self.max_bytes
        if limit is not None:
            size = frame_size(frame)
            if size > limit:
                raise MessageTooLarge(size, limit, ack_id)

    # ------------------------------------------------------------------------------ the lane

    def send_ahead(self, item: Ahead, now: float) -> None:
        """Send ``item`` ahead of the queue, as soon as the pacer allows."""
        self.ahead.append(item)
        self.flush(now, 0)

    def again_in_order(self, item: Ahead) -> None:
        """Put a request back where its send order says: after the requests sent before it that
        wait too, before those sent after it (a second refusal can come while some refused in
        the first one still wait)."""
        ahead = self.ahead
        assert item.entry is not None
        order = item.entry.order
        for index, other in enumerate(ahead):
            if other.entry is not None and other.entry.order > order:
                ahead.insert(index, item)
                return
        ahead.append(item)

    # ------------------------------------------------------------------------------ the queue

    def enqueue(self, item: Queued, now: float) -> None:
        """Queue ``item`` (the overflow policy may drop others, each reported, or raise
        :class:`QueueFull`) and, when open, set the drain timer."""
        core = self.core
        persisted = core.persisted
        dropped = self.outbox.push(item)
        if not dropped or dropped[-1] is not item:
            core.stats.queued += 1
            if item.ack_id is None and persisted is not None:
                persisted.added(item, item.frame)
        for lost in dropped:
            self.drop(lost, f"the queue is full (overflow policy {self.outbox.overflow!r})")
        if core._sm.state is State.OPEN and self.drain_at is None:
            pacer = self.pacer
            if pacer is None:
                self.drain_at = now + self.drain_interval
            else:
                self.drain_at = pacer.ready_at(now)
                self.probe_reads(now)
        if persisted is not None:
            persisted.dirty(now)

    def drop(self, item: Queued, why: str) -> None:
        """A queued frame will never be sent: report it, or fail its request."""
        core = self.core
        core.stats.dropped += 1
        if core.persisted is not None:
            core.persisted.removed(item if item.ack_id is None else item.ack_id)
        error = QueueFull(
            f"dropped an unsent {item.size}-byte message"
            + (f" (id {item.ack_id!r})" if item.ack_id is not None else "")
            + f": {why}"
        )
        if item.ack_id is not None and core.requests.fail_by_id(item.ack_id, error):
            return
        core._actions.append(ReportError(error))

    def flush(self, now: float, buffered: int) -> None:
        """Send what waits, in order — first the lane, then the queue — as far as the pacer,
        the socket's buffer and any ``not_before`` allow; then set the next drain time."""
        core = self.core
        requests = core.requests
        outbox = self.outbox
        ahead = self.ahead
        pacer = self.pacer
        high_water = self.high_water
        persisted = core.persisted
        drain_at: float | None = None
        while ahead or outbox:
            if buffered > high_water:
                drain_at = now + self.drain_interval
                break
            if ahead and ahead[0].not_before > now:
                drain_at = ahead[0].not_before
                break
            if pacer is not None and not pacer.allows(now):
                drain_at = pacer.ready_at(now)  # None: an answer from the server will call back
                break
            if ahead:
                item = ahead.popleft()
                entry = item.entry
                if entry is None:
                    if pacer is not None:
                        pacer.spend(now)
                    self.emit(item.frame)
                elif requests.waiting(entry):  # not answered or given up meanwhile
                    requests.transmit(entry, now)
                    core.stats.retried += 1
                else:
                    continue
                buffered += frame_size(item.frame)
                continue
            queued = outbox.popleft()
            if self.max_bytes is not None and queued.size > self.max_bytes:
                self._too_large(queued, self.max_bytes, now)
                continue
            buffered += queued.size
            if queued.ack_id is not None:
                pending = requests.get(queued.ack_id)
                if pending is not None:
                    requests.transmit(pending, now)
                    continue
            if pacer is not None:
                pacer.spend(now)
            self.emit(queued.frame)
            if queued.ack_id is None and persisted is not None:
                persisted.removed(queued)  # sent: a fire-and-forget message is not kept
        self.drain_at = drain_at
        self.probe_reads(now)
        if persisted is not None:
            persisted.dirty(now)

    def _too_large(self, item: Queued, limit: int, now: float) -> None:
        """A queued frame turned out larger than the server accepts: fail it, never send it."""
        core = self.core
        core.stats.dropped += 1
        error = MessageTooLarge(item.size, limit, item.ack_id)
        if item.ack_id is not None and core.requests.fail_by_id(item.ack_id, error, now):
            return  # its future, on_restored for a restored one, or on_error
        if item.ack_id is None and core.persisted is not None:
            core.persisted.removed(item)
            core.persisted.dirty(now)
        core._actions.append(ReportError(error))

    def refused(
        self,
        code: str | None,
        message: str,
        entry: Request | None,
        retry_after: float | None,
        channel: str | None,
        now: float,
    ) -> None:
        """The server refused a frame for now (:mod:`pyrt.wire.refusals`): its request or its
        channel sends it again later, in its order; a fire-and-forget frame is reported as lost.

        ``rate_limited`` also holds the pacer: nothing more goes out before ``retry_after``, nor
        before everything in flight has come back (the server refuses it all during its hold),
        so the refused frames go again in their order, ahead of anything newer."""
        core = self.core
        core.stats.refused += 1
        pacer = self.pacer
        rate = code == RATE_LIMITED
        if rate and pacer is not None:
            if entry is not None and entry.deadline is not None:
                pacer.confirm(entry.seq)
            pacer.hold(now + (retry_after if retry_after is not None else RATE_HOLD), now)
        held = rate and pacer is not None  # the pacer holds everything: no per-frame wait
        if entry is not None:
            core.requests.refused_for_now(entry, code, message, retry_after, held, now)
        elif channel is not None and core.protocol.channels:
            core.channels.refused_for_now(channel, 0.0 if held else self.retry_delay(1, retry_after), now)
        else:
            core.stats.dropped += 1
            core._actions.append(ReportError(ServerError(str(code), message)))
        if core._sm.state is State.OPEN:
            self.wake(now)
            self.probe_reads(now)

    def retry_delay(self, refusals: int, retry_after: float | None) -> float:
        """How long a refused frame waits (``unavailable``; ``rate_limited`` without a pacer):
        the server's ``retry_after``, else :attr:`retry`'s delay for its number of refusals."""
        if retry_after is not None:
            return retry_after
        return self.retry.delay(max(refusals, 1), self.rng)

    def wake(self, now: float) -> None:
        """Something the pacer waited for arrived: drain at the next tick (which knows the
        socket's buffer) instead of waiting for a timer."""
        if (self.outbox or self.ahead) and (self.drain_at is None or self.drain_at > now):
            self.drain_at = now
            self.core._rearm = True

    def probe_reads(self, now: float) -> None:
        """Ask how far the server has read (a ping; its pong confirms what went before), when
        the pacer waits for that."""
        pacer = self.pacer
        if pacer is not None and self.core._sm.state is State.OPEN and pacer.probe_due(now):
            self.probes += 1
            t = -self.probes  # heartbeat pings count up from 1: the two never meet
            pacer.ping_sent(t)
            self.emit_now(self.core.protocol.encode_ping(t), now)

    # ------------------------------------------------------------------------------ lifecycle

    def off_the_wire(self) -> None:
        """The socket is gone: the lane is made again on the next open (subscriptions,
        unanswered requests); the queue stays."""
        self.ahead.clear()
        self.drain_at = None

    def abort(self, why: str) -> None:
        """The client stops: every plain message still queued is dropped and reported (the
        queued requests fail with their request, see :meth:`Requests.abort`)."""
        core = self.core
        persisted = core.persisted
        for item in self.outbox.clear():
            if item.ack_id is None:
                core.stats.dropped += 1
                if persisted is not None:
                    persisted.removed(item)
                core._actions.append(
                    ReportError(ClientClosedError(f"{why}: a queued {item.size}-byte message was never sent"))
                )
        self.off_the_wire()
