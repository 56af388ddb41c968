"""History on demand: one page of a channel's retained publications, as the client sees it.

``await client.history(channel, limit=50, since=None, reverse=False)`` returns a
:class:`HistoryPage`. Forward pages (the default) hold the publications after ``since`` (from the
oldest retained when ``since`` is ``None``), oldest first; ``reverse=True`` pages hold those before
``since`` (from the newest), newest first. Page on with ``since=page.next_since`` in the same
direction until ``page.more`` is false::

    page = await client.history("chat", limit=50, reverse=True)        # the 50 newest
    while page.more:
        page = await client.history("chat", limit=50, reverse=True, since=page.next_since)

What a server keeps is bounded (with ``serve.py``: ``--retention`` publications per channel, for
``--history-ttl`` seconds; see docs/protocol.md): older publications are gone. A forward page
from a ``since`` that is no longer retained starts at the oldest retained publication and says
``recovered=False``; a reverse page simply ends where retention ends (``more`` is false).

:func:`check_query` validates the arguments before anything is sent; :func:`read_page` reads the
server's answer (:class:`ValueError` for one that is not a page).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pyrt.wire.frames import Publication
from pyrt.wire.names import CHANNEL_RULE, is_channel_name
from pyrt.wire.offsets import offset_key

__all__ = ["HistoryPage", "check_query", "read_page"]


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of history (see the module docstring). Iterating yields its publications."""

    channel: str
    publications: tuple[Publication, ...]
    offset: str  # the channel's latest offset when the page was read ("0": nothing retained)
    recovered: bool  # False: publications right after a forward ``since`` are no longer retained
    more: bool  # retained publications follow this page in its direction
    reverse: bool = False

    @property
    def next_since(self) -> str | None:
        """The ``since`` of the next page in the same direction (``None`` for an empty page)."""
        return self.publications[-1].offset if self.publications else None

    def __iter__(self) -> Iterator[Publication]:
        return iter(self.publications)

    def __len__(self) -> int:
        return len(self.publications)


def check_query(channel: object, limit: object, since: object, reverse: object) -> None:
    """Raise :class:`ValueError` / :class:`TypeError` naming what is wrong with a history query."""
    if not is_channel_name(channel):
        raise ValueError(f"{CHANNEL_RULE}, got {channel!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise TypeError(f"limit must be an int, got {type(limit).__name__}")
    if isinstance(limit, int) and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if since is not None and (not isinstance(since, str) or offset_key(since) is None):
        raise ValueError(f"since must be an offset such as '12-3' or '0', got {since!r}")
    if not isinstance(reverse, bool):
        raise TypeError(f"reverse must be a bool, got {type(reverse).__name__}")


def read_page(channel: str, data: Any, *, reverse: bool = False) -> HistoryPage:
    """The page in a server's answer (the ``data`` of its ack)."""
    if not isinstance(data, dict) or not isinstance(data.get("publications"), list):
        raise ValueError("the answer to a history request holds no publications")
    publications = []
    for item in data["publications"]:
        if not isinstance(item, dict) or not isinstance(item.get("offset"), str):
            raise ValueError("a publication in a history page has no offset")
        event = item.get("event")
        publications.append(
            Publication(
                channel=channel,
                data=item.get("data"),
                offset=item["offset"],
                event=event if isinstance(event, str) else "message",
            )
        )
    offset = data.get("offset")
    return HistoryPage(
        channel=channel,
        publications=tuple(publications),
        offset=offset if isinstance(offset, str) else "0",
        recovered=data.get("recovered") is not False,
        more=data.get("more") is True,
        reverse=reverse,
    )
