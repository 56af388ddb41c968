"""The demo page (web/index.html + web/demo.py), used the way a person would: real Chromium,
real PyScript and Pyodide, real ``serve.py --demo``.

Two pages boot once for the whole module (``alice`` and ``bob``) and chat with each other;
the tests run in order on them.
"""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, expect

from pyrt.pytest_plugin.app_page import AppPage
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.settings import Settings
from tests.browser.demo_chat import block_websockets_then_lift
from tests.faults.scenario import emit

pytestmark = pytest.mark.pyrt_engines("chromium")  # Playwright locators; test_engines_demo.py: all

SHOTS = Path(__file__).resolve().parents[2] / "test-results"
BOOT_TIMEOUT = 90.0  # seconds: two pages boot Pyodide at once on a busy 2-core machine
WAIT = 20_000  # ms: generous deadline for anything that happens over the network
PRESENCE_GRACE = Settings().presence_grace  # seconds a member of a lost connection stays
NEWEST_IN_VIEW = """id => {
    const list = document.getElementById(id), last = list.lastElementChild;
    if (!last || list.clientHeight === 0) return false;
    const box = list.getBoundingClientRect(), item = last.getBoundingClientRect();
    return item.top >= box.top - 1 && item.bottom <= box.bottom + 1;
}"""
SEEN_MINOR_ABOVE = """m => [...document.querySelectorAll('#sse-events li[data-id]')]
    .some(li => Number(li.dataset.id.split('-')[1]) > m)"""


class DemoPage(AppPage):
    """The demo in its own guarded browser context (requests that leave localhost are blocked and
    recorded, the console and uncaught errors too)."""

    def __init__(self, browser: Browser, base_url: str) -> None:
        super().__init__(
            browser,
            base_url + "/",
            context_args={"viewport": {"width": 1280, "height": 860}},
            wait_until="domcontentloaded",
        )
        # Python is not running yet: the loading indicator must be what the user sees.
        self.loading_seen = (
            self.page.locator("#boot").is_visible() and not self.page.locator("#app").is_visible()
        )

    @property
    def console_errors(self) -> list[str]:
        return [line.removeprefix("[error] ") for line in self.console if line.startswith("[error] ")]

    def wait_ready(self, deadline: float) -> None:
        ready = self.page.locator("body[data-ready]")
        while not ready.count():
            if self.page_errors or self.console_errors:
                pytest.fail(f"the demo failed to start: {self.page_errors} {self.console_errors}")
            if time.monotonic() > deadline:
                pytest.fail(f"the demo was not ready within {BOOT_TIMEOUT} s")
            self.page.wait_for_timeout(100)

    def set_name(self, name: str) -> None:
        """Type a name and leave the field, as a person does (others then see it online)."""
        self.page.fill("#ws-name", name)
        self.page.press("#ws-name", "Tab")

    def online(self) -> list[str]:
        return self.page.locator("#ws-online li").all_text_contents()

    def say(self, text: str) -> None:
        """Type a message and press Enter."""
        self.page.fill("#ws-input", text)
        self.page.press("#ws-input", "Enter")

    def received(self, tag: str) -> list[str]:
        texts = self.page.locator("#ws-messages li.received .text").all_text_contents()
        return [text for text in texts if tag in text]

    def sent(self, tag: str) -> list[tuple[str, str | None]]:
        items = self.page.locator("#ws-messages li.sent")
        return [
            (item.locator(".text").text_content() or "", item.get_attribute("data-ack"))
            for item in items.all()
            if tag in (item.locator(".text").text_content() or "")
        ]

    def open_tab(self, name: str) -> None:
        self.page.click(f"#tab-{name}")
        expect(self.page.locator(f"#panel-{name}")).to_be_visible()

    def stat(self, name: str) -> Locator:
        """A figure of the WebSocket tab's "Connection" panel, by its key."""
        return self.page.locator(f'#ws-stats dd[data-stat="{name}"]')

    def newest_in_view(self, list_id: str) -> bool:
        """The list's last entry is wholly inside the list's visible box."""
        return bool(self.page.evaluate(NEWEST_IN_VIEW, list_id))

    def feed_count(self) -> int:
        return int(self.page.locator("#sse-events li[data-id]").count())

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def pages(pyrt_browser: Browser, pyrt_server: ServerProcess) -> Iterator[tuple[DemoPage, DemoPage]]:
    alice = DemoPage(pyrt_browser, pyrt_server.url)
    bob = DemoPage(pyrt_browser, pyrt_server.url)  # both boot at the same time
    deadline = time.monotonic() + BOOT_TIMEOUT
    try:
        alice.wait_ready(deadline)
        bob.wait_ready(deadline)
        for page, name in ((alice, "alice"), (bob, "bob")):
            page.set_name(name)
            expect(page.page.locator("#ws-status")).to_have_text("open", timeout=WAIT)
        yield alice, bob
    finally:
        alice.close()
        bob.close()


@pytest.fixture(scope="module")
def alice(pages: tuple[DemoPage, DemoPage]) -> DemoPage:
    return pages[0]


@pytest.fixture(scope="module")
def bob(pages: tuple[DemoPage, DemoPage]) -> DemoPage:
    return pages[1]


def tag() -> str:
    return uuid.uuid4().hex[:8]


def _processes() -> dict[int, tuple[int, int, bytes]]:
    """Every process: pid -> (parent, CPU ticks used, command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                command = (entry / "cmdline").read_bytes()
                found[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]), command)
            except OSError:
                continue  # gone meanwhile
    return found


def _our_renderers() -> dict[int, int]:
    """The Chromium renderer processes this test process started (through Playwright), with the
    CPU ticks each used so far. Never another process's: other suites may run on the machine."""
    processes = _processes()
    ours = {os.getpid()}
    grown = True
    while grown:
        grown = False
        for pid, (parent, _, _) in processes.items():
            if parent in ours and pid not in ours:
                ours.add(pid)
                grown = True
    return {pid: processes[pid][1] for pid in ours if b"--type=renderer" in processes[pid][2]}


def kill_renderer(demo: DemoPage) -> None:
    """SIGKILL the renderer process of ``demo``'s tab, as a crash or ``kill -9`` would. It is found
    by making that tab spin: the one of our renderers whose CPU time then runs."""
    before = _our_renderers()
    demo.page.evaluate("setTimeout(() => { for (;;) {} }, 0)")
    deadline = time.monotonic() + 20
    while True:
        used = {pid: ticks - before.get(pid, ticks) for pid, ticks in _our_renderers().items()}
        spinning = [pid for pid, ticks in used.items() if ticks >= os.sysconf("SC_CLK_TCK") // 2]
        if len(spinning) == 1:
            os.kill(spinning[0], signal.SIGKILL)
            return
        assert time.monotonic() < deadline, f"no single spinning renderer: {used}"
        time.sleep(0.1)  # polling the process table until one renderer has spun half a second


def event_ids(page: DemoPage) -> list[tuple[int, int]]:
    """The feed's event ids as rendered, as (major, minor) pairs."""
    ids = page.page.locator("#sse-events li[data-id]").evaluate_all("items => items.map(i => i.dataset.id)")
    return [(int(a), int(b)) for a, b in (i.split("-") for i in ids)]


def assert_no_gap(ids: list[tuple[int, int]]) -> None:
    """The memory broker numbers a channel's publications one by one: no gap, no repeat."""
    assert ids, "no events"
    majors = {major for major, _ in ids}
    assert len(majors) == 1, ids
    minors = [minor for _, minor in ids]
    assert minors == list(range(minors[0], minors[0] + len(minors))), minors


# --------------------------------------------------------------------------------------- tests


def test_the_page_shows_loading_then_ready_with_its_boot_time(alice: DemoPage, bob: DemoPage) -> None:
    assert alice.loading_seen
    assert bob.loading_seen
    page = alice.page
    expect(page.locator("#boot")).to_be_hidden()
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#boot-time")).to_have_text(re.compile(r"^Python ready in \d+\.\d s$"))
    # a server started with --demo: the break controls are offered
    expect(page.locator("#ws-break")).to_be_visible()
    for demo in (alice, bob):
        assert demo.page_errors == []
        assert demo.console_errors == []
        assert demo.blocked_requests == []
        # Nothing said yet: nothing queued, though the page asked for the history and joined
        # the chat's presence before its connection was open (pyrt's requests, not messages).
        expect(demo.stat("queued")).to_have_text("0")
        expect(demo.stat("shared")).to_have_text("1 tab · this tab holds it")


def test_two_pages_chat_and_acks_show(alice: DemoPage, bob: DemoPage) -> None:
    t = tag()
    alice.say(f"hello bob {t}")
    expect(bob.page.locator("#ws-messages li.received", has_text=t)).to_have_count(1, timeout=WAIT)
    mine = alice.page.locator("#ws-messages li.sent", has_text=t)
    expect(mine).to_have_attribute("data-ack", "acked", timeout=WAIT)
    expect(mine.locator(".meta")).to_have_text(re.compile(r"acked in \d+ ms"))
    expect(bob.page.locator("#ws-messages li.received", has_text=t).locator(".who")).to_have_text("alice")

    bob.say(f"hi alice {t}")
    expect(alice.page.locator("#ws-messages li.received", has_text=f"hi alice {t}")).to_have_count(
        1, timeout=WAIT
    )
    assert alice.received(t) == [f"hi alice {t}"]
    assert bob.received(t) == [f"hello bob {t}"]


def test_who_is_online_shows_both_pages(alice: DemoPage, bob: DemoPage) -> None:
    for me, other in ((alice, "bob"), (bob, "alice")):
        online = me.page.locator("#ws-online li")
        expect(online.filter(has_text=other)).to_have_count(1, timeout=WAIT)
        mine = online.filter(has_text="(you)")
        expect(mine).to_have_count(1)
        expect(mine).to_have_class("me")
    assert "alice (you)" in alice.online()
    assert "bob (you)" in bob.online()


def test_earlier_messages_come_from_history_and_pages_that_go_leave_the_list(
    alice: DemoPage, pyrt_browser: Browser, pyrt_server: ServerProcess
) -> None:
    t = tag()
    texts = [f"history {n:02} {t}" for n in range(25)]
    for text in texts:
        alice.say(text)
    expect(alice.page.locator("#ws-messages li.sent[data-ack=acked]", has_text=t)).to_have_count(
        25, timeout=WAIT
    )
    carol = DemoPage(pyrt_browser, pyrt_server.url)
    dave = DemoPage(pyrt_browser, pyrt_server.url)
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT
        for page, name in ((carol, "carol"), (dave, "dave")):
            page.wait_ready(deadline)
            page.set_name(name)
        # a new page shows the newest messages from the history, and loads earlier ones on demand
        shown = carol.page.locator("#ws-messages li.history", has_text=t)
        expect(shown).to_have_count(20, timeout=WAIT)
        assert [text for text in carol.received(t)] == texts[5:]
        expect(carol.page.locator("#ws-earlier")).to_be_visible()
        carol.page.click("#ws-earlier")
        expect(shown).to_have_count(25, timeout=WAIT)
        assert carol.received(t) == texts  # in order: the earlier ones went above
        # the reader is shown what was loaded (the list scrolled to its top), with sending times
        assert carol.page.eval_on_selector("#ws-messages", "list => list.scrollTop") == 0
        expect(shown.first.locator(".at")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))
        online = alice.page.locator("#ws-online li")
        for name in ("carol", "dave"):
            expect(online.filter(has_text=name)).to_have_count(1, timeout=WAIT)

        carol.page.close()  # the window is closed: the page says goodbye
        expect(online.filter(has_text="carol")).to_have_count(0, timeout=WAIT)

        # kill -9 of the tab's process: its page says nothing. Chromium's browser process holds
        # the socket and closes it for the dead tab (dave leaves at once, measured ~0.1 s); had
        # the whole browser died, the grace would apply (tests/server/test_presence.py kills a
        # client process). Either way, within the grace.
        kill_renderer(dave)
        started = time.monotonic()
        expect(online.filter(has_text="dave")).to_have_count(0, timeout=WAIT)
        gone_after = time.monotonic() - started
        emit("demo.presence_kill9_tab", gone_after_s=gone_after, grace_s=PRESENCE_GRACE)
        assert gone_after <= PRESENCE_GRACE + 10  # the grace, plus a busy machine's margin
        expect(online.filter(has_text="bob")).to_have_count(1)
    finally:
        carol.close()
        dave.close()


def test_the_members_of_a_server_that_dies_leave_the_list(
    pyrt_browser: Browser, pyrt_start_server: Callable[..., ServerProcess]
) -> None:
    # Two instances on one Redis; --presence-ttl is scaled down from 30 s so that its bound
    # (members of a dead instance leave within 4/3 of it) passes within the test.
    ttl = 3.0
    survivor = pyrt_start_server("--presence-ttl", str(ttl), redis=True)
    doomed = pyrt_start_server("--presence-ttl", str(ttl), redis=True)
    erin, frank = DemoPage(pyrt_browser, survivor.url), DemoPage(pyrt_browser, doomed.url)
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT
        for page, name in ((erin, "erin"), (frank, "frank")):
            page.wait_ready(deadline)
            page.set_name(name)
        online = erin.page.locator("#ws-online li")
        expect(online.filter(has_text="frank")).to_have_count(1, timeout=WAIT)  # across instances
        doomed.kill()  # SIGKILL: nothing is said to anyone
        started = time.monotonic()
        expect(online.filter(has_text="frank")).to_have_count(0, timeout=WAIT)
        gone_after = time.monotonic() - started
        emit("demo.presence_kill9_instance", gone_after_s=gone_after, bound_s=ttl * 4 / 3)
        assert gone_after <= ttl * 4 / 3 + 10  # the bound, plus a busy machine's margin
        expect(online.filter(has_text="erin (you)")).to_have_count(1)
    finally:
        erin.close()
        frank.close()


def test_breaking_the_connection_counts_down_recovers_and_delivers_once_in_order(
    alice: DemoPage, bob: DemoPage
) -> None:
    status = alice.page.locator("#ws-status")
    reconnects = alice.page.locator('#ws-stats dd[data-stat="reconnects"]')
    before = int(reconnects.text_content() or 0)
    alice.page.click("#ws-break")
    expect(status).to_have_text(re.compile(r"^reconnecting in \d+\.\d s, attempt 1$"), timeout=WAIT)
    # A tab that shares its connection with no other says what an unshared client would.
    lost = alice.page.locator("#ws-messages li.system", has_text="Connection lost").last
    expect(lost).to_have_text(
        re.compile(r"^Connection lost \(closed with code 1006\); retry 1 in \d+\.\d s$")
    )
    expect(alice.stat("shared")).to_have_text(
        re.compile(r"^this tab holds it · not connected \((reconnecting|connecting)\)$")
    )
    t = tag()
    texts = [f"while broken {n} {t}" for n in range(3)]
    for text in texts:
        alice.say(text)
    expect(status).to_have_text("open", timeout=WAIT)
    expect(bob.page.locator("#ws-messages li.received", has_text=t)).to_have_count(3, timeout=WAIT)
    expect(alice.page.locator("#ws-messages li.sent[data-ack=acked]", has_text=t)).to_have_count(
        3, timeout=WAIT
    )
    assert bob.received(t) == texts
    assert [text for text, _ in alice.sent(t)] == texts
    assert int(reconnects.text_content() or 0) == before + 1


def test_the_inspector_shows_why_the_connection_broke_and_each_ack_beside_its_send(
    alice: DemoPage, bob: DemoPage
) -> None:
    alice.page.click("#ws-inspector summary")
    view = alice.page.locator("#ws-inspector-view .pyrt-inspector")
    expect(view).to_be_visible(timeout=WAIT)
    status = alice.page.locator("#ws-status")
    alice.page.click("#ws-break")
    expect(status).to_have_text(re.compile(r"^reconnecting in"), timeout=WAIT)
    expect(status).to_have_text("open", timeout=WAIT)
    t = tag()
    alice.say(f"inspected {t}")
    expect(alice.page.locator("#ws-messages li.sent[data-ack=acked]", has_text=t)).to_have_count(
        1, timeout=WAIT
    )
    expect(view).to_contain_text("open → reconnecting", timeout=WAIT)
    expect(view).to_contain_text("closed with code 1006")
    expect(view).to_contain_text(re.compile(r"answers publish #\S+ chat "), timeout=WAIT)
    alice.page.click("#ws-inspector summary")  # closing the box closes the inspector
    expect(alice.page.locator("#ws-inspector-view *")).to_have_count(0, timeout=WAIT)


def test_blocking_websockets_moves_the_chat_to_http_and_lifting_the_block_moves_it_back(
    alice: DemoPage, bob: DemoPage
) -> None:
    """Driven with page JavaScript only: the same scenario runs in Firefox and WebKit
    (test_engines_demo.py)."""
    block_websockets_then_lift(alice, bob)


def test_offline_messages_wait_in_the_queue_and_go_out_once_in_order(alice: DemoPage, bob: DemoPage) -> None:
    page = alice.page
    queued_before = int(alice.stat("queued").text_content() or 0)
    page.check("#ws-offline")
    expect(page.locator("#ws-status")).to_have_text("offline (simulated)", timeout=WAIT)
    # This tab still holds the shared connection, and is not among the tabs connected to it.
    expect(alice.stat("shared")).to_have_text("this tab holds it · not connected (simulated offline)")
    t = tag()
    texts = [f"offline {n} {t}" for n in range(3)]
    for text in texts:
        alice.say(text)
    expect(page.locator("#ws-queue")).to_have_text("3 messages queued")
    expect(alice.stat("queue_length")).to_have_text("3")
    expect(alice.stat("queued")).to_have_text(str(queued_before + 3))
    assert [ack for _, ack in alice.sent(t)] == ["pending"] * 3
    assert bob.received(t) == []

    page.uncheck("#ws-offline")
    expect(page.locator("#ws-status")).to_have_text("open", timeout=WAIT)
    expect(page.locator("#ws-queue")).to_be_hidden()
    expect(alice.stat("shared")).to_have_text("1 tab · this tab holds it", timeout=WAIT)
    expect(bob.page.locator("#ws-messages li.received", has_text=t)).to_have_count(3, timeout=WAIT)
    sent = page.locator("#ws-messages li.sent", has_text=t)
    expect(sent.locator(".meta.acked")).to_have_count(3, timeout=WAIT)
    expect(sent.first.locator(".meta")).to_contain_text("sent from the queue")
    assert bob.received(t) == texts


def test_disconnect_then_connect_catches_up_on_what_was_said_meanwhile(
    alice: DemoPage, bob: DemoPage
) -> None:
    page = alice.page
    page.click("#ws-disconnect")
    expect(page.locator("#ws-status")).to_have_text("closed", timeout=WAIT)
    expect(page.locator("#ws-connect")).to_be_enabled()
    t = tag()
    bob.say(f"said while alice was away {t}")
    expect(bob.page.locator("#ws-messages li.sent[data-ack=acked]", has_text=t)).to_have_count(
        1, timeout=WAIT
    )
    assert alice.received(t) == []
    page.click("#ws-connect")
    expect(page.locator("#ws-status")).to_have_text("open", timeout=WAIT)
    expect(page.locator("#ws-messages li.received", has_text=t)).to_have_count(1, timeout=WAIT)


def test_an_html_payload_is_shown_as_text_and_runs_nothing(alice: DemoPage, bob: DemoPage) -> None:
    payload = "<img src=x onerror=\"document.body.dataset.xss='1'\"><script>document.title='pwned'</script>"
    t = tag()
    alice.say(f"{payload} {t}")
    received = bob.page.locator("#ws-messages li.received", has_text=t)
    expect(received).to_have_count(1, timeout=WAIT)
    assert received.locator(".text").text_content() == f"{payload} {t}"
    for demo in (alice, bob):
        assert demo.page.locator("#ws-messages img, #ws-messages script").count() == 0
        assert demo.page.evaluate("document.body.dataset.xss") is None
        assert demo.page.title() != "pwned"


def test_a_feed_opened_late_shows_its_newest_events_and_follows_them(bob: DemoPage) -> None:
    page = bob.page
    # The feed ran in its hidden tab since the page opened: more events than the list shows.
    page.wait_for_function(
        "() => document.querySelectorAll('#sse-events li[data-id]').length >= 15", timeout=WAIT
    )
    bob.open_tab("sse")
    assert bob.newest_in_view("sse-events"), "the newest event is below the fold: the feed looks frozen"
    seen = bob.feed_count()
    page.wait_for_function(
        "n => document.querySelectorAll('#sse-events li[data-id]').length >= n", arg=seen + 2
    )
    assert bob.newest_in_view("sse-events")  # and it keeps following
    # The reader scrolls up to read: new events do not pull the list away from them...
    page.locator("#sse-events").evaluate("list => list.scrollTo(0, 0)")
    expect(page.locator("#sse-events")).to_have_attribute("data-follow", "reader")  # the page saw it
    seen = bob.feed_count()
    page.wait_for_function(
        "n => document.querySelectorAll('#sse-events li[data-id]').length >= n", arg=seen + 2
    )
    assert page.locator("#sse-events").evaluate("list => list.scrollTop") == 0
    assert not bob.newest_in_view("sse-events")
    # ...until they scroll back down: then it follows again.
    page.locator("#sse-events").evaluate("list => list.scrollTo(0, list.scrollHeight)")
    expect(page.locator("#sse-events")).to_have_attribute("data-follow", "newest")
    seen = bob.feed_count()
    page.wait_for_function(
        "n => document.querySelectorAll('#sse-events li[data-id]').length >= n", arg=seen + 2
    )
    assert bob.newest_in_view("sse-events")
    bob.open_tab("ws")


def test_tabs_work_with_the_keyboard(bob: DemoPage) -> None:
    page = bob.page
    page.focus("#tab-ws")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#tab-sse")).to_be_focused()
    expect(page.locator("#tab-sse")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#panel-sse")).to_be_visible()
    expect(page.locator("#panel-ws")).to_be_hidden()
    page.keyboard.press("End")
    expect(page.locator("#panel-compare")).to_be_visible()
    page.keyboard.press("ArrowRight")  # wraps around
    expect(page.locator("#tab-ws")).to_be_focused()
    expect(page.locator("#panel-ws")).to_be_visible()
    expect(page.locator("#tab-compare")).to_have_attribute("tabindex", "-1")


def test_the_sse_feed_shows_named_events_and_resumes_without_a_gap(alice: DemoPage, bob: DemoPage) -> None:
    page = alice.page
    alice.open_tab("sse")
    expect(page.locator("#sse-status")).to_have_text("open", timeout=WAIT)
    for kind in ("tick", "update", "notification"):  # every kind, each rendered its own way
        expect(page.locator(f"#sse-events li.{kind}[data-kind={kind}]").first).to_be_visible(timeout=WAIT)
    expect(page.locator("#sse-events li.update progress").first).to_be_attached()
    assert_no_gap(event_ids(alice))

    for kind in ("eventsource", "fetch"):
        if kind == "fetch":  # switching client continues from the same event id
            page.select_option("#sse-kind", "fetch")
            expect(page.locator('#sse-stats dd[data-stat="client"]')).to_have_text("FetchEventSource")
        disconnects = page.locator('#sse-stats dd[data-stat="disconnects"]')
        expect(page.locator("#sse-status")).to_have_text("open", timeout=WAIT)
        before = len(event_ids(alice))
        page.click("#sse-break")
        expect(disconnects).to_have_text("1", timeout=WAIT)
        expect(page.locator("#sse-events li.system", has_text="Stream lost")).not_to_have_count(0)
        # the stream comes back by itself and events keep coming
        expect(page.locator("#sse-status")).to_have_text("open", timeout=WAIT)
        page.wait_for_function(
            "n => document.querySelectorAll('#sse-events li[data-id]').length >= n",
            arg=before + 3,
            timeout=WAIT,
        )
        assert_no_gap(event_ids(alice))
    # disconnect, wait, connect again: the stream resumes from the last id, nothing missed
    page.click("#sse-disconnect")
    expect(page.locator("#sse-status")).to_have_text("closed", timeout=WAIT)
    last = event_ids(alice)[-1]
    bob.page.wait_for_function(  # the feed moves on while alice is away: bob sees two more events
        SEEN_MINOR_ABOVE,
        arg=last[1] + 1,
        timeout=WAIT,
    )
    page.click("#sse-connect")
    expect(page.locator("#sse-status")).to_have_text("open", timeout=WAIT)
    page.wait_for_function(
        "n => document.querySelectorAll('#sse-events li[data-id]').length >= n",
        arg=len(event_ids(alice)) + 2,
        timeout=WAIT,
    )
    ids = event_ids(alice)
    assert (last[0], last[1] + 2) in ids  # published while disconnected, replayed on connect
    assert_no_gap(ids)
    expect(page.locator('#sse-stats dd[data-stat="last_id"]')).to_have_text(
        "-".join(map(str, event_ids(alice)[-1])), timeout=WAIT
    )


@pytest.mark.parametrize(("width", "height", "label"), [(1280, 860, "desktop"), (390, 844, "phone")])
def test_each_tab_looks_right_at_desktop_and_phone_width(
    alice: DemoPage, bob: DemoPage, width: int, height: int, label: str
) -> None:
    page = alice.page
    if label == "desktop":  # a reply, so the chat shows both sides
        bob.say("All three arrived, in order, once each. Nice.")
        expect(page.locator("#ws-messages li.received", has_text="in order, once each")).to_have_count(
            1, timeout=WAIT
        )
    page.set_viewport_size({"width": width, "height": height})
    SHOTS.mkdir(exist_ok=True)
    for name in ("ws", "sse", "compare"):
        alice.open_tab(name)
        page.locator(f"#panel-{name} .messages").evaluate_all(
            "lists => lists.forEach(l => l.scrollTop = l.scrollHeight)"
        )
        # nothing sticks out sideways: no horizontal scrolling on a phone
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} tab is {overflow}px wider than a {width}px screen"
        page.screenshot(path=str(SHOTS / f"demo-{name}-{label}.png"), full_page=True)
    alice.open_tab("ws")
    page.set_viewport_size({"width": 1280, "height": 860})


def test_without_demo_mode_the_break_controls_are_hidden(
    pyrt_browser: Browser, pyrt_start_server: Callable[..., ServerProcess]
) -> None:
    plain = DemoPage(pyrt_browser, pyrt_start_server("--no-demo").url)
    try:
        plain.wait_ready(time.monotonic() + BOOT_TIMEOUT)
        expect(plain.page.locator("body")).to_have_attribute("data-demo", "off", timeout=WAIT)
        expect(plain.page.locator("#ws-break")).to_be_hidden()
        expect(plain.page.locator("#sse-break")).to_be_hidden()
        expect(plain.page.locator("#ws-offline")).to_be_visible()  # needs no server help
        expect(plain.page.locator("#ws-status")).to_have_text("open", timeout=WAIT)
        assert plain.page_errors == []
        assert plain.blocked_requests == []
        assert plain.console_errors == []
    finally:
        plain.close()


def test_a_second_tab_uses_the_first_tabs_connection(alice: DemoPage, pyrt_server: ServerProcess) -> None:
    shared = alice.stat("shared")
    expect(shared).to_have_text("1 tab · this tab holds it", timeout=WAIT)
    second = alice.context.new_page()  # a tab of the same browser
    second.goto(pyrt_server.url + "/")
    expect(second.locator("body[data-ready]")).to_have_count(1, timeout=BOOT_TIMEOUT * 1000)
    expect(second.locator("#ws-status")).to_have_text("open", timeout=WAIT)
    expect(second.locator('#ws-stats dd[data-stat="shared"]')).to_have_text(
        "2 tabs · another tab holds it", timeout=WAIT
    )
    expect(shared).to_have_text("2 tabs · this tab holds it", timeout=WAIT)
    for page in (alice.page, second):
        cut = page.evaluate(
            """() => [...document.querySelectorAll('#ws-stats dd:not([data-stat="session"])')]
                 .filter(e => e.scrollWidth > e.clientWidth).map(e => [e.dataset.stat, e.textContent])"""
        )
        assert cut == []  # no figure is cut off with an ellipsis (only the session id may be)
    expect(alice.page.locator("#ws-share-hint")).to_contain_text("Open this page in another tab")
    sessions = [
        page.locator('#ws-stats dd[data-stat="session"]').text_content() for page in (alice.page, second)
    ]
    assert sessions[0] == sessions[1]  # one connection
    t = tag()
    second.fill("#ws-input", f"from the second tab {t}")
    second.press("#ws-input", "Enter")
    mine = second.locator("#ws-messages li.sent", has_text=t)
    expect(mine).to_have_attribute("data-ack", "acked", timeout=WAIT)
    expect(alice.page.locator("#ws-messages li.received", has_text=t)).to_have_count(1, timeout=WAIT)
    second.close()
    expect(shared).to_have_text("1 tab · this tab holds it", timeout=WAIT)


def test_nothing_went_wrong_in_either_page(alice: DemoPage, bob: DemoPage) -> None:
    # Chromium logs each SSE response the server cut short on purpose ("Break the connection"
    # resets the TCP connection; a response cut between chunks reads as incomplete).
    # So does each WebSocket the server refused while "Block WebSockets" was on, and pyrt's log
    # says it moves to HTTP (a warning: Pyodide writes stderr as console errors).
    broken_on_purpose = (
        "net::ERR_INCOMPLETE_CHUNKED_ENCODING",
        "net::ERR_CONNECTION_RESET",
        "Unexpected response code: 403",
        "pyrt websocket: WebSocket did not come up (closed with code 1006): trying HTTP",
    )
    for demo in (alice, bob):
        assert demo.page_errors == []
        unexpected = [e for e in demo.console_errors if not any(b in e for b in broken_on_purpose)]
        assert unexpected == []
        assert demo.blocked_requests == []
