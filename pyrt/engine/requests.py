"""Requests: frames the server answers (an ``ack``, or an ``error`` naming their id), one class
per kind.

Each kind says what it does when it is answered, refused, timed out or dropped, whether it is
persisted and whether it is sent again on the next connection:

====================  ==========  ==================  =============================================
kind                  persisted   next connection     the caller gets
====================  ==========  ==================  =============================================
:class:`Request`      yes         sent again          the ack's data (``send_with_ack``)
:class:`Publish`      yes         sent again          the publication's offset
:class:`Read`         no          sent again          the decoded answer (history, presence, leave)
``JoinRequest``       no          joins again itself  (the channel's join: :mod:`pyrt.engine.channels`)
``RefreshRequest``    no          forgotten           (the token schedule: :mod:`pyrt.engine.token_refresh`)
====================  ==========  ==================  =============================================

The rules every kind shares (:class:`Requests`):

1. an id is unique across reconnects and page reloads (:class:`~pyrt.engine.acks.AckIds`);
2. a timeout clock runs only while the frame is on the wire; when it runs out the frame is sent
   again, in its send order, until it was sent ``1 + ack_retries`` times: then it fails with
   :class:`~pyrt.errors.AckTimeout` (a token refresh fails at once: a new token is fetched);
3. a transient refusal (``rate_limited``, ``unavailable``: :mod:`pyrt.wire.refusals`) puts it back
   in its send order, sent again after ``retry_after`` or a :class:`~pyrt.engine.backoff.Backoff`
   delay; after ``ack_retries`` refusals it fails with an :class:`~pyrt.errors.AckError` naming
   the code;
4. after a reconnect every request sent and not answered goes again first (the server
   deduplicates ids), unless its kind is tied to its connection;
5. each request ends once: :class:`ResolveAck` or :class:`RejectAck` on its ``handle``, a
   :class:`ReportRestored` for a message restored from a previous page, a
   :class:`ReportError` for a request nobody waits for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

from pyrt.engine.acks import AckIds, Pending, PendingAcks
from pyrt.engine.actions import RejectAck, ReportError, ReportRestored, ResolveAck
from pyrt.engine.outbox import Queued, frame_size
from pyrt.engine.sending import Ahead
from pyrt.errors import AckError, AckTimeout, ClientClosedError, QueueFull, UnsupportedByProtocol
from pyrt.wire.frames import Ack, ErrorFrame
from pyrt.wire.refusals import is_retryable
from pyrt.wire.types import AckId

if TYPE_CHECKING:
    from pyrt.engine.connection import ConnectionCore

__all__ = ["RESTORED", "SAVED_KINDS", "Publish", "Read", "Request", "Requests"]

RESTORED: Final = object()  # the handle of a message restored from storage: its fate is reported


@dataclass(slots=True, eq=False)
class Request(Pending):
    """An application message sent with :meth:`~pyrt.engine.websocket.WebSocketEngine.send_with_ack`:
    the base kind. Subclasses change what differs."""

    name: ClassVar[str] = "message"  # its kind, as saved records and restored reports name it
    persisted: ClassVar[bool] = True  # kept by persistence until answered (survives a reload)
    resent: ClassVar[bool] = True  # sent again on the next connection when unanswered

    def result(self, data: Any) -> Any:
        """What the caller gets for the ack's ``data`` (:class:`ValueError`: a malformed answer)."""
        return data

    def answered(self, requests: Requests, ack: Ack, now: float) -> None:
        """The server answered with ``ack`` (ok or not)."""
        requests.forget(self, now)
        if not ack.ok:
            requests.fail(self, AckError(self.id, ack.error))
            return
        if self.persisted:  # messages and publications, not reads
            requests.core.stats.acked += 1
        try:
            value = self.result(ack.data)
        except ValueError as exc:
            requests.fail(self, AckError(self.id, f"malformed answer: {exc}"))
            return
        requests.resolve(self, value)

    def refused(self, requests: Requests, code: str | None, message: str, now: float) -> None:
        """The server refused it for good (an error naming it, or refusals past the budget)."""
        requests.forget(self, now)
        requests.fail(self, AckError(self.id, message, code))

    def timed_out(self, requests: Requests, now: float) -> None:
        """The current transmission got no answer in time: send it again, or give up."""
        if requests.acks.exhausted(self):
            requests.acks.discard(self)
            requests.forget(self, now)
            requests.core.stats.ack_timeouts += 1
            requests.fail(self, AckTimeout(self.id, self.attempts, self.timeout))
        else:
            requests.core.sender.again_in_order(Ahead(self.frame, self))

    def aborted(self, requests: Requests, why: str, now: float) -> None:
        """The client stopped before it was answered."""
        requests.forget(self, now)
        requests.fail(self, ClientClosedError(f"{why} before message {self.id!r} was acknowledged"))


@dataclass(slots=True, eq=False)
class Publish(Request):
    """A publication into a channel: the caller gets its offset."""

    name: ClassVar[str] = "publish"

    def result(self, data: Any) -> Any:
        return data.get("offset") if isinstance(data, dict) else data


@dataclass(slots=True, eq=False)
class Read(Request):
    """A request whose answer is the caller's (a history page, the presence, a leave): never
    persisted (it dies with the page), sent again after a reconnect."""

    name: ClassVar[str] = "request"
    persisted: ClassVar[bool] = False
    #: Turns the ack's data into what the caller gets (:class:`ValueError`: malformed).
    decode: Callable[[Any], Any] | None = None

    def result(self, data: Any) -> Any:
        return self.decode(data) if self.decode is not None else data


#: The kinds a saved record can name (:mod:`pyrt.engine.persisted`); any other name is a message.
SAVED_KINDS: Final[dict[str, type[Request]]] = {Request.name: Request, Publish.name: Publish}


class Requests:
    """Every request of one client waiting for its answer (see the module docstring)."""

    __slots__ = ("acks", "core", "ids")

    def __init__(self, core: ConnectionCore, retries: int) -> None:
        self.core = core
        self.acks: PendingAcks[Request] = PendingAcks(retries)
        self.ids = AckIds(core.rng, numeric=core.protocol.numeric_ids)

    def __len__(self) -> int:
        return len(self.acks)

    def frames(self) -> dict[type, Callable[[Any, float], None]]:
        """The inbound frames this feature owns (errors naming a request come through the core,
        which first tells a transient refusal from a final one)."""
        return {Ack: self.on_ack}

    # ------------------------------------------------------------------------------ user calls

    def send_with_ack(
        self, data: Any, now: float, handle: object, timeout: float | None, buffered: int
    ) -> AckId:
        protocol = self.core.protocol
        if not protocol.acks:
            raise UnsupportedByProtocol(
                f"the {protocol.name!r} protocol has no acknowledgements; use "
                "protocol='pyrt' or 'json-ack', or send() without an ack"
            )
        ack_id = self.ids.next()
        self.submit(
            Request(ack_id, protocol.encode_acked(ack_id, data), handle, self.timeout(timeout)), now, buffered
        )
        return ack_id

    def submit(self, entry: Request, now: float, buffered: int) -> None:
        """Send ``entry`` at once when nothing waits and the pacer allows, else queue it."""
        core = self.core
        sender = core.sender
        if sender.max_bytes is not None and len(entry.frame) * 4 > sender.max_bytes:
            sender.check_size(entry.frame, entry.id)
        self.acks.add(entry)
        persisted = core.persisted if entry.persisted else None  # reads die with the page
        if persisted is not None:
            persisted.added(entry.id, entry.frame, entry.id, entry.name)
        if sender.can_send(now, buffered):
            self.transmit(entry, now)
        else:
            try:
                sender.enqueue(Queued(entry.frame, frame_size(entry.frame), entry.id), now)
            except QueueFull:
                self.acks.discard(entry)
                if persisted is not None:
                    persisted.removed(entry.id)
                raise
        if core.persisted is not None:
            core.persisted.dirty(now)

    def send_now(self, entry: Request, now: float) -> None:
        """Track ``entry`` and send it at once, ahead of anything waiting (joins, refreshes)."""
        self.acks.add(entry)
        self.transmit(entry, now)

    def transmit(self, entry: Request, now: float) -> None:
        """Send a request (the first time or again) and start its timeout."""
        sender = self.core.sender
        if sender.pacer is not None:
            entry.seq = sender.pacer.spend(now)
        sender.emit(entry.frame)
        self.acks.sent(entry, now)

    def timeout(self, timeout: float | None) -> float:
        if timeout is None:
            return self.core.ack_timeout
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout!r}")
        return timeout

    # ------------------------------------------------------------------------------ lookups

    def get(self, ack_id: Any) -> Request | None:
        return self.acks.get(ack_id)

    def waiting(self, entry: Request) -> bool:
        """True while ``entry`` is neither answered nor given up."""
        return self.acks.get(entry.id) is entry

    def fail_by_id(self, ack_id: AckId, error: Exception, now: float | None = None) -> bool:
        """Fail the request ``ack_id`` (dropped from the queue, too large); False when unknown."""
        entry = self.acks.pop(ack_id)
        if entry is None:
            return False
        if now is not None:
            self.forget(entry, now)
        self.fail(entry, error)
        return True

    # ------------------------------------------------------------------------------ answers

    def on_ack(self, event: Ack, now: float) -> None:
        if not event.ok and is_retryable(event.code):
            self.core.sender.refused(
                event.code, str(event.error), self.get(event.id), event.retry_after, None, now
            )
            return
        entry = self.acks.pop(event.id)
        if entry is None:
            self.core.stats.duplicates += 1
            return
        sender = self.core.sender
        pacer = sender.pacer
        if pacer is not None and entry.deadline is not None and pacer.confirm(entry.seq):
            sender.wake(now)
        entry.answered(self, event, now)

    def on_error(self, event: ErrorFrame, now: float) -> bool:
        """An error (not transient) that names a request: it fails. False when it names none."""
        entry = self.acks.pop(event.id) if event.id is not None else None
        if entry is None:
            return False
        entry.refused(self, event.code, event.message, now)
        return True

    def refused_for_now(
        self,
        entry: Request,
        code: str | None,
        message: str,
        retry_after: float | None,
        held: bool,
        now: float,
    ) -> None:
        """A transient refusal (rule 3): send it again later in its order, unless its refusals
        ran out. ``held``: the pacer holds everything already, no wait of its own."""
        acks = self.acks
        acks.recall(entry)
        entry.refusals += 1
        if entry.refusals > acks.retries:
            acks.discard(entry)
            self.forget(entry, now)
            entry.refused(self, code, message, now)
        else:
            wait = 0.0 if held else self.core.sender.retry_delay(entry.refusals, retry_after)
            self.core.sender.again_in_order(Ahead(entry.frame, entry, now + wait))

    def resolve(self, entry: Request, value: Any) -> None:
        handle = entry.handle
        if handle is RESTORED:
            self.report_restored(entry, value, None)
        elif handle is not None:
            self.core._actions.append(ResolveAck(handle, value))

    def fail(self, entry: Request, error: Exception) -> None:
        handle = entry.handle
        actions = self.core._actions
        if handle is RESTORED:
            self.report_restored(entry, None, error)
            actions.append(ReportError(error))
        elif handle is not None:
            actions.append(RejectAck(handle, error))
        else:
            actions.append(ReportError(error))

    def report_restored(self, entry: Request, reply: Any, error: Exception | None) -> None:
        from pyrt.persist.records import RestoredMessage, describe

        data, channel = describe(entry.frame)
        message = RestoredMessage(entry.id, entry.name, data, channel, error is None, reply, error)
        self.core._actions.append(ReportRestored(message))

    def forget(self, entry: Request, now: float) -> None:
        """``entry`` left the pending set (answered, failed, dropped): persistence lets it go."""
        persisted = self.core.persisted
        if persisted is not None:
            persisted.removed(entry.id)
            persisted.dirty(now)

    # ------------------------------------------------------------------------------ lifecycle

    def opened(self, now: float) -> None:
        """Rule 4: what was sent and not answered goes again, in the lane ahead of the queue."""
        ahead = self.core.sender.ahead
        for entry in self.acks.in_flight():
            if entry.resent:
                ahead.append(Ahead(entry.frame, entry))

    def lost(self) -> None:
        """The socket is gone: the kinds tied to it are forgotten; the clocks of the others stop."""
        for entry in self.acks.entries():
            if not entry.resent:
                self.acks.discard(entry)
        self.acks.off_the_wire()

    def tick(self, now: float) -> None:
        for entry in self.acks.due(now):
            entry.timed_out(self, now)

    def abort(self, why: str, now: float) -> None:
        """The client stopped: every request fails (each reported once)."""
        for entry in self.acks.clear():
            entry.aborted(self, why, now)

    def next_deadline(self) -> float | None:
        return self.acks.next_deadline()
