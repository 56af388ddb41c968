"""History on demand: one query grammar and one answer, for the ``history`` frame and
``GET /history``.

A query names a ``channel``, optionally ``since`` (an offset), ``limit`` (publications, default
:data:`DEFAULT_LIMIT`, at most ``Settings.history_page_limit``: more is clamped) and ``reverse``.
Forward pages hold the publications after ``since`` (from the oldest retained when it is absent),
oldest first; reverse pages those before it (from the newest), newest first. The answer::

    {"publications": [{"offset": O, "event": E, "data": D}, ...],
     "offset": LATEST, "recovered": B, "more": B}

``offset`` is the channel's latest offset when the page was read, ``recovered`` is ``false`` when
publications right after a forward ``since`` are no longer retained (the page then starts at the
oldest retained one), ``more`` says whether retained publications follow in that direction.
Reading needs the right to subscribe to the channel; every read counts against the client
identity's query rate (``Settings.query_rate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from pyrt.server.brokers.base import Broker, Page
from pyrt.server.offsets import OffsetKey, parse_offset
from pyrt.wire.codec import encode_history_page
from pyrt.wire.frames import HistoryPage, Publication, RawJSON
from pyrt.wire.names import CHANNEL_RULE, is_channel_name

__all__ = [
    "DEFAULT_LIMIT",
    "BadQuery",
    "HistoryQuery",
    "encode_page",
    "history_page",
    "parse_query",
    "read_page",
]

DEFAULT_LIMIT: Final = 100


class BadQuery(ValueError):
    """A history query that cannot be answered; the message says which field is wrong."""


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    channel: str
    since: OffsetKey | None
    limit: int
    reverse: bool


def parse_query(channel: Any, since: Any, limit: Any, reverse: Any, *, max_limit: int) -> HistoryQuery:
    """Check the fields of a query (JSON values; ``None`` for absent ones)."""
    if not is_channel_name(channel):
        raise BadQuery(CHANNEL_RULE)
    try:
        since_key = None if since is None else parse_offset(since)
    except ValueError as exc:
        raise BadQuery(str(exc)) from None
    if limit is None:
        limit = DEFAULT_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise BadQuery(f"limit must be a whole number from 1, got {str(limit)[:20]!r}")
    if reverse is None:
        reverse = False
    if not isinstance(reverse, bool):
        raise BadQuery("reverse must be true or false")
    return HistoryQuery(channel, since_key, min(limit, max_limit), reverse)


async def read_page(broker: Broker, query: HistoryQuery, max_bytes: int) -> Page:
    """The page ``query`` asks for (:class:`~pyrt.server.brokers.base.BrokerError` when the
    broker is down)."""
    return await broker.page(
        query.channel, query.since, limit=query.limit, reverse=query.reverse, max_bytes=max_bytes
    )


def history_page(page: Page) -> HistoryPage:
    """A broker's page as the wire carries it: each publication's data as stored (JSON text)."""
    publications = [
        Publication(p.channel, RawJSON(p.data_json), p.offset, p.event) for p in page.publications
    ]
    return HistoryPage(publications, page.latest, page.recovered, page.more)


def encode_page(page: Page) -> str:
    """The answer's JSON text; each publication's data goes in as stored, never parsed again."""
    return encode_history_page(history_page(page))
