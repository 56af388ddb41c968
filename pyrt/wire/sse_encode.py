"""Writing ``text/event-stream``: events that no payload can break out of.

Every line of ``data`` becomes its own ``data:`` line (CRLF, LF and lone CR all count as line
breaks, exactly as the parser splits them), so a payload can never start a new field or end the
event early. ``type`` and ``id`` are single-line by nature: CR, LF or NUL in them raise
:class:`ValueError` instead of being silently mangled. Pure: no I/O, standard library only.
"""

from __future__ import annotations

from typing import overload

__all__ = ["encode_comment", "encode_event"]

_FORBIDDEN = ("\r", "\n", "\0")


def _check_single_line(name: str, value: str) -> None:
    for ch in _FORBIDDEN:
        if ch in value:
            raise ValueError(f"SSE {name} must not contain CR, LF or NUL: {value!r}")


def _lines(text: str) -> list[str]:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")


def _encode(data: str, type: str | None, id: str | None, retry: int | None) -> str:
    parts: list[str] = []
    if type is not None:
        if not isinstance(type, str):
            raise TypeError(f"SSE event type must be a str, got {type!r}")
        if not type:
            raise ValueError("SSE event type must not be empty; pass None for 'message'")
        _check_single_line("event type", type)
        parts.append(f"event: {type}\n")
    if id is not None:
        if not isinstance(id, str):
            raise TypeError(f"SSE id must be a str, got {id!r}")
        _check_single_line("id", id)
        parts.append(f"id: {id}\n")
    if retry is not None:
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
            raise ValueError(f"SSE retry must be a non-negative int (milliseconds), got {retry!r}")
        parts.append(f"retry: {retry}\n")
    if not isinstance(data, str):
        raise TypeError(f"SSE data must be str or bytes, got {data.__class__.__name__}")
    parts.extend(f"data: {line}\n" for line in _lines(data))
    parts.append("\n")
    return "".join(parts)


@overload
def encode_event(
    data: str, type: str | None = None, id: str | None = None, retry: int | None = None
) -> str: ...
@overload
def encode_event(
    data: bytes, type: str | None = None, id: str | None = None, retry: int | None = None
) -> bytes: ...
def encode_event(
    data: str | bytes,
    type: str | None = None,
    id: str | None = None,
    retry: int | None = None,
) -> str | bytes:
    """One complete event (ending with the blank line that dispatches it).

    ``data`` as ``str`` gives a ``str``; ``data`` as ``bytes`` (UTF-8) gives UTF-8 ``bytes``,
    ready to write to the response. ``type=None`` sends no ``event:`` line (the client sees
    ``"message"``); ``id=""`` is legal and resets the client's last event ID; ``retry`` is the
    reconnection time in milliseconds. Parsing the result with :class:`pyrt.wire.sse.SSEDecoder`
    gives back ``data`` exactly, except that CRLF and lone CR inside it arrive as LF.

    Raises :class:`ValueError` for CR, LF or NUL in ``type`` or ``id``, an empty ``type``, a
    negative ``retry``, or ``bytes`` that are not UTF-8.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        text = bytes(data).decode("utf-8")  # UnicodeDecodeError is a ValueError
        return _encode(text, type, id, retry).encode("utf-8")
    return _encode(data, type, id, retry)


def encode_comment(text: str = "") -> str:
    """A comment (``: text``), e.g. a keep-alive; each line of ``text`` is its own comment line.

    The result ends with one LF and dispatches nothing; it may be sent between events.
    """
    return "".join(f": {line}\n" if line else ":\n" for line in _lines(text))
