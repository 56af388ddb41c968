"""History pages on demand, checked the same way on every broker (memory and Redis)."""

from __future__ import annotations

from pyrt.server.brokers.base import Broker, Page
from pyrt.server.offsets import ZERO, parse_offset

__all__ = ["check_pages"]

BIG = 1 << 20


def data(page: Page) -> list[str]:
    return [p.data_json for p in page.publications]


async def check_pages(broker: Broker, channel: str, unknown: str) -> None:
    """Five publications into ``channel`` (nothing trimmed), then every way of paging them;
    ``unknown`` is a channel nothing was published into."""
    offsets = [(await broker.publish(channel, "message", f'"p{n}"'))[0] for n in range(1, 6)]
    keys = [parse_offset(o) for o in offsets]
    first = await broker.page(channel, None, limit=100, max_bytes=BIG)
    assert data(first) == ['"p1"', '"p2"', '"p3"', '"p4"', '"p5"']
    assert (first.latest, first.recovered, first.more) == (offsets[-1], True, False)
    assert [p.offset for p in first.publications] == offsets

    # forward in pages of two: since = the last offset of the page before
    pages, since = [], None
    while True:
        page = await broker.page(channel, since, limit=2, max_bytes=BIG)
        pages.append((data(page), page.more))
        if not page.more:
            break
        since = page.publications[-1].key
    assert pages == [(['"p1"', '"p2"'], True), (['"p3"', '"p4"'], True), (['"p5"'], False)]
    caught_up = await broker.page(channel, keys[-1], limit=2, max_bytes=BIG)
    assert (data(caught_up), caught_up.recovered, caught_up.more) == ([], True, False)
    assert data(await broker.page(channel, ZERO, limit=100, max_bytes=BIG)) == data(first)

    # backward: newest first, since = the last (oldest) offset of the page before
    newest = await broker.page(channel, None, limit=2, reverse=True, max_bytes=BIG)
    assert (data(newest), newest.more) == (['"p5"', '"p4"'], True)
    older = await broker.page(channel, keys[3], limit=2, reverse=True, max_bytes=BIG)
    assert (data(older), older.more) == (['"p3"', '"p2"'], True)
    oldest = await broker.page(channel, keys[1], limit=2, reverse=True, max_bytes=BIG)
    assert (data(oldest), oldest.more) == (['"p1"'], False)
    assert data(await broker.page(channel, keys[0], limit=2, reverse=True, max_bytes=BIG)) == []
    assert data(await broker.page(channel, ZERO, limit=2, reverse=True, max_bytes=BIG)) == []

    # about max_bytes of data per page, never less than one publication
    small = await broker.page(channel, None, limit=100, max_bytes=9)
    assert (data(small), small.more) == (['"p1"', '"p2"'], True)
    one = await broker.page(channel, None, limit=100, max_bytes=1)
    assert data(one) == ['"p1"']

    # a position that is not this channel's: from the oldest retained, recovered false
    foreign = await broker.page(channel, (keys[-1][0] + 1, 1), limit=100, max_bytes=BIG)
    assert (data(foreign), foreign.recovered) == (data(first), False)

    # a channel nothing was published into
    empty = await broker.page(unknown, None, limit=10, max_bytes=BIG)
    assert (empty.publications, empty.latest, empty.recovered, empty.more) == ([], "0", True, False)
    assert not (await broker.page(unknown, keys[0], limit=10, max_bytes=BIG)).recovered
