"""The browser timers of every client (pyrt.browser.timers) in real Chromium + Pyodide: they fire,
cancel and release their two proxies; armed from a message task, a chain of them is not a nested
timer chain (the kind hidden pages throttle to one wake-up a minute)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pyrt.pytest_plugin.pyodide_page import PyodidePage
from tests.faults.scenario import emit

SETUP = """
import asyncio, js
from pyrt.browser import proxies
from pyrt.browser.timers import BrowserTimers

loop = asyncio.get_running_loop()

from pyrt.testing import until
"""


def test_timers_fire_by_delay_cancel_and_dispose_leaving_no_proxy_and_no_late_call(py: PyodidePage) -> None:
    got = py.run(
        SETUP
        + """
before = proxies.live_count()
timers = BrowserTimers()
own = proxies.live_count() - before
fired = []
timers.call_later(0.05, lambda: fired.append("later"))
timers.call_later(0.0, lambda: fired.append("soon"))
timers.call_later(0.01, lambda: fired.append("cancelled")).cancel()
armed = timers.call_later(5.0, lambda: fired.append("cancelled once armed"))
await until(lambda: "soon" in fired)  # by now one message task armed every timer above
armed.cancel()
await until(lambda: len(fired) == 2)
timers.call_later(0.0, lambda: fired.append("not yet armed at dispose"))
timers.call_later(0.03, lambda: fired.append("armed at dispose"))
await asyncio.sleep(0)  # the message task arms both; the 0 ms one may come due before we resume,
timers.dispose()        # but its call waits behind this task in the loop (asyncio's order), in every engine
timers.dispose()  # twice is harmless
marker = []
loop.call_later(0.2, marker.append, True)  # well after every delay above
await until(lambda: marker)
[own, fired, timers.call_later(0, lambda: fired.append("after")).cancelled, proxies.live_count() - before]
"""
    )
    assert got == [2, ["soon", "later"], False, 0]


# A chain of zero-delay timers, each set from the previous one's callback: nested. It stops after
# ``links`` links or ``budgetMs`` (a hidden page may run it once a second); [links run, ms].
NESTED_CHAIN = """([links, budgetMs]) => new Promise(done => {
  let n = 0; const started = performance.now();
  const step = () => {
    const spent = performance.now() - started;
    if (++n < links && spent < budgetMs) setTimeout(step, 0); else done([n, spent]);
  };
  setTimeout(step, 0); })"""

FLAT_CHAIN = """
timers = BrowserTimers()
seen = []
def step():
    seen.append(len(seen))
    if len(seen) < LINKS:
        timers.call_later(0, step)
started = js.performance.now()
timers.call_later(0, step)
await until(lambda: len(seen) == LINKS)
flat_ms = js.performance.now() - started
timers.dispose()
[seen == list(range(LINKS)), flat_ms, js.document.hidden]
"""


def test_a_chain_of_timers_is_not_a_nested_timer_chain(py: PyodidePage) -> None:
    """A client's timer re-arms from its own callback. Set from a timer callback, a ``setTimeout``
    nests one level deeper each time, and browsers treat deep chains specially: from level 5 a
    zero delay is clamped to 4 ms, and a page hidden for minutes runs them once a minute (Chrome's
    intensive throttling, which headless Chromium cannot be made to show: it has no hidden pages;
    see the hidden-page test below). The clamp shows the nesting: the figures compare a chain of
    zero-delay timers through BrowserTimers with the same chain of plain nested ``setTimeout``
    calls. Only the order and count are asserted (times depend on the machine)."""
    links = 200
    nested_links, nested_ms = py.evaluate(NESTED_CHAIN, [links, 2000])
    got = py.run(SETUP + FLAT_CHAIN.replace("LINKS", str(links)))
    emit(
        "timers-chain",
        links=links,
        ms_per_link={"nested_setTimeout": nested_ms / nested_links, "browser_timers": got[1] / links},
    )
    assert got[0] is True


@pytest.mark.pyrt_engines("webkit")  # the one engine here whose background tabs are hidden pages
def test_in_a_hidden_page_the_chain_keeps_its_pace_where_nested_timers_crawl(
    pyrt_new_page: Callable[..., PyodidePage],
) -> None:
    """In a hidden page (a background tab) WebKit runs nested timers about once a second; the
    chain of BrowserTimers, armed from message tasks, is not nested and keeps running at once."""
    page = pyrt_new_page(hidden=True)
    links = 100
    nested_links, nested_ms = page.evaluate(NESTED_CHAIN, [links, 3000])
    in_order, flat_ms, hidden = page.run(SETUP + FLAT_CHAIN.replace("LINKS", str(links)))
    nested_per_link, flat_per_link = nested_ms / nested_links, flat_ms / links
    per_link = {"nested_setTimeout": nested_per_link, "browser_timers": flat_per_link}
    emit("timers-hidden-page", ms_per_link=per_link)
    assert hidden is True
    assert in_order is True
    assert nested_per_link > 50  # the page is throttled: nested timers crawl ...
    assert flat_per_link < nested_per_link / 10  # ... and the chain does not
