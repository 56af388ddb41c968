"""Server-Sent Events: the WHATWG "interpreting an event stream" algorithm, sans I/O.

:class:`SSEDecoder` turns the body of a ``text/event-stream`` response into
:class:`ServerSentEvent` objects. Bytes go in (split anywhere: inside a UTF-8 sequence, between
the CR and the LF of a CRLF, inside the leading BOM), events come out. It does no I/O, keeps no
clock and imports nothing outside the standard library, so the same code runs in Pyodide, on
CPython and in the unit tests.

The algorithm (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):

- the stream is UTF-8; invalid sequences become U+FFFD; one leading U+FEFF is dropped, only at
  the very start of the stream;
- lines end in CRLF, LF or a lone CR;
- an empty line dispatches the event being built; a line starting with ``:`` is a comment;
- ``name:value`` is a field (one leading space of the value is removed); a line without a colon
  is a field with an empty value; field names are case-sensitive and unknown ones are ignored;
- ``data`` lines are joined with LF; no ``data`` line means no event (the id is still committed);
- ``id`` sets the last event ID unless the value contains U+0000;
- ``retry`` sets the reconnection time only when the value is all ASCII digits;
- at the end of the stream the incomplete event is discarded and its id never committed.

Speed matters (this runs in the browser against native ``EventSource``): each chunk is handled
with ``str`` methods (``replace``, ``split``, ``find``), and Python code runs once per *line*,
never once per character.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from typing import Any

from pyrt.wire.sse_encode import encode_comment, encode_event

__all__ = ["SSEDecoder", "ServerSentEvent", "encode_comment", "encode_event"]


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event.

    ``type`` is the ``event:`` field, or ``"message"`` when the event had none (or an empty one).
    ``data`` is the ``data:`` lines joined with LF. ``id`` is the stream's last event ID at the
    moment of dispatch: the event's own ``id:`` field, or the one inherited from an earlier event
    (``""`` when no id was ever set, or after an empty ``id:``). ``retry`` is the reconnection
    time in milliseconds set by a valid ``retry:`` field inside this event's block, else ``None``
    (the stream-wide value is :attr:`SSEDecoder.retry`).
    """

    type: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None

    def json(self) -> Any:
        """``data`` parsed as JSON (raises :class:`ValueError` when it is not JSON)."""
        return json.loads(self.data)


_HUGE_RETRY = 10**18  # "for ever" in milliseconds; stands for absurdly long retry values


def _milliseconds(digits: str) -> int:
    """``int(digits)`` for a string of ASCII digits, without CPython's 4300-digit limit error."""
    digits = digits.lstrip("0")
    if not digits:
        return 0
    return int(digits) if len(digits) <= 18 else _HUGE_RETRY


class SSEDecoder:
    """Incremental ``text/event-stream`` parser.

    Call :meth:`feed` with each chunk of the response body as it arrives; it returns the events
    completed by that chunk, in order. When the response ends (or is aborted), call :meth:`end`:
    the incomplete event is discarded, and the next :meth:`feed` starts a new stream (a new
    leading BOM is stripped) while :attr:`last_event_id` and :attr:`retry` carry over, as a
    reconnecting ``EventSource`` does.

    Feed either ``bytes`` (decoded as UTF-8, invalid sequences replaced by U+FFFD) or ``str``
    (already decoded text), not both within one stream.

    ``last_event_id`` starts a decoder from a known position (for example, one persisted from an
    earlier page): events with no ``id:`` field of their own inherit it.
    """

    __slots__ = (
        "_data",
        "_decode",
        "_event_retry",
        "_event_type",
        "_id_buffer",
        "_last_event_id",
        "_pending",
        "_retry",
        "_skip_lf",
        "_started",
    )

    def __init__(self, last_event_id: str = "") -> None:
        if "\0" in last_event_id or "\r" in last_event_id or "\n" in last_event_id:
            raise ValueError("last_event_id must not contain NUL, CR or LF")
        self._last_event_id = last_event_id
        self._retry: int | None = None
        self._new_stream()

    def _new_stream(self) -> None:
        self._decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
        self._started = False  # the leading BOM is still to be looked at
        self._skip_lf = False  # the previous chunk ended in CR: a leading LF belongs to it
        self._pending: list[str] = []  # the start of an unfinished line
        self._data: list[str] = []  # the data buffer, one entry per data line
        self._event_type = ""
        self._event_retry: int | None = None
        self._id_buffer = self._last_event_id

    @property
    def last_event_id(self) -> str:
        """The last event ID string: committed when an event is dispatched, never mid-event."""
        return self._last_event_id

    @property
    def retry(self) -> int | None:
        """The reconnection time in milliseconds set by the stream, or ``None`` if never set."""
        return self._retry

    def end(self) -> None:
        """The stream ended: discard the unfinished line and event; get ready for a new stream."""
        self._new_stream()

    def feed(self, chunk: bytes | bytearray | memoryview | str) -> list[ServerSentEvent]:
        """Parse one more chunk of the stream and return the events it completes."""
        text = chunk if isinstance(chunk, str) else self._decode(chunk)
        if not text:
            return []
        if not self._started:
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
                if not text:
                    return []
        if self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        if "\r" in text:
            # A CR at the very end ends a line now; an LF opening the next chunk is its pair.
            self._skip_lf = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if "\n" not in text:
            self._pending.append(text)
            return []
        lines = text.split("\n")
        if self._pending:
            self._pending.append(lines[0])
            lines[0] = "".join(self._pending)
            self._pending.clear()
        tail = lines.pop()
        if tail:
            self._pending.append(tail)
        return self._lines(lines)

    def _lines(self, lines: list[str]) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        data = self._data
        event_type = self._event_type
        event_retry = self._event_retry
        id_buffer = self._id_buffer
        for line in lines:
            if not line:
                # Dispatch: commit the id even when there is no data.
                self._last_event_id = id_buffer
                if data:
                    events.append(
                        ServerSentEvent(
                            type=event_type or "message",
                            data="\n".join(data),
                            id=id_buffer,
                            retry=event_retry,
                        )
                    )
                    data = []
                event_type = ""
                event_retry = None
                continue
            if line.startswith("data:"):  # the common case first
                value = line[5:]
                data.append(value[1:] if value.startswith(" ") else value)
                continue
            colon = line.find(":")
            if colon == 0:
                continue  # a comment
            if colon < 0:
                field, value = line, ""
            else:
                field = line[:colon]
                value = line[colon + 1 :]
                if value.startswith(" "):
                    value = value[1:]
            if field == "data":
                data.append(value)
            elif field == "event":
                event_type = value
            elif field == "id":
                if "\0" not in value:
                    id_buffer = value
            elif field == "retry" and value.isascii() and value.isdigit():
                event_retry = self._retry = _milliseconds(value)
        self._data = data
        self._event_type = event_type
        self._event_retry = event_retry
        self._id_buffer = id_buffer
        return events
