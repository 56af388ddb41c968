"""The browser timers of every client (pyrt.browser.timers) in real Chromium + Pyodide: they fire,
cancel and release their two proxies; armed from a message task, a chain of them is not a nested
timer chain (the kind hidden pages throttle to one wake-up a minute)."""

from __future__ import annotations

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
await asyncio.sleep(0)  # let the message task arm what it can
timers.dispose()
timers.dispose()  # twice is harmless
marker = []
loop.call_later(0.2, marker.append, True)  # well after every delay above
await until(lambda: marker)
[own, fired, timers.call_later(0, lambda: fired.append("after")).cancelled, proxies.live_count() - before]
"""
    )
    assert got == [2, ["soon", "later"], False, 0]


NESTED_CHAIN = """links => new Promise(done => {
  let n = 0; const started = performance.now();
  const step = () => { if (++n < links) setTimeout(step, 0); else done(performance.now() - started); };
  setTimeout(step, 0); })"""


def test_a_chain_of_timers_is_not_a_nested_timer_chain(py: PyodidePage) -> None:
    """A client's timer re-arms from its own callback. Set from a timer callback, a ``setTimeout``
    nests one level deeper each time, and browsers treat deep chains specially: from level 5 a
    zero delay is clamped to 4 ms, and a page hidden for minutes runs them once a minute (Chrome's
    intensive throttling, which headless Chromium cannot be made to show: it has no hidden pages).
    The clamp shows the nesting: the figures compare a chain of zero-delay timers through
    BrowserTimers with the same chain of plain nested ``setTimeout`` calls. Only the order and
    count are asserted (times depend on the machine)."""
    links = 200
    nested_ms = py.page.evaluate(NESTED_CHAIN, links)
    got = py.run(
        SETUP
        + f"""
timers = BrowserTimers()
seen = []
def step():
    seen.append(len(seen))
    if len(seen) < {links}:
        timers.call_later(0, step)
started = js.performance.now()
timers.call_later(0, step)
await until(lambda: len(seen) == {links})
flat_ms = js.performance.now() - started
timers.dispose()
[seen == list(range({links})), flat_ms]
"""
    )
    emit(
        "timers-chain",
        links=links,
        ms_per_link={"nested_setTimeout": nested_ms / links, "browser_timers": got[1] / links},
    )
    assert got[0] is True
