"""The browser's runtime services (pyrt.browser.services) in real Chromium + Pyodide: the runtime
picks them; each watcher of the page owns its proxies until it stops; the default store, the
timers and the share channel are the browser's own."""

from __future__ import annotations

from pyrt.pytest_plugin.pyodide_page import PyodidePage


def test_the_browsers_services_hand_each_client_its_own_objects_and_take_their_proxies_back(
    py: PyodidePage,
) -> None:
    got = py.run(
        """
import asyncio, js
from pyrt.aio import runtime
from pyrt.browser import proxies
from pyrt.browser.services import BrowserServices
from pyrt.browser.share_channel import BrowserShareChannel
from pyrt.browser.timers import BrowserTimers

class Page:
    def __init__(self):
        self.heard = []
    def __getattr__(self, name):
        return lambda: self.heard.append(name)

services = runtime.services()
before = proxies.live_count()
first, second = Page(), Page()
watching = [services.watch_page(first), services.watch_page(second)]
during = proxies.live_count() - before
js.dispatchEvent(js.Event.new("online"))
watching[0].stop()
watching[0].stop()
js.dispatchEvent(js.Event.new("online"))
watching[1].stop()
timers = services.timers(asyncio.get_running_loop())
channel = services.share_channel("services-test")
timers.dispose()
channel.dispose()
[type(services) is BrowserServices, during, first.heard, second.heard, proxies.live_count() - before,
 services.record_store().kind, type(timers) is BrowserTimers, type(channel) is BrowserShareChannel]
"""
    )
    assert got == [True, 8, ["page_online"], ["page_online", "page_online"], 0, "localStorage", True, True]
