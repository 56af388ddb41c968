"""What the server accepts as JSON: strict parsing at every way in, so nothing it stores, echoes
or fans out can fail to encode later and break another client's stream.

Rules (on top of JSON syntax):

- No lone surrogates anywhere, keys included: ``"\\ud800"`` is valid JSON syntax, but no UTF-8
  text can carry it, so it could never be sent to anyone. (Escaped pairs such as
  ``"\\ud83d\\ude00"`` are fine: they decode to one character.)
- No ``NaN``/``Infinity`` and no number that overflows to infinity (not JSON, RFC 8259 §6).
- HTTP bodies are UTF-8 (RFC 8259 §8.1): anything else is refused, not guessed.

The checks cost nearly nothing on the common path: the deep surrogate check runs only when the
text contains a backslash (looked for first, at memory speed) and a surrogate escape; numbers with a
fraction or exponent pass through one small check each.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["IngressError", "check_text", "loads", "loads_body"]

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class IngressError(ValueError):
    """Input the server refuses. ``code`` is the protocol's error code (``bad_json``,
    ``bad_frame``, ``unknown_type``); ``value`` is what the text parsed to when only the deeper
    checks failed; ``id`` and ``channel`` name the refused frame when it had readable ones (the
    codec, :func:`pyrt.wire.codec.decode_client_frame`, fills them), so the client can fail
    that one call."""

    def __init__(
        self, code: str, message: str, value: Any = None, id: str | None = None, channel: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.value = value
        self.id = id
        self.channel = channel


def _refuse_constant(name: str) -> Any:
    raise IngressError("bad_json", f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise IngressError("bad_frame", f"the number {text[:40]} is too large")
    return value


_decoder = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def check_text(text: str) -> None:
    """Raise :class:`IngressError` if ``text`` holds a lone surrogate (it cannot be UTF-8)."""
    if not text.isascii() and _SURROGATE.search(text) is not None:
        raise IngressError("bad_frame", "text must be valid Unicode: no lone surrogates (\\ud800-\\udfff)")


def loads(text: str) -> Any:
    """Parse JSON ``text`` by the rules above; :class:`IngressError` if it breaks one."""
    try:
        value = _decoder.decode(text)
    except IngressError:
        raise
    except (ValueError, RecursionError):
        raise IngressError("bad_json", "the frame is not valid JSON") from None
    if "\\" in text and _SURROGATE_ESCAPE.search(text) is not None:
        try:
            check_text(_dumps(value))
        except IngressError as exc:
            raise IngressError(exc.code, str(exc), value) from None
        except (ValueError, RecursionError):
            raise IngressError("bad_frame", "the frame cannot be stored or sent (nesting too deep)") from None
    return value


def loads_body(body: bytes) -> Any:
    """Parse an HTTP body: UTF-8 JSON by the rules above."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise IngressError("bad_json", "the body is not UTF-8") from None
    return loads(text)
