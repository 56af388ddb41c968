"""Keep credentials out of logs.

pyrt never puts tokens in URLs, but they travel in places that debug logs print: the
``bearer.<token>`` subprotocol and ``Authorization``/``Cookie`` headers of a handshake, the
``token`` of a ``refresh`` frame, and query strings of clients that put one there anyway
(``?token=``, ``?access_token=`` ...). :func:`redact` replaces each of those values with ``***``;
:class:`RedactSecrets` is a logging filter doing it to every record of the loggers it is attached
to (``serve.py`` attaches it to uvicorn's access and error logs, which also carry the
``websockets`` library's debug output; the CPython WebSocket transport to the logger it gives
``websockets``).

It errs on the side of hiding: anything named like a credential (``*token*``, ``*secret*``,
``*key*``, ``*auth*``, ``sig``...) loses its value.
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactSecrets", "redact"]

_NAME = r"[\w.-]*(?:token|secret|password|passwd|auth|key|jwt|sig|signature|session|code|credential)[\w.-]*"
_PATTERNS = (
    # a query or cookie parameter: ?token=..., &api_key=..., "Cookie: pyrt_token=...; ..."
    (re.compile(rf"((?:^|[?&;\s]){_NAME}=)[^&;#\s\"']*", re.IGNORECASE), r"\1***"),
    # the WebSocket subprotocol "bearer.<token>" and "Authorization: Bearer <token>"
    (re.compile(r"(\bbearer(?:\.|\s+))[^\s,;\"']+", re.IGNORECASE), r"\1***"),
    # a JSON member: {"token": "..."} (a refresh frame), even when cut short by a log
    (re.compile(rf"(\"{_NAME}\"\s*:\s*\")[^\"]*", re.IGNORECASE), r"\1***"),
    # a refresh frame shortened by a log ("...") may have lost its "token" name, not its tail
    (re.compile(r"(\"type\"\s*:\s*\"refresh\")[^\n]*"), r"\1 ***"),
)


def redact(text: str) -> str:
    """``text`` with every credential-looking value replaced by ``***``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """A filter that redacts credentials in a record (:func:`redact`).

    A record with nothing to hide is left alone. Otherwise its string arguments are redacted
    one by one, which keeps the arguments a tuple (uvicorn's access log formatter reads them by
    position); where that is not enough (a secret split between format and arguments, or inside
    an object such as the ``websockets`` library's frames) the record's message is formatted here
    and replaced by its redacted text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a malformed record: logging reports it, there is no message to leak
        clean = redact(message)
        if clean == message:
            return True
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in args)
            try:
                if record.getMessage() == clean:
                    return True
            except (TypeError, ValueError):
                pass
        record.msg = clean
        record.args = None
        return True
