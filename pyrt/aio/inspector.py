"""``client.inspect()``: a live view of what a client is doing and why.

An :class:`Inspector` attaches a :class:`~pyrt.engine.inspect.Recorder` to one client and shows
what it recorded with what the engine holds now (:func:`~pyrt.engine.inspect.describe_websocket`):

- ``print(inspector)`` / ``str(inspector)``: a compact text summary (a terminal, CPython);
- in Jupyter or JupyterLite, an inspector that is the value of a cell (or :meth:`Inspector.show`)
  renders as HTML that **updates in place**: one ``IPython.display.display(..., display_id=True)``
  handle, refreshed with ``handle.update(...)``. That is part of IPython and of the Jupyter
  messaging protocol itself (``update_display_data``), so it works in JupyterLite's Pyodide kernel
  with no network and no widget package to install (an anywidget or ipywidgets view would need
  its front-end extension in the JupyterLite build);
- in a PyScript page, :meth:`Inspector.mount` renders into a DOM element
  (:mod:`pyrt.browser.inspector_view`).

Views refresh at most every :data:`REFRESH` seconds, on the loop's timers, and only after
something was recorded.

**Costs nothing when closed.** A client without an inspector runs the very same code as before:
attaching puts thin wrappers *on the instance* over the engine's entry points that see frames
(``received``, ``send``, ``actions``; an SSE client's ``_dispatch``), which the client looks
up on every call; :meth:`Inspector.close` deletes them again. No frame is copied, decoded or
kept unless an inspector is open, and what one keeps is bounded (``limit`` entries per ring).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

from pyrt.engine.actions import SendFrame
from pyrt.engine.inspect import DEFAULT_LIMIT, Recorder, View, describe_sse, describe_websocket
from pyrt.engine.inspect_render import render_html, render_text

if TYPE_CHECKING:
    from pyrt.aio.driver import Driver
    from pyrt.wire.sse import ServerSentEvent
    from pyrt.wire.types import Frame

__all__ = ["REFRESH", "Inspector", "SessionFollower", "Sink"]

REFRESH: Final = 0.25  # seconds between two refreshes of a live view, at most


class SessionFollower(Protocol):
    """Something that follows a WebSocket client's connection (see :meth:`Inspector.follow`)."""

    def session(self, session: str) -> None: ...

    def close(self) -> None: ...


class Sink(Protocol):
    """Where a live view goes: a notebook display handle's wrapper, a DOM element's view."""

    def update(self, html: str) -> None: ...

    def close(self) -> None: ...


class _DisplaySink:
    """A Jupyter display handle: its output is replaced in place."""

    def __init__(self, html: str) -> None:
        from IPython.display import HTML, display

        self._html = HTML
        self._handle = display(HTML(html), display_id=True)

    def update(self, html: str) -> None:
        if self._handle is not None:
            self._handle.update(self._html(html))

    def close(self) -> None:
        self._handle = None


class Inspector:
    """A live view of one client (see the module docstring). Made by ``client.inspect()``; one
    per client at a time (``inspect()`` returns the open one). :meth:`close` detaches it."""

    def __init__(self, client: Driver, limit: int = DEFAULT_LIMIT) -> None:
        engine = client._engine
        self._client = client
        self._engine: Any = engine
        self.recorder = Recorder(getattr(engine, "protocol", None), limit)
        self._sinks: list[Sink] = []
        self._timer: asyncio.TimerHandle | None = None
        self._last_refresh = float("-inf")
        self._attached = False
        self._followers: list[SessionFollower] = []
        self._session: str | None = None  # the session the followers were told of
        self._attach()

    # ---------------------------------------------------------------------- taps

    def _attach(self) -> None:
        engine, client, recorder = self._engine, self._client, self.recorder
        clock = client._now
        taken_actions: Callable[[], Any] = engine.actions

        def actions() -> Any:
            taken = taken_actions()
            if taken:
                now = clock()
                recorder.actions(taken, now)
                for action in taken:
                    if type(action) is SendFrame:
                        recorder.frame_out(action.frame, now)
                if self._followers:
                    self._follow_session()
                self._changed()
            return taken

        engine.actions = actions
        if hasattr(engine, "channels"):  # a WebSocket engine
            received = engine.received
            send = engine.send

            def on_received(frame: Frame, now: float) -> Any:
                recorder.frame_in(frame, now)
                message = received(frame, now)
                heartbeat = engine._hb  # a pong just read updates its round trip
                if heartbeat is not None:
                    recorder.rtt(heartbeat.rtt)
                self._changed()
                return message

            def on_send(data: Any, now: float, buffered: int = 0) -> Frame | None:
                frame: Frame | None = send(data, now, buffered)
                if frame is not None:
                    recorder.frame_out(frame, now)
                    self._changed()
                return frame

            engine.received = on_received
            engine.send = on_send
        else:  # an SSE client: its events are decoded already
            dispatch = client._dispatch  # type: ignore[attr-defined]

            def on_dispatch(event: ServerSentEvent) -> None:
                recorder.event_in(event, clock())
                self._changed()
                dispatch(event)

            client._dispatch = on_dispatch  # type: ignore[attr-defined]
        self._attached = True

    @property
    def client(self) -> Driver:
        """The inspected client."""
        return self._client

    @property
    def attached(self) -> bool:
        """True until :meth:`close`."""
        return self._attached

    def close(self) -> None:
        """Detach: the client runs without wrappers again; live views stop updating (a mounted
        view is removed from its element). Closing twice does nothing."""
        if not self._attached:
            return
        self._attached = False
        for name in ("actions", "received", "send"):
            self._engine.__dict__.pop(name, None)
        self._client.__dict__.pop("_dispatch", None)
        followers, self._followers = self._followers, []
        for follower in followers:
            follower.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        sinks, self._sinks = self._sinks, []
        for sink in sinks:
            sink.close()
        if self._client._inspector is self:
            self._client._inspector = None

    detach = close

    # ---------------------------------------------------------------------- followers

    def follow(self, follower: SessionFollower) -> None:
        """Tell ``follower`` the client's session now and after every reconnect, until
        :meth:`close` closes it (:func:`pyrt.aio.server_side.follow_server` is one: the server's
        trace of the same connection)."""
        self._followers.append(follower)
        self._session = None
        self._follow_session()

    def record_server(self, event: dict[str, Any]) -> None:
        """Show ``event`` (one of the server's trace, :mod:`pyrt.server.trace`) in the view."""
        self.recorder.server_event(event, self._client._now())
        self._changed()

    def _follow_session(self) -> None:
        session = getattr(self._engine, "session", None)
        if session is None or session == self._session:
            return
        self._session = session
        for follower in self._followers:
            follower.session(session)

    # ---------------------------------------------------------------------- what it shows

    def view(self) -> View:
        """What the inspector shows now (:class:`~pyrt.engine.inspect.View`)."""
        client = self._client
        now = client._loop.time() if client._loop is not None else 0.0
        name = type(client).__name__
        if hasattr(self._engine, "channels"):
            return describe_websocket(self._engine, self.recorder, now, name)
        transport = "fetch" if name == "FetchEventSource" else "eventsource"
        return describe_sse(self._engine, self.recorder, now, name, transport)

    def text(self) -> str:
        """The compact text summary (what ``print(inspector)`` prints)."""
        return render_text(self.view())

    def html(self) -> str:
        """The view as one self-contained HTML fragment."""
        return render_html(self.view())

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        state = "attached" if self._attached else "closed"
        return f"<Inspector of {type(self._client).__name__} ({state})>"

    def _repr_html_(self) -> str:
        return self.html()

    def _ipython_display_(self) -> None:
        """The value of a notebook cell: a live view (see :meth:`show`)."""
        self.show()

    # ---------------------------------------------------------------------- live views

    def show(self) -> None:
        """Display a live view in the notebook cell running now (Jupyter, JupyterLite): it
        updates in place until :meth:`close`."""
        self.add_sink(_DisplaySink(self.html()))

    def mount(self, target: Any) -> Sink:
        """Render into a DOM element of the page (an element or a CSS selector; Pyodide only),
        refreshed as things happen; the view is removed on :meth:`close` (or its own ``close()``)."""
        from pyrt.aio.runtime import dom_view

        sink = dom_view(target)
        sink.update(self.html())
        return self.add_sink(sink)

    def add_sink(self, sink: Sink) -> Sink:
        """Refresh ``sink`` with the HTML view as things happen (at most every :data:`REFRESH`
        seconds) until :meth:`close`. Returns ``sink``."""
        self._sinks.append(sink)
        return sink

    def remove_sink(self, sink: Sink) -> None:
        """Stop refreshing ``sink`` (and close it)."""
        if sink in self._sinks:
            self._sinks.remove(sink)
        sink.close()

    def _changed(self) -> None:
        if not self._sinks or self._timer is not None:
            return
        loop = self._client._loop
        if loop is None:
            return
        delay = max(0.0, self._last_refresh + REFRESH - loop.time())
        self._timer = loop.call_later(delay, self.refresh)

    def refresh(self) -> None:
        """Render the live views now (they also refresh by themselves after changes; call this
        to move their clocks on while nothing happens)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        loop = self._client._loop
        self._last_refresh = loop.time() if loop is not None else 0.0
        if not self._sinks:
            return
        html = self.html()
        for sink in list(self._sinks):
            sink.update(html)
