"""``persist=`` outside the browser: one JSON file per key instead of ``localStorage``.

``persist="chat"`` stores ``<cache dir>/chat.json`` where the cache directory is
``$XDG_CACHE_HOME/pyrt`` (``~/.cache/pyrt`` when unset). A key that looks like a path — it
contains a ``/`` (or the OS separator), starts with ``~`` or ends with ``.json`` — is used as the
file path itself: ``persist="~/state/chat.json"`` or ``persist="/var/lib/app/ws.json"``.
Writes are atomic (a temporary file renamed over the old one), so a crash never leaves half a
file; a missing or unreadable file reads as nothing saved.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from urllib.parse import quote

__all__ = ["FileStorage", "default_directory"]


def default_directory() -> Path:
    """``$XDG_CACHE_HOME/pyrt``, or ``~/.cache/pyrt``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pyrt"


class FileStorage:
    """A :class:`~pyrt.persist.Storage` (``getItem``/``setItem``/``removeItem``) backed by files.

    ``directory`` holds the files of plain keys (default: :func:`default_directory`, created on
    the first write). See the module docstring for how a key maps to a file.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_directory()

    def path(self, key: str) -> Path:
        """The file that holds ``key``."""
        if not key:
            raise ValueError("a persistence key must not be empty")
        if "/" in key or os.sep in key or key.startswith("~") or key.endswith(".json"):
            return Path(key).expanduser()
        return self.directory / (quote(key, safe="-_.") + ".json")

    def getItem(self, key: str) -> str | None:
        try:
            return self.path(key).read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
            return None

    def setItem(self, key: str, value: str) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(value)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def removeItem(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(key).unlink()
