"""What an inspector records about one client: the pure core of ``client.inspect()``.

A :class:`Recorder` is fed what the client's engine does — the frames it receives and sends,
the actions it asks for — each with the adapter's ``now``, and keeps a bounded picture of it:

- the **state timeline**, each change with its reason (the close code and reason, the heartbeat
  that timed out, the sleep that was noticed, the refusal): a state change is an action
  (:class:`~pyrt.engine.states.StateChanged`) that carries no reason, so the reason is taken from
  the actions that come with it in the same batch (``Reconnecting``, ``CloseSocket``, ``Closed``,
  ``ReportError``, an SSE ``Disconnected``);
- the **last frames in and out, decoded** through the protocol (:mod:`pyrt.wire.codec`; a frame
  that does not decode is shown as its first characters), every ``ack`` matched to the frame
  that asked for it (its id, the round trip);
- **events**, from the engine's actions: a subscription confirmed (recovered, or with a gap), a
  publication delivered after a gap, presence changes, a request that failed, an error. A
  refusal shows in the frames (its code, its ``retry_after``) and in the pacing row's count;
- **round-trip times** (the heartbeat's, sampled as frames are read and by :func:`describe_websocket`).

Rules:

1. Every buffer is a ring (``limit`` entries): memory never grows with the traffic. Frames are
   kept by reference (the client made them anyway) and decoded only when a view is built, so an
   open inspector costs an append per frame; acks are matched to the sends still in the ring.
2. Nothing here runs unless an inspector is attached: the adapter (:mod:`pyrt.aio.inspector`)
   routes frames through a recorder only while one is open, so a client without an inspector
   keeps no frame and pays nothing.
3. Pure: no clock, no I/O. :func:`describe_websocket` and :func:`describe_sse` read an engine and a
   recorder at ``now`` and return a :class:`View`, which the renderers
   (:mod:`pyrt.engine.inspect_render`) turn into text or HTML.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final

from pyrt.engine.actions import DeliverPresence, DeliverPublication, RejectAck, SubscriptionConfirmed
from pyrt.engine.states import Closed, StateChanged
from pyrt.wire import binary, codec
from pyrt.wire.frames import (
    Ack,
    BadFrame,
    ErrorFrame,
    HistoryRequest,
    Message,
    Ping,
    Pong,
    PresenceDiff,
    PresenceJoin,
    PresenceLeave,
    PresenceRequest,
    Publication,
    Publish,
    Refresh,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
    Welcome,
)
from pyrt.wire.protocols import PyrtProtocol
from pyrt.wire.sse import ServerSentEvent

#: What a protocol decodes a server's frame into (anything else in a recording is an SSE event).
_DECODED: Final = (
    Welcome,
    Ping,
    Pong,
    Message,
    Ack,
    Subscribed,
    Unsubscribed,
    Publication,
    PresenceDiff,
    ErrorFrame,
    BadFrame,
)

if TYPE_CHECKING:
    from pyrt.engine.sse import _Machine
    from pyrt.engine.websocket import WebSocketEngine
    from pyrt.wire.protocols import WireProtocol
    from pyrt.wire.types import Frame

__all__ = [
    "DEFAULT_LIMIT",
    "ChannelRow",
    "FrameEntry",
    "Note",
    "PendingRow",
    "Recorder",
    "StateEntry",
    "View",
    "describe_sse",
    "describe_websocket",
    "summarize",
]

DEFAULT_LIMIT: Final = 50  # entries per ring buffer
PREVIEW: Final = 60  # characters of a payload shown


@dataclass(frozen=True, slots=True)
class StateEntry:
    """A state change at ``at`` (the client's clock), and why."""

    at: float
    old: str
    new: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class FrameEntry:
    """One frame, decoded: ``direction`` is ``"in"`` or ``"out"``; ``ack_id`` names the id it
    carries (a request's, or the ack's); ``matched`` says, for an ack, how long after which send
    it came, and for a send, that its ack came."""

    at: float
    direction: str
    summary: str
    size: int
    ack_id: str | None = None
    matched: str = ""


@dataclass(frozen=True, slots=True)
class Note:
    """Something that happened to a channel, the pacer or the connection (``topic`` says which)."""

    at: float
    topic: str
    text: str


@dataclass(frozen=True, slots=True)
class PendingRow:
    """A request waiting for its ack: its id, what it is, how long since it was last sent
    (``None``: not on the wire, queued or waiting to be sent again), transmissions and transient
    refusals so far."""

    id: str
    summary: str
    age: float | None
    attempts: int
    refusals: int


@dataclass(frozen=True, slots=True)
class ChannelRow:
    """A subscription: the offset delivered last, confirmed on this connection, whether the last
    confirmation recovered everything, the presence count (``None``: not followed)."""

    channel: str
    offset: str | None
    active: bool
    recovered: bool
    members: int | None


@dataclass(frozen=True, slots=True)
class View:
    """What an inspector shows at one moment (built by :func:`describe_websocket` /
    :func:`describe_sse`)."""

    client: str
    state: str
    transport: str
    now: float
    stats: dict[str, Any]
    timeline: tuple[StateEntry, ...]
    frames: tuple[FrameEntry, ...]
    notes: tuple[Note, ...]
    rtts: tuple[float, ...] = ()
    queue: tuple[str, ...] = ()
    pending: tuple[PendingRow, ...] = ()
    channels: tuple[ChannelRow, ...] = ()
    pacing: dict[str, Any] = field(default_factory=dict)
    session: str | None = None
    server: tuple[Note, ...] = ()


def _preview(text: str) -> str:
    return text if len(text) <= PREVIEW else text[: PREVIEW - 1] + "…"


def _data(value: Any) -> str:
    """A payload as JSON (a string in quotes), cut to :data:`PREVIEW` characters."""
    try:
        text = codec.json_text(value)
    except Exception:
        text = repr(value)
    return _preview(text)


def _size(frame: Frame) -> int:
    return (
        len(frame)
        if isinstance(frame, bytes | bytearray | memoryview)
        else len(frame.encode("utf-8", "replace"))
    )


def _raw(frame: str | bytes | bytearray | memoryview) -> str:
    if isinstance(frame, bytes | bytearray | memoryview):
        return f"binary {len(frame)} B"
    return _preview(frame)


def summarize(frame: object) -> str:
    """A decoded frame in one short line (``publish #a1 chat "hi"``); any other value as its repr."""
    if isinstance(frame, Message):
        return f"message{_id(frame.id)} {_data(frame.data)}"
    if isinstance(frame, Publish):
        return f"publish{_id(frame.id)} {frame.channel} {_data(frame.data)}"
    if isinstance(frame, Publication):
        gap = "" if frame.recovered else " (after a gap)"
        return f"publication {frame.channel}@{frame.offset} {_data(frame.data)}{gap}"
    if isinstance(frame, Ack):
        if frame.ok:
            return f"ack{_id(frame.id)} ok {_data(frame.data)}"
        return f"ack{_id(frame.id)} refused {frame.code or ''}".rstrip()
    if isinstance(frame, Subscribe):
        return f"subscribe {frame.channel} since {frame.since}"
    if isinstance(frame, Subscribed):
        return f"subscribed {frame.channel}@{frame.offset} recovered={frame.recovered}"
    if isinstance(frame, Unsubscribe | Unsubscribed):
        return f"{type(frame).__name__.lower()} {frame.channel}"
    if isinstance(frame, Ping | Pong):
        return f"{type(frame).__name__.lower()} {frame.t}"
    if isinstance(frame, Welcome):
        return f"welcome session={frame.session}"
    if isinstance(frame, ErrorFrame):
        after = f" retry after {frame.retry_after:g} s" if frame.retry_after is not None else ""
        return f"error {frame.code}{_id(frame.id)} {frame.message}{after}".rstrip()
    if isinstance(frame, PresenceDiff):
        return f"presence {frame.channel} +{len(frame.joins)} -{len(frame.leaves)}"
    if isinstance(frame, HistoryRequest | PresenceRequest | PresenceJoin | PresenceLeave):
        return f"{type(frame).__name__}{_id(frame.id)} {frame.channel}"
    if isinstance(frame, Refresh):
        return f"refresh{_id(frame.id)} (token hidden)"
    if isinstance(frame, BadFrame):
        return f"unreadable: {frame.reason}"
    return _preview(repr(frame))


def _id(ack_id: object) -> str:
    return "" if ack_id is None else f" #{ack_id}"


def _ack_id(frame: object) -> str | None:
    ack_id = getattr(frame, "id", None)
    return None if ack_id is None else str(ack_id)


class Recorder:
    """The bounded record of one client (see the module docstring). ``protocol`` decodes what
    the client receives (``None``: SSE, whose events come decoded).

    Recording is cheap: a frame is kept by reference with its time (the client made it anyway)
    and decoded only when a view is built (:meth:`frames`), at most ``limit`` of them."""

    __slots__ = ("_raw", "limit", "notes", "protocol", "rtts", "server", "timeline")

    def __init__(self, protocol: WireProtocol | None = None, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        self.limit = limit
        self.protocol = protocol
        self.timeline: deque[StateEntry] = deque(maxlen=limit)
        self.notes: deque[Note] = deque(maxlen=limit)
        self.rtts: deque[float] = deque(maxlen=limit)
        self._raw: deque[tuple[float, bool, object]] = deque(maxlen=limit)  # (at, inbound, frame)
        #: The server's side of this connection (``/admin/trace`` events), when followed.
        self.server: deque[Note] = deque(maxlen=limit)

    # ---------------------------------------------------------------------- inputs

    def frame_in(self, frame: Frame, now: float) -> None:
        """The client received ``frame`` (one socket message; a batch shows frame by frame)."""
        self._raw.append((now, True, frame))

    def frame_out(self, frame: Frame, now: float) -> None:
        """The client handed ``frame`` to its socket."""
        self._raw.append((now, False, frame))

    def event_in(self, event: ServerSentEvent, now: float) -> None:
        """An SSE client dispatched ``event``."""
        self._raw.append((now, True, event))

    def actions(self, actions: Iterable[object], now: float) -> None:
        """The engine asked for ``actions`` (in this order)."""
        pending: list[StateChanged] = []
        reason = ""
        for action in actions:
            if isinstance(action, StateChanged):
                pending.append(action)
                continue
            note = _note_of(action)
            if note is not None:
                self.notes.append(Note(now, *note))
            why = _reason_of(action)
            if why:
                reason = reason or why
        for change in pending:
            self.timeline.append(StateEntry(now, change.old.value, change.new.value, reason))

    def server_event(self, event: dict[str, Any], now: float) -> None:
        """An event of the server's trace of this connection (:mod:`pyrt.server.trace`)."""
        what = str(event.get("event", "?"))
        hidden = ("event", "at", "session", "user", "transport")
        fields = " ".join(f"{k}={v}" for k, v in event.items() if k not in hidden and v is not None)
        self.server.append(Note(now, what, _preview(fields)))

    def rtt(self, sample: float | None) -> None:
        """A heartbeat round trip (seconds); the same sample twice is kept once."""
        if sample is not None and (not self.rtts or self.rtts[-1] != sample):
            self.rtts.append(sample)

    # ---------------------------------------------------------------------- the view

    def frames(self) -> tuple[FrameEntry, ...]:
        """The frames kept, decoded, oldest first: every ack (or refusal) matched to the send of
        its id among them, every send of an id already sent marked as sent again."""
        out: list[FrameEntry] = []
        sent: dict[str, tuple[float, str]] = {}
        for at, inbound, frame in self._raw:
            if not inbound:
                out.append(self._outbound(frame, at, sent))
                continue
            size = _size(frame) if isinstance(frame, str | bytes) else 0
            for item in self._decode_in(frame):
                out.append(_inbound(item, at, size, sent))
                size = 0  # a batch's size goes with its first frame
        return tuple(out[-self.limit :])

    def _outbound(self, frame: object, at: float, sent: dict[str, tuple[float, str]]) -> FrameEntry:
        decoded: object = None
        if isinstance(frame, str) or (isinstance(frame, bytes) and isinstance(self.protocol, PyrtProtocol)):
            try:  # bytes from a pyrt client: the binary binding, which it negotiated
                decoded = (
                    codec.decode_client_frame(frame)
                    if isinstance(frame, str)
                    else binary.decode_client_frame(frame)
                )
            except Exception:
                decoded = None
        if decoded is None or not isinstance(frame, str | bytes):
            return FrameEntry(at, "out", _raw(frame) if isinstance(frame, str | bytes) else repr(frame), 0)
        summary = summarize(decoded)
        ack_id = _ack_id(decoded) if not isinstance(decoded, Ping | Pong) else None
        again = ""
        if ack_id is not None:
            first = sent.get(ack_id)
            if first is None:
                sent[ack_id] = (at, summary)
            else:
                again = f"sent again, first {1000 * (at - first[0]):.0f} ms earlier"
        return FrameEntry(at, "out", summary, _size(frame), ack_id, again)

    def _decode_in(self, frame: object) -> list[object]:
        protocol = self.protocol
        if protocol is None or not isinstance(frame, str | bytes):
            return [frame]
        try:
            batch = protocol.decode_batch(frame)  # a binary message: always its frames
            if batch is not None:
                return list(batch)
            return [protocol.decode(frame)]
        except Exception:
            return [frame]


def _inbound(item: object, at: float, size: int, sent: dict[str, tuple[float, str]]) -> FrameEntry:
    if isinstance(item, str | bytes | bytearray | memoryview):
        return FrameEntry(at, "in", _raw(item), size)
    if isinstance(item, ServerSentEvent):
        where = f" id={item.id}" if item.id else ""
        return FrameEntry(at, "in", f"{item.type}{where} {_preview(item.data)}", len(item.data))
    if not isinstance(item, _DECODED):
        return FrameEntry(at, "in", _preview(repr(item)), size)
    matched = ""
    ack_id = _ack_id(item) if isinstance(item, Ack | ErrorFrame) else None
    if ack_id is not None:
        first = sent.get(ack_id)
        if first is not None:
            matched = f"answers {first[1]} ({1000 * (at - first[0]):.0f} ms)"
    return FrameEntry(at, "in", summarize(item), size, ack_id, matched)


def _note_of(action: object) -> tuple[str, str] | None:
    """What a channel, request or the connection did that the events list shows."""
    if isinstance(action, SubscriptionConfirmed):
        what = "recovered" if action.recovered else "gap: the server could not replay everything missed"
        return f"channel {action.channel}", f"subscribed at {action.offset}, {what}"
    if isinstance(action, DeliverPublication):
        publication = action.publication
        if not publication.recovered:
            return f"channel {publication.channel}", f"delivered after a gap: offset {publication.offset}"
        return None
    if isinstance(action, DeliverPresence):
        return "presence", f"+{len(action.joined)} -{len(action.left)}"
    if isinstance(action, RejectAck):
        return "request failed", str(action.error)
    if type(action).__name__ in ("ReportError", "Disconnected"):
        return "error", str(action.error)  # type: ignore[attr-defined]
    return None


def _reason_of(action: object) -> str:
    """The reason an action carries, in words (empty: none)."""
    name = type(action).__name__
    if isinstance(action, Closed):
        code = f" (code {action.code})" if action.code is not None else ""
        return f"{action.detail}{code}"
    if name == "Reconnecting":
        return f"{action.reason}; attempt {action.attempt} in {action.delay:.2f} s"  # type: ignore[attr-defined]
    if name == "CloseSocket":
        return f"closing the socket ({action.code} {action.reason})".replace(" )", ")")  # type: ignore[attr-defined]
    if name in ("ReportError", "Disconnected"):
        return str(action.error)  # type: ignore[attr-defined]
    if name == "OpenSocket":
        return f"attempt {action.attempt} over {action.transport}"  # type: ignore[attr-defined]
    return ""


# -------------------------------------------------------------------------- views


def describe_websocket(engine: WebSocketEngine, recorder: Recorder, now: float, client: str) -> View:
    """What ``engine`` holds now, with what ``recorder`` saw: a :class:`View`."""
    hb = engine._hb
    if hb is not None:
        recorder.rtt(hb.rtt)
    queue = tuple(f"{_id(item.ack_id).strip() or '-'} {_raw(item.frame)}" for item in engine._outbox)
    pending = []
    for entry in engine.requests.acks._entries.values():
        on_wire = entry.deadline is not None  # sent, its timeout running since it was sent
        age = now - (entry.deadline - entry.timeout) if entry.deadline is not None else None
        pending.append(
            PendingRow(
                str(entry.id), type(entry).__name__, age if on_wire else None, entry.attempts, entry.refusals
            )
        )
    channels = []
    for sub in engine.channels.subs.all():
        members = len(sub.view.members) if sub.view is not None else None
        channels.append(ChannelRow(sub.channel, sub.offset, sub.active, sub.recovered, members))
    return View(
        client=client,
        state=engine.state.value,
        transport=engine.transport,
        now=now,
        stats=engine.stats_snapshot().as_dict(),
        timeline=tuple(recorder.timeline),
        frames=recorder.frames(),
        notes=tuple(recorder.notes),
        rtts=tuple(recorder.rtts),
        queue=queue,
        pending=tuple(pending),
        channels=tuple(channels),
        pacing=_pacing(engine, now),
        session=engine.session,
        server=tuple(recorder.server),
    )


def _pacing(engine: WebSocketEngine, now: float) -> dict[str, Any]:
    pacer = engine._pacer
    if pacer is None:
        return {}
    tokens: float = pacer._tokens
    held = pacer._hold_until - now
    return {
        "rate": pacer.rate,
        "burst": pacer.burst,
        "tokens": round(tokens, 2),
        "window": pacer.window,
        "in flight": pacer.seq - pacer.confirmed,
        "held for": round(held, 3) if held > 0 else 0.0,
        "refused": engine.stats.refused,
    }


def describe_sse(engine: _Machine, recorder: Recorder, now: float, client: str, transport: str) -> View:
    """What an SSE engine holds now, with what ``recorder`` saw: a :class:`View`."""
    return View(
        client=client,
        state=engine.state.value,
        transport=transport,
        now=now,
        stats=asdict(engine.stats),
        timeline=tuple(recorder.timeline),
        frames=recorder.frames(),
        notes=tuple(recorder.notes),
    )
