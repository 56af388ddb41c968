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

Its cost is linear in what it reads, whatever a client sends (a request line is attacker's text):
a text longer than :data:`MAX_LOGGED` characters is cut first (the cut part is dropped, so no
secret in it can leak), and no pattern can backtrack over more than one run of similar
characters. Parameters are found by splitting on their separators (``?&;`` and whitespace) and
their names are compared with the keywords, instead of a pattern that searches a keyword inside
an unbounded name (which took 0.7 s on a 31 KB ``?keykeykey...``).
"""

from __future__ import annotations

import logging
import re

__all__ = ["MAX_LOGGED", "RedactSecrets", "redact"]

#: Characters of one logged text (a message, an argument) kept; the rest is replaced by a note
#: of its length before anything scans it.
MAX_LOGGED = 2048

_WORDS = ("token", "secret", "passw", "auth", "key", "jwt", "sig", "session", "code", "credential")
_KEYWORD = r"(?:token|secret|password|passwd|auth|key|jwt|sig|signature|session|code|credential)"
_FLAGS = re.IGNORECASE | re.ASCII
#: Credentials masked in one text at most: a text holding more is cut after them.
MAX_MASKED = 32
# A name holding a keyword (looked for in its first 64 characters), or longer than that.
_NAMED = rf"(?:(?=[\w.-]{{0,60}}?{_KEYWORD})|(?=[\w.-]{{65}}))[\w.-]++"
# A query or cookie parameter named like a credential: ?token=..., &api_key=..., "Cookie:
# pyrt_token=...; ...". It starts at a separator (the text is scanned with a space in front),
# and nothing is given back once taken (possessive quantifiers): each character is read a
# bounded number of times whatever the text.
_PARAMETER = re.compile(rf"[?&;\s]{_NAMED}=([^&;#\s\"']*+)", _FLAGS)
# a JSON member: {"token": "..."} (a refresh frame), even when cut short by a log
_MEMBER = re.compile(rf"\"{_NAMED}\"\s*+:\s*+\"([^\"]*+)", _FLAGS)
# the WebSocket subprotocol "bearer.<token>" and "Authorization: Bearer <token>"
_BEARER = re.compile(r"\bbearer(?:\.|\s++)([^\s,;\"']++)", _FLAGS)
# a refresh frame shortened by a log ("...") may have lost its "token" name, not its tail
_REFRESH = re.compile(r"\"type\"\s*+:\s*+\"refresh\"([^\n]*+)")


def _mask(pattern: re.Pattern[str], text: str, offset: int = 0, mask: str = "***") -> str:
    """``text`` with group 1 of each match of ``pattern`` replaced by ``mask``; after
    :data:`MAX_MASKED` of them the rest of the text is cut (a line of credentials is not a log
    line anyone needs whole, and the work per line stays bounded). ``offset``: matches are
    searched in ``text[offset:]`` (see :func:`redact`)."""
    pieces: list[str] = []
    position = offset
    for count, match in enumerate(pattern.finditer(text, offset)):
        if count == MAX_MASKED:
            pieces.append(f"...[{len(text) - match.start()} more characters cut]")
            position = len(text)
            break
        start, end = match.span(1)
        pieces.append(text[position:start])
        pieces.append(mask)
        position = end
    if not pieces:
        return text[offset:]
    pieces.append(text[position:])
    return "".join(pieces)


def redact(text: str, *, limit: int | None = MAX_LOGGED) -> str:
    """``text`` with every credential-looking value replaced by ``***``, cut to ``limit``
    characters first (``None``: not cut; the cost stays linear in the length)."""
    if limit is not None and len(text) > limit:
        text = text[:limit] + f"...[{len(text) - limit} more characters]"
    lowered = text.lower()  # only to skip the patterns that cannot match
    if any(word in lowered for word in _WORDS):
        if "=" in text:
            text = _mask(_PARAMETER, " " + text, 1)  # a name at the very start follows the space
        if '"' in text:
            text = _mask(_MEMBER, text)
    if "bearer" in lowered:
        text = _mask(_BEARER, text)
    if '"refresh"' in text:
        text = _mask(_REFRESH, text, mask=" ***")
    return text


class RedactSecrets(logging.Filter):
    """A filter that redacts credentials in a record (:func:`redact`).

    A record with nothing to hide is left alone. Otherwise its string arguments are redacted
    (and cut to :data:`MAX_LOGGED`) one by one, which keeps the arguments a tuple of the same
    shape (uvicorn's access log formatter unpacks them by position). When a secret is still
    there after that (split between the format and an argument), a tuple of plain arguments has
    every string replaced by ``***``; anything else (a secret inside an object, such as the
    ``websockets`` library's frames) has its message formatted here, redacted, and put in place
    of the format and arguments.
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
                formatted = record.getMessage()
            except (TypeError, ValueError):
                formatted = None
            if formatted is not None and redact(formatted, limit=None) == formatted:
                return True
            if all(isinstance(arg, str | int | float) or arg is None for arg in args):
                record.args = tuple("***" if isinstance(arg, str) else arg for arg in args)
                return True
        record.msg = clean
        record.args = None
        return True
