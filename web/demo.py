"""The pyrt live demo: a chat over WebSocketClient (who is online, earlier messages on demand) and a
live feed over the SSE clients.

Everything here uses pyrt's public API, plus ``pyscript`` for the page. Every piece of text that
came from the network is inserted with ``textContent``, never as HTML.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from typing import Any

from pyscript import document, fetch, when, window

from pyrt import (
    Backoff,
    EventSourceClient,
    FetchEventSource,
    Heartbeat,
    Publication,
    ServerSentEvent,
    State,
    TransportPolicy,
    WebSocketClient,
)
from pyrt.wire.frames import Member

CHAT_CHANNEL = "chat"
FEED_CHANNEL = "feed"
FEED_TYPES = ("tick", "update", "notification")
MAX_ITEMS = 300  # entries kept per list
HISTORY_PAGE = 20  # messages loaded at the start, and by each "Load earlier messages"

# One id for this page (the chat marks its own messages with it), and one for this browser: the
# SSE stream and the chat's connection carry it (?cid=...) so "Break the connection" and "Block
# WebSockets" can name them, and every tab uses the same URLs, so they share them (share=...).
CID = f"{random.getrandbits(48):012x}"
STREAM_CID = window.localStorage.getItem("pyrt-demo-cid") or CID
window.localStorage.setItem("pyrt-demo-cid", STREAM_CID)
# Every tab of this browser shares one WebSocket and one stream: one tab holds each.
SHARE = "pyrt-demo"
loop = asyncio.get_event_loop()
_tasks: set[asyncio.Task[Any]] = set()


# ----------------------------------------------------------------------------------------- DOM


def by_id(name: str) -> Any:
    return document.getElementById(name)


def make(tag: str, cls: str = "", text: str | None = None) -> Any:
    node = document.createElement(tag)
    if cls:
        node.className = cls
    if text is not None:
        node.textContent = text  # text only: never HTML
    return node


# Whether each message list follows its newest entry (by id): yes until the reader scrolls up,
# and again once they scroll back to the bottom. A list in a hidden tab cannot scroll, so its
# reader's choice is kept and applied when the tab is shown (see show_newest).
following: dict[str, bool] = {}


def near_bottom(lst: Any) -> bool:
    return bool(lst.scrollHeight - lst.scrollTop - lst.clientHeight < 60)


def append_item(lst: Any, item: Any) -> None:
    """Append to a message list, keep it bounded, keep the newest in view while it follows."""
    lst.appendChild(item)
    while lst.childElementCount > MAX_ITEMS:
        lst.removeChild(lst.firstElementChild)
    if following.get(lst.id, True):
        lst.scrollTop = lst.scrollHeight


def show_newest(panel: Any) -> None:
    """A tab was shown: its lists that follow their newest entry scroll to it (while hidden,
    they could not)."""
    for lst in panel.querySelectorAll(".messages"):
        if following.get(lst.id, True):
            lst.scrollTop = lst.scrollHeight


def system_line(lst: Any, text: str, kind: str = "") -> None:
    item = make("li", "system" + (f" {kind}" if kind else ""), text)
    append_item(lst, item)


def set_badge(badge: Any, state: str, text: str) -> None:
    badge.dataset.state = state
    badge.textContent = text


def member_name(member: Member) -> str:
    """The name a member of the chat's presence shows (text only, short)."""
    info = member.info
    return str(info.get("name", "?") if isinstance(info, dict) else "?")[:24]


def clock(at: float | None = None) -> str:
    """``at`` (unix seconds; now when ``None``) as the time of day."""
    return time.strftime("%H:%M:%S", time.localtime(at))


def sent_at(data: object) -> float | None:
    """When a chat message says it was sent (its ``at``), if it says so plausibly."""
    at = data.get("at") if isinstance(data, dict) else None
    return float(at) if isinstance(at, int | float) and not isinstance(at, bool) and 0 < at < 1e11 else None


def spawn(coro: Any) -> asyncio.Task[Any]:
    task = asyncio.ensure_future(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


class StatsPanel:
    """A <dl> of named figures, built once, updated by text."""

    def __init__(self, dl: Any, rows: list[tuple[str, str]]) -> None:
        self.cells: dict[str, Any] = {}
        for key, label in rows:
            dl.appendChild(make("dt", "", label))
            cell = make("dd", "", "\u2013")
            cell.dataset.stat = key
            dl.appendChild(cell)
            self.cells[key] = cell

    def show(self, values: dict[str, object]) -> None:
        for key, value in values.items():
            text = "\u2013" if value is None else str(value)
            cell = self.cells[key]
            if cell.textContent != text:
                cell.textContent = text
                cell.title = text  # the full text when it is cut short


async def post_json(url: str, body: dict[str, Any]) -> Any:
    response = await fetch(
        url, method="POST", headers={"Content-Type": "application/json"}, body=json.dumps(body)
    )
    return await response.json()


def ms(seconds: float | None) -> str | None:
    return None if seconds is None else f"{seconds * 1000:.0f} ms"


def sharing_line(sharing: Any, state: State, offline: bool = False) -> str:
    """How many tabs use the shared connection and which holds it ("3 tabs · this tab holds
    it"). While this tab is not connected it is not among them: then it says so instead."""
    if sharing is None:
        return "this tab only"
    if sharing.role == "joining":
        return "looking for the tab that holds it"
    holder = "this tab holds it" if sharing.role == "leader" else "another tab holds it"
    if state is not State.OPEN:
        why = "simulated offline" if offline and state is State.PAUSED else state.value
        return f"{holder} · not connected ({why})"
    return f"{sharing.tabs} tab{'s' if sharing.tabs != 1 else ''} · {holder}"


def transport_line(client: WebSocketClient, state: State) -> str:
    """What the connection runs over: "WebSocket", or "HTTP fallback" where WebSockets do not pass."""
    if state is not State.OPEN:
        return "—"
    return "HTTP fallback" if client.transport == "http" else "WebSocket"


# ----------------------------------------------------------------------------------------- chat


class Chat:
    """The WebSocket tab: a chat room on the server's ``chat`` channel."""

    def __init__(self) -> None:
        self.client: WebSocketClient | None = None
        self.offline = False
        self.last_offset: str | None = None  # resume point when a new client subscribes
        self.countdown: asyncio.Task[None] | None = None
        self.counter = 0
        self.ack_rtt: float | None = None  # seconds, of the last message sent straight away
        self.queued_total = 0  # messages of this tab that had to wait for the connection
        self.member_id: str | None = None  # this page's member in the chat's presence
        self.joined_as: str | None = None  # the name it joined with
        self.more_earlier = False  # the server retains messages older than those shown
        self.list = by_id("ws-messages")
        self.badge = by_id("ws-status")
        self.queue_note = by_id("ws-queue")
        self.online = by_id("ws-online")
        self.earlier = by_id("ws-earlier")
        self.name = by_id("ws-name")
        self.name.value = window.localStorage.getItem("pyrt-demo-name") or f"guest-{random.randint(100, 999)}"
        self.blocked = False  # WebSockets blocked for this browser (the server's demo control)
        self.stats = StatsPanel(
            by_id("ws-stats"),
            [
                ("state", "State"),
                ("transport", "Transport"),
                ("shared", "Shared by"),
                ("session", "Session"),
                ("reconnects", "Reconnects"),
                ("queue_length", "Queued now"),
                ("queued", "Queued (total)"),  # this tab's chat messages (not pyrt's requests)
                ("dropped", "Dropped"),
                ("acked", "Acked"),
                ("pending_acks", "Awaiting ack"),
                ("retried", "Re-sent"),
                ("refused", "Refused for now"),
                ("ack_rtt", "Last ack round trip"),
                ("rtt", "Heartbeat RTT"),
                ("srtt", "Smoothed RTT"),
            ],
        )

    # -- connection

    @property
    def active(self) -> bool:
        return self.client is not None and self.client.state is not State.CLOSED

    def connect(self) -> None:
        if self.active:
            return
        client = WebSocketClient(
            f"/ws?cid={STREAM_CID}",
            # A visible countdown: the first retry comes 1-2 s after a drop, then slower.
            backoff=Backoff(initial=2.0, maximum=20.0, jitter="equal"),
            # Over HTTP (WebSockets blocked), try WebSockets again after 5 s, then 10, at most 20:
            # the move back is visible soon after the block is lifted (the default starts at 10 s).
            transport_policy=TransportPolicy(probe_first=5.0, probe_max=20.0),
            heartbeat=Heartbeat(interval=5.0, timeout=5.0),
            ack_timeout=5.0,
            share=SHARE,
        )
        client.on_state(self.on_state)
        client.on_reconnecting(self.on_reconnecting)
        client.on_open(self.on_open)
        client.on_close(self.on_close)
        client.on_error(self.on_error)
        self.client = client
        panel.follow(client)
        client.connect()
        if self.last_offset is None:  # the first connection: the newest messages, then live
            spawn(self.load_recent(client))
        else:  # resume where the previous client stopped: what was said meanwhile is replayed
            self.follow(client, self.last_offset)
        spawn(self.join(client))
        if self.offline:
            client.pause()
        self.refresh()

    def follow(self, client: WebSocketClient, since: str | None) -> None:
        """Subscribe to the chat: its messages, and who is online."""
        shown = self.on_presence
        client.subscribe(CHAT_CHANNEL, self.on_publication, since=since, on_join=shown, on_leave=shown)

    async def load_recent(self, client: WebSocketClient) -> None:
        """The newest messages from the history, then live from exactly where they end (the page's
        offset): nothing said in between is missed, nothing shown twice."""
        try:
            page = await client.history(CHAT_CHANNEL, limit=HISTORY_PAGE, reverse=True)
        except Exception as exc:
            system_line(self.list, f"Could not load the history: {exc}", "error")
            self.follow(client, None)
            return
        if client is not self.client or client.state is State.CLOSED:
            return
        for publication in reversed(page.publications):
            self.show(publication, history=True)
        self.more_earlier = page.more
        self.follow(client, page.offset)
        self.refresh()

    async def load_earlier(self) -> None:
        """One more page of older messages, put above those shown."""
        client = self.client
        if client is None or client.state is State.CLOSED:
            return
        oldest = self.list.querySelector("li[data-offset]")
        since = oldest.dataset.offset if oldest is not None else None
        self.earlier.disabled = True
        try:
            page = await client.history(CHAT_CHANNEL, limit=HISTORY_PAGE, reverse=True, since=since)
        except Exception as exc:
            system_line(self.list, f"Could not load earlier messages: {exc}", "error")
            return
        finally:
            self.earlier.disabled = False
        for publication in page.publications:  # newest first: each goes on top of the one before
            self.list.insertBefore(self.render_item(publication, True), self.list.firstElementChild)
        self.more_earlier = page.more
        self.refresh()
        self.list.scrollTop = 0  # show what was loaded: the oldest at the top

    async def join(self, client: WebSocketClient) -> None:
        """Be in the chat's presence under this page's name (again whenever the name changes)."""
        name = self.joined_as = self.current_name()
        try:
            self.member_id = await client.join(CHAT_CHANNEL, {"name": name})
        except Exception as exc:
            if client is self.client and client.state is not State.CLOSED:
                system_line(self.list, f"Not shown as online: {exc}", "error")

    def rename(self) -> None:
        name = self.current_name()
        window.localStorage.setItem("pyrt-demo-name", name)
        if self.active and self.client is not None:
            spawn(self.join(self.client))

    def current_name(self) -> str:
        return self.name.value.strip()[:24] or "guest"

    def disconnect(self) -> None:
        if self.client is not None:
            self.client.close()

    def set_offline(self, offline: bool) -> None:
        """Simulate losing the network: the socket closes, sends wait in pyrt's queue, and the
        client reconnects (sending the queue in order) when the network is "back"."""
        self.offline = offline
        client = self.client
        if client is None or client.state is State.CLOSED:
            self.refresh()
            return
        if offline:
            self.stop_countdown()
            client.pause()
            system_line(self.list, "Offline (simulated): messages wait in the queue")
        else:
            client.resume()
            system_line(self.list, "Back online: reconnecting")
        self.refresh()

    async def break_connection(self) -> None:
        client = self.client
        session = client.session if client is not None and client.state is State.OPEN else None
        if session is None:
            system_line(self.list, "Not connected: nothing to break")
            return
        system_line(self.list, "Asking the server to drop this socket without a close frame…")
        result = await post_json("/demo/drop", {"session": session})
        if not (isinstance(result, dict) and result.get("dropped")):
            system_line(self.list, "The server found no connection to drop")

    async def block_websockets(self, block: bool) -> None:
        """Ask the server to refuse this browser's WebSockets (as some networks do) for two
        minutes, or to let them pass again: the client moves to HTTP, and later back."""
        seconds = 120 if block else 0
        result = await post_json("/demo/block", {"cid": STREAM_CID, "seconds": seconds})
        if not isinstance(result, dict) or "blocked" not in result:
            system_line(self.list, "The server did not take the block", "error")
            return
        self.blocked = block
        if block:
            system_line(self.list, "WebSockets blocked for this browser (2 minutes): watch the transport")
        else:
            system_line(self.list, "WebSockets pass again: the client tries them in the background")
        self.refresh()

    # -- client events

    def on_state(self, state: State) -> None:
        if state is not State.RECONNECTING:
            self.stop_countdown()
        self.refresh()

    def on_reconnecting(self, attempt: int, delay: float, reason: str) -> None:
        system_line(self.list, f"Connection lost ({reason}); retry {attempt} in {delay:.1f} s")
        self.stop_countdown()
        self.countdown = spawn(self.count_down(attempt, loop.time() + delay))

    def on_open(self) -> None:
        client = self.client
        over = " over HTTP" if client is not None and client.transport == "http" else ""
        system_line(self.list, f"Connected{over} · {clock()}")
        self.refresh()

    def on_close(self, event: Any) -> None:
        system_line(self.list, f"Closed: {event.detail}")
        self.member_id = None
        self.refresh()

    def on_presence(self, member: Member) -> None:
        self.show_online()

    def on_error(self, error: Exception) -> None:
        system_line(self.list, f"{type(error).__name__}: {error}", "error")

    async def count_down(self, attempt: int, at: float) -> None:
        while True:
            left = max(0.0, at - loop.time())
            set_badge(self.badge, "reconnecting", f"reconnecting in {left:.1f} s, attempt {attempt}")
            if left <= 0:
                return
            await asyncio.sleep(min(0.1, left))

    def stop_countdown(self) -> None:
        if self.countdown is not None:
            self.countdown.cancel()
            self.countdown = None

    # -- messages

    def send(self, text: str) -> None:
        client = self.client
        if client is None or client.state is State.CLOSED:
            system_line(self.list, "Not connected: press Connect first")
            return
        name = self.current_name()
        if name != self.joined_as:  # typed a new name and sent at once: shown online under it
            self.rename()
        window.localStorage.setItem("pyrt-demo-name", name)
        self.counter += 1
        data = {"name": name, "text": text, "from": CID, "n": self.counter, "at": round(time.time(), 3)}
        item = self.render(name, text, "sent")
        meta = make("span", "meta pending")
        item.appendChild(meta)
        queued = client.state is not State.OPEN or client.stats.queue_length > 0
        if queued:
            self.queued_total += 1
        self.set_ack(item, meta, "pending", "queued, waiting for the connection" if queued else "sending…")
        self.list.scrollTop = self.list.scrollHeight  # one's own message is shown whole, ack line too
        started = loop.time()
        try:
            future = client.publish(CHAT_CHANNEL, data, event="chat")
        except Exception as exc:  # QueueFull with overflow="raise", ClientClosedError
            self.set_ack(item, meta, "failed", f"✗ not sent: {exc}")
            return
        future.add_done_callback(lambda f: self.acked(f, item, meta, started, queued))
        self.refresh()

    def acked(self, future: asyncio.Future[str], item: Any, meta: Any, started: float, queued: bool) -> None:
        took = (loop.time() - started) * 1000
        if future.cancelled():
            self.set_ack(item, meta, "failed", "✗ cancelled")
        elif future.exception() is not None:
            self.set_ack(item, meta, "failed", f"✗ failed: {future.exception()}")
        else:
            item.dataset.offset = future.result()  # its place in the history
            note = " (sent from the queue)" if queued else ""
            if not queued:
                self.ack_rtt = took / 1000
            self.set_ack(item, meta, "acked", f"✓ acked in {took:.0f} ms{note}")
        self.refresh()

    @staticmethod
    def set_ack(item: Any, meta: Any, state: str, text: str) -> None:
        item.dataset.ack = state
        meta.className = f"meta {state}"
        meta.textContent = text

    def on_publication(self, publication: Publication) -> None:
        if not publication.recovered:
            system_line(self.list, "Some messages are no longer retained by the server and were missed")
        data = publication.data
        if isinstance(data, dict) and data.get("from") == CID:
            if publication.offset is not None:
                self.last_offset = publication.offset
            return  # our own message, already shown with its ack
        self.show(publication)

    def show(self, publication: Publication, history: bool = False) -> None:
        """A message at the bottom of the list."""
        if publication.offset is not None:
            self.last_offset = publication.offset
        append_item(self.list, self.render_item(publication, history))

    def render_item(self, publication: Publication, history: bool = False) -> Any:
        """A message of the chat, with the time it was sent (or, live, when it arrived)."""
        data = publication.data
        if isinstance(data, dict):
            name, text = str(data.get("name", "?"))[:24], str(data.get("text", ""))
        else:
            name, text = "?", str(data)
        at = sent_at(data)
        item = self.item(name, text, "received", stamp=clock(at) if at is not None or not history else None)
        if history:
            item.classList.add("history")
        if publication.offset is not None:
            item.dataset.offset = publication.offset
        return item

    def render(self, name: str, text: str, kind: str) -> Any:
        item = self.item(name, text, kind)
        append_item(self.list, item)
        return item

    @staticmethod
    def item(name: str, text: str, kind: str, stamp: str | None = "") -> Any:
        """A list item; ``stamp``: the time shown ("": now, ``None``: none)."""
        item = make("li", kind)
        item.appendChild(make("span", "who", name))
        item.appendChild(make("span", "text", text))
        if stamp is not None:
            item.appendChild(make("time", "at", stamp or clock()))
        return item

    def show_online(self) -> None:
        """Who is in the chat's presence, as the subscription knows it (names sorted, this page
        marked); nothing while not connected."""
        client = self.client
        connected = client is not None and client.state is State.OPEN
        members = client.members(CHAT_CHANNEL) if connected and client is not None else []
        rows = sorted((member_name(m), m.client == self.member_id) for m in members)
        shown = [(li.textContent, li.classList.contains("me")) for li in self.online.children]
        wanted = [(f"{name} (you)" if me else name, me) for name, me in rows]
        if shown != wanted:
            self.online.replaceChildren()
            for text, me in wanted:
                self.online.appendChild(make("li", "me" if me else "", text))
        by_id("ws-online-count").textContent = f"({len(rows)})" if connected else ""
        note = by_id("ws-online-note")
        note.hidden = connected
        note.textContent = "Not connected"

    # -- display

    def refresh(self) -> None:
        client = self.client
        connected = client is not None and client.state is not State.CLOSED
        by_id("ws-connect").disabled = connected
        by_id("ws-disconnect").disabled = not connected
        by_id("ws-break").disabled = client is None or client.state is not State.OPEN
        by_id("ws-block").textContent = "Let WebSockets through" if self.blocked else "Block WebSockets"
        self.earlier.hidden = not (connected and self.more_earlier)
        self.list.classList.toggle("has-earlier", not self.earlier.hidden)
        self.show_online()
        if client is None:
            set_badge(self.badge, "idle", "not connected")
            return
        state = client.state
        stats = client.stats
        if state is State.PAUSED:
            set_badge(self.badge, "offline", "offline (simulated)" if self.offline else "paused")
        elif state is State.RECONNECTING:
            if self.countdown is None:
                set_badge(self.badge, "reconnecting", "reconnecting")
        else:
            set_badge(self.badge, state.value, state.value)
        waiting = stats.queue_length
        self.queue_note.hidden = waiting == 0
        self.queue_note.textContent = f"{waiting} message{'s' if waiting != 1 else ''} queued"
        self.stats.show(
            {
                "state": state.value,
                "transport": transport_line(client, state),
                "shared": sharing_line(client.sharing, state, self.offline),
                "session": client.session,
                "reconnects": stats.reconnects,
                "queue_length": waiting,
                "queued": self.queued_total,  # pyrt's stats.queued counts its requests too (join, history)
                "dropped": stats.dropped,
                "acked": stats.acked,
                "pending_acks": stats.pending_acks,
                "retried": stats.retried,
                "refused": stats.refused,
                "ack_rtt": ms(self.ack_rtt),
                "rtt": ms(stats.rtt),
                "srtt": ms(stats.srtt),
            }
        )


# ----------------------------------------------------------------------------------------- SSE


class Feed:
    """The Server-Sent Events tab: the server's demo ``feed`` channel."""

    def __init__(self) -> None:
        self.client: EventSourceClient | FetchEventSource | None = None
        self.last_id = ""
        self.kind = by_id("sse-kind")
        self.list = by_id("sse-events")
        self.badge = by_id("sse-status")
        self.stats = StatsPanel(
            by_id("sse-stats"),
            [
                ("state", "State"),
                ("shared", "Shared by"),
                ("client", "Client"),
                ("events", "Events"),
                ("opens", "Opens"),
                ("disconnects", "Disconnects"),
                ("last_id", "Last event id"),
                ("last_error", "Last error"),
            ],
        )

    @property
    def active(self) -> bool:
        return self.client is not None and self.client.ready_state is not self.client.CLOSED

    def connect(self) -> None:
        if self.active:
            return
        url = f"/sse?channel={FEED_CHANNEL}&cid={STREAM_CID}"
        backoff = Backoff(initial=1.0, maximum=15.0, jitter="equal")
        client: EventSourceClient | FetchEventSource
        if self.kind.value == "fetch":
            client = FetchEventSource(url, backoff=backoff, last_event_id=self.last_id, share=SHARE)
        else:
            client = EventSourceClient(url, backoff=backoff, last_event_id=self.last_id, share=SHARE)
        for kind in FEED_TYPES:
            client.on(kind, self.on_event)
        client.on_open = self.on_open
        client.on_error = self.on_error
        self.client = client
        if self.last_id:
            system_line(self.list, f"Resuming after event {self.last_id}")
        client.connect()
        self.refresh()

    def disconnect(self) -> None:
        if self.client is not None and self.active:
            self.client.close()
            system_line(self.list, "Disconnected")
        self.refresh()

    def switch(self) -> None:
        """Another client class: close this one and continue from the same event id."""
        if self.active:
            self.disconnect()
            self.connect()
        self.refresh()

    async def break_connection(self) -> None:
        if not self.active:
            system_line(self.list, "Not connected: nothing to break")
            return
        system_line(self.list, "Asking the server to cut this stream…")
        result = await post_json("/demo/drop", {"cid": STREAM_CID})
        if not (isinstance(result, dict) and result.get("dropped")):
            system_line(self.list, "The server found no stream to cut")

    def on_open(self) -> None:
        name = type(self.client).__name__
        system_line(self.list, f"Stream open ({name}) · {clock()}")
        self.refresh()

    def on_error(self, error: Exception) -> None:
        system_line(self.list, f"Stream lost: {error}; resuming from {self.last_id or 'now'}", "error")
        self.refresh()

    def on_event(self, event: ServerSentEvent) -> None:
        self.last_id = event.id or self.last_id
        try:
            data = json.loads(event.data)
        except ValueError:
            data = {"text": event.data}
        if not isinstance(data, dict):
            data = {"text": str(data)}
        item = make("li", event.type)
        item.dataset.kind = event.type
        item.dataset.id = event.id or ""
        item.appendChild(make("span", "kind", event.type))
        body = make("span", "body")
        if event.type == "tick":
            stamp = data.get("time")
            when_text = (
                time.strftime("%H:%M:%S", time.localtime(stamp)) if isinstance(stamp, int | float) else ""
            )
            body.textContent = f"tick #{data.get('n', '?')}  {when_text}"
        elif event.type == "update":
            body.appendChild(make("span", "", f"{data.get('item', 'update')} "))
            progress = data.get("progress", 0)
            bar = make("progress")
            bar.max = 100
            bar.value = progress if isinstance(progress, int | float) else 0
            bar.setAttribute("aria-label", "progress")
            body.appendChild(bar)
            body.appendChild(make("span", "pct", f" {progress}%"))
        else:
            level = str(data.get("level", "info"))
            item.dataset.level = level
            body.textContent = str(data.get("text", ""))
        item.appendChild(body)
        item.appendChild(make("span", "eid", event.id or ""))
        append_item(self.list, item)

    def refresh(self) -> None:
        client = self.client
        by_id("sse-connect").disabled = self.active
        by_id("sse-disconnect").disabled = not self.active
        by_id("sse-break").disabled = not self.active
        if client is None:
            set_badge(self.badge, "idle", "not connected")
            return
        state = client.state.value
        stats = client.stats
        if client.state is State.RECONNECTING:
            delay = stats.last_delay
            label = "reconnecting" + (f" (retry in ≤ {delay:.1f} s)" if delay else "")
            set_badge(self.badge, "reconnecting", label)
        else:
            set_badge(self.badge, state, state)
        self.stats.show(
            {
                "state": state,
                "shared": sharing_line(client.sharing, client.state),
                "client": type(client).__name__,
                "events": stats.events,
                "opens": stats.opens,
                "disconnects": stats.disconnects,
                "last_id": client.last_event_id or None,
                "last_error": stats.last_error,
            }
        )


# ----------------------------------------------------------------------------------------- tabs


def setup_tabs() -> None:
    """WAI-ARIA tabs: click, or arrow keys / Home / End with automatic activation."""
    tabs = list(document.querySelectorAll('[role="tab"]'))

    def select(tab: Any, focus: bool = False) -> None:
        for other in tabs:
            chosen = other is tab or other.id == tab.id
            other.setAttribute("aria-selected", "true" if chosen else "false")
            other.tabIndex = 0 if chosen else -1
            by_id(other.getAttribute("aria-controls")).hidden = not chosen
        show_newest(by_id(tab.getAttribute("aria-controls")))
        if focus:
            tab.focus()

    @when("click", '[role="tab"]')
    def on_click(event: Any) -> None:
        select(event.currentTarget)

    @when("keydown", '[role="tab"]')
    def on_key(event: Any) -> None:
        index = next(i for i, tab in enumerate(tabs) if tab.id == event.currentTarget.id)
        moves: dict[str, Callable[[int], int]] = {
            "ArrowRight": lambda i: (i + 1) % len(tabs),
            "ArrowLeft": lambda i: (i - 1) % len(tabs),
            "Home": lambda i: 0,
            "End": lambda i: len(tabs) - 1,
        }
        move = moves.get(event.key)
        if move is not None:
            event.preventDefault()
            select(tabs[move(index)], focus=True)


# ----------------------------------------------------------------------------------------- wiring


class InspectorPanel:
    """The "Inspector" box: ``client.inspect()`` of the chat's client, mounted while it is open."""

    def __init__(self) -> None:
        self.details = by_id("ws-inspector")
        self.client: WebSocketClient | None = None
        self.inspector: Any = None

    def follow(self, client: WebSocketClient) -> None:
        """The chat made a new client: inspect that one (when the box is open)."""
        self.client = client
        if self.details.open:
            self.attach()

    def toggle(self) -> None:
        if self.details.open:
            self.attach()
        else:
            self.detach()

    def attach(self) -> None:
        self.detach()
        if self.client is not None:
            self.inspector = self.client.inspect()
            self.inspector.mount("#ws-inspector-view")

    def detach(self) -> None:
        if self.inspector is not None:
            self.inspector.close()  # the client runs as if it had never been inspected
            self.inspector = None

    def refresh(self) -> None:
        if self.inspector is not None:
            self.inspector.refresh()  # the ages move on while nothing happens


panel = InspectorPanel()
chat = Chat()
feed = Feed()
setup_tabs()


@when("toggle", "#ws-inspector")
def on_inspector_toggle() -> None:
    panel.toggle()


@when("submit", "#ws-form")
def on_submit(event: Any) -> None:
    event.preventDefault()  # Enter or the Send button
    field = by_id("ws-input")
    text = field.value.strip()
    if text:
        field.value = ""
        chat.send(text)


@when("click", "#ws-connect")
def on_ws_connect() -> None:
    chat.connect()


@when("click", "#ws-disconnect")
def on_ws_disconnect() -> None:
    chat.disconnect()


@when("click", "#ws-break")
def on_ws_break() -> None:
    spawn(chat.break_connection())


@when("click", "#ws-block")
def on_ws_block() -> None:
    spawn(chat.block_websockets(not chat.blocked))


@when("click", "#ws-earlier")
def on_ws_earlier() -> None:
    spawn(chat.load_earlier())


@when("change", "#ws-name")
def on_ws_rename() -> None:
    chat.rename()


@when("change", "#ws-offline")
def on_offline(event: Any) -> None:
    chat.set_offline(bool(event.currentTarget.checked))


@when("click", "#sse-connect")
def on_sse_connect() -> None:
    feed.connect()


@when("click", "#sse-disconnect")
def on_sse_disconnect() -> None:
    feed.disconnect()


@when("click", "#sse-break")
def on_sse_break() -> None:
    spawn(feed.break_connection())


@when("change", "#sse-kind")
def on_kind() -> None:
    feed.switch()


@when("scroll", ".messages")
def on_list_scroll(event: Any) -> None:
    lst = event.currentTarget
    if lst.clientHeight > 0:  # shown: where the reader scrolled to decides
        follows = following[lst.id] = near_bottom(lst)
        lst.dataset.follow = "newest" if follows else "reader"


async def refresh_forever() -> None:
    while True:
        chat.refresh()
        feed.refresh()
        panel.refresh()
        await asyncio.sleep(0.5)


async def detect_demo_mode() -> None:
    """The drop/stall controls exist only on a server started with ``--demo``, which
    ``/healthz`` reports."""
    try:
        response = await fetch("/healthz")
        demo = bool((await response.json()).get("demo"))
    except Exception:
        demo = False
    for node in document.querySelectorAll("[data-demo-only]"):
        node.hidden = not demo
    document.body.dataset.demo = "on" if demo else "off"


def ready() -> None:
    booted = (window.performance.now() - window.pyrtBootStarted) / 1000
    window.pyrtStopBootTimer()
    by_id("boot").hidden = True
    by_id("app").hidden = False
    badge = by_id("boot-time")
    badge.textContent = f"Python ready in {booted:.1f} s"
    badge.hidden = False
    document.body.dataset.ready = "true"


chat.connect()
feed.connect()
spawn(detect_demo_mode())
spawn(refresh_forever())
ready()
