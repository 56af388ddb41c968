"""Keep credentials out of the server's logs.

pyrt never reads tokens from URLs, but clients sometimes put them there anyway (``?token=``,
``?access_token=`` ...). :class:`RedactSecrets` is a logging filter that replaces the value of
every query parameter whose name looks like a credential with ``***`` in the records of the
loggers it is attached to (``serve.py`` attaches it to uvicorn's access and error logs, which print
request paths).
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactSecrets", "redact"]

_SECRET = re.compile(
    r"([?&](?:[\w.-]*(?:token|secret|password|passwd|auth|key|jwt|sig|signature|session|code|credential)"
    r"[\w.-]*)=)[^&#\s\"']*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with the values of credential-like query parameters replaced by ``***``."""
    return _SECRET.sub(r"\1***", text) if "=" in text else text


class RedactSecrets(logging.Filter):
    """A filter that redacts credential-like query parameters in a record's message arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True
